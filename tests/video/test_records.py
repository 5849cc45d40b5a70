"""Result files (COCO JSON, JSON lines survive SIGKILL, CSV, schema validation) and drawing."""
import contextlib
import csv
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from pose.errors import DataError
from pose.keypoints import COCO_17, MPII_16
from pose.structures import PoseResult
from pose.video.records import (
    FRAME_RECORD_SCHEMA,
    FrameCsvWriter,
    FrameRecordWriter,
    coco_results_json,
    csv_header,
    frame_record,
    pose_scores,
    read_frame_records,
    validate_frame_record,
    write_coco_results,
)
from pose.video.render import draw_fps, draw_poses, limb_colors, track_color

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _result(rng, k=17, image_id=None, track_id=None, box=(10.0, 20.0, 100.0, 200.0), box_score=0.9):
    kp = np.concatenate([rng.uniform(0, 300, (k, 2)), rng.uniform(0, 1, (k, 1))], axis=1).astype(np.float32)
    return PoseResult(keypoints_img=kp, center_img=np.array([60.0, 120.0]), scale=np.array([0.6, 1.0]),
                      box_score=box_score, image_id=image_id, bbox_xywh=box, track_id=track_id)


def test_coco_results_json_round_trips_through_pycocotools(data_dir, tmp_path):
    """GT keypoints written as results score AP 1 in pycocotools."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(data_dir / "coco" / "test_coco.json"))
    results = []
    for ann in gt.dataset["annotations"]:
        if ann["num_keypoints"] == 0:
            continue
        kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(17, 3)
        kp[:, 2] = np.where(kp[:, 2] > 0, 0.9, 0.0)
        results.append(PoseResult(keypoints_img=kp, center_img=np.zeros(2), scale=np.ones(2),
                                  image_id=ann["image_id"], bbox_xywh=tuple(ann["bbox"])))
    path = tmp_path / "results.json"
    data = write_coco_results(path, results)
    assert json.loads(path.read_text()) == data
    first = data[0]
    assert set(first) == {"image_id", "category_id", "keypoints", "score"}
    assert first["category_id"] == 1 and len(first["keypoints"]) == 51
    assert first["score"] == pytest.approx(0.9)  # box 1.0 x mean of visible joint scores 0.9
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes(str(path)), "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)
    with pytest.raises(DataError, match="image_id"):
        coco_results_json([PoseResult(np.zeros((17, 3)), np.zeros(2), np.ones(2))])


def test_pose_scores_official_rescoring():
    kp = np.zeros((17, 3), np.float32)
    kp[:4, 2] = [0.5, 0.3, 0.1, 0.2]  # 0.1 and 0.2 are not > 0.2
    r = PoseResult(kp, np.zeros(2), np.ones(2), box_score=0.8)
    assert pose_scores([r])[0] == pytest.approx(0.8 * 0.4)
    assert coco_results_json([PoseResult(kp, np.zeros(2), np.ones(2), 0.8, image_id=1)],
                             rescore=False)[0]["score"] == pytest.approx(0.8)


def test_frame_record_and_validation(rng):
    rec = frame_record(7, 0.25, "clip.mp4", [_result(rng, track_id=3), _result(rng, box=None)],
                       meta={"model": "hrnet_w32"})
    validate_frame_record(rec, num_keypoints=17)
    validate_frame_record(json.loads(json.dumps(rec)))
    assert rec["schema_version"] == 1 and rec["frame_index"] == 7 and rec["meta"]["model"] == "hrnet_w32"
    assert rec["persons"][0]["track_id"] == 3 and rec["persons"][1]["bbox_xywh"] is None
    assert len(rec["persons"][0]["keypoints"]) == 17
    validate_frame_record(frame_record(0, None, "a.jpg", []))
    assert set(FRAME_RECORD_SCHEMA["required"]) == {"schema_version", "frame_index", "timestamp_s", "source",
                                                     "persons"}


@pytest.mark.parametrize("mutate, field", [
    (lambda r: r.pop("persons"), "persons"),
    (lambda r: r.update(schema_version=2), "schema_version"),
    (lambda r: r.update(frame_index=-1), "frame_index"),
    (lambda r: r.update(frame_index=True), "frame_index"),
    (lambda r: r.update(timestamp_s="0.1"), "timestamp_s"),
    (lambda r: r["persons"][0].update(track_id=1.5), "persons[0].track_id"),
    (lambda r: r["persons"][0].update(bbox_xywh=[1, 2, 3]), "persons[0].bbox_xywh"),
    (lambda r: r["persons"][0]["keypoints"][4].pop(), "persons[0].keypoints[4]"),
    (lambda r: r["persons"][0].update(score=None), "persons[0].score"),
    (lambda r: r["persons"][0].pop("keypoints"), "persons[0].keypoints"),
])
def test_validate_frame_record_names_the_bad_field(rng, mutate, field):
    rec = json.loads(json.dumps(frame_record(1, 0.1, "s", [_result(rng, track_id=0)])))
    mutate(rec)
    with pytest.raises(DataError, match=field.replace("[", r"\[").replace("]", r"\]")):
        validate_frame_record(rec)


def test_validate_checks_keypoint_count(rng):
    rec = frame_record(1, 0.1, "s", [_result(rng, k=16)])
    with pytest.raises(DataError, match="expected 17"):
        validate_frame_record(rec, num_keypoints=17)


def test_writer_and_reader(rng, tmp_path):
    path = tmp_path / "out.jsonl"
    with FrameRecordWriter(path, meta={"decoder": "dark"}, validate=True) as w:
        for i in range(5):
            w.write(i, i / 30, "clip.mp4", [_result(rng, track_id=j) for j in range(i % 3)])
    assert w.records_written == 5
    records = read_frame_records(path)
    assert [r["frame_index"] for r in records] == list(range(5))
    assert [len(r["persons"]) for r in records] == [0, 1, 2, 0, 1]
    with pytest.raises(DataError, match="already exists"):
        FrameRecordWriter(path, overwrite=False)
    with pytest.raises(DataError, match="schema_version"):
        FrameRecordWriter(tmp_path / "x.jsonl", schema_version=2)
    with pytest.raises(DataError, match="does not exist"):
        FrameRecordWriter(tmp_path / "missing" / "x.jsonl")


def test_reader_drops_unterminated_tail_and_rejects_bad_middle(tmp_path, caplog):
    good = json.dumps(frame_record(0, 0.0, "s", []))
    path = tmp_path / "a.jsonl"
    path.write_text(good + "\n" + good[:20])
    with caplog.at_level("WARNING", logger="pose.video.records"):
        assert len(read_frame_records(path)) == 1
    assert "incomplete last line" in caplog.text
    path.write_text(good[:20] + "\n" + good + "\n")
    with pytest.raises(DataError, match="line 1"):
        read_frame_records(path)


_KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    import numpy as np
    from pose.video.records import FrameRecordWriter
    from pose.structures import PoseResult
    rng = np.random.default_rng(0)
    with FrameRecordWriter(sys.argv[1], digits=None) as w:
        for i in range(10 ** 6):
            people = [PoseResult(rng.uniform(0, 1000, (17, 3)), np.zeros(2), np.ones(2), 0.9,
                                 bbox_xywh=tuple(rng.uniform(0, 500, 4)), track_id=j) for j in range(6)]
            w.write(i, i / 30, "cam", people)
            if i == 20:
                print("ready", flush=True)
""")


