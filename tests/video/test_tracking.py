"""Tracker identities on the real two-person clip, birth/death rules, One-Euro smoothing, pose boxes."""
from collections import Counter

import cv2
import numpy as np
import pytest

from pose.errors import ConfigError
from pose.evaluation.oks import oks_matrix
from pose.keypoints import COCO_17
from pose.structures import PersonBox, PoseResult
from pose.video.detection import YoloxPersonDetector
from pose.video.smoothing import KeypointSmoother, OneEuroFilter
from pose.video.tracking import PoseTracker, box_iou_xywh, boxes_from_keypoints


def keypoint_oks(a, b, areas, sigmas, score_threshold=0.3):
    """The tracker's use of the shared OKS: reference areas per track, joints scored in both poses."""
    return oks_matrix(a, b, np.asarray(areas, dtype=np.float64)[:, None], sigmas, score_threshold=score_threshold)


def _pose(kp, track_id=None, score=0.9, box=None):
    kp = np.asarray(kp, dtype=np.float32)
    return PoseResult(keypoints_img=kp, center_img=np.zeros(2), scale=np.ones(2), box_score=score,
                      bbox_xywh=box, track_id=track_id)


def test_box_iou_known_values():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 5, 5], [0, 0, 0, 0]])
    np.testing.assert_allclose(box_iou_xywh(a, b), [[1.0, 50 / 150, 0.0, 0.0]])


def test_oks_identity_and_shift():
    rng = np.random.default_rng(0)
    kp = np.concatenate([rng.uniform(0, 100, (1, 17, 2)), np.ones((1, 17, 1))], axis=-1)
    sig = np.asarray(COCO_17.oks_sigmas)
    assert keypoint_oks(kp, kp, np.array([1e4]), sig)[0, 0] == pytest.approx(1.0)
    shifted = kp.copy()
    shifted[..., 0] += 10
    expected = np.mean(np.exp(-100 / (2 * 1e4 * (2 * sig) ** 2)))
    assert keypoint_oks(kp, shifted, np.array([1e4]), sig)[0, 0] == pytest.approx(expected)
    hidden = kp.copy()
    hidden[..., 2] = 0
    assert keypoint_oks(kp, hidden, np.array([1e4]), sig)[0, 0] == 0.0


