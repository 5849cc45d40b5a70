"""The oracle test for other keypoint sets: encoded ground truth as a fake network through TopDownPredictor
(flip test on) scores AP 1.000 on CrowdPose (14), COCO-WholeBody (133) and AP-10K (17 animal points), so the
flip pairs, the codec and the un-cropping are right for each K (see tests/test_predictor.py for COCO)."""
import dataclasses
import json

import numpy as np
import pytest

from pose import geometry
from pose.codec import HeatmapCodec
from pose.data import load_coco_gt_samples
from pose.data.topdown import TopDownDataset
from pose.evaluation.coco import CocoKeypointEvaluator
from pose.evaluation.coco_protocols import CrowdPoseEvaluator, WholeBodyEvaluator
from pose.evaluation.runner import predict_dataset, to_pose_results
from pose.keypoints import load_keypoint_set
from pose.predictor import TopDownPredictor
from tests.conftest import DATA
from tests.oracle import OracleNetwork

INPUT_SIZE = (192, 256)
SETS = {"crowdpose": ("crowdpose/test_crowdpose.json", "crowdpose"),
        "coco_wholebody": ("coco/test_coco_wholebody.json", "coco"),
        "ap10k": ("ap10k/test_ap10k.json", "ap10k")}


def _oracle_metrics(name, spec, *, predictor_spec=None):
    ann, images = SETS[name]
    codec = HeatmapCodec(INPUT_SIZE, (48, 64), 2.0, decoder="udp", encoding="unbiased")
    samples = load_coco_gt_samples(DATA / ann, DATA / images, input_size=INPUT_SIZE, spec=spec)
    dataset = TopDownDataset(samples, input_size=INPUT_SIZE, spec=spec, codec=codec)
    net = OracleNetwork(codec, spec)
    for i, s in enumerate(samples):
        m = geometry.crop_matrix(np.asarray(s.center)[None], np.asarray(s.scale)[None], np.zeros(1), INPUT_SIZE,
                                 unbiased=codec.unbiased)
        net.register(dataset[i]["image"], geometry.apply_affine(np.asarray(s.joints, np.float64)[None], m)[0],
                     np.asarray(s.joints_visible))
    predictor = TopDownPredictor(net, codec, predictor_spec or spec, flip_test=True, batch_size=8)
    keypoints = predict_dataset(predictor, dataset, progress=False)["default"]
    gt = json.loads((DATA / ann).read_text())
    if name == "crowdpose":
        evaluator = CrowdPoseEvaluator(gt, sigmas=spec.oks_sigmas)
    elif name == "coco_wholebody":
        evaluator = WholeBodyEvaluator(gt, spec)
    else:
        evaluator = CocoKeypointEvaluator(gt, sigmas=spec.oks_sigmas)
    evaluator.process(to_pose_results(dataset, keypoints))
    return evaluator.evaluate()


def test_oracle_crowdpose_14():
    metrics = _oracle_metrics("crowdpose", load_keypoint_set("crowdpose"))
    assert metrics["AP"] == pytest.approx(1.0, abs=1e-9) and metrics["AP (M)"] == pytest.approx(1.0, abs=1e-9)


def test_oracle_ap10k_17_animals():
    assert _oracle_metrics("ap10k", load_keypoint_set("ap10k"))["AP"] == pytest.approx(1.0, abs=1e-9)


def test_oracle_coco_wholebody_133():
    metrics = _oracle_metrics("coco_wholebody", load_keypoint_set("coco_wholebody"))
    for part in ("body", "foot", "face", "left_hand", "right_hand", "whole"):
        assert metrics[f"{part}/AP"] == pytest.approx(1.0, abs=1e-9), part


def test_oracle_notices_wrong_flip_pairs():
    """The predictor flipping with pairs the network was not trained with (each left-hand point paired with the
    next right-hand point) breaks the flip average: the hand APs drop, the body's stays."""
    spec = load_keypoint_set("coco_wholebody")
    pairs = [p for p in spec.flip_pairs if p[0] < 91] + [(91 + j, 112 + (j + 1) % 21) for j in range(21)]
    wrong = dataclasses.replace(spec, flip_pairs=tuple(pairs))
    metrics = _oracle_metrics("coco_wholebody", spec, predictor_spec=wrong)
    assert metrics["left_hand/AP"] < 0.9 and metrics["body/AP"] == pytest.approx(1.0, abs=1e-9)
