"""Runtimes for a loaded model: backend + precision resolved, exported/quantised files cached.

:func:`build_runtime` is what :func:`pose.loading.load_predictor` (and the benchmarks) call to turn an
eval-mode model into a backend (:mod:`pose.backends`): it wires :mod:`pose.export` (the cached ONNX
file), :mod:`pose.quantize` (int8) and the ``auto`` precision rule with its fidelity probe
(:mod:`pose.fidelity`). Re-exported by :mod:`pose.loading`, the one place weights become a predictor.
"""
import os
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from pose.backends import (
    BACKEND_PRECISIONS,
    PRECISIONS,
    Backend,
    TorchBackend,
    build_backend,
    check_precision,
    import_onnxruntime,
    resolve_backend_name,
)
from pose.errors import ConfigError
from pose.export import export_onnx_cached, sample_crops
from pose.fidelity import PROBE_MIN_CONFIDENCE, PROBE_MIN_KEYPOINTS, compare_keypoints
from pose.hardware import bf16_support
from pose.imageio import read_image_rgb
from pose.openvino_backend import import_openvino
from pose.quantize import quantize_onnx_cached

PathLike = Union[str, os.PathLike]


def build_runtime(model: torch.nn.Module, backend: str = "torch", *, device="cpu",
                  input_size: Optional[Sequence[int]] = None, weights_path: Optional[PathLike] = None,
                  cache_dir: Optional[PathLike] = None, threads: Optional[int] = None, compile: bool = False,
                  autocast_dtype: Optional[torch.dtype] = None, precision: str = "fp32", codec=None,
                  calibration_crops=None, performance_hint: str = "LATENCY") -> Backend:
    """A runtime backend for ``model`` (see :mod:`pose.backends`); ``runtime.describe()`` says what and why.

    ``precision`` is one of :data:`PRECISIONS`. A concrete one (``fp32``, ``bf16``, ``int8``) is checked
    against the backend and the hardware (:func:`pose.backends.check_precision`, a one-line error).
    ``int8`` needs ``calibration_crops`` ((N, H, W, 3) uint8 real crops, :func:`pose.export.sample_crops`)
    and quantises the cached ONNX file once per crop set (:mod:`pose.quantize`).

    ``auto`` is the rule for the demo and the API (``pose-eval`` keeps fp32): bf16 when the resolved
    backend offers it, the hardware has bf16 units (:func:`pose.hardware.bf16_support`) and a probe on
    *these* weights keeps fp32 fidelity: the mean displacement of the keypoints the fp32 runtime is
    confident about (peak >= :data:`pose.fidelity.PROBE_MIN_CONFIDENCE`, at least
    :data:`~pose.fidelity.PROBE_MIN_KEYPOINTS` of them) on ``calibration_crops`` (else seeded smooth-noise
    crops; needs ``codec``) is within :data:`pose.fidelity.MEAN_DISPLACEMENT_BOUND_PX`. Otherwise fp32.
    ``auto`` never picks int8.

    ``onnxruntime`` / ``openvino`` (and ``auto`` where it resolves to them) export the model once, caching
    the file by a hash of weights + input size (:func:`pose.export.export_onnx_cached`, beside
    ``weights_path`` when that folder is writable, else in ``cache_dir`` / ``$POSE_CACHE/onnx``);
    ``input_size`` (W, H) is then required.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision '{precision}' is unknown; expected one of {', '.join(PRECISIONS)}")
    name = resolve_backend_name(backend, device)
    picked = "auto: the fastest runtime installed here" if str(backend).strip().lower() == "auto" else ""
    options = dict(device=device, input_size=input_size, weights_path=weights_path, cache_dir=cache_dir,
                   threads=threads, compile=compile, autocast_dtype=autocast_dtype,
                   calibration_crops=calibration_crops, performance_hint=performance_hint)
    if precision == "auto":
        return _auto_precision(model, name, picked, codec, options)
    check_precision(name, precision, device)
    runtime = _runtime(model, name, precision, **options)
    runtime.choice_reason = picked or "as requested"
    return runtime


def _runtime(model, name: str, precision: str, *, device, input_size, weights_path, cache_dir, threads, compile,
             autocast_dtype, calibration_crops, performance_hint) -> Backend:
    if name in ("onnxruntime", "openvino"):
        if input_size is None:
            raise ConfigError(f"the {name} backend needs the model input size (W, H) to export the model")
        import_onnxruntime() if name == "onnxruntime" else import_openvino()  # the hint before an export
        network = export_onnx_cached(model, input_size, weights_path=weights_path, cache_dir=cache_dir)
        if precision == "int8":
            if calibration_crops is None or len(calibration_crops) == 0:
                raise ConfigError("precision int8 needs calibration images (calibration_images=DIR / "
                                  "--calibration-images DIR: real photos of people, to set activation ranges)")
            network = quantize_onnx_cached(network, calibration_crops)
        return build_backend(network, name, device=device, threads=threads, precision=precision,
                             performance_hint=performance_hint)
    if name == "torch" and autocast_dtype is None:
        return TorchBackend(model, device)
    return build_backend(model, name, device=device, compile=compile, autocast_dtype=autocast_dtype,
                         precision=precision)


def _auto_precision(model, name: str, picked: str, codec, options: dict) -> Backend:
    """fp32 or bf16 for the ``auto`` rule (see :func:`build_runtime`), with the reason recorded."""
    prefix = f"{picked}; " if picked else ""
    fp32 = _runtime(model, name, "fp32", **options)
    ok, why = bf16_support(options["device"])
    if "bf16" not in BACKEND_PRECISIONS[name]:
        fp32.choice_reason = f"{prefix}precision auto: fp32 ({name} offers no bf16)"
        return fp32
    if not ok:
        fp32.choice_reason = f"{prefix}precision auto: fp32 ({why})"
        return fp32
    if codec is None:
        raise ConfigError("precision auto needs the codec to check bf16 fidelity (pass codec=)")
    bf16 = _runtime(model, name, "bf16", **options)
    crops = options["calibration_crops"]
    if crops is None or len(crops) == 0:
        crops = sample_crops(None, (), input_size=codec.input_size, num_random=8)
    probe = compare_keypoints(fp32, bf16, crops, codec, name=f"{name} bf16", min_confidence=PROBE_MIN_CONFIDENCE)
    if probe.num_keypoints < PROBE_MIN_KEYPOINTS:
        fp32.choice_reason = (f"{prefix}precision auto: fp32 (bf16 could not be verified: only "
                              f"{probe.num_keypoints} confident keypoints on the probe crops; {why})")
        return fp32
    if not probe.ok:
        fp32.choice_reason = (f"{prefix}precision auto: fp32 (bf16 moved keypoints {probe.mean_px:.3f} px on "
                              f"average, beyond {probe.bound_px:g} px)")
        return fp32
    bf16.choice_reason = (f"{prefix}precision auto: bf16 ({why}; probe: mean displacement {probe.mean_px:.3f} px "
                          f"on {probe.num_keypoints} confident keypoints, bound {probe.bound_px:g} px)")
    return bf16


def calibration_crops_from(images, predictor) -> Optional[np.ndarray]:
    """Crops (N, H, W, 3) uint8 from a folder of images or a list of image paths (None: no images)."""
    if images is None:
        return None
    paths = list(images) if not isinstance(images, (str, os.PathLike)) else [images]
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp"))
        else:
            files.append(path)
    if not files:
        raise ConfigError(f"calibration images '{images}': no .jpg/.jpeg/.png/.bmp files found; "
                          "expected a folder of photos of people")
    return sample_crops(predictor, [read_image_rgb(f) for f in files])
