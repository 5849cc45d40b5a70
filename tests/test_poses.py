"""pose.poses.Poses: numpy views, per-person access by name, pictures, and exports that are exactly the
formats of pose.video.records (built from synthetic poses: no model)."""
import cv2
import numpy as np
import pytest

from pose.errors import ConfigError, DataError, PoseError
from pose.keypoints import COCO_17
from pose.poses import NO_TRACK_ID, KeypointNameError, Poses
from pose.structures import PoseResult
from pose.video.records import coco_results_json, frame_record, pose_scores, validate_frame_record
from pose.video.render import UNTRAINED_TEXT
from pose.video.sources import Frame


def _poses(rng, n=2, track_ids=(3, None), meta=None, size=(160, 120)):
    w, h = size
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    results = []
    for i in range(n):
        kp = np.concatenate([rng.uniform(10, 100, (17, 2)), rng.uniform(0, 1, (17, 1))], axis=1).astype(np.float32)
        results.append(PoseResult(keypoints_img=kp, center_img=np.array([50.0, 60.0]), scale=np.array([0.5, 0.6]),
                                  box_score=0.9 - 0.1 * i, bbox_xywh=(5.0 + i, 6.0, 70.0, 80.0),
                                  track_id=track_ids[i] if track_ids else None))
    frame = Frame(index=12, timestamp_s=0.5, image_rgb=image, source_name="clip.mp4")
    return Poses(frame, tuple(results), COCO_17, meta or {"model": "m", "detector": "d"})


def test_arrays_and_views(rng):
    p = _poses(rng)
    assert p.keypoints.shape == (2, 17, 3) and p.keypoints.dtype == np.float32
    np.testing.assert_array_equal(p.xy, p.keypoints[..., :2])
    np.testing.assert_array_equal(p.scores, p.keypoints[..., 2])
    assert p.boxes_xywh.tolist() == [[5, 6, 70, 80], [6, 6, 70, 80]]
    np.testing.assert_allclose(p.box_scores, [0.9, 0.8])
    np.testing.assert_allclose(p.person_scores, pose_scores(list(p.results)), rtol=1e-6)
    assert p.track_ids.tolist() == [3, NO_TRACK_ID]
    assert (p.frame_index, p.timestamp_s, p.image_size, len(p)) == (12, 0.5, (160, 120), 2)
    assert p.names == COCO_17.keypoint_names and p.skeleton == COCO_17.skeleton
    with pytest.raises(ValueError):
        p.keypoints[0, 0, 0] = 1.0  # read-only: a result is a record, not a buffer
    assert _poses(rng, track_ids=None).track_ids is None


def test_person_access_by_keypoint_name(rng):
    p = _poses(rng)
    first = p.person(0)
    np.testing.assert_array_equal(first["left_wrist"], p.keypoints[0, 9])
    np.testing.assert_array_equal(first[9], p.keypoints[0, 9])
    assert (first.track_id, p.person(-1).track_id, p.person(1).index) == (3, None, 1)
    assert [q.index for q in p] == [0, 1]
    with pytest.raises(KeypointNameError) as info:
        first["left_hand"]
    assert isinstance(info.value, PoseError) and isinstance(info.value, KeyError)
    assert str(info.value).startswith("keypoint 'left_hand' is unknown; expected one of nose, left_eye")
    with pytest.raises(IndexError, match="person 2: this frame has 2"):
        p.person(2)
    d = first.to_dict()
    assert d["left_wrist"] == [float(v) for v in p.keypoints[0, 9]] and d["track_id"] == 3


def test_record_is_the_schema_v1_frame_record(rng):
    p = _poses(rng)
    record = p.to_record()
    validate_frame_record(record, num_keypoints=17)
    assert record == frame_record(12, 0.5, "clip.mp4", list(p.results), meta={"model": "m", "detector": "d"})
    assert [q["track_id"] for q in record["persons"]] == [3, None]


def test_coco_entries(rng):
    p = _poses(rng)
    entries = p.to_coco(785)
    assert [e["image_id"] for e in entries] == [785, 785]
    assert entries == coco_results_json([r.__class__(**{**r.__dict__, "image_id": 785}) for r in p.results])
    with pytest.raises(ConfigError, match="image_id"):
        p.to_coco("785.jpg")


def test_plot_save_and_notebook_picture(rng, tmp_path):
    p = _poses(rng)
    rgb = p.plot()
    assert rgb.shape == (120, 160, 3) and rgb.dtype == np.uint8 and not np.array_equal(rgb, p.image)
    np.testing.assert_array_equal(p.plot(color="bgr"), rgb[:, :, ::-1])
    np.testing.assert_array_equal(p.image, p.frame.image_rgb)  # drawing never touches the frame
    blank = np.zeros((120, 160, 3), np.uint8)
    assert p.plot(blank).any() and not blank.any()
    path = p.save(tmp_path / "out.png")
    np.testing.assert_array_equal(cv2.imread(str(path))[:, :, ::-1], rgb)
    assert [x.name for x in tmp_path.iterdir()] == ["out.png"]
    with pytest.raises(DataError, match="cannot be encoded"):
        p.save(tmp_path / "out.nope")
    png = cv2.imdecode(np.frombuffer(p._repr_png_(), np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(png[:, :, ::-1], rgb)


def test_untrained_poses_carry_the_banner_and_flag(rng):
    p = _poses(rng, meta={"model": "random:x", "untrained_weights": True, "warning": UNTRAINED_TEXT})
    assert p.untrained and "UNTRAINED" in repr(p)
    bottom = p.plot(color="bgr")[-3:].reshape(-1, 3).astype(int)
    assert np.mean((bottom[:, 2] > 170) & (bottom[:, 1] < 90) & (bottom[:, 0] < 90)) > 0.5
    assert p.to_record()["meta"]["untrained_weights"] is True


def test_empty_frame(rng):
    p = _poses(rng, n=0)
    assert p.keypoints.shape == (0, 17, 3) and p.boxes_xywh.shape == (0, 4) and p.track_ids is None
    assert p.to_record()["persons"] == [] and p.to_coco(1) == [] and list(p) == []


def test_dataframe_needs_pandas(rng):
    p = _poses(rng)
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install pandas"):
            p.to_dataframe()
        return
    df = p.to_dataframe()
    assert len(df) == 2 * 17 and list(df["keypoint"][:2]) == ["nose", "left_eye"]
    assert df["x"].iloc[17 + 9] == pytest.approx(float(p.keypoints[1, 9, 0]))
