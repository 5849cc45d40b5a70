"""End-to-end parity with the official test pipeline on real COCO images (golden_e2e_coco_seed0.json).

The golden W32 weights run through pose's own path (dataset crops -> TopDownPredictor with flip test
-> quarter decoder -> rescoring + OKS-NMS -> COCOeval) and must reproduce, within the reference
README's tolerances, the per-sample keypoints the official code produced, its results after NMS and
its COCOeval stats.
"""
import json

import numpy as np
import pytest
import torch

from pose.config import load_config
from pose.data import build_dataset
from pose.evaluation.runner import make_evaluator_factory, predict_dataset, to_pose_results
from pose.loading import load_predictor
from tests.conftest import DATA, REPO

CONFIG = REPO / "configs" / "coco_hrnet_w32_256x192.yaml"
SETS = {  # set name -> (image dir, GT file, detection file or None for the set's own list)
    "coco": (DATA / "coco", DATA / "coco" / "test_coco.json", DATA / "coco" / "test_coco_det_AP_H_56.json"),
    "coco_mini": (DATA / "coco-mini" / "val2017", DATA / "coco-mini" / "annotations" / "person_keypoints_val2017.json",
                  None),
}


@pytest.fixture(scope="module")
def golden_weights(golden, tmp_path_factory):
    npz = golden("golden_w32_seed0.npz")
    state = {k[len("state_dict/"):]: torch.from_numpy(np.asarray(v)) for k, v in npz.items()
             if k.startswith("state_dict/")}
    path = tmp_path_factory.mktemp("weights") / "golden_w32.pth"
    torch.save(state, path)
    return path


def _run(golden, golden_weights, tmp_path, set_name, mode):
    e2e = golden("golden_e2e_coco_seed0.json")
    image_dir, gt_file, det_file = SETS[set_name]
    opts = ["DATASET.TEST_ANN_FILE", str(gt_file), "DATASET.TEST_IMAGE_DIR", str(image_dir),
            "TEST.BATCH_SIZE_PER_GPU", "8"]
    if mode == "gt_boxes":
        opts += ["TEST.USE_GT_BBOX", "True"]
    else:
        if det_file is None:
            det_file = tmp_path / "detections.json"
            det_file.write_text(json.dumps(e2e["sets"][set_name]["detections"]))
        opts += ["TEST.USE_GT_BBOX", "False", "TEST.COCO_BBOX_FILE", str(det_file)]
    torch.set_num_threads(2)
    cfg = load_config(CONFIG, opts)
    predictor, cfg = load_predictor(golden_weights, cfg)
    dataset = build_dataset(cfg, "test", predictor.codec, skip_missing_images=True)
    keypoints = predict_dataset(predictor, dataset, progress=False)["default"]
    evaluator = make_evaluator_factory(cfg, predictor.spec, tmp_path, img_ids="processed")("quarter")
    evaluator.process(to_pose_results(dataset, keypoints))
    stats = evaluator.evaluate()
    results = json.loads((tmp_path / "keypoints_val2017_results_quarter.json").read_text())
    return e2e, dataset, keypoints, results, stats


HEATMAP_SIZE = (48, 64)  # (W, H) of the golden W32 256x192 config


def _stable(rec) -> np.ndarray:
    """(17,) joints whose maximum is clear (reference README: argmax gap and quarter-pixel diffs >= 1e-3)."""
    gap = np.asarray(rec["argmax_gap"])
    pp = np.array([np.inf if v is None else v for v in rec["pp_min_abs_diff"]])
    return (gap >= 1e-3) & (pp >= 1e-3)


