"""``pose-eval`` on the real test data: COCO and MPII runs with generated checkpoints, several decoders on one
forward pass, and one-line errors for bad inputs."""
import json

import numpy as np
import pytest
import scipy.io

from pose.checkpoint import save_checkpoint
from pose.cli.evaluate import main
from pose.codec import build_codec
from pose.config import load_config
from pose.keypoints import COCO_17, MPII_16
from pose.models import build_model
from tests.conftest import DATA, REPO, shared_data_path

TINY_CFG = REPO / "configs" / "tiny_hrnet_128x96.yaml"
COCO_OPTS = ["DATASET.TEST_ANN_FILE", str(DATA / "coco" / "test_coco.json"),
             "DATASET.TEST_IMAGE_DIR", str(DATA / "coco")]


def _checkpoint(path, cfg, spec):
    import torch

    torch.manual_seed(0)
    save_checkpoint(path, model=build_model(cfg.MODEL), cfg=cfg, codec=build_codec(cfg), spec=spec)
    return path


@pytest.fixture(scope="module")
def coco_ckpt(tmp_path_factory):
    cfg = load_config(TINY_CFG, COCO_OPTS)
    return _checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny_coco.pth", cfg, COCO_17)


@pytest.fixture(scope="module")
def mpii_setup(tmp_path_factory):
    """A tiny MPII checkpoint and a gt_valid.mat holding the 5 sample images' entries of the real file."""
    folder = tmp_path_factory.mktemp("mpii")
    mat = scipy.io.loadmat(shared_data_path("mpii/annot/detections_our_format.mat"))
    scipy.io.savemat(folder / "gt_valid.mat", {
        "dataset_joints": mat["dataset_joints"], "jnt_missing": mat["jnt_missing"][:, :5],
        "pos_gt_src": mat["pos_gt_src"][:, :, :5], "headboxes_src": mat["headboxes_src"][:, :, :5]})
    opts = ["DATASET.DATASET", "mpii", "MODEL.NUM_JOINTS", "16", "DATASET.TEST_ANN_FILE",
            str(DATA / "mpii" / "test_mpii.json"), "DATASET.TEST_IMAGE_DIR", str(DATA / "mpii"),
            "DATASET.GT_VALID_FILE", str(folder / "gt_valid.mat"), "DATASET.TEST_SET", "valid"]
    cfg = load_config(TINY_CFG, opts)
    return _checkpoint(folder / "tiny_mpii.pth", cfg, MPII_16), opts


def _error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert err and "Traceback" not in "\n".join(err)
    return err[-1]


def test_coco_eval_with_generated_checkpoint_and_three_decoders(coco_ckpt, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["--cfg", str(TINY_CFG), "--weights", str(coco_ckpt), "--gt-boxes", "--decoders", "none,quarter,dark",
                 "--output-dir", str(out), "--quiet"] + COCO_OPTS)
    printed = capsys.readouterr().out
    assert code == 0
    assert "GROUND-TRUTH boxes" in printed
    assert all(f"decoder={d}" in printed for d in ("none", "quarter", "dark"))
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["metrics"]) == {"none", "quarter", "dark"}
    for name, m in metrics["metrics"].items():
        assert 0.0 <= m["AP"] <= 1.0
        results = json.loads((out / f"keypoints_val2017_results_{name}.json").read_text())
        assert len(results) == 12 and len(results[0]["keypoints"]) == 51
    # The decoders share one forward pass but decode differently.
    q = json.loads((out / "keypoints_val2017_results_quarter.json").read_text())
    d = json.loads((out / "keypoints_val2017_results_dark.json").read_text())
    assert [r["image_id"] for r in q] == [r["image_id"] for r in d]
    assert not np.allclose([r["keypoints"] for r in q], [r["keypoints"] for r in d])


def test_coco_eval_with_detections_says_so(coco_ckpt, tmp_path, capsys):
    det = DATA / "coco" / "test_coco_det_AP_H_56.json"
    code = main(["--cfg", str(TINY_CFG), "--weights", str(coco_ckpt), "--det-file", str(det),
                 "--output-dir", str(tmp_path), "--quiet"] + COCO_OPTS)
    assert code == 0
    assert f"DETECTED boxes from {det}" in capsys.readouterr().out
    assert json.loads((tmp_path / "metrics.json").read_text())["num_samples"] == 118


