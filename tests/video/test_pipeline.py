"""pose-demo: the full pipeline on the real two-person clip and COCO images, kill-safety of the JSON
lines, one-line errors for bad input, and the untrained-weights warning.

The pose model is a generated tiny HRNet checkpoint with random weights: these tests check the
pipeline (detector -> batched predictor -> tracker -> files), not keypoint accuracy.
"""
import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from pose.cli.demo import main
from pose.keypoints import COCO_17
from pose.loading import load_predictor
from pose.structures import PersonBox
from pose.video.detection import build_detector
from pose.video.pipeline import DemoSummary, run_demo
from pose.video.records import read_frame_records, validate_frame_record
from tests.conftest import REPO

CLIP = REPO / "tests" / "data" / "video" / "demo_skeleton.mp4"
COCO_DIR = REPO / "tests" / "data" / "coco"
COCO_IDS = {785, 40083, 196141, 197388}
TINY_CFG = REPO / "configs" / "tiny_hrnet_128x96.yaml"


def _one_error_line(capsys):
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert err[0].startswith("pose-demo: error: ") and "Traceback" not in err[0]
    return err[0]


def _red_fraction(image_bgr: np.ndarray) -> float:
    """Share of the bottom 3 % of rows that is banner red."""
    rows = image_bgr[-max(3, image_bgr.shape[0] // 33):].reshape(-1, 3).astype(int)
    return float(np.mean((rows[:, 2] > 170) & (rows[:, 1] < 90) & (rows[:, 0] < 90)))


# ------------------------------------------------------------------------------------------------
# The real clip
# ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_clip_pipeline_writes_video_and_records_with_two_stable_tracks(tiny_weights, tmp_path, capsys):
    code = main([str(CLIP), "--weights", str(tiny_weights), "--no-flip", "--output-dir", str(tmp_path),
                 "--csv", "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "72 frames (video)" in out

    video = tmp_path / "demo_skeleton_pose.mp4"
    cap = cv2.VideoCapture(str(video))
    assert cap.isOpened()
    frames = 0
    while True:
        ok, image = cap.read()
        if not ok:
            break
        assert image.shape == (1080, 1920, 3)
        frames += 1
    cap.release()
    assert frames == 72
    assert not list(tmp_path.glob(".*tmp*")), "temp video left behind"

    records = read_frame_records(tmp_path / "demo_skeleton_keypoints.jsonl")
    assert len(records) == 72
    for r in records:
        validate_frame_record(r, num_keypoints=17)
    assert [r["frame_index"] for r in records] == list(range(72))
    assert records[0]["meta"]["model"] == str(tiny_weights)
    assert "untrained_weights" not in records[0]["meta"]
    two = sum(len(r["persons"]) == 2 for r in records)
    assert two >= 0.9 * 72
    id_sets = collections.Counter(tuple(sorted(p["track_id"] for p in r["persons"])) for r in records)
    (ids, count), = id_sets.most_common(1)
    assert len(ids) == 2 and None not in ids and count >= 0.9 * 72
    # the CSV has one row per frame x person
    rows = (tmp_path / "demo_skeleton_keypoints.csv").read_text().strip().splitlines()
    assert len(rows) - 1 == sum(len(r["persons"]) for r in records)


def _demo_command():
    script = Path(sys.executable).parent / "pose-demo"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "pose.cli.demo"]


@pytest.mark.slow
def test_killed_demo_leaves_only_complete_records(tiny_weights, tmp_path):
    jsonl = tmp_path / "demo_skeleton_keypoints.jsonl"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(_demo_command() + [str(CLIP), "--weights", str(tiny_weights), "--no-flip",
                                               "--output-dir", str(tmp_path), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if jsonl.is_file() and jsonl.read_bytes().count(b"\n") >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"demo ended before it could be killed: {proc.stderr.read()[-2000:]}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    data = jsonl.read_bytes()
    assert data.endswith(b"\n"), "a record was cut off"
    records = read_frame_records(jsonl)
    assert 3 <= len(records) < 72
    assert [r["frame_index"] for r in records] == list(range(len(records)))


# ------------------------------------------------------------------------------------------------
# Library loop: empty detections, --det-every
# ------------------------------------------------------------------------------------------------
class _FixedBoxDetector:
    """One person-sized box in every frame; counts its calls."""

    box = (760.0, 250.0, 300.0, 700.0)

    def __init__(self):
        self.calls = 0

    def __call__(self, image_rgb, image_id=None):
        self.calls += 1
        return [PersonBox(self.box, 0.9, image_id)]


def test_nobody_found_gives_empty_valid_records(tiny_weights, tmp_path):
    predictor, _ = load_predictor(tiny_weights, flip_test=False)
    detections = tmp_path / "none.json"
    detections.write_text("[]")
    summary = run_demo(CLIP, predictor, build_detector(f"json:{detections}"), output_dir=tmp_path / "out",
                       stride=24, write_video=False, progress=False)
    assert isinstance(summary, DemoSummary)
    assert (summary.frames, summary.persons, summary.source_kind) == (3, 0, "video")
    records = read_frame_records(tmp_path / "out" / "demo_skeleton_keypoints.jsonl")
    assert [(r["frame_index"], r["persons"]) for r in records] == [(0, []), (24, []), (48, [])]


def test_det_every_reuses_boxes_from_previous_poses(tiny_weights, tmp_path):
    predictor, _ = load_predictor(tiny_weights, flip_test=False)
    detector = _FixedBoxDetector()
    summary = run_demo(CLIP, predictor, detector, output_dir=tmp_path, stride=12, det_every=3,
                       write_video=False, progress=False, kpt_thr=0.0)
    assert summary.frames == 6
    assert detector.calls == 2  # frames 0 and 3 of the 6 processed
    records = read_frame_records(tmp_path / "demo_skeleton_keypoints.jsonl")
    assert all(len(r["persons"]) == 1 for r in records)
    assert records[0]["persons"][0]["bbox_xywh"] == list(detector.box)
    # between detector runs the box is the previous pose's joint extent, x1.2 about its centre, clipped
    for prev, cur in zip(records[:2], records[1:3]):
        kp = np.array(prev["persons"][0]["keypoints"])
        kp = kp[kp[:, 2] >= 0.0, :2]  # joints at or above kpt_thr
        lo, hi = kp.min(0), kp.max(0)
        c, half = (lo + hi) / 2, (hi - lo) / 2 * 1.2
        x0, y0 = np.clip(c - half, 0, [1920, 1080])
        x1, y1 = np.clip(c + half, 0, [1920, 1080])
        np.testing.assert_allclose(cur["persons"][0]["bbox_xywh"], [x0, y0, x1 - x0, y1 - y0], atol=0.01)
        assert not np.allclose(cur["persons"][0]["bbox_xywh"], detector.box, atol=1.0)
    assert all(r["persons"][0]["track_id"] is not None for r in records)


class _InterruptingDetector(_FixedBoxDetector):
    """Acts like Ctrl-C on its third call."""

    def __call__(self, image_rgb, image_id=None):
        if self.calls == 2:
            raise KeyboardInterrupt
        return super().__call__(image_rgb, image_id)


def test_ctrl_c_keeps_finished_frames_in_video_and_records(tiny_weights, tmp_path):
    predictor, _ = load_predictor(tiny_weights, flip_test=False)
    summary = run_demo(CLIP, predictor, _InterruptingDetector(), output_dir=tmp_path, stride=12, smooth=True,
                       untrained=True, progress=False)
    assert summary.interrupted and summary.frames == 2
    assert not list(tmp_path.glob(".*")), "temp video left behind"
    cap = cv2.VideoCapture(str(tmp_path / "demo_skeleton_pose.mp4"))
    images = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        images.append(image)
    assert len(images) == 2
    assert all(_red_fraction(image) > 0.5 for image in images)  # untrained banner on every frame
    records = read_frame_records(tmp_path / "demo_skeleton_keypoints.jsonl")
    assert [r["frame_index"] for r in records] == [0, 12]
    assert all(r["meta"]["untrained_weights"] is True for r in records)


def test_show_without_gui_warns_once_and_continues(tiny_weights, tmp_path, caplog, monkeypatch):
    def no_gui(*args):
        raise cv2.error("The function is not implemented (headless build)")

    monkeypatch.setattr(cv2, "imshow", no_gui)
    predictor, _ = load_predictor(tiny_weights, flip_test=False)
    with caplog.at_level("WARNING", logger="pose.video.pipeline"):
        summary = run_demo(COCO_DIR, predictor, build_detector("whole-image"), output_dir=tmp_path, show=True,
                           progress=False)
    assert summary.frames == 4
    assert sum("no GUI" in r.getMessage() for r in caplog.records) == 1


# ------------------------------------------------------------------------------------------------
# Images
# ------------------------------------------------------------------------------------------------
def test_image_folder_gives_rendered_images_and_coco_results(tiny_weights, tmp_path, capsys):
    from pycocotools.coco import COCO

    assert main([str(COCO_DIR), "--weights", str(tiny_weights), "--no-flip", "--output-dir", str(tmp_path),
                 "--quiet"]) == 0
    # the runtime that auto chose is said: random tiny weights cannot verify bf16, so fp32 with the reason
    runtime = [line for line in capsys.readouterr().out.splitlines() if line.startswith("pose runtime: ")]
    assert len(runtime) == 1 and " fp32 on cpu (" in runtime[0] and "precision auto: fp32" in runtime[0]
    for image_id in COCO_IDS:
        source = cv2.imread(str(COCO_DIR / f"{image_id:012d}.jpg"))
        rendered = cv2.imread(str(tmp_path / f"{image_id:012d}_pose.jpg"))
        assert rendered is not None and rendered.shape == source.shape
    results = json.loads((tmp_path / "coco_coco_results.json").read_text())
    assert results and {r["image_id"] for r in results} <= COCO_IDS
    assert all(len(r["keypoints"]) == 51 and r["category_id"] == 1 for r in results)
    gt = COCO(str(COCO_DIR / "test_coco.json"))
    assert len(gt.loadRes(results).getAnnIds()) == len(results)
    records = read_frame_records(tmp_path / "coco_keypoints.jsonl")
    assert len(records) == 4 and sum(len(r["persons"]) for r in records) == len(results)
    assert not list(tmp_path.glob("*.mp4"))


def test_random_weights_warn_loudly_and_mark_outputs(tmp_path, capsys, caplog):
    image = COCO_DIR / "000000000785.jpg"
    assert main([str(image), "--random-weights", "--detector", "whole-image", "--no-flip",
                 "--output-dir", str(tmp_path), "--quiet"]) == 0
    printed = capsys.readouterr().err.count("UNTRAINED (random) weights")
    logged = sum("UNTRAINED (random) weights" in r.getMessage() for r in caplog.records)
    assert (logged, printed) == (1, 1)  # logged as the model loads, printed again after the summary
    (record,) = read_frame_records(tmp_path / "000000000785_keypoints.jsonl")
    assert record["meta"]["untrained_weights"] is True
    assert record["meta"]["model"] == "random:hrnet_w32_coco_256x192"
    assert len(record["persons"]) == 1
    rendered = cv2.imread(str(tmp_path / "000000000785_pose.jpg"))
    assert _red_fraction(rendered) > 0.5  # the banner
    assert _red_fraction(cv2.imread(str(image))) < 0.05


# ------------------------------------------------------------------------------------------------
# Bad input: one line on stderr, exit 1, no traceback
# ------------------------------------------------------------------------------------------------
def test_missing_input(tiny_weights, tmp_path, capsys):
    assert main([str(tmp_path / "nope.mp4"), "--weights", str(tiny_weights), "--output-dir",
                 str(tmp_path / "out"), "--quiet"]) == 1
    assert "nope.mp4" in _one_error_line(capsys)


def test_corrupt_video(tiny_weights, tmp_path, capsys):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    assert main([str(bad), "--weights", str(tiny_weights), "--output-dir", str(tmp_path / "out"),
                 "--quiet"]) == 1
    assert "broken.mp4" in _one_error_line(capsys)


def test_webcam_that_does_not_open(tiny_weights, tmp_path, capsys):
    t0 = time.monotonic()
    assert main(["99", "--weights", str(tiny_weights), "--output-dir", str(tmp_path), "--open-timeout", "5",
                 "--quiet"]) == 1
    assert "webcam 99" in _one_error_line(capsys)
    assert time.monotonic() - t0 < 15


def test_unreachable_stream_fails_in_bounded_time(tiny_weights, tmp_path, capsys):
    t0 = time.monotonic()
    assert main(["rtsp://127.0.0.1:9/x", "--weights", str(tiny_weights), "--output-dir", str(tmp_path),
                 "--open-timeout", "3", "--quiet"]) == 1
    assert "rtsp://127.0.0.1:9/x" in _one_error_line(capsys)
    assert time.monotonic() - t0 < 15


def test_unwritable_output_folder(tiny_weights, tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    assert main([str(CLIP), "--weights", str(tiny_weights), "--output-dir", str(blocker / "out"),
                 "--quiet"]) == 1
    assert "file.txt" in _one_error_line(capsys)


def test_missing_weights_and_offline_zoo_say_what_to_do(tmp_path, capsys, monkeypatch):
    assert main([str(CLIP), "--weights", str(tmp_path / "none.pth"), "--output-dir", str(tmp_path),
                 "--quiet"]) == 1
    assert "none.pth" in _one_error_line(capsys)
    monkeypatch.setenv("POSE_CACHE", str(tmp_path / "cache"))
    assert main([str(CLIP), "--offline", "--output-dir", str(tmp_path), "--quiet"]) == 1
    line = _one_error_line(capsys)
    assert "--weights" in line and "--random-weights" in line


def test_help_exits_zero(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "--random-weights" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------
# A refused input: checked before the model is built, nothing new in the output folder
# ------------------------------------------------------------------------------------------------
def _bad_inputs(folder: Path) -> dict:
    jpg = (COCO_DIR / "000000000785.jpg").read_bytes()
    video = CLIP.read_bytes()
    (folder / "corrupt_images").mkdir()
    (folder / "corrupt_images" / "a.jpg").write_bytes(jpg[:200])
    (folder / "corrupt_images" / "b.png").write_bytes(b"")
    files = {"empty.jpg": b"", "text.jpg": b"not an image\n", "header_only.jpg": jpg[:200],
             "truncated.mp4": video[: len(video) // 2], "text.mp4": b"not a video\n", "empty.mp4": b""}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return {name: folder / name for name in [*files, "corrupt_images"]}


@pytest.mark.parametrize("name", ["empty.jpg", "text.jpg", "header_only.jpg", "truncated.mp4", "text.mp4",
                                  "empty.mp4", "corrupt_images"])
def test_refused_input_leaves_nothing_and_builds_no_model(name, tiny_weights, tmp_path, capsys, monkeypatch):
    import pose.api

    def no_model(*args, **kwargs):
        raise AssertionError("the pose model was built before the input was checked")

    monkeypatch.setattr(pose.api, "load_predictor", no_model)
    bad = _bad_inputs(tmp_path)[name]
    out = tmp_path / "out"
    assert main([str(bad), "--weights", str(tiny_weights), "--no-flip",
                 "--output-dir", str(out), "--csv", "--quiet"]) == 1
    assert name in _one_error_line(capsys)
    assert not out.exists()
    out.mkdir()
    (out / "earlier.txt").write_text("kept")
    assert main([str(bad), "--weights", str(tiny_weights), "--output-dir", str(out), "--quiet"]) == 1
    assert name in _one_error_line(capsys)
    assert [p.name for p in out.iterdir()] == ["earlier.txt"]


def test_untrained_warning_comes_only_after_the_input_is_accepted(tmp_path, capsys):
    (tmp_path / "text.jpg").write_text("not an image\n")
    assert main([str(tmp_path / "text.jpg"), "--random-weights", "--output-dir", str(tmp_path / "out"),
                 "--quiet"]) == 1
    assert "UNTRAINED" not in capsys.readouterr().err


def test_degenerate_detector_boxes_are_dropped_with_one_counted_warning(tiny_weights, tmp_path, caplog):
    dets = [{"image_id": 785, "category_id": 1, "bbox": box, "score": 0.9}
            for box in ([10, 10, 0, 0], [10, 10, -5, -5], [1e6, 1e6, 10, 10], [200, 40, 150, 360])]
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    out = tmp_path / "out"
    assert main([str(COCO_DIR / "000000000785.jpg"), "--weights", str(tiny_weights), "--no-flip",
                 "--detector", f"json:{tmp_path / 'dets.json'}", "--det-score", "0", "--output-dir", str(out),
                 "--quiet"]) == 0
    err = [r.getMessage() for r in caplog.records if "cannot be cropped" in r.getMessage()]
    assert len(err) == 1 and "dropped 3 detector boxes of" in err[0]
    assert err[0].endswith("2 zero-size boxes, 1 box outside the image")
    (record,) = read_frame_records(out / "000000000785_keypoints.jsonl")
    assert [p["bbox_xywh"] for p in record["persons"]] == [[200, 40, 150, 360]]


def test_write_demo_outputs_creates_nothing_before_the_first_frame(tmp_path):
    from pose.errors import DataError
    from pose.video.pipeline import write_demo_outputs
    from pose.video.sources import open_source

    def failing_stream():
        raise DataError("no frame")
        yield  # a generator that fails before its first item

    source = open_source(COCO_DIR)
    out = tmp_path / "new" / "out"
    with pytest.raises(DataError, match="no frame"):
        write_demo_outputs(failing_stream(), source, COCO_17, output_dir=out, write_csv=True, progress=False)
    source.close()
    assert not (tmp_path / "new").exists()


def test_rendered_image_is_written_atomically(tmp_path, monkeypatch):
    """A rendered picture appears whole or not at all: a write that fails (disk full at fsync) leaves the
    previous file as it was and no temp file (README: outputs are written atomically)."""
    import errno

    from pose import fileio
    from pose.video import pipeline

    path = tmp_path / "000000000785_pose.jpg"
    pipeline.write_image(path, np.full((16, 16, 3), 40, np.uint8))
    before = path.read_bytes()
    assert cv2.imread(str(path)) is not None

    def disk_full(_fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(fileio.os, "fsync", disk_full)
    with pytest.raises(OSError):
        pipeline.write_image(path, np.full((64, 64, 3), 200, np.uint8))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