def test_jsonl_survives_sigkill_mid_run(tmp_path):
    path = tmp_path / "killed.jsonl"
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(path)], stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(0.3)  # let it run at full speed, then kill it mid-write
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    data = path.read_bytes()
    # Every line but the last is complete; the last may be cut short only when the kill landed inside
    # its write() (Linux ends a regular-file write at a page boundary once SIGKILL is pending).
    *lines, tail = data.decode().split("\n")
    assert len(lines) > 20
    for i, line in enumerate(lines):
        rec = json.loads(line)
        validate_frame_record(rec, num_keypoints=17)
        assert rec["frame_index"] == i and len(rec["persons"]) == 6
    if tail:
        assert tail.startswith('{"schema_version":1,"frame_index":%d,' % len(lines)), tail[:80]
    assert [r["frame_index"] for r in read_frame_records(path)] == list(range(len(lines)))


def test_csv_writer(rng, tmp_path):
    path = tmp_path / "out.csv"
    with FrameCsvWriter(path, COCO_17) as w:
        people = [_result(rng, track_id=0), _result(rng, track_id=1, box=None)]
        assert w.write(0, 0.0, "clip.mp4", people) == 2
        assert w.write(1, 1 / 30, "clip.mp4", []) == 0
        w.write(2, None, "clip.mp4", [_result(rng)])
    rows = list(csv.DictReader(path.open()))
    assert list(rows[0]) == csv_header(COCO_17.keypoint_names)
    assert len(rows[0]) == 9 + 3 * 17
    assert [r["frame_index"] for r in rows] == ["0", "0", "2"]
    assert rows[0]["track_id"] == "0" and rows[1]["bbox_x"] == "" and rows[2]["track_id"] == ""
    assert rows[2]["timestamp_s"] == ""
    rec = frame_record(0, 0.0, "clip.mp4", [_result(np.random.default_rng(5), track_id=0)])
    with FrameCsvWriter(tmp_path / "b.csv", keypoint_names=COCO_17.keypoint_names) as w2:
        w2.write_record(rec)
    row = next(csv.DictReader((tmp_path / "b.csv").open()))
    assert float(row["left_wrist_x"]) == rec["persons"][0]["keypoints"][9][0]
    with pytest.raises(DataError, match="expected 17"):
        FrameCsvWriter(tmp_path / "c.csv", COCO_17).write(0, 0.0, "s", [_result(rng, k=16)])
    with pytest.raises(DataError, match="KeypointSpec"):
        FrameCsvWriter(tmp_path / "d.csv")


