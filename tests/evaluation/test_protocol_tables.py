"""pose-eval prints the table of the set's protocol and writes it into metrics.json (a tiny untrained network
per set: the numbers are meaningless, the rows and columns are what is checked)."""
import json
from pathlib import Path

import pytest
import torch

from pose.checkpoint import save_checkpoint
from pose.cli.evaluate import main
from pose.codec import build_codec
from pose.config import keypoint_spec_for_config, load_config
from pose.models import build_model

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
CASES = {  # set: (annotation file, image folder, K, words the printed table must hold)
    "crowdpose": ("crowdpose/test_crowdpose.json", "crowdpose", 14, ["| AP |", "AP (E)", "AP (M)", "AP (H)"]),
    "coco_wholebody": ("coco/test_coco_wholebody.json", "coco", 133, ["| part |", "| face |", "| whole |"]),
    "onehand10k": ("onehand10k/test_onehand10k.json", "onehand10k", 21, ["PCK@0.2", "AUC", "EPE"]),
    "300w": ("300w/test_300w.json", "300w", 68, ["NME", "FR@0.1"]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_pose_eval_prints_the_protocol_table(name, tmp_path, capsys):
    ann, images, k, words = CASES[name]
    paths = []
    for split in ("TRAIN", "TEST"):
        paths += [f"DATASET.{split}_ANN_FILE", str(DATA / ann), f"DATASET.{split}_IMAGE_DIR", str(DATA / images)]
    cfg = load_config(REPO / "configs" / "tiny_hrnet_128x96.yaml",
                      ["DATASET.DATASET", name, "MODEL.NUM_JOINTS", str(k), "DATA_DIR", ""] + paths)
    torch.manual_seed(0)
    ckpt = tmp_path / f"{name}.pth"
    save_checkpoint(ckpt, model=build_model(cfg.MODEL), cfg=cfg, codec=build_codec(cfg),
                    spec=keypoint_spec_for_config(cfg))
    assert main(["--weights", str(ckpt), "--gt-boxes", "--output-dir", str(tmp_path / "eval"), "--quiet"]) == 0
    out = capsys.readouterr().out
    for word in words:
        assert word in out, (word, out)
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert report["keypoints"] == name and report["protocol"] == load_spec_protocol(name)
    table = next(iter(report["metrics"].values()))
    assert all(w.strip("| ") in " ".join(table) or w.strip("| ") in out for w in words)


def load_spec_protocol(name):
    from pose.keypoints import load_keypoint_set

    return load_keypoint_set(name).protocol
