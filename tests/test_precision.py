"""Precision as a backend option: fp32 / bf16 / int8 per backend, the ``auto`` rule, one-line refusals,
and ``pose-export --precision`` writing only within the fidelity bound.

Two tiny networks: the tiny HRNet with random weights (flat heatmaps: reduced precision moves its
argmaxes, so the fidelity check must refuse it) and :class:`PeakNet`, whose heatmaps are sharp Gaussian
peaks (as a trained network's), on which bf16 and int8 must stay within the bound.
"""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import pose.backends as backends
from pose.backends import build_backend, check_precision
from pose.checkpoint import save_checkpoint
from pose.cli.export import main as export_main
from pose.codec import build_codec
from pose.config import load_config
from pose.errors import ConfigError
from pose.export import ExportMismatchError, export_precision, sample_crops, verify_backend
from pose.fidelity import MEAN_DISPLACEMENT_BOUND_PX, compare_keypoints
from pose.hardware import bf16_support
from pose.imageio import read_image_rgb
from pose.keypoints import COCO_17
from pose.models import build_model
from pose.openvino_backend import openvino_available
from pose.predictor import TopDownPredictor
from pose.runtime import build_runtime

REPO = Path(__file__).resolve().parents[1]
TINY_CFG = REPO / "configs" / "tiny_hrnet_128x96.yaml"
COCO = REPO / "tests" / "data" / "coco"
HAS_BF16 = bf16_support("cpu")[0]
needs_openvino = pytest.mark.skipif(not openvino_available(), reason="openvino is not installed (pip install "
                                    "pose[openvino]); these run in CI where the dev extra installs it")
needs_bf16 = pytest.mark.skipif(not HAS_BF16, reason="this CPU has no bf16 units (avx512_bf16 / amx_bf16)")


class PeakNet(nn.Module):
    """(B, 3, 128, 96) -> (B, 17, 32, 24): fixed sharp Gaussian peaks plus a small input-dependent term."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(24.0), indexing="ij")
        cx, cy = torch.rand(17, generator=g) * 16 + 4, torch.rand(17, generator=g) * 24 + 4
        peaks = torch.exp(-((xs - cx.view(-1, 1, 1)) ** 2 + (ys - cy.view(-1, 1, 1)) ** 2) / (2 * 2.0 ** 2))
        self.register_buffer("peaks", peaks[None])
        self.pool = nn.AvgPool2d(4)
        self.mix = nn.Conv2d(3, 17, 1)
        self.head = nn.Conv2d(17, 17, 1)  # identity: the peaks pass through a conv, so autocast touches them
        with torch.no_grad():
            self.mix.weight.mul_(1e-4)
            self.mix.bias.zero_()
            self.head.weight.copy_(torch.eye(17).view(17, 17, 1, 1))
            self.head.bias.zero_()

    def forward(self, x):
        return self.head(self.peaks + self.mix(self.pool(x / 255.0)))


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here on one torch thread (tests/conftest.py)."""


@pytest.fixture(scope="module")
def tiny():
    cfg = load_config(TINY_CFG)
    torch.manual_seed(0)
    return build_model(cfg.MODEL).eval(), build_codec(cfg), cfg


@pytest.fixture(scope="module")
def real_crops(tiny):
    model, codec, _ = tiny
    predictor = TopDownPredictor(model, codec, COCO_17, flip_test=False)
    return sample_crops(predictor, [read_image_rgb(p) for p in sorted(COCO.glob("*.jpg"))])


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, tiny):
    model, codec, cfg = tiny
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    save_checkpoint(path, model=model, cfg=cfg, codec=codec, spec=COCO_17)
    return path


def _no_bf16_units(monkeypatch):
    why = "this CPU has no bf16 units (none of avx512_bf16, amx_bf16 in /proc/cpuinfo)"
    monkeypatch.setattr(backends, "bf16_support", lambda device="cpu": (False, why))


# ------------------------------------------------------------------------------------------------
# What each backend offers, and one-line refusals
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend, precision, words", [
    ("onnxruntime", "bf16", "not offered by the onnxruntime backend"),
    ("torch-fast", "int8", "use --backend onnxruntime or openvino"),
    ("torch", "bf16", "not offered by the torch backend"),
])
def test_precision_not_offered_is_one_line(backend, precision, words):
    with pytest.raises(ConfigError) as e:
        check_precision(backend, precision)
    assert words in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("backend", ["torch-fast", "openvino"])
