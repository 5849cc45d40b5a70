"""Generate the bad (and a few good) inputs the hardening catalogue (``cases.yaml``) refers to.

``make_fixtures(folder)`` writes every file into ``folder`` and returns the placeholder mapping the
catalogue's ``args`` use (``{fx}`` = the folder, ``{repo}`` = the repository root, ``{ckpt}`` = a tiny
project checkpoint, ...). Everything is derived from the real test data in ``tests/data`` and is
deterministic (seeded), so a failing case can be reproduced by hand::

    python -m tests.hardening.make_fixtures /tmp/hardening_fx   # then paste a case's command line
"""
import copy
import json
import shutil
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
COCO = DATA / "coco"
TINY_CFG = REPO / "configs" / "tiny_hrnet_128x96.yaml"
MARKER_NAME = "PAYLOAD_RAN"


class _Payload:
    """Pickle payload that would create a marker file if a loader ever executed it."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj))


def _make_checkpoints(fx: Path) -> None:
    import torch

    from pose.checkpoint import save_checkpoint
    from pose.codec import build_codec
    from pose.config import load_config
    from pose.keypoints import COCO_17
    from pose.models import build_model_from_arch

    torch.manual_seed(0)
    cfg = load_config(TINY_CFG)
    model = build_model_from_arch("hrnet_tiny", 17)
    save_checkpoint(fx / "ckpt.pth", model=model, cfg=cfg, codec=build_codec(cfg), spec=COCO_17)
    torch.save(model.state_dict(), fx / "tiny_plain.pth")
    torch.save(build_model_from_arch("hrnet_tiny", 16).state_dict(), fx / "tiny_16kp_plain.pth")
    raw = (fx / "ckpt.pth").read_bytes()
    (fx / "truncated.pth").write_bytes(raw[: len(raw) * 6 // 10])
    (fx / "empty.pth").write_bytes(b"")
    shutil.copy(COCO / "000000000785.jpg", fx / "image_as_ckpt.pth")
    (fx / "text_as_ckpt.pth").write_text("this is not a checkpoint\n")
    torch.save({"state_dict": model.state_dict(), "payload": _Payload(str(fx / MARKER_NAME))},
               fx / "evil.pth")
    # A project checkpoint whose keypoint spec has a flip pair out of range (17 keypoints, pair 40).
    obj = torch.load(fx / "ckpt.pth", weights_only=True)
    obj["keypoint_spec"]["flip_pairs"] = [list(p) for p in obj["keypoint_spec"]["flip_pairs"]] + [[1, 40]]
    torch.save(obj, fx / "flip_out_of_range.pth")
    # A project checkpoint whose state dict lacks the head (not loadable strictly).
    obj = torch.load(fx / "ckpt.pth", weights_only=True)
    obj["state_dict"] = {k: v for k, v in obj["state_dict"].items() if not k.startswith("final_layer")}
    torch.save(obj, fx / "headless.pth")


def _make_images(fx: Path, rng: np.random.Generator) -> None:
    jpg = (COCO / "000000000785.jpg").read_bytes()
    (fx / "empty.jpg").write_bytes(b"")
    (fx / "text.jpg").write_text("not an image\n")
    (fx / "random.jpg").write_bytes(rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    (fx / "header_only.jpg").write_bytes(jpg[:200])
    mixed = fx / "mixed_images"
    mixed.mkdir()
    for name in ("000000000785.jpg", "000000040083.jpg"):
        shutil.copy(COCO / name, mixed / name)
    (mixed / "000000000001.jpg").write_bytes(rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
    (mixed / "000000000002.jpg").write_bytes(b"")
    (fx / "no_images").mkdir()
    (fx / "no_images" / "readme.txt").write_text("nothing to see\n")
    # An image folder for evaluation whose first image is corrupt (same names as the annotations).
    eval_imgs = fx / "eval_images_corrupt"
    eval_imgs.mkdir()
    for p in COCO.glob("*.jpg"):
        shutil.copy(p, eval_imgs / p.name)
    (eval_imgs / "000000000785.jpg").write_bytes(jpg[:200])


def _make_videos(fx: Path, rng: np.random.Generator) -> None:
    video = (DATA / "video" / "demo_skeleton.mp4").read_bytes()
    # The 'moov' index sits at the end of this file: keep it, overwrite the last 40% of the media data
    # with garbage, so the container opens and the tail frames are undecodable.
    moov = video.rfind(b"moov") - 4
    start = 40 + int((moov - 40) * 0.6)
    garbage = rng.integers(0, 256, moov - start, dtype=np.uint8).tobytes()
    (fx / "garbage_tail.mp4").write_bytes(video[:start] + garbage + video[moov:])
    (fx / "truncated.mp4").write_bytes(video[: len(video) // 2])
    (fx / "text.mp4").write_text("not a video\n")
    (fx / "empty.mp4").write_bytes(b"")


def _make_annotations(fx: Path) -> None:
    gt = json.loads((COCO / "test_coco.json").read_text())
    (fx / "ann_not_json.json").write_text('{"images": [1, 2,')
    (fx / "ann_empty.json").write_text("")
    (fx / "ann_binary.json").write_bytes(b"\xff\xfe\x00garbage")
    _write_json(fx / "ann_list.json", [1, 2, 3])
    _write_json(fx / "ann_no_images.json", {k: v for k, v in gt.items() if k != "images"})
    _write_json(fx / "ann_no_annotations.json", {k: v for k, v in gt.items() if k != "annotations"})

    def variant(name, edit):
        data = copy.deepcopy(gt)
        edit(data)
        _write_json(fx / name, data)

    variant("ann_kpt_length.json", lambda d: d["annotations"][3].update(keypoints=[1, 2, 2] * 16))
    variant("ann_kpt_string.json", lambda d: d["annotations"][3].update(keypoints="none"))

    def nan_negative(d):
        d["annotations"][0]["keypoints"][0] = float("nan")
        d["annotations"][1]["keypoints"][3] = -5
    variant("ann_nan_negative.json", nan_negative)

    def zero_area_outside(d):
        d["annotations"][0].update(area=0.0)
        d["annotations"][1].update(bbox=[5000.0, 5000.0, 50.0, 80.0])
    variant("ann_zero_area_outside.json", zero_area_outside)
    # Issue 16: degenerate boxes with a positive area (the box decides), a box far outside its image.
    def zero_size(d):
        d["annotations"][0].update(bbox=[10.0, 10.0, -5.0, -5.0])
        d["annotations"][1].update(bbox=[10.0, 10.0, 0.0, 0.0])
    variant("ann_zero_size_boxes.json", zero_size)
    variant("ann_outside_box.json", lambda d: d["annotations"][2].update(bbox=[1e6, 1e6, 10.0, 10.0]))
    variant("ann_all_zero_size.json", lambda d: [a.update(bbox=[10.0, 10.0, 0.0, 0.0]) for a in d["annotations"]])
    variant("ann_area_string.json", lambda d: d["annotations"][4].update(area="large"))
    variant("ann_unlabelled.json", lambda d: [a.update(keypoints=[0] * 51) for a in d["annotations"]])
    variant("ann_bbox_nan.json", lambda d: d["annotations"][2].update(bbox=[1.0, float("nan"), 3.0, 4.0]))
    variant("ann_bbox_short.json", lambda d: d["annotations"][2].update(bbox=[1.0, 2.0]))
    variant("ann_dup_image_id.json", lambda d: d["images"].append(dict(d["images"][0])))
    variant("ann_dup_ann_id.json", lambda d: d["annotations"][5].update(id=d["annotations"][4]["id"]))
    variant("ann_no_size.json", lambda d: d["images"][1].pop("width"))
    variant("ann_missing_image_file.json", lambda d: d["images"][2].update(file_name="missing_0001.jpg"))


def _make_detections(fx: Path) -> None:
    dets = json.loads((COCO / "test_coco_det_AP_H_56.json").read_text())
    unknown = [dict(d) for d in dets] + [dict(dets[0], image_id=999999999)]
    _write_json(fx / "det_unknown_image.json", unknown)
    _write_json(fx / "det_only_unknown_images.json", [dict(d, image_id=999999999) for d in dets])
    _write_json(fx / "det_no_person.json", [dict(d, category_id=2) for d in dets])
    _write_json(fx / "det_empty_list.json", [])
    _write_json(fx / "det_dict.json", {"detections": dets})
    _write_json(fx / "det_bad_entry.json", dets[:3] + [{"image_id": 785, "category_id": 1}])
    (fx / "det_not_json.json").write_text("[{")
    # Issue 16: a zero-size box, one outside its image, one too large to crop; then a file of only such boxes.
    degenerate = [dict(d) for d in dets]
    for i, box in enumerate(([10.0, 10.0, 0.0, 0.0], [1e6, 1e6, 10.0, 10.0], [-1e30, -1e30, 2e30, 2e30])):
        degenerate[i]["bbox"] = box
    _write_json(fx / "det_degenerate_mixed.json", degenerate)
    _write_json(fx / "det_all_degenerate.json", [dict(d, bbox=[10.0, 10.0, -1.0, 0.0]) for d in dets])


def _make_configs(fx: Path) -> None:
    text = TINY_CFG.read_text()
    (fx / "cfg_unknown_key.yaml").write_text(text.replace("  LR: 0.001", "  LR: 0.001\n  LRR: 0.1"))
    (fx / "cfg_wrong_type.yaml").write_text(text.replace("  LR: 0.001", "  LR: fast"))
    (fx / "cfg_sizes.yaml").write_text(text.replace("  - 24\n  - 32", "  - 48\n  - 64"))
    (fx / "cfg_not_divisible.yaml").write_text(
        text.replace("  - 96\n  - 128", "  - 100\n  - 128").replace("  - 24\n  - 32", "  - 25\n  - 32"))
    (fx / "cfg_joints.yaml").write_text(text.replace("NUM_JOINTS: 17", "NUM_JOINTS: 16"))
    (fx / "cfg_syntax.yaml").write_text(text.replace("  LR: 0.001", "  LR: [0.001"))
    (fx / "cfg_list.yaml").write_text("- 1\n- 2\n")
    (fx / "cfg_stage.yaml").write_text(text.replace("      NUM_BRANCHES: 3", "      NUM_BRANCHES: 2"))
    (fx / "cfg_epochs.yaml").write_text(text.replace("  END_EPOCH: 2", "  END_EPOCH: 0"))
    (fx / "cfg_ann_missing.yaml").write_text(
        text.replace("TEST_ANN_FILE: 'tests/data/coco/test_coco.json'",
                     "TEST_ANN_FILE: 'tests/data/coco/does_not_exist.json'"))


def _make_demo_inputs(fx: Path, rng: np.random.Generator) -> None:
    """pose-demo refusals (a folder where no image decodes) and degenerate detector boxes."""
    folder = fx / "corrupt_images"
    folder.mkdir()
    (folder / "a.jpg").write_bytes((COCO / "000000000785.jpg").read_bytes()[:200])
    (folder / "b.png").write_bytes(rng.integers(0, 256, 500, dtype=np.uint8).tobytes())
    boxes = ([10, 10, 0, 0], [10, 10, -5, -5], [1e6, 1e6, 10, 10], [200, 40, 150, 360])
    _write_json(fx / "det_degenerate.json", [{"image_id": 785, "category_id": 1, "bbox": b, "score": 0.9}
                                             for b in boxes])


def make_fixtures(fx) -> dict:
    """Write all catalogue inputs into ``fx`` (created); return the placeholder mapping."""
    fx = Path(fx)
    fx.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(8)
    _make_checkpoints(fx)
    _make_images(fx, rng)
    _make_videos(fx, rng)
    _make_annotations(fx)
    _make_detections(fx)
    _make_configs(fx)
    _make_demo_inputs(fx, rng)
    (fx / "a_file").write_text("a file, not a folder\n")
    return placeholders(fx)


def placeholders(fx) -> dict:
    fx = Path(fx)
    return {"fx": str(fx), "repo": str(REPO), "data": str(DATA), "coco": str(COCO), "ckpt": str(fx / "ckpt.pth"),
            "tiny_cfg": str(TINY_CFG), "video": str(DATA / "video" / "demo_skeleton.mp4"),
            "marker": str(fx / MARKER_NAME)}


if __name__ == "__main__":
    print(json.dumps(make_fixtures(sys.argv[1] if len(sys.argv) > 1 else "/tmp/hardening_fx"), indent=1))
