"""The whole evaluation job on a model whose accuracy is known: the oracle network (tests/oracle.py)
behind ``load_predictor``, through ``run_evaluation`` and the ``pose-eval`` CLI.

The golden end-to-end data compare zeros with zeros (untrained weights score AP 0), so an evaluator
that returned zeros, or a results file whose keypoints drift, would pass there; here the expected
answer is the ground truth itself (AP 1 on GT boxes) and every written keypoint is checked against it.
"""
import json

import numpy as np
import pytest

from pose.config import load_config
from pose.evaluation import runner
from tests.conftest import DATA, REPO
from tests.evaluation.test_runner import cocoeval_stats
from tests.oracle import oracle_loader

CONFIG = REPO / "configs" / "coco_hrnet_w32_256x192.yaml"
GT_FILE = DATA / "coco" / "test_coco.json"
DET_FILE = DATA / "coco" / "test_coco_det_AP_H_56.json"
# UDP targets and decoding, no flip shift: the oracle's answer is then exact (sub-pixel).
OPTS = ["DATASET.TEST_ANN_FILE", str(GT_FILE), "DATASET.TEST_IMAGE_DIR", str(DATA / "coco"),
        "TEST.DECODER", "udp", "TEST.SHIFT_HEATMAP", "False", "TEST.BATCH_SIZE_PER_GPU", "8"]
RESULTS = "keypoints_val2017_results_udp.json"


@pytest.fixture
def oracle(monkeypatch):
    monkeypatch.setattr(runner, "load_predictor", oracle_loader())


def _gt_persons():
    gt = json.loads(GT_FILE.read_text())
    return [(a["image_id"], np.asarray(a["keypoints"], np.float64).reshape(17, 3)) for a in gt["annotations"]
            if not a.get("iscrowd") and any(v > 0 for v in a["keypoints"][2::3])]


def assert_results_are_the_ground_truth(results_file):
    """Every GT person has exactly one result, holding its own labelled joints: all within 1 px, and
    all but a few within 0.01 px (measured: 2 of 182 joints, on the border band of their crop where the
    Gaussian target is clipped, are 0.12 and 0.72 px off; the rest within 0.0025 px)."""
    results = json.loads(results_file.read_text())
    persons = _gt_persons()
    assert len(results) == len(persons)
    matched, errors = set(), []
    for r in results:
        kp = np.asarray(r["keypoints"], np.float64).reshape(17, 3)
        per_person = [np.abs(kp[g[:, 2] > 0, :2] - g[g[:, 2] > 0, :2]).max(1) if image_id == r["image_id"]
                      else np.full(1, np.inf) for image_id, g in persons]
        best = int(np.argmin([e.max() for e in per_person]))
        matched.add(best)
        errors.extend(per_person[best])
    assert matched == set(range(len(persons)))
    errors = np.asarray(errors)
    assert errors.max() <= 1.0 and (errors > 0.01).sum() <= 2, np.sort(errors)[-5:]


def test_run_evaluation_of_the_oracle_scores_ap_one(oracle, tmp_path):
    cfg = load_config(CONFIG, OPTS + ["TEST.USE_GT_BBOX", "True"])
    report = runner.run_evaluation(cfg, "oracle", output_dir=tmp_path, progress=False)
    metrics = report["metrics"]["udp"]
    assert metrics["AP"] == pytest.approx(1.0, abs=1e-9) and metrics["AR"] == pytest.approx(1.0, abs=1e-9)
    assert list(metrics.values()) == pytest.approx(cocoeval_stats(GT_FILE, tmp_path / RESULTS), abs=1e-12)
    assert_results_are_the_ground_truth(tmp_path / RESULTS)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["metrics"]["udp"] == pytest.approx(metrics, abs=0) and saved["num_samples"] == 12


def test_run_evaluation_of_the_oracle_on_detected_boxes(oracle, tmp_path):
    cfg = load_config(CONFIG, OPTS + ["TEST.USE_GT_BBOX", "False", "TEST.COCO_BBOX_FILE", str(DET_FILE)])
    report = runner.run_evaluation(cfg, "oracle", output_dir=tmp_path, progress=False)
    assert report["num_samples"] == 118 and "DETECTED boxes" in report["boxes"]
    ap = report["metrics"]["udp"]["AP"]
    assert ap > 0.99, ap  # every person is detected; only a duplicate surviving OKS-NMS costs (0.9986)
    assert list(report["metrics"]["udp"].values()) == pytest.approx(
        cocoeval_stats(GT_FILE, tmp_path / RESULTS), abs=1e-12)


def test_pose_eval_cli_on_the_oracle(oracle, tmp_path, capsys):
    from pose.cli.evaluate import main

    out = tmp_path / "eval"
    code = main(["--cfg", str(CONFIG), "--weights", "oracle", "--gt-boxes", "--output-dir", str(out), "--quiet",
                 *OPTS])
    printed = capsys.readouterr().out
    assert code == 0, printed
    ap_row = [line for line in printed.splitlines() if line.startswith("| decoder=udp")]
    assert len(ap_row) == 1 and ap_row[0].split("|")[2].strip() == "1.000", printed
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]["udp"]
    assert metrics["AP"] == pytest.approx(1.0, abs=1e-9)
    assert list(metrics.values()) == pytest.approx(cocoeval_stats(GT_FILE, out / RESULTS), abs=1e-12)
    assert_results_are_the_ground_truth(out / RESULTS)