@pytest.mark.parametrize("spec", [COCO_17, MPII_16], ids=lambda s: s.name)
def test_draw_poses_draws_limbs_and_returns_new_image(rng, spec):
    image = np.zeros((240, 320, 3), np.uint8)
    k = spec.num_keypoints
    kp = np.concatenate([rng.uniform(20, 220, (k, 2)), np.ones((k, 1))], axis=1)
    r = PoseResult(kp, np.zeros(2), np.ones(2), bbox_xywh=(5, 5, 100, 100), track_id=2)
    out = draw_poses(image, [r], spec, draw_boxes=True)
    assert out is not image and image.sum() == 0 and out.shape == image.shape and out.dtype == np.uint8
    a, b = spec.skeleton[0]
    mid = np.round((kp[a, :2] + kp[b, :2]) / 2).astype(int)
    assert out[mid[1], mid[0]].any()  # the limb passes through its midpoint
    # the track colour is used; without track colours limbs take the side palette
    assert (out.reshape(-1, 3) == track_color(2)).all(1).any()
    plain = draw_poses(image, [r], spec, track_colors=False, draw_ids=False)
    assert set(limb_colors(spec)) & {tuple(int(c) for c in px) for px in plain.reshape(-1, 3)}
    hidden = PoseResult(np.concatenate([kp[:, :2], np.zeros((len(kp), 1))], axis=1), np.zeros(2), np.ones(2))
    assert draw_poses(image, [hidden], spec).sum() == 0  # below threshold: nothing drawn
    with pytest.raises(ValueError, match="do not fit"):
        draw_poses(image, [PoseResult(np.zeros((5, 3)), np.zeros(2), np.ones(2))], spec)


def test_draw_poses_survives_far_and_nan_points():
    """Far-away and NaN joints neither raise nor wrap around int32 into garbage lines: a pose entirely
    off the image draws nothing, and a limb from an in-image joint to a far one points the right way."""
    image = np.zeros((50, 50, 3), np.uint8)
    kp = np.ones((17, 3))
    kp[:, :2] = 1e12
    kp[0, 0] = np.nan
    out = draw_poses(image, [PoseResult(kp, np.zeros(2), np.ones(2))], COCO_17)
    assert out.shape == image.shape and out.dtype == np.uint8 and out.sum() == 0
    assert (5, 7) in [tuple(limb) for limb in COCO_17.skeleton]  # left shoulder - left elbow
    kp[:, 2] = 0.0  # hidden joints
    kp[5] = (25.0, 25.0, 1.0)  # in the image
    kp[7] = (1e12, 1e12, 1.0)  # far to the bottom right
    out = draw_poses(image, [PoseResult(kp, np.zeros(2), np.ones(2))], COCO_17, thickness=1)
    assert out[40, 40].any() and out[48, 48].any()  # the limb runs down-right to the image corner
    assert not out[:15, :15].any()  # and not up-left (where a wrapped coordinate would send it)


def test_draw_fps_and_track_colors():
    image = np.zeros((100, 200, 3), np.uint8)
    out = draw_fps(image, 12.345)
    assert image.sum() == 0 and out[:20, :80].max() == 255
    colors = {track_color(i) for i in range(20)}
    assert len(colors) == 20 and track_color(None) not in colors  # untracked grey is no track's colour
    # neighbouring ids (the tracker hands them out in order) are far apart in colour, not shades of one
    steps = [np.abs(np.subtract(track_color(i), track_color(i + 1))).max() for i in range(20)]
    assert min(steps) >= 100, steps
