"""Inference backends: BN folding, the optimised torch backend, ONNX Runtime (+ export cache), factory."""
import numpy as np
import pytest
import torch

from pose import export
from pose.backends import (
    OnnxRuntimeBackend,
    OptimizedTorchBackend,
    TorchBackend,
    build_backend,
    count_batchnorms,
    fold_batchnorm,
)
from pose.codec import HeatmapCodec
from pose.errors import ConfigError, DataError
from pose.imageio import read_image_rgb
from pose.keypoints import COCO_17
from pose.loading import build_runtime
from pose.models import build_model_from_arch
from pose.models.hrnet import _pixel_stats
from pose.predictor import TopDownPredictor

HEATMAP_ATOL = 1e-3   # reference README: model outputs compare with atol 1e-3
KEYPOINT_ATOL = 0.01  # crop pixels


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here on one torch thread (tests/conftest.py)."""


def _randomize_bn(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial BN statistics and affine terms so folding is really exercised."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
    return model.eval()


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return _randomize_bn(build_model_from_arch("hrnet_tiny", 17))


@pytest.fixture(scope="module")
def w32_golden(golden):
    data = golden("golden_w32_seed0.npz")
    model = build_model_from_arch("hrnet_w32", 17)
    state = {k[len("state_dict/"):]: torch.from_numpy(np.asarray(v)) for k, v in data.items()
             if k.startswith("state_dict/")}
    model.load_state_dict(state, strict=True)
    mean, std = _pixel_stats()
    raw = torch.from_numpy(data["input"]) * std + mean  # undo the normalisation: RGB in [0, 255]
    return model.eval(), raw, data["output"]


def _codec(input_size=(192, 256)) -> HeatmapCodec:
    w, h = input_size
    return HeatmapCodec((w, h), (w // 4, h // 4), 2.0)


def _random_crops(n, input_size=(96, 128), seed=0) -> torch.Tensor:
    w, h = input_size
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed)) * 255.0


# ---------------------------------------------------------------------------------------------
# BatchNorm folding
# ---------------------------------------------------------------------------------------------
def test_fold_batchnorm_w32_golden(w32_golden, golden):
    model, _, expected = w32_golden
    x = torch.from_numpy(golden("golden_w32_seed0.npz")["input"])
    assert count_batchnorms(model) == 292
    folded = fold_batchnorm(model)
    assert folded.num_folded_batchnorms == 292
    assert count_batchnorms(folded) == 0
    assert count_batchnorms(model) == 292  # the original is untouched (a deep copy was folded)
    with torch.no_grad():
        eager = model.forward_normalized(x).numpy()
        fused = folded.forward_normalized(x).numpy()
    assert np.abs(fused - eager).max() < 1e-4
    np.testing.assert_allclose(fused, expected, atol=HEATMAP_ATOL, rtol=0)


def test_fold_batchnorm_tiny_is_exact_and_leaves_original(tiny_model):
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    folded = fold_batchnorm(tiny_model)
    assert count_batchnorms(folded) == 0 and folded.num_folded_batchnorms == count_batchnorms(tiny_model)
    for name, value in tiny_model.state_dict().items():
        assert torch.equal(value, before[name]), name
    x = _random_crops(2)
    with torch.no_grad():
        assert (folded(x) - tiny_model(x)).abs().max().item() < 1e-4
    # every conv absorbed a BN (or already had a bias: final_layer)
    assert all(m.bias is not None for m in folded.modules() if isinstance(m, torch.nn.Conv2d))


def test_fold_batchnorm_uses_eval_statistics_of_a_training_model(tiny_model):
    import copy
    train_model = copy.deepcopy(tiny_model).train()
    folded = fold_batchnorm(train_model)
    assert not folded.training
    x = _random_crops(1)
    with torch.no_grad():
        expected = copy.deepcopy(tiny_model).eval()(x)
        assert (folded(x) - expected).abs().max().item() < 1e-4


def test_fold_leaves_unrecognised_batchnorms():
    model = torch.nn.Sequential(torch.nn.BatchNorm2d(3), torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    _randomize_bn(model)
    folded = fold_batchnorm(model)
    assert folded.num_folded_batchnorms == 1 and count_batchnorms(folded) == 1
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(folded(x), model(x), atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Backends vs the eager model, golden W32
# ---------------------------------------------------------------------------------------------
def _check_against(expected: np.ndarray, got: np.ndarray, codec: HeatmapCodec):
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=HEATMAP_ATOL, rtol=0)
    kp_expected, _ = codec.decode(expected)
    kp_got, _ = codec.decode(got)
    np.testing.assert_allclose(kp_got, kp_expected, atol=KEYPOINT_ATOL, rtol=0)


def test_eager_on_raw_pixels_matches_golden(w32_golden):
    model, raw, expected = w32_golden
    _check_against(expected, TorchBackend(model)(raw), _codec())


def test_optimized_torch_backend_matches_golden(w32_golden):
    model, raw, expected = w32_golden
    backend = OptimizedTorchBackend(model, "cpu")
    assert count_batchnorms(backend.module) == 0
    assert backend.module.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    _check_against(expected, backend(raw), _codec())


@pytest.mark.slow
@pytest.mark.parametrize("variant", [dict(fold_bn=False), dict(channels_last=False)])
def test_optimized_torch_backend_variants_match_golden(w32_golden, variant):
    model, raw, expected = w32_golden
    _check_against(expected, OptimizedTorchBackend(model, **variant)(raw), _codec())


@pytest.mark.slow
def test_onnxruntime_backend_matches_golden(w32_golden, tmp_path):
    model, raw, expected = w32_golden
    backend = build_runtime(model, "onnxruntime", input_size=(192, 256), cache_dir=tmp_path, threads=1)
    _check_against(expected, backend(raw), _codec())
    _check_against(expected[:1], backend(raw[:1]), _codec())  # dynamic batch axis


def test_onnxruntime_backend_tiny_matches_eager(tiny_model, tmp_path):
    x = _random_crops(3)
    with torch.no_grad():
        expected = tiny_model(x).numpy()
    backend = build_runtime(tiny_model, "onnxruntime", input_size=(96, 128), cache_dir=tmp_path, threads=1)
    _check_against(expected, backend(x), _codec((96, 128)))
    _check_against(expected[1:], backend(x[1:].numpy()), _codec((96, 128)))


@pytest.mark.slow
def test_torch_compile_backend_matches_eager(tiny_model):
    x = _random_crops(2)
    with torch.no_grad():
        expected = tiny_model(x).numpy()
    backend = OptimizedTorchBackend(tiny_model, compile=True)
    _check_against(expected, backend(x), _codec((96, 128)))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_autocast_on_gpu_close_to_fp32(tiny_model, dtype):
    x = _random_crops(2)
    with torch.no_grad():
        expected = tiny_model(x).numpy()
    got = OptimizedTorchBackend(tiny_model, "cuda", autocast_dtype=dtype)(x)
    assert got.dtype == np.float32 and np.abs(got - expected).max() < 0.05 * np.abs(expected).max() + 1e-3


# ---------------------------------------------------------------------------------------------
# ONNX export cache
# ---------------------------------------------------------------------------------------------
def _count_exports(monkeypatch):
    from pose import export
    calls = []
    real = export.export_onnx

    def counting(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(export, "export_onnx", counting)
    return calls


def test_onnx_export_is_cached_and_keyed_by_weights(tiny_model, tmp_path, monkeypatch):
    import copy
    calls = _count_exports(monkeypatch)
    first = build_runtime(tiny_model, "onnxruntime", input_size=(96, 128), cache_dir=tmp_path)
    assert len(calls) == 1 and first.onnx_path.parent == tmp_path
    mtime = first.onnx_path.stat().st_mtime_ns
    second = build_runtime(tiny_model, "auto", input_size=(96, 128), cache_dir=tmp_path)
    assert len(calls) == 1, "the second build re-exported instead of reusing the cached file"
    assert second.onnx_path == first.onnx_path and first.onnx_path.stat().st_mtime_ns == mtime
    # another input size or other weights -> another file
    build_runtime(tiny_model, "onnxruntime", input_size=(64, 128), cache_dir=tmp_path)
    changed = copy.deepcopy(tiny_model)
    with torch.no_grad():
        changed.final_layer.bias.add_(1.0)
    third = build_runtime(changed, "onnxruntime", input_size=(96, 128), cache_dir=tmp_path)
    assert len(calls) == 3 and third.onnx_path != first.onnx_path
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".onnx"] * 3  # no temp files left behind


def test_onnx_cache_next_to_weights(tiny_model, tmp_path):
    weights = tmp_path / "model_best.pth"
    weights.write_bytes(b"placeholder")
    backend = build_runtime(tiny_model, "onnxruntime", input_size=(96, 128), weights_path=weights)
    assert backend.onnx_path.parent == tmp_path and backend.onnx_path.name.startswith("model_best.96x128.opset17.")


def test_onnx_cache_defaults_to_pose_cache(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("POSE_CACHE", str(tmp_path))
    path = export.cached_onnx_path(tiny_model, (96, 128))
    assert path.parent == tmp_path / "onnx" and path.suffix == ".onnx"


def test_missing_onnxruntime_gives_install_hint(tiny_model, without_onnxruntime):
    with pytest.raises(ConfigError, match=r"pip install onnxruntime.*pip install pose\[export\]") as info:
        build_runtime(tiny_model, "onnxruntime", input_size=(96, 128))
    assert "\n" not in str(info.value)


def test_onnxruntime_bad_inputs(tmp_path, tiny_model):
    with pytest.raises(DataError, match="does not exist"):
        OnnxRuntimeBackend(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a graph")
    with pytest.raises(DataError, match="cannot be loaded by onnxruntime"):
        OnnxRuntimeBackend(bad)
    with pytest.raises(ConfigError, match="takes an .onnx file"):
        OnnxRuntimeBackend(tiny_model)
    with pytest.raises(ConfigError, match="input size"):
        build_runtime(tiny_model, "onnxruntime")
    with pytest.raises(ConfigError, match="threads"):
        build_runtime(tiny_model, "onnxruntime", input_size=(96, 128), cache_dir=tmp_path, threads=0)


# ---------------------------------------------------------------------------------------------
# Factory + predictor integration on a real image
# ---------------------------------------------------------------------------------------------
def test_build_backend_names(tiny_model, tmp_path):
    assert isinstance(build_backend(tiny_model, "torch"), TorchBackend)
    assert isinstance(build_backend(tiny_model, "torch-fast"), OptimizedTorchBackend)
    with pytest.raises(ConfigError, match="backend 'tensorrt' is unknown; expected one of torch, torch-fast"):
        build_backend(tiny_model, "tensorrt")


def test_predictor_results_agree_across_backends(tiny_model, tmp_path, data_dir):
    image = read_image_rgb(data_dir / "coco" / "000000000785.jpg")
    h, w = image.shape[:2]
    boxes = np.array([[w * 0.2, h * 0.1, w * 0.5, h * 0.8], [0, 0, w, h], [w * 0.5, h * 0.5, w * 0.3, h * 0.4]])
    codec = _codec((96, 128))
    results = {}
    for name in ("torch", "torch-fast", "onnxruntime"):
        backend = build_runtime(tiny_model, name, input_size=(96, 128), cache_dir=tmp_path, threads=1)
        predictor = TopDownPredictor(backend, codec, COCO_17, flip_test=True, batch_size=2)
        centers, scales = predictor.make_windows(boxes)
        results[name] = predictor.predict_windows(image, centers, scales)
    for name in ("torch-fast", "onnxruntime"):
        np.testing.assert_allclose(results[name][..., :2], results["torch"][..., :2], atol=KEYPOINT_ATOL, rtol=0)
        np.testing.assert_allclose(results[name][..., 2], results["torch"][..., 2], atol=HEATMAP_ATOL, rtol=0)
