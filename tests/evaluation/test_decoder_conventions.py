"""Decoders that share a forward pass must share the model's pixel convention (issue 18).

The oracle network of ``tests/test_predictor.py`` (it returns the encoded ground truth of each crop) runs
through the ``pose-eval --decoders`` path, ``predict_dataset(..., decoders=decoder_codecs(base, names))``, on
the real 4-image COCO sample with GT boxes. Every decoder the rule allows gives AP 1.000; every mix it refuses
raises a one-line ConfigError, at the Python API and at ``pose-eval``.

The oracle's mirrored crop returns the exactly flipped maps, so the official one-pixel flip shift (which
compensates a real network's ``size/2`` mirror) is turned off for the official bases, as in
``test_oracle_official_codec_gives_ap_one_on_coco``.
"""
import json

import numpy as np
import pytest

from pose.checkpoint import save_checkpoint
from pose.cli.evaluate import main
from pose.codec import CONVENTIONS, HeatmapCodec, build_codec
from pose.config import load_config
from pose.data import load_coco_gt_samples
from pose.data.topdown import TopDownDataset
from pose.errors import ConfigError
from pose.evaluation import CocoKeypointEvaluator
from pose.evaluation.runner import decoder_codecs, predict_dataset, to_pose_results
from pose.keypoints import COCO_17
from pose.models import build_model
from pose.predictor import TopDownPredictor
from tests.conftest import DATA, REPO
from tests.test_predictor import INPUT_SIZE, SETS, _oracle

BASES = {  # the model's codec: its convention, targets and flip treatment
    "official-msra": HeatmapCodec(INPUT_SIZE, (48, 64), 2.0, decoder="quarter", flip_shift=False),
    "official-unbiased": HeatmapCodec(INPUT_SIZE, (48, 64), 2.0, decoder="dark", flip_shift=False,
                                      encoding="unbiased"),
    "udp": HeatmapCodec(INPUT_SIZE, (48, 64), 2.0, decoder="udp"),
}
ALL_DECODERS = ("none", "quarter", "dark", "udp")
TINY_CFG = REPO / "configs" / "tiny_hrnet_128x96.yaml"
COCO_OPTS = ["DATASET.TEST_ANN_FILE", str(DATA / "coco" / "test_coco.json"),
             "DATASET.TEST_IMAGE_DIR", str(DATA / "coco")]


def _oracle_keypoints(base: HeatmapCodec, decoders):
    """Crops, oracle heatmaps and flip test of ``base``; ``decoders`` read the same forward pass."""
    gt_file, image_dir = SETS["coco"]
    samples = load_coco_gt_samples(gt_file, image_dir, input_size=INPUT_SIZE, skip_missing_images=True)
    dataset = TopDownDataset(samples, input_size=INPUT_SIZE, spec=COCO_17, codec=base)
    predictor = TopDownPredictor(_oracle(dataset, base), base, COCO_17, flip_test=True, batch_size=8)
    return dataset, predict_dataset(predictor, dataset, decoders=decoders, progress=False)


def _ap(dataset, keypoints) -> float:
    evaluator = CocoKeypointEvaluator(json.loads(SETS["coco"][0].read_text()), img_ids="processed")
    evaluator.process(to_pose_results(dataset, keypoints))
    return evaluator.evaluate()["AP"]


@pytest.mark.parametrize("base_name", list(BASES))
def test_oracle_gives_ap_one_for_every_decoder_the_rule_allows(base_name):
    base = BASES[base_name]
    allowed = CONVENTIONS[base.convention]
    dataset, keypoints = _oracle_keypoints(base, decoder_codecs(base, allowed))
    assert list(keypoints) == list(allowed)
    aps = {name: _ap(dataset, kps) for name, kps in keypoints.items()}
    assert aps == pytest.approx({name: 1.0 for name in allowed}, abs=1e-9), aps


@pytest.mark.parametrize("base_name", list(BASES))
def test_decoder_codecs_refuses_every_other_decoder_in_one_line(base_name):
    base = BASES[base_name]
    for refused in set(ALL_DECODERS) - set(CONVENTIONS[base.convention]):
        with pytest.raises(ConfigError) as err:
            decoder_codecs(base, list(CONVENTIONS[base.convention]) + [refused])
        message = str(err.value)
        assert "\n" not in message and f"decoder '{refused}' does not fit this model" in message
        assert ", ".join(CONVENTIONS[base.convention]) in message


