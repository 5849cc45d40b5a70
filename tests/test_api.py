"""pose.PoseEstimator: parity with the one inference path, batching across images, streams equal to
pose-demo's records, colour handling, untrained weights, degenerate boxes, offline errors.

Most tests use a generated tiny HRNet checkpoint (random weights: they check the plumbing, not
accuracy); the parity tests use the golden seed-0 W32 weights and skip without ../shared/reference.
"""
import collections
import json
import logging

import numpy as np
import pytest
import torch

from pose.api import PoseEstimator, predict_images
from pose.config import load_config
from pose.errors import ConfigError, DataError, DownloadError, PoseError
from pose.imageio import read_image_rgb
from pose.loading import load_predictor
from pose.poses import Poses
from pose.video.detection import build_detector
from pose.video.records import validate_frame_record
from tests.conftest import DATA, REPO

CLIP = DATA / "video" / "demo_skeleton.mp4"
COCO_DIR = DATA / "coco"
IMAGES = sorted(COCO_DIR.glob("*.jpg"))
TINY_CFG = REPO / "configs" / "tiny_hrnet_128x96.yaml"
W32_CFG = REPO / "configs" / "coco_hrnet_w32_256x192.yaml"


@pytest.fixture(scope="module")
def tiny(tiny_weights):
    return PoseEstimator(weights=tiny_weights, backend="torch", flip_test=False)


@pytest.fixture(scope="module")
def golden_weights(golden, tmp_path_factory):
    npz = golden("golden_w32_seed0.npz")
    state = {k[len("state_dict/"):]: torch.from_numpy(np.asarray(v)) for k, v in npz.items()
             if k.startswith("state_dict/")}
    path = tmp_path_factory.mktemp("golden") / "golden_w32.pth"
    torch.save(state, path)
    return path


class _CountingBackend:
    """Wraps a backend and counts its forward calls."""

    def __init__(self, backend):
        self.backend, self.calls = backend, 0
        self.name = getattr(backend, "name", "wrapped")

    def __call__(self, x):
        self.calls += 1
        return self.backend(x)


# ------------------------------------------------------------------------------------------------
# Parity with the existing path (golden W32 weights)
# ------------------------------------------------------------------------------------------------
# W32 on 2 shared CPU cores is slow: two images (4 people), no flip test (a predictor-internal setting).
def test_image_call_equals_predictor_on_yolox_boxes(golden_weights):
    torch.set_num_threads(2)
    est = PoseEstimator(weights=golden_weights, cfg=W32_CFG, backend="torch", flip_test=False)
    predictor, _ = load_predictor(golden_weights, load_config(W32_CFG), backend="torch", flip_test=False)
    detector = build_detector("yolox-nano")
    found = 0
    for path in IMAGES[:2]:
        poses = est(path)
        image = read_image_rgb(path)
        want = predictor(image, detector(image))
        assert len(poses) == len(want)
        found += len(want)
        if want:
            np.testing.assert_array_equal(poses.keypoints, np.stack([r.keypoints_img for r in want]))
            np.testing.assert_array_equal(poses.boxes_xywh, np.array([r.bbox_xywh for r in want], np.float32))
    assert found >= 3  # the two images hold 4 annotated people


