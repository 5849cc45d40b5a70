"""Export of every HRNet read-out: V2 heatmaps through export_model, V2p pyramid and classifier logits
through export_readout, with every output verified (ONNX Runtime and TorchScript)."""
import json

import numpy as np
import pytest
import torch

from pose import export
from pose.backends import OnnxRuntimeBackend, TorchScriptBackend
from pose.codec import HeatmapCodec
from pose.errors import PoseError
from pose.export import ExportMismatchError, export_model, export_readout
from pose.keypoints import COCO_17
from pose.models import build_model_from_arch

SIZE = (64, 64)  # (W, H): the smallest input at which the 5-level pyramid keeps a 1x1 top level


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here on one torch thread (tests/conftest.py)."""


def _randomise_bn(model):
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()


@pytest.fixture(scope="module")
def v2p():
    torch.manual_seed(0)
    return _randomise_bn(build_model_from_arch("hrnet_tiny", head="v2p"))


def test_v2p_pyramid_exports_every_level_and_verifies(v2p, tmp_path):
    results = export_readout(v2p, tmp_path, stem="tiny_v2p", input_size=SIZE)
    names = ["level0_stride4", "level1_stride8", "level2_stride16", "level3_stride32", "level4_stride64"]
    for fmt in ("onnx", "torchscript"):
        check = results[fmt]["verify"]
        assert check["ok"] and list(check["max_abs_diff"]) == names
        assert max(check["max_abs_diff"].values()) <= 1e-3
    sidecar = json.loads((tmp_path / "tiny_v2p.export.json").read_text())
    assert sidecar["outputs"] == names and sidecar["model"] == "HRNetV2p"

    # The backends give every output (their __call__ keeps returning the first, as the predictor needs).
    images = torch.rand(3, 3, SIZE[1], SIZE[0]) * 255
    with torch.inference_mode():
        want = [t.numpy() for t in v2p.forward_pixels(images).values()]
    onnx = OnnxRuntimeBackend(results["onnx"]["path"])
    assert onnx.output_names == tuple(names)
    for backend in (onnx, TorchScriptBackend(results["torchscript"]["path"])):
        got = backend.run_all(images)
        assert [g.shape for g in got] == [(3, 256, 16 // 2 ** i, 16 // 2 ** i) for i in range(5)]
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, atol=1e-3, rtol=0)
    np.testing.assert_allclose(onnx(images), want[0], atol=1e-3, rtol=0)


def test_classifier_logits_export_and_verify(tmp_path):
    torch.manual_seed(0)
    model = _randomise_bn(build_model_from_arch("hrnet_tiny", head="classification"))
    results = export_readout(model, tmp_path, stem="tiny_cls", input_size=SIZE, formats=["onnx"])
    assert list(results) == ["onnx"] and results["onnx"]["verify"]["ok"]
    images = torch.rand(2, 3, SIZE[1], SIZE[0]) * 255
    with torch.inference_mode():
        want = model(images).numpy()
    got = OnnxRuntimeBackend(results["onnx"]["path"])(images)
    assert got.shape == (2, 1000)
    np.testing.assert_allclose(got, want, atol=1e-3, rtol=0)


def test_v2_heatmaps_export_through_the_pose_path(tmp_path):
    torch.manual_seed(0)
    model = _randomise_bn(build_model_from_arch("hrnet_tiny", 17, head="v2"))
    codec = HeatmapCodec((96, 128), (24, 32), 2.0)
    crops = np.random.default_rng(0).integers(0, 256, size=(2, 128, 96, 3), dtype=np.uint8)
    results = export_model(model, codec, COCO_17, tmp_path, stem="tiny_v2", crops=crops)
    assert all(r["verify"]["ok"] for r in results.values())


def test_a_wrong_level_is_caught_and_named(v2p, tmp_path, monkeypatch):
    real = TorchScriptBackend.run_all

    def skewed(self, crops):
        outputs = list(real(self, crops))
        outputs[3] = outputs[3] + 0.01
        return tuple(outputs)

    monkeypatch.setattr(TorchScriptBackend, "run_all", skewed)
    with pytest.raises(ExportMismatchError, match="torchscript export of tiny_v2p differs from PyTorch: output "
                                                  "level3_stride32 max"):
        export_readout(v2p, tmp_path, stem="tiny_v2p", input_size=SIZE, formats=["torchscript"])
    assert not json.loads((tmp_path / "tiny_v2p.export.json").read_text())["exports"]["torchscript"]["verify"]["ok"]
    with pytest.raises(PoseError, match="unknown"):
        export.export_readout(v2p, tmp_path, stem="x", input_size=SIZE, formats=["tflite"])
