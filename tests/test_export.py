"""pose-export: ONNX + TorchScript files, atomic writes, verification against PyTorch, clear errors."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pose import export
from pose.backends import OnnxRuntimeBackend, TorchBackend, TorchScriptBackend
from pose.checkpoint import save_checkpoint
from pose.cli.export import main
from pose.codec import build_codec
from pose.config import load_config
from pose.export import ONNX_OPSET, read_onnx_metadata, verify_backend
from pose.keypoints import COCO_17
from pose.models import build_model

REPO = Path(__file__).resolve().parents[1]
TINY_CFG = REPO / "configs" / "tiny_hrnet_128x96.yaml"
W32_CFG = REPO / "configs" / "coco_hrnet_w32_256x192.yaml"


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here on one torch thread (tests/conftest.py)."""


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A self-describing project checkpoint of the tiny HRNet with random weights (and random BN stats)."""
    cfg = load_config(TINY_CFG)
    torch.manual_seed(0)
    model = build_model(cfg.MODEL).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    save_checkpoint(path, model=model, cfg=cfg, codec=build_codec(cfg), spec=COCO_17)
    return path, model, build_codec(cfg)


def _crops(n, w, h, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)


def test_pose_export_both_formats_tiny(tiny_checkpoint, tmp_path, data_dir, capsys):
    ckpt, model, codec = tiny_checkpoint
    out = tmp_path / "exports"
    images = sorted(str(p) for p in (data_dir / "coco").glob("*.jpg"))[:2]
    rc = main(["--weights", str(ckpt), "--format", "both", "--output-dir", str(out), "--images", *images, "--quiet"])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert sorted(p.name for p in out.iterdir()) == ["tiny.export.json", "tiny.onnx", "tiny.torchscript.pt"]
    assert "onnx vs PyTorch on 4 crops" in printed and "torchscript vs PyTorch on 4 crops" in printed

    sidecar = json.loads((out / "tiny.export.json").read_text())
    assert sidecar["opset"] == ONNX_OPSET == 17 and sidecar["input_size_wh"] == [96, 128]
    assert sidecar["keypoint_names"] == list(COCO_17.keypoint_names)
    for fmt in ("onnx", "torchscript"):
        check = sidecar["exports"][fmt]["verify"]
        assert check["ok"] and check["num_crops"] == 4
        assert check["max_heatmap_diff"] < 1e-3 and check["max_keypoint_diff_px"] <= 0.01
    meta = read_onnx_metadata(out / "tiny.onnx")
    assert meta["opset"] == "17" and meta["input_size_wh"] == "96x128" and meta["producer"] == "pose"

    # The written files run on their own, with any batch size, and match the eager model.
    x = torch.from_numpy(_crops(3, 96, 128)).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        expected = model(x).numpy()
    for backend in (OnnxRuntimeBackend(out / "tiny.onnx"), TorchScriptBackend(out / "tiny.torchscript.pt")):
        got = backend(x)
        assert got.shape == (3, 17, 32, 24)
        np.testing.assert_allclose(got, expected, atol=1e-3, rtol=0)
        np.testing.assert_allclose(codec.decode(got)[0], codec.decode(expected)[0], atol=0.01, rtol=0)


def test_pose_export_random_crops_and_name(tiny_checkpoint, tmp_path, capsys):
    ckpt, _, _ = tiny_checkpoint
    rc = main(["--weights", str(ckpt), "--format", "onnx", "--output-dir", str(tmp_path), "--name", "m",
               "--num-random", "3", "--quiet"])
    assert rc == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.export.json", "m.onnx"]
    assert json.loads((tmp_path / "m.export.json").read_text())["exports"]["onnx"]["verify"]["num_crops"] == 3


def test_pose_export_mismatch_fails_with_one_line(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    ckpt, _, _ = tiny_checkpoint
    real_call = TorchScriptBackend.__call__
    monkeypatch.setattr(TorchScriptBackend, "__call__", lambda self, x: real_call(self, x) + 0.01)
    rc = main(["--weights", str(ckpt), "--format", "torchscript", "--output-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1
    assert err[-1].startswith("pose-export: error: torchscript export differs from PyTorch: max |heatmap diff| 0.01")
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_pose_export_without_onnxruntime(tiny_checkpoint, tmp_path, without_onnxruntime, capsys):
    ckpt, _, _ = tiny_checkpoint
    rc = main(["--weights", str(ckpt), "--format", "onnx", "--output-dir", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1
    assert "pip install onnxruntime" in err[0] and "pip install pose[export]" in err[0]
    # --no-verify still exports (onnxruntime is only needed to check the file)
    rc = main(["--weights", str(ckpt), "--format", "onnx", "--output-dir", str(tmp_path / "o"), "--no-verify",
               "--quiet"])
    assert rc == 0 and (tmp_path / "o" / "tiny.onnx").is_file()


def test_pose_export_bad_weights(tmp_path, capsys):
    rc = main(["--weights", str(tmp_path / "nope.pth"), "--output-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and err[-1].startswith("pose-export: error:") and "nope.pth" in err[-1]


def test_verify_backend_detects_a_real_difference(tiny_checkpoint):
    _, model, codec = tiny_checkpoint
    import copy
    other = copy.deepcopy(model)
    with torch.no_grad():
        other.final_layer.weight.mul_(1.01)
    crops = _crops(2, 96, 128)
    same = verify_backend(TorchBackend(model), TorchBackend(copy.deepcopy(model)), crops, codec)
    assert same.ok and same.max_heatmap_diff == 0.0 and same.max_keypoint_diff_px == 0.0
    diff = verify_backend(TorchBackend(model), TorchBackend(other), crops, codec, name="x")
    assert not diff.ok and diff.max_heatmap_diff > 1e-3 and "MISMATCH" in diff.summary()


def test_export_failure_leaves_no_file(tiny_checkpoint, tmp_path, monkeypatch):
    _, model, _ = tiny_checkpoint

    def failing(*args, **kwargs):
        raise RuntimeError("exporter crashed")

    monkeypatch.setattr(torch.onnx, "export", failing)
    with pytest.raises(RuntimeError, match="exporter crashed"):
        export.export_onnx(model, tmp_path / "m.onnx", (96, 128))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_pose_export_golden_w32(golden, tmp_path, data_dir, capsys):
    data = golden("golden_w32_seed0.npz")
    state = {k[len("state_dict/"):]: torch.from_numpy(np.asarray(v)) for k, v in data.items()
             if k.startswith("state_dict/")}
    weights = tmp_path / "golden_w32.pth"
    torch.save(state, weights)  # an official-style plain state dict: needs --cfg
    out = tmp_path / "exports"
    image = str(data_dir / "coco" / "000000196141.jpg")
    rc = main(["--weights", str(weights), "--cfg", str(W32_CFG), "--format", "both", "--output-dir", str(out),
               "--images", image, "--quiet"])
    assert rc == 0, capsys.readouterr().err
    # The exported ONNX reproduces the official golden output on the golden input (de-normalised).
    from pose.models.hrnet import _pixel_stats
    mean, std = _pixel_stats()
    raw = torch.from_numpy(data["input"]) * std + mean
    np.testing.assert_allclose(OnnxRuntimeBackend(out / "golden_w32.onnx")(raw), data["output"], atol=1e-3, rtol=0)
    sidecar = json.loads((out / "golden_w32.export.json").read_text())
    assert all(r["verify"]["ok"] for r in sidecar["exports"].values())
