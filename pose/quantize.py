"""int8: static quantisation of an exported ONNX pose network, calibrated on real crops.

:func:`quantize_onnx` writes a QDQ (QuantizeLinear/DequantizeLinear) int8 ONNX file with ONNX Runtime's
static quantiser: per-channel symmetric int8 weights, uint8 activations with ranges calibrated
(MinMax) on crops the user supplies. Both the ``onnxruntime`` and the ``openvino`` backends run that one
file with int8 kernels. The network's first node divides by 255 and subtracts the ImageNet mean inside
the graph, so calibration crops must be real images cut by the predictor (:func:`pose.export.sample_crops`),
not noise.

int8 is opt-in and its accuracy on your weights is unverified until a fidelity check
(:func:`pose.fidelity.compare_keypoints`, ``pose-export --precision int8``) says otherwise: that is what
:data:`INT8_LABEL` says wherever an int8 runtime is described. On the benchmark's memorised W32 (``python -m
benchmarks --only fidelity``; figures in the README) this quantisation fails the check on both runtimes,
so int8 is never chosen for you.

Symbols: N crops, (H, W) model input.
"""
import hashlib
import logging
import os
from pathlib import Path
from typing import Union

import numpy as np

from pose.errors import ConfigError
from pose.fileio import atomic_path

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
INT8_LABEL = "int8: accuracy unverified on your weights (it fails the fidelity check on a memorised W32)"
QUANTIZE_INSTALL_HINT = "pip install onnxruntime onnx (or pip install pose[export])"


def _import_quantization():
    try:
        from onnxruntime import quantization
    except ImportError:
        raise ConfigError(f"int8 quantisation needs onnxruntime and onnx: {QUANTIZE_INSTALL_HINT}") from None
    return quantization


def calibration_fingerprint(crops_nhwc: np.ndarray) -> str:
    """sha256 (hex, 16 characters) of the calibration crops (shape and bytes)."""
    crops = np.ascontiguousarray(crops_nhwc)
    h = hashlib.sha256(f"{crops.shape}|{crops.dtype}".encode())
    h.update(crops.tobytes())
    return h.hexdigest()[:16]


def int8_path_for(onnx_path: PathLike, crops_nhwc: np.ndarray) -> Path:
    """Where the int8 version of ``onnx_path`` calibrated on these crops is cached (beside it)."""
    onnx_path = Path(onnx_path)
    return onnx_path.with_name(f"{onnx_path.stem}.int8.{calibration_fingerprint(crops_nhwc)}.onnx")


def quantize_onnx(onnx_path: PathLike, output_path: PathLike, crops_nhwc: np.ndarray, *,
                  batch_size: int = 4) -> Path:
    """Write the int8 QDQ version of the fp32 ``onnx_path`` to ``output_path`` (atomically).

    Args:
        crops_nhwc: (N, H, W, 3) uint8 RGB calibration crops (real images, see :mod:`pose.quantize`).
    """
    q = _import_quantization()
    crops = np.asarray(crops_nhwc)
    if crops.ndim != 4 or crops.shape[-1] != 3 or len(crops) == 0:
        raise ConfigError(f"int8 calibration: got crops of shape {crops.shape}, expected (N>=1, H, W, 3) uint8")
    batches = [np.ascontiguousarray(crops[i:i + batch_size].transpose(0, 3, 1, 2), dtype=np.float32)
               for i in range(0, len(crops), batch_size)]

    class _Reader(q.CalibrationDataReader):
        def __init__(self):
            self._it = iter(batches)

        def get_next(self):
            x = next(self._it, None)
            return None if x is None else {"images": x}

    output_path = Path(output_path)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser warns on the root logger about every folded conv bias
    try:
        with atomic_path(output_path) as tmp:
            q.quantize_static(str(onnx_path), str(tmp), _Reader(), quant_format=q.QuantFormat.QDQ,
                              per_channel=True, weight_type=q.QuantType.QInt8,
                              activation_type=q.QuantType.QUInt8, calibrate_method=q.CalibrationMethod.MinMax)
    finally:
        root.setLevel(level)
    logger.info("wrote int8 ONNX %s (calibrated on %d crops)", output_path, len(crops))
    return output_path


def quantize_onnx_cached(onnx_path: PathLike, crops_nhwc: np.ndarray) -> Path:
    """The cached int8 file for ``onnx_path`` and these calibration crops (written now if absent)."""
    path = int8_path_for(onnx_path, crops_nhwc)
    if path.is_file():
        logger.info("reusing cached int8 ONNX %s", path)
        return path
    return quantize_onnx(onnx_path, path, crops_nhwc)