def test_mpii_eval_prints_pckh_table(mpii_setup, tmp_path, capsys):
    ckpt, opts = mpii_setup
    code = main(["--cfg", str(TINY_CFG), "--weights", str(ckpt), "--output-dir", str(tmp_path), "--quiet"] + opts)
    printed = capsys.readouterr().out
    assert code == 0, printed
    metrics = json.loads((tmp_path / "metrics.json").read_text())["metrics"]
    table = next(iter(metrics.values()))
    assert list(table)[:8] == ["Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean"]
    assert "Mean" in printed


def test_missing_image_folder(coco_ckpt, tmp_path, capsys):
    code = main(["--cfg", str(TINY_CFG), "--weights", str(coco_ckpt), "--gt-boxes", "--output-dir", str(tmp_path),
                 "DATASET.TEST_ANN_FILE", str(DATA / "coco" / "test_coco.json"),
                 "DATASET.TEST_IMAGE_DIR", str(tmp_path / "nowhere")])
    assert code == 1
    assert "nowhere" in _error_line(capsys)


def test_annotation_file_that_is_not_coco_json(coco_ckpt, tmp_path, capsys):
    bad = tmp_path / "ann.json"
    bad.write_text('{"info": {}, "licenses": []}')
    code = main(["--cfg", str(TINY_CFG), "--weights", str(coco_ckpt), "--gt-boxes", "--output-dir", str(tmp_path),
                 "DATASET.TEST_ANN_FILE", str(bad), "DATASET.TEST_IMAGE_DIR", str(DATA / "coco")])
    assert code == 1
    line = _error_line(capsys)
    assert "ann.json" in line and "images" in line


def test_detection_file_without_person_boxes(coco_ckpt, tmp_path, capsys):
    det = tmp_path / "dets.json"
    det.write_text(json.dumps([{"image_id": 785, "category_id": 3, "bbox": [1, 2, 3, 4], "score": 0.9}]))
    code = main(["--cfg", str(TINY_CFG), "--weights", str(coco_ckpt), "--det-file", str(det),
                 "--output-dir", str(tmp_path)] + COCO_OPTS)
    assert code == 1
    line = _error_line(capsys)
    assert "dets.json" in line and "person" in line


def test_checkpoint_keypoint_count_must_match_dataset(mpii_setup, tmp_path, capsys):
    ckpt, _ = mpii_setup  # 16 MPII keypoints, evaluated on COCO (17)
    code = main(["--cfg", str(TINY_CFG), "--weights", str(ckpt), "--gt-boxes", "--output-dir", str(tmp_path)]
                + COCO_OPTS)
    assert code == 1
    line = _error_line(capsys)
    assert "NUM_JOINTS" in line and "16" in line and "17" in line


def test_official_command_form_honours_output_dir(coco_ckpt, tmp_path):
    """``python scripts/test.py --cfg F TEST.MODEL_FILE w.pth OUTPUT_DIR out`` writes under
    ``out/<dataset>/<model name>/<config name>/`` as the official test.py does (not ./output/eval)."""
    import subprocess
    import sys

    out = tmp_path / "out"
    cmd = [sys.executable, str(REPO / "scripts" / "test.py"), "--cfg", str(TINY_CFG), "--quiet",
           "TEST.MODEL_FILE", str(coco_ckpt), "OUTPUT_DIR", str(out), "TEST.USE_GT_BBOX", "True"] + COCO_OPTS
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = out / "coco" / "pose_hrnet" / "tiny_hrnet_128x96"
    metrics = json.loads((run / "metrics.json").read_text())
    results = json.loads((run / "keypoints_val2017_results_quarter.json").read_text())
    assert metrics["num_samples"] == 12 and len(results) == 12
    assert str(run / "metrics.json") in proc.stdout  # the report says where files went
    assert not (tmp_path / "output").exists()


def test_test_model_file_is_joined_onto_data_dir(coco_ckpt, tmp_path):
    """TEST.MODEL_FILE relative to DATA_DIR, as the official update_config joins it."""
    out = tmp_path / "out"
    code = main(["--cfg", str(TINY_CFG), "--output-dir", str(out), "--quiet", "TEST.MODEL_FILE", coco_ckpt.name,
                 "DATA_DIR", str(coco_ckpt.parent), "TEST.USE_GT_BBOX", "True"] + COCO_OPTS)
    assert code == 0 and (out / "metrics.json").is_file()
