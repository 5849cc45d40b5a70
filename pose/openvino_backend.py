"""The ``openvino`` backend: an exported ``.onnx`` pose network compiled by OpenVINO for the CPU.

OpenVINO reads the same cached ONNX file as the ``onnxruntime`` backend (:func:`pose.export.export_onnx_cached`)
and compiles it with explicit settings: the number of threads, a latency or throughput hint, and the
inference precision (``INFERENCE_PRECISION_HINT`` ``f32`` or ``bf16``; an int8 QDQ file written by
:mod:`pose.quantize` runs its int8 kernels whatever the hint). Optional dependency: ``pip install
pose[openvino]``.

Symbols: B batch, K keypoints, (H, W) model input, (h, w) heatmap.
"""
import os
from pathlib import Path
from typing import Optional, Union

import numpy as np

from pose.errors import ConfigError, DataError
from pose.quantize import INT8_LABEL

PathLike = Union[str, os.PathLike]
OPENVINO_INSTALL_HINT = "pip install openvino (or pip install pose[openvino])"
#: Precision name -> OpenVINO ``INFERENCE_PRECISION_HINT`` (int8 comes from the file, not a hint).
_PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}
PERFORMANCE_HINTS = ("LATENCY", "THROUGHPUT")


def import_openvino():
    """``openvino``, or :class:`ConfigError` with the install hint when it is missing."""
    try:
        import openvino
    except ImportError:
        raise ConfigError(f"the openvino backend needs the openvino package: {OPENVINO_INSTALL_HINT}") from None
    return openvino


def openvino_available() -> bool:
    """True when ``import openvino`` works."""
    try:
        import_openvino()
    except ConfigError:
        return False
    return True


class OpenVinoBackend:
    """OpenVINO CPU inference of an exported pose network (input ``images``, output ``heatmaps``).

    Args:
        onnx_path: an ``.onnx`` file written by :func:`pose.export.export_onnx` (or an int8 file from
            :func:`pose.quantize.quantize_onnx`).
        precision: ``fp32``, ``bf16`` (the caller checks the CPU has bf16 units) or ``int8`` (the file
            must be quantised).
        threads: ``INFERENCE_NUM_THREADS`` (default: the CPUs this process may run on, set explicitly).
        performance_hint: ``LATENCY`` (one request at a time, the demo) or ``THROUGHPUT``.
    """

    name = "openvino"

    def __init__(self, onnx_path: PathLike, *, precision: str = "fp32", threads: Optional[int] = None,
                 performance_hint: str = "LATENCY"):
        ov = import_openvino()
        if precision not in _PRECISION_HINTS:
            raise ConfigError(f"openvino precision '{precision}' is unknown; expected one of "
                              f"{', '.join(_PRECISION_HINTS)}")
        if performance_hint not in PERFORMANCE_HINTS:
            raise ConfigError(f"openvino performance_hint '{performance_hint}' is unknown; expected one of "
                              f"{', '.join(PERFORMANCE_HINTS)}")
        if threads is not None and int(threads) < 1:
            raise ConfigError(f"OpenVinoBackend threads: got {threads}, expected an integer >= 1")
        self.onnx_path = Path(onnx_path)
        if not self.onnx_path.is_file():
            raise DataError(f"ONNX model '{self.onnx_path}' does not exist; expected a file written by pose-export")
        self.precision = precision
        if threads is None:
            threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        config = {"INFERENCE_PRECISION_HINT": _PRECISION_HINTS[precision], "PERFORMANCE_HINT": performance_hint,
                  "INFERENCE_NUM_THREADS": int(threads)}
        try:
            core = ov.Core()
            self.compiled = core.compile_model(core.read_model(str(self.onnx_path)), "CPU", config)
        except Exception as e:  # OpenVINO raises RuntimeError subclasses for unreadable graphs
            reason = " ".join(str(e).split())[:200]
            raise DataError(f"ONNX model '{self.onnx_path}' cannot be compiled by OpenVINO ({reason})") from None
        self.request = self.compiled.create_infer_request()
        self.config = config
        self.choice_reason = ""

    def describe(self) -> dict:
        """``{"backend", "precision", "reason"}`` (as :func:`pose.backends.describe_backend`)."""
        reason = self.choice_reason or "as requested"
        return {"backend": self.name, "precision": self.precision,
                "reason": f"{reason}; {INT8_LABEL}" if self.precision == "int8" else reason}

    def __call__(self, crops_nchw) -> np.ndarray:
        """(B, 3, H, W) float32 RGB [0, 255] (tensor or array) -> (B, K, h, w) float32 numpy heatmaps."""
        if hasattr(crops_nchw, "detach"):
            x = crops_nchw.detach().to("cpu").float().contiguous().numpy()
        else:
            x = np.ascontiguousarray(crops_nchw, dtype=np.float32)
        out = self.request.infer({0: x})
        return np.array(next(iter(out.values())), dtype=np.float32, copy=True)