def test_given_gt_boxes_equal_pose_eval_gt_boxes(golden_weights, tmp_path):
    from pose.data import build_dataset
    from pose.evaluation.runner import predict_dataset

    torch.set_num_threads(2)
    gt = json.loads((COCO_DIR / "test_coco.json").read_text())
    keep = {785, 40083}  # 4 people (see the note above)
    gt["images"] = [i for i in gt["images"] if i["id"] in keep]
    gt["annotations"] = [a for a in gt["annotations"] if a["image_id"] in keep]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    cfg = load_config(W32_CFG, ["DATASET.TEST_ANN_FILE", str(tmp_path / "gt.json"),
                                "DATASET.TEST_IMAGE_DIR", str(COCO_DIR), "TEST.USE_GT_BBOX", "True",
                                "TEST.BATCH_SIZE_PER_GPU", "8", "TEST.FLIP_TEST", "False"])
    predictor, cfg = load_predictor(golden_weights, cfg, backend="torch")
    dataset = build_dataset(cfg, "test", predictor.codec)
    want = predict_dataset(predictor, dataset, progress=False)["default"]  # what pose-eval --gt-boxes scores
    by_image = collections.defaultdict(list)
    for i, sample in enumerate(dataset.samples):
        by_image[sample.image_path].append(i)
    paths = list(by_image)
    est = PoseEstimator(weights=golden_weights, cfg=cfg, backend="torch", batch_size=8)
    got = est(paths, boxes=[[dataset.samples[i].bbox_xywh for i in by_image[p]] for p in paths], box_format="xywh")
    order = [i for p in paths for i in by_image[p]]
    keypoints = np.concatenate([p.keypoints for p in got])
    np.testing.assert_array_equal(keypoints, want[order])  # same crops, same batches of 8: bit for bit
    centers = np.concatenate([[r.center_img for r in p.results] for p in got])
    np.testing.assert_allclose(centers, [dataset.samples[i].center for i in order], atol=1e-4)