def _check_keypoints(got, want, rec, where):
    """(17, 3) keypoints against the golden: stable joints within 1e-2 px; near-tie joints (float noise may
    move their peak to another point of a flat maximum) within 4 heatmap pixels, never unchecked (measured
    worst: coco_mini gt_boxes record 1, joint 13, 3.5 heatmap px = 5.6 image px); scores within 1e-4."""
    got, want = np.asarray(got, np.float64).reshape(17, 3), np.asarray(want, np.float64).reshape(17, 3)
    stable = _stable(rec)
    np.testing.assert_allclose(got[stable, :2], want[stable, :2], atol=1e-2, rtol=0, err_msg=where)
    bound = 4 * np.asarray(rec["scale"], np.float64) * 200 / np.asarray(HEATMAP_SIZE) + 1e-2  # (x, y) px
    off = np.abs(got[~stable, :2] - want[~stable, :2])
    assert (off <= bound).all(), f"{where}: near-tie joints moved {off.max(0)} px > {bound}"
    np.testing.assert_allclose(got[:, 2], want[:, 2], atol=1e-4, rtol=0, err_msg=where)
    return int((~stable).sum())


def _record_key(image_id, center):
    return image_id, round(center[0], 2), round(center[1], 2)


def check_results(results, golden_set):
    """A results JSON (after rescoring and OKS-NMS) against the golden one: the same persons (matched
    by image and centre, as the reference README advises), keypoints and scores."""
    assert len(results) == golden_set["num_results"]
    golden_results = {_record_key(r["image_id"], r["center"]): r for r in golden_set["results"]}
    records = {_record_key(r["image_id"], r["center"]): r for r in golden_set["records"]}
    assert len({_record_key(r["image_id"], r["center"]) for r in results}) == len(results)
    for r in results:
        key = _record_key(r["image_id"], r["center"])
        g = golden_results[key]
        assert r["score"] == pytest.approx(g["score"], abs=1e-4), key
        _check_keypoints(r["keypoints"], g["keypoints"], records[key], f"result {key}")


def _check(golden_set, dataset, keypoints, results, stats):
    records = golden_set["records"]
    assert len(dataset) == golden_set["num_samples"] == len(records)
    near_ties = 0
    for i, rec in enumerate(records):
        sample = dataset.samples[i]
        assert sample.image_id == rec["image_id"]
        np.testing.assert_allclose(sample.center, rec["center"], atol=1e-4)
        np.testing.assert_allclose(sample.scale, rec["scale"], atol=1e-6)
        near_ties += _check_keypoints(keypoints[i], rec["keypoints"], rec, f"record {i}")
    assert near_ties < 0.1 * len(records) * 17
    check_results(results, golden_set)
    np.testing.assert_allclose(list(stats.values()), golden_set["stats"], atol=1e-6)


def test_e2e_coco_gt_boxes(golden, golden_weights, tmp_path):
    e2e, dataset, keypoints, results, stats = _run(golden, golden_weights, tmp_path, "coco", "gt_boxes")
    _check(e2e["sets"]["coco"]["gt_boxes"], dataset, keypoints, results, stats)


@pytest.mark.slow
@pytest.mark.parametrize("set_name,mode", [("coco", "det_boxes"), ("coco_mini", "gt_boxes"),
                                           ("coco_mini", "det_boxes")])
def test_e2e_coco_other_sets(golden, golden_weights, tmp_path, set_name, mode):
    e2e, dataset, keypoints, results, stats = _run(golden, golden_weights, tmp_path, set_name, mode)
    _check(e2e["sets"][set_name][mode], dataset, keypoints, results, stats)


def test_pose_eval_cli_with_golden_weights(golden, golden_weights, tmp_path, capsys):
    from pose.cli.evaluate import main

    out = tmp_path / "eval"
    code = main(["--cfg", str(CONFIG), "--weights", str(golden_weights), "--gt-boxes", "--output-dir", str(out),
                 "--quiet", "DATASET.TEST_ANN_FILE", str(DATA / "coco" / "test_coco.json"),
                 "DATASET.TEST_IMAGE_DIR", str(DATA / "coco"), "TEST.BATCH_SIZE_PER_GPU", "16"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "GROUND-TRUTH boxes" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    golden_set = golden("golden_e2e_coco_seed0.json")["sets"]["coco"]["gt_boxes"]
    # The CLI's results file holds the official pipeline's persons, keypoints and scores.
    check_results(json.loads((out / "keypoints_val2017_results_quarter.json").read_text()), golden_set)
    assert list(metrics["metrics"]["quarter"].values()) == pytest.approx(golden_set["stats"], abs=1e-6)