@pytest.fixture(scope="module")
def video_boxes(data_dir):
    """YOLOX person boxes for every frame of the two-person clip (about 2 s on one core)."""
    cv2.setNumThreads(1)
    det = YoloxPersonDetector(score_threshold=0.3)
    cap = cv2.VideoCapture(str(data_dir / "video" / "demo_skeleton.mp4"))
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(det(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
    cap.release()
    assert len(frames) == 72
    return frames


def test_yolox_finds_both_people_in_video(video_boxes):
    both = sum(len(b) >= 2 for b in video_boxes)
    assert both >= 0.9 * len(video_boxes)


def test_tracker_keeps_two_stable_ids_on_video(video_boxes):
    tracker = PoseTracker(metric="iou", match_threshold=0.3, min_new_score=0.5, max_missed=5)
    per_frame = [tracker.update(boxes) for boxes in video_boxes]
    ids = Counter(b.track_id for frame in per_frame for b in frame if b.track_id is not None)
    (id_a, _), (id_b, _) = ids.most_common(2)
    stable = sum({b.track_id for b in frame} >= {id_a, id_b} for frame in per_frame)
    assert stable >= 0.9 * len(per_frame)
    # an id follows one person: its box centre never jumps between the two people (~230 px apart)
    for tid in (id_a, id_b):
        cx = [b.bbox_xywh[0] + b.bbox_xywh[2] / 2 for frame in per_frame for b in frame if b.track_id == tid]
        assert np.abs(np.diff(cx)).max() < 100


def test_birth_death_and_low_score_rules():
    tracker = PoseTracker(metric="iou", match_threshold=0.3, min_new_score=0.5, max_missed=2)
    a = PersonBox((0, 0, 50, 100), 0.9)
    weak = PersonBox((300, 0, 50, 100), 0.2)
    out = tracker.update([a, weak])
    assert out[0].track_id == 0 and out[1].track_id is None  # low score: no birth
    moved = PersonBox((5, 0, 50, 100), 0.9)
    assert tracker.update([moved])[0].track_id == 0
    tracker.update([])
    tracker.update([])  # two misses: still alive (max_missed=2)
    assert tracker.update([moved])[0].track_id == 0
    for _ in range(3):  # three misses: dead
        tracker.update([])
    assert tracker.tracks == []
    assert tracker.update([moved])[0].track_id == 1  # ids are never reused


def test_hungarian_beats_greedy_and_order_is_kept():
    tracker = PoseTracker(metric="iou", match_threshold=0.1)
    tracker.update([PersonBox((0, 0, 100, 100), 0.9), PersonBox((60, 0, 100, 100), 0.9)])
    # item 0 overlaps track 1 most, but the globally best assignment gives it track 0
    out = tracker.update([PersonBox((30, 0, 100, 100), 0.9), PersonBox((90, 0, 100, 100), 0.9)])
    assert [o.track_id for o in out] == [0, 1]


def test_oks_tracking_on_poses(rng):
    base = np.concatenate([rng.uniform(100, 300, (17, 2)), np.ones((17, 1))], axis=1)
    other = base.copy()
    other[:, 0] += 400
    tracker = PoseTracker(metric="oks", match_threshold=0.5)
    first = tracker.update([_pose(base, box=(100, 100, 200, 200)), _pose(other, box=(500, 100, 200, 200))])
    step = base.copy()
    step[:, :2] += rng.normal(0, 2, (17, 2))
    swapped = tracker.update([_pose(other, box=(500, 100, 200, 200)), _pose(step, box=(100, 100, 200, 200))])
    assert [p.track_id for p in swapped] == [first[1].track_id, first[0].track_id]
    with pytest.raises(ConfigError, match="oks"):
        tracker.update([PersonBox((0, 0, 1, 1))])
    with pytest.raises(ConfigError, match="metric"):
        PoseTracker(metric="reid")


def _jitter(x, truth):
    return np.sqrt(np.mean((np.diff(x, axis=0) - np.diff(truth, axis=0)) ** 2))


@pytest.mark.parametrize("speed_px_s", [0.0, 200.0])
def test_one_euro_reduces_jitter_with_bounded_lag(rng, speed_px_s):
    fps, n = 30.0, 300
    t = np.arange(n) / fps
    truth = np.zeros((n, 17, 2))
    truth[:, :, 0] = speed_px_s * t[:, None]
    noisy = truth + rng.normal(0, 2.0, truth.shape)
    filt = OneEuroFilter()  # defaults
    out = np.stack([filt(noisy[i], t[i]) for i in range(n)])
    raw_j, out_j = _jitter(noisy[30:], truth[30:]), _jitter(out[30:], truth[30:])
    # still: jitter drops ~5x; moving at 200 px/s (~7 px/frame): still ~2x, with under 3 px mean error (lag)
    assert out_j < (0.25 if speed_px_s == 0 else 0.6) * raw_j
    lag = np.mean(truth[60:, :, 0] - out[60:, :, 0])
    assert abs(lag) < 3.0
    assert np.abs(out[60:] - truth[60:]).mean() < 3.0


def test_one_euro_mask_and_shapes():
    f = OneEuroFilter(freq=10)
    x0 = np.zeros((3, 2))
    assert np.array_equal(f(x0), x0)
    x1 = np.full((3, 2), 10.0)
    mask = np.array([[True], [False], [True]])
    y = f(x1, mask=mask)
    assert np.array_equal(y[1], x1[1])  # masked joint passes through
    assert 0 < y[0, 0] < 10 and y[0, 0] == y[2, 0]  # filtered joints lag the step
    with pytest.raises(ConfigError):
        OneEuroFilter(min_cutoff=0)


def test_keypoint_smoother_per_track_and_low_scores(rng):
    smoother = KeypointSmoother(score_threshold=0.3)
    kp = np.concatenate([np.full((17, 2), 100.0), np.full((17, 1), 0.9)], axis=1)
    smoother([_pose(kp, track_id=1), _pose(kp + [200, 0, 0], track_id=2)], timestamp_s=0.0)
    jittered = kp.copy()
    jittered[:, :2] += 5
    jittered[0, 2] = 0.1  # an unreliable joint: not filtered
    out = smoother([_pose(jittered, track_id=1), _pose(kp + [200, 0, 0], track_id=2), _pose(jittered)],
                   timestamp_s=1 / 30)
    assert np.all(out[0].keypoints_img[1:, :2] < 105) and np.all(out[0].keypoints_img[1:, :2] > 100)
    np.testing.assert_allclose(out[0].keypoints_img[0], jittered[0])
    np.testing.assert_allclose(out[1].keypoints_img, kp + [200, 0, 0])  # track 2 is its own filter
    np.testing.assert_allclose(out[2].keypoints_img, jittered)  # no track id: unchanged
    np.testing.assert_allclose(out[0].keypoints_img[:, 2], jittered[:, 2])  # scores untouched


def test_boxes_from_keypoints():
    kp = np.array([[10, 20, 0.9], [30, 60, 0.8], [500, 500, 0.1]])
    r = PoseResult(keypoints_img=kp, center_img=np.zeros(2), scale=np.ones(2), box_score=0.7, image_id=3,
                   track_id=4)
    (box,) = boxes_from_keypoints([r], padding=1.5)
    np.testing.assert_allclose(box.bbox_xywh, (5, 10, 30, 60))
    assert (box.score, box.image_id, box.track_id) == (0.7, 3, 4)
    (clipped,) = boxes_from_keypoints([r], padding=1.5, image_size=(32, 64))
    np.testing.assert_allclose(clipped.bbox_xywh, (5, 10, 27, 54))
    lonely = PoseResult(keypoints_img=np.array([[1, 1, 0.9], [2, 2, 0.1]]), center_img=np.zeros(2),
                        scale=np.ones(2))
    assert boxes_from_keypoints([lonely]) == []