def test_bf16_without_bf16_units_is_refused(monkeypatch, tiny, backend):
    _no_bf16_units(monkeypatch)
    with pytest.raises(ConfigError, match="bf16' refused: this CPU has no bf16 units") as e:
        build_runtime(tiny[0], backend, precision="bf16", input_size=(96, 128))
    assert "\n" not in str(e.value)


def test_pose_export_bf16_without_units_exits_1_with_one_line(monkeypatch, tiny_checkpoint, tmp_path, capsys):
    _no_bf16_units(monkeypatch)
    code = export_main(["--weights", str(tiny_checkpoint), "--precision", "bf16", "--runtime", "torch-fast",
                        "--calibration-images", str(COCO), "--output-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "no bf16 units" in err[0]
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_openvino_missing_is_one_line_with_install_hint(without_openvino, tiny, tmp_path):
    with pytest.raises(ConfigError) as e:
        build_runtime(tiny[0], "openvino", input_size=(96, 128), cache_dir=tmp_path)
    assert "pip install pose[openvino]" in str(e.value) and "\n" not in str(e.value)
    assert not list(tmp_path.iterdir())  # the hint comes before a pointless export


def test_auto_falls_back_to_onnxruntime_without_openvino(without_openvino):
    assert backends.resolve_backend_name("auto") == "onnxruntime"


def test_int8_needs_calibration_images(tiny, tmp_path):
    with pytest.raises(ConfigError, match="calibration images"):
        build_runtime(tiny[0], "onnxruntime", precision="int8", input_size=(96, 128), cache_dir=tmp_path)


# ------------------------------------------------------------------------------------------------
# Every backend x precision keeps the export verification, with its bound
# ------------------------------------------------------------------------------------------------
VARIANTS = [("torch-fast", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "int8"),
            pytest.param("torch-fast", "bf16", marks=needs_bf16),
            pytest.param("openvino", "fp32", marks=needs_openvino),
            pytest.param("openvino", "bf16", marks=[needs_openvino, needs_bf16]),
            pytest.param("openvino", "int8", marks=needs_openvino)]


@pytest.mark.parametrize("backend, precision", VARIANTS)
def test_every_backend_and_precision_is_verified(backend, precision, tiny, real_crops, tmp_path):
    peak = PeakNet().eval()
    codec = tiny[1]
    runtime = build_runtime(peak, backend, precision=precision, input_size=(96, 128), cache_dir=tmp_path,
                            calibration_crops=real_crops, threads=1)
    info = runtime.describe()
    assert info["backend"] == backend and info["precision"] == precision
    assert ("accuracy unverified" in info["reason"]) == (precision == "int8")
    reference = backends.TorchBackend(peak)
    if precision == "fp32":  # the fp32 export bound: heatmaps and decoded keypoints match PyTorch
        assert verify_backend(reference, runtime, real_crops, codec).ok
    else:  # the reduced-precision bound: mean keypoint displacement
        check = compare_keypoints(reference, runtime, real_crops, codec)
        assert check.num_keypoints == len(real_crops) * 17
        assert check.mean_px <= MEAN_DISPLACEMENT_BOUND_PX, check.summary()
        assert check.max_heatmap_diff > 1e-4  # it really ran in reduced precision (fp32 paths differ by ~1e-7)


@needs_bf16
def test_bf16_on_flat_heatmaps_moves_keypoints(tiny, real_crops):
    """Why the check needs real peaks: on random weights bf16 moves decoded keypoints well past the bound."""
    model, codec, _ = tiny
    check = compare_keypoints(backends.TorchBackend(model), build_backend(model, "torch-fast", precision="bf16"),
                              real_crops, codec)
    assert not check.ok and check.mean_px > MEAN_DISPLACEMENT_BOUND_PX


# ------------------------------------------------------------------------------------------------
# auto
# ------------------------------------------------------------------------------------------------
@needs_bf16
def test_auto_picks_bf16_when_the_probe_holds(tiny, real_crops, tmp_path):
    runtime = build_runtime(PeakNet().eval(), "auto", precision="auto", input_size=(96, 128), cache_dir=tmp_path,
                            codec=tiny[1], calibration_crops=real_crops)
    info = runtime.describe()
    assert info["precision"] == "bf16" and "probe: mean displacement" in info["reason"], info


def test_auto_keeps_fp32_on_unverifiable_weights(tiny, tmp_path):
    model, codec, _ = tiny
    info = build_runtime(model, "torch-fast", precision="auto", codec=codec).describe()
    assert info["precision"] == "fp32" and "precision auto: fp32" in info["reason"], info


@needs_bf16
def test_auto_keeps_fp32_when_too_few_keypoints_are_confident(monkeypatch, tiny, real_crops):
    import pose.runtime
    monkeypatch.setattr(pose.runtime, "PROBE_MIN_KEYPOINTS", 10 ** 6)
    info = build_runtime(PeakNet().eval(), "torch-fast", precision="auto", codec=tiny[1],
                         calibration_crops=real_crops).describe()
    assert info["precision"] == "fp32" and "could not be verified" in info["reason"], info


@pytest.mark.parametrize("precision, probe_expected", [("auto", True), ("fp32", False)])
def test_auto_probes_on_the_bundled_photo_without_calibration_images(monkeypatch, tiny_checkpoint, precision,
                                                                     probe_expected):
    import pose.loading
    seen = {}

    def spy(model, backend, **kw):
        seen["crops"] = kw["calibration_crops"]
        return backends.TorchBackend(model, "cpu")
    monkeypatch.setattr(pose.loading, "build_runtime", spy)
    predictor, _ = pose.loading.load_predictor(str(tiny_checkpoint), precision=precision)
    if not probe_expected:
        assert seen["crops"] is None
        return
    assert pose.loading.AUTO_PROBE_IMAGE.is_file()
    expected = sample_crops(predictor, [read_image_rgb(pose.loading.AUTO_PROBE_IMAGE)])
    np.testing.assert_array_equal(seen["crops"], expected)


def test_auto_keeps_fp32_without_bf16_units(monkeypatch, tiny):
    _no_bf16_units(monkeypatch)
    import pose.runtime
    monkeypatch.setattr(pose.runtime, "bf16_support", backends.bf16_support)
    info = build_runtime(PeakNet().eval(), "torch-fast", precision="auto", codec=tiny[1]).describe()
    assert info["precision"] == "fp32" and "no bf16 units" in info["reason"]


# ------------------------------------------------------------------------------------------------
# pose-export --precision: the same check on the user's weights, refusing beyond the bound
# ------------------------------------------------------------------------------------------------
def test_export_int8_refuses_beyond_the_bound_and_force_writes(tiny, real_crops, tmp_path):
    model, codec, _ = tiny
    with pytest.raises(ExportMismatchError, match="nothing written"):
        export_precision(model, codec, COCO_17, tmp_path, stem="tiny", precision="int8", crops=real_crops)
    assert not list(tmp_path.iterdir())
    result = export_precision(model, codec, COCO_17, tmp_path, stem="tiny", precision="int8", crops=real_crops,
                              force=True)
    assert result["forced"] and Path(result["path"]).is_file() and Path(result["path"]).name == "tiny.int8.onnx"
    sidecar = json.loads((tmp_path / "tiny.export.json").read_text())
    assert sidecar["exports"]["onnx-int8"]["fidelity"]["ok"] is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.export.json", "tiny.int8.onnx"]


def test_pose_export_int8_cli_within_the_bound(tmp_path, capsys, monkeypatch):
    import pose.cli.export as cli
    peak = PeakNet().eval()
    cfg = load_config(TINY_CFG)
    monkeypatch.setattr("pose.loading.load_model", lambda *a, **k: (peak, cfg, build_codec(cfg), COCO_17))
    code = cli.main(["--weights", "peak", "--precision", "int8", "--calibration-images", str(COCO),
                     "--output-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0 and "mean keypoint displacement" in out and "accuracy unverified" in out
    assert (tmp_path / "peak.int8.onnx").is_file()


def test_pose_export_reduced_precision_needs_calibration_images(tiny_checkpoint, tmp_path, capsys):
    code = export_main(["--weights", str(tiny_checkpoint), "--precision", "int8", "--output-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "--calibration-images" in err[0]


def test_onnx_file_backends_take_files(tiny):
    with pytest.raises(ConfigError, match="takes an .onnx file"):
        build_backend(tiny[0], "onnxruntime")


def test_pose_export_refusal_is_one_line_and_writes_nothing(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    code = export_main(["--weights", str(tiny_checkpoint), "--precision", "int8", "--calibration-images", str(COCO),
                        "--output-dir", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "BEYOND THE BOUND" in err[0] and "--force" in err[0]
    assert not list(out.iterdir())


def test_pose_export_calibration_folder_without_images(tiny_checkpoint, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = export_main(["--weights", str(tiny_checkpoint), "--precision", "int8", "--calibration-images",
                        str(tmp_path / "empty"), "--output-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "no .jpg" in err[0] and "empty" in err[0]