# ------------------------------------------------------------------------------------------------
# Batching across images
# ------------------------------------------------------------------------------------------------
def test_list_of_images_batches_across_images(tiny):
    counter = _CountingBackend(tiny.predictor.backend)
    tiny.predictor.backend = counter
    try:
        singles = [tiny(path) for path in IMAGES]
        single_calls, counter.calls = counter.calls, 0
        batched = tiny(list(IMAGES))
        batched_calls = counter.calls
    finally:
        tiny.predictor.backend = counter.backend
    assert isinstance(batched, list) and len(batched) == 4
    assert sum(len(p) for p in batched) >= 8
    for one, many in zip(singles, batched):
        np.testing.assert_allclose(many.keypoints, one.keypoints, atol=1e-4, rtol=0)
        assert many.frame.source_name == one.frame.source_name
    assert batched_calls < single_calls
    assert batched_calls == -(-sum(len(p) for p in batched) // tiny.predictor.batch_size)


def test_folder_and_glob_give_a_list_in_name_order(tiny):
    from_folder = tiny(COCO_DIR, boxes=[[[10, 10, 100, 200]]] * 4, box_format="xywh")
    from_glob = tiny(str(COCO_DIR / "*.jpg"), boxes=[[[10, 10, 100, 200]]] * 4, box_format="xywh")
    assert [p.frame.source_name for p in from_folder] == [p.name for p in IMAGES]
    for a, b in zip(from_folder, from_glob):
        np.testing.assert_array_equal(a.keypoints, b.keypoints)


def test_predict_images_one_image_is_the_predictor_call(tiny):
    image = read_image_rgb(IMAGES[0])
    boxes = tiny.detector(image)
    (got,) = predict_images(tiny.predictor, [image], [boxes])
    want = tiny.predictor(image, boxes)
    np.testing.assert_array_equal(np.stack([r.keypoints_img for r in got]), np.stack([r.keypoints_img for r in want]))


# ------------------------------------------------------------------------------------------------
# Streams: the same records as pose-demo
# ------------------------------------------------------------------------------------------------
def test_stream_on_clip_matches_pose_demo_records(tiny, tiny_weights, tmp_path, capsys):
    from pose.cli.demo import main

    records, id_sets = [], collections.Counter()
    for poses in tiny.stream(CLIP):
        assert isinstance(poses, Poses)
        records.append(poses.to_record())
        id_sets[tuple(sorted(poses.track_ids.tolist())) if poses.track_ids is not None else ()] += 1
    assert len(records) == 72
    (ids, count), = id_sets.most_common(1)
    assert len(ids) == 2 and count >= 0.9 * 72

    assert main([str(CLIP), "--weights", str(tiny_weights), "--no-flip", "--backend", "torch", "--no-video",
                 "--output-dir", str(tmp_path), "--quiet"]) == 0
    lines = (tmp_path / "demo_skeleton_keypoints.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == records
    assert lines == [json.dumps(r, allow_nan=False, separators=(",", ":")) for r in records]
    for r in records:
        validate_frame_record(r, num_keypoints=17)


def test_stream_options_and_frame_fields(tiny):
    frames = list(tiny.stream(CLIP, stride=24, track=False))
    assert [p.frame_index for p in frames] == [0, 24, 48]
    assert all(p.track_ids is None for p in frames)
    assert frames[0].timestamp_s == 0.0 and frames[1].timestamp_s == pytest.approx(24 / 28.05, abs=1e-3)
    assert frames[0].image_size == (1920, 1080)
    assert frames[0].to_record()["meta"]["stride"] == 24
    with pytest.raises(DataError, match="nope.mp4"):
        tiny.stream(REPO / "nope.mp4")  # a bad source fails at the call, not at the first next()


# ------------------------------------------------------------------------------------------------
# Colour and image checks
# ------------------------------------------------------------------------------------------------
def test_bgr_frame_equals_its_rgb_copy(tiny):
    rgb = read_image_rgb(IMAGES[2])  # a colour picture (000000040083 is grey)
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    a, b = tiny(rgb), tiny(bgr, color="bgr")
    assert len(a) > 0
    np.testing.assert_array_equal(a.keypoints, b.keypoints)
    np.testing.assert_array_equal(a.image, b.image)
    wrong = tiny(bgr)  # the same array read as RGB is another picture
    assert not np.array_equal(wrong.image, a.image)


def test_public_name():
    import pose

    assert pose.PoseEstimator is PoseEstimator and pose.Poses is Poses


def test_grayscale_rgba_and_pil_images_work(tiny):
    from PIL import Image

    rgb = read_image_rgb(IMAGES[0])
    gray = rgb.mean(axis=2).astype(np.uint8)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    box = [[50, 50, 200, 300]]
    assert tiny(gray, boxes=box, box_format="xywh").keypoints.shape == (1, 17, 3)
    np.testing.assert_array_equal(tiny(rgba, boxes=box, box_format="xywh").keypoints,
                                  tiny(rgb, boxes=box, box_format="xywh").keypoints)
    np.testing.assert_array_equal(tiny(Image.fromarray(rgb), boxes=box, box_format="xywh").keypoints,
                                  tiny(rgb, boxes=box, box_format="xywh").keypoints)


@pytest.mark.parametrize("image,expected", [
    (np.zeros((64, 48, 3), np.float32), "dtype float32; expected uint8"),
    (np.zeros((64, 48, 2), np.uint8), "shape (64, 48, 2); expected"),
    (np.zeros((0, 0, 3), np.uint8), "shape (0, 0, 3); expected a non-empty"),
    (np.zeros((2, 64, 48, 3), np.uint8), "shape (2, 64, 48, 3)"),
    ("not/there.jpg", "not/there.jpg' does not exist"),
    (CLIP, "demo_skeleton.mp4' is not an image file"),
])
def test_bad_images_get_one_line_pose_errors(tiny, image, expected):
    with pytest.raises(PoseError) as info:
        tiny(image)
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_unknown_colour_and_missing_box_format_are_config_errors(tiny):
    rgb = read_image_rgb(IMAGES[0])
    with pytest.raises(ConfigError, match="color"):
        tiny(rgb, color="hsv")
    with pytest.raises(ConfigError, match="box_format"):
        tiny(rgb, boxes=[[0, 0, 10, 10]])


def test_xyxy_and_xywh_boxes_agree_and_skip_the_detector(tiny):
    rgb = read_image_rgb(IMAGES[0])
    xywh = tiny(rgb, boxes=np.array([[40, 30, 200, 300, 0.8]]), box_format="xywh")
    xyxy = tiny(rgb, boxes=[[40, 30, 240, 330, 0.8]], box_format="xyxy")
    np.testing.assert_array_equal(xywh.keypoints, xyxy.keypoints)
    assert xywh.boxes_xywh.tolist() == [[40, 30, 200, 300]]
    assert xywh.box_scores.tolist() == pytest.approx([0.8])
    assert xywh.to_record()["meta"]["detector"] == "given boxes"


def test_degenerate_boxes_are_dropped_with_one_counted_warning(tiny, caplog):
    rgb = read_image_rgb(IMAGES[0])  # 640 x 425
    boxes = [[10, 10, 0, 0], [10, 10, -5, -5], [1e6, 1e6, 10, 10], [np.nan, 0, 10, 10], [40, 30, 200, 300]]
    with caplog.at_level(logging.WARNING, logger="pose.video.pipeline"):
        poses = tiny(rgb, boxes=boxes, box_format="xywh")
    assert poses.boxes_xywh.tolist() == [[40, 30, 200, 300]]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["dropped 4 given boxes that cannot be cropped: 1 non-finite box, 2 zero-size boxes, "
                        "1 box outside the image"]


class _DegenerateDetector:
    """A detector returning a zero-size, an outside and one good box."""

    def __call__(self, image_rgb, image_id=None):
        from pose.structures import PersonBox

        return [PersonBox((5.0, 5.0, 0.0, 0.0), 0.9, image_id), PersonBox((-500.0, -500.0, 10.0, 10.0), 0.8, image_id),
                PersonBox((700.0, 250.0, 400.0, 700.0), 0.7, image_id)]


def test_degenerate_detector_boxes_in_a_stream_give_one_warning_per_run(tiny_weights, caplog):
    est = PoseEstimator(weights=tiny_weights, backend="torch", flip_test=False, detector=_DegenerateDetector())
    with caplog.at_level(logging.WARNING, logger="pose.video.pipeline"):
        frames = list(est.stream(CLIP, stride=24))
    assert [len(p) for p in frames] == [1, 1, 1]
    warnings = [r.getMessage() for r in caplog.records if "cannot be cropped" in r.getMessage()]
    assert warnings == [f"dropped 6 detector boxes of '{CLIP}' that cannot be cropped: 3 zero-size boxes, "
                        "3 boxes outside the image"]


# ------------------------------------------------------------------------------------------------
# Untrained weights, offline, info
# ------------------------------------------------------------------------------------------------
def test_untrained_weights_are_said_everywhere(tmp_path):
    est = PoseEstimator(cfg=TINY_CFG, pretrained=False, backend="torch", detector="whole-image")
    info = est.info()
    assert info["untrained_weights"] is True and info["weights"].startswith("untrained")
    assert info["model"] == f"random:{TINY_CFG}"
    records = [p.to_record() for p in est.stream(CLIP, stride=36)]
    assert len(records) == 2
    assert all(r["meta"]["untrained_weights"] is True for r in records)
    assert est(IMAGES[0]).to_record()["meta"]["untrained_weights"] is True
    with pytest.raises(ConfigError, match="exclude each other"):
        PoseEstimator(weights=tmp_path / "w.pth", pretrained=False)


def test_info_says_what_runs(tiny, tiny_weights):
    info = tiny.info()
    assert info["model"] == str(tiny_weights) and info["weights"] == str(tiny_weights)
    assert info["input_size"] == [96, 128] and info["keypoint_names"][9] == "left_wrist"
    assert (info["decoder"], info["backend"], info["device"], info["detector"]) == ("quarter", "torch", "cpu",
                                                                                   "yolox-nano")
    assert info["flip_test"] is False and info["untrained_weights"] is False and info["precision"] == "fp32"
    # precision defaults to auto, and info() says what auto chose and why (plain torch offers no bf16)
    assert "precision auto: fp32" in info["runtime_reason"] and "torch" in info["runtime_reason"]


def test_without_network_the_zoo_model_raises_download_error(tmp_path, monkeypatch):
    monkeypatch.setenv("POSE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DownloadError) as info:
        PoseEstimator(offline=True)
    message = str(info.value)
    assert "hrnet_w32_coco_256x192" in message and "--weights" in message and "\n" not in message


def test_without_network_a_download_attempt_raises_download_error(tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setenv("POSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(DownloadError) as info:
        PoseEstimator()
    message = str(info.value)
    assert "download of https://" in message and "name resolution" in message and "\n" not in message
    assert not list((tmp_path / "cache").rglob("*.pth"))


def test_precision_is_passed_to_the_loader(tiny_weights):
    with pytest.raises(ConfigError, match="precision 'fp64' is unknown"):
        PoseEstimator(weights=tiny_weights, backend="torch", precision="fp64")