def test_official_crops_read_by_udp_was_the_measured_error():
    """Issue 18's measurement: official (size/2, MSRA) crops and targets, a perfect network, and the UDP
    decoder that ``decoder_codecs(base, [..., "udp"])`` used to build: AP 0.896 and a 6 px shift."""
    base = BASES["official-msra"]
    udp_reader = HeatmapCodec(INPUT_SIZE, (48, 64), 2.0, decoder="udp")   # what the old swap gave
    dataset, keypoints = _oracle_keypoints(base, {"quarter": base, "dark": base.with_decoding("dark"),
                                                  "udp": udp_reader})
    displacement = {n: np.abs(kps[..., :2] - keypoints["quarter"][..., :2]).max() for n, kps in keypoints.items()}
    assert _ap(dataset, keypoints["quarter"]) == pytest.approx(1.0) == _ap(dataset, keypoints["dark"])
    assert displacement["dark"] < 0.5                                        # measured 0.47 px
    assert _ap(dataset, keypoints["udp"]) < 0.9 and displacement["udp"] > 5  # measured 0.896, 6.0 px
    with pytest.raises(ConfigError, match="decoder 'udp' does not fit this model"):
        decoder_codecs(base, ["quarter", "dark", "udp"])


# -- the same rule at the loaders and at pose-eval ------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A tiny official-convention checkpoint and a tiny UDP-trained one (random weights)."""
    import torch

    folder = tmp_path_factory.mktemp("conventions")
    out = {}
    for name, extra in (("official", []), ("udp", ["TEST.DECODER", "udp"])):
        cfg = load_config(TINY_CFG, COCO_OPTS + extra)
        torch.manual_seed(0)
        save_checkpoint(folder / f"{name}.pth", model=build_model(cfg.MODEL), cfg=cfg, codec=build_codec(cfg),
                        spec=COCO_17)
        out[name] = folder / f"{name}.pth"
    return out


def _eval(capsys, tmp_path, weights, *args):
    code = main(["--cfg", str(TINY_CFG), "--weights", str(weights), "--gt-boxes", "--output-dir", str(tmp_path),
                 "--quiet", *args] + COCO_OPTS)
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip().splitlines()


@pytest.mark.parametrize("ckpt,args,fits", [
    ("official", ["--decoders", "quarter,udp"], "none, quarter, dark"),
    ("official", ["TEST.DECODER", "udp"], "none, quarter, dark"),
    ("udp", ["--decoders", "udp,dark"], "take only udp"),
    ("udp", ["TEST.DECODER", "quarter"], "take only udp")])
def test_pose_eval_refuses_a_mix_in_one_line(checkpoints, tmp_path, capsys, ckpt, args, fits):
    code, out, err = _eval(capsys, tmp_path, checkpoints[ckpt], *args)
    assert code == 1 and len(err) == 1 and "Traceback" not in err[0], err
    assert "does not fit this model" in err[0] and f"the {'UDP' if ckpt == 'udp' else 'official'} convention" in err[0]
    assert fits in err[0]
    assert not (tmp_path / "metrics.json").exists()


def test_pose_eval_on_a_udp_checkpoint_defaults_to_udp(checkpoints, tmp_path, capsys):
    """The tiny config sets no TEST.DECODER: a UDP checkpoint keeps its own decoder, not the official one."""
    code, out, err = _eval(capsys, tmp_path, checkpoints["udp"])
    assert code == 0, err
    assert "decoder=udp" in out and set(json.loads((tmp_path / "metrics.json").read_text())["metrics"]) == {"udp"}


@pytest.mark.parametrize("overrides", [{"decoder": "udp"}, ["TEST.DECODER", "udp"]])
def test_zoo_models_are_official_convention_and_refuse_udp_before_any_download(overrides, tmp_path, monkeypatch):
    from pose.loading import load_predictor
    from pose.zoo import ZOO

    monkeypatch.setenv("POSE_CACHE", str(tmp_path))   # empty cache: offline loading would fail after the check
    assert {m.convention for m in ZOO.values()} == {"official"}
    with pytest.raises(ConfigError, match=r"decoder 'udp' does not fit zoo model 'hrnet_w32_coco_256x192': it "
                                          r"was trained in the official convention .*none, quarter, dark"):
        load_predictor("hrnet_w32_coco_256x192", overrides=overrides, offline=True)


def test_pose_estimator_refuses_udp_on_a_zoo_model(tmp_path, monkeypatch):
    from pose.api import PoseEstimator

    monkeypatch.setenv("POSE_CACHE", str(tmp_path))
    with pytest.raises(ConfigError, match=r"decoder 'udp' does not fit zoo model 'hrnet_w32_coco_256x192'"):
        PoseEstimator("hrnet_w32_coco_256x192", detector="whole-image", decoder="udp", offline=True)
