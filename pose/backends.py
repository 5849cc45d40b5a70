"""Runtime backends for :class:`pose.predictor.TopDownPredictor`: a network (module or file) in, heatmaps out.

A *backend* is any callable mapping a float32 (B, 3, H, W) batch of RGB crops in [0, 255] (a torch
tensor, NCHW) to (B, K, h, w) float32 heatmaps (a numpy array). Normalisation stays inside the network
(``PoseHRNet.forward``), and so inside every exported graph.

Backends (:func:`build_backend`, names in :data:`BACKENDS`):

- ``torch``: :class:`TorchBackend`, the plain eager model (the official code's path).
- ``torch-fast``: :class:`OptimizedTorchBackend`: BatchNorm folded into the convolutions
  (:func:`fold_batchnorm`) and channels_last tensors, no compile step. Optional
  ``torch.compile(options={"freezing": True})`` adds 5-10% but costs 20-150 s per new batch shape;
  optional fp16/bf16 autocast is meant for GPUs.
- ``onnxruntime``: :class:`OnnxRuntimeBackend`: an exported ``.onnx`` file run by ONNX Runtime with
  all graph optimisations (the fastest CPU path measured).
- ``openvino``: :class:`pose.openvino_backend.OpenVinoBackend`: the same ``.onnx`` file compiled by
  OpenVINO (optional extra ``pose[openvino]``).
- ``torchscript``: :class:`TorchScriptBackend`, a saved ``torch.jit`` file (export verification).

Precision (:data:`PRECISIONS`, checked by :func:`check_precision`): ``fp32`` everywhere; ``bf16`` on
``torch-fast`` (autocast) and ``openvino`` (``INFERENCE_PRECISION_HINT``), only where the hardware has bf16
units (:func:`pose.hardware.bf16_support`); ``int8`` on ``onnxruntime`` and ``openvino`` from a statically
quantised file (:mod:`pose.quantize`), opt-in and labelled unverified. Every backend has ``describe()``:
backend, precision and why it was chosen.

Backends take a module or a file; they do not export. :func:`pose.loading.build_runtime` wires
:mod:`pose.export` (which writes and caches the ONNX file) and these backends together.

Symbols: B batch, K keypoints, (H, W) model input, (h, w) heatmap.
"""
import copy
import logging
import os
import warnings
from pathlib import Path
from typing import Callable, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from pose.batchnorm import count_batchnorms, fold_batchnorm, fold_conv_bn  # noqa: F401  (re-exported)
from pose.errors import ConfigError, DataError
from pose.hardware import bf16_support
from pose.openvino_backend import OpenVinoBackend, openvino_available
from pose.quantize import INT8_LABEL

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
Backend = Callable[[torch.Tensor], np.ndarray]
BACKENDS = ("torch", "torch-fast", "onnxruntime", "openvino", "auto")
#: Numeric precisions; ``auto`` = bf16 where it is offered and keeps fp32 fidelity, else fp32 (pose.loading).
PRECISIONS = ("auto", "fp32", "bf16", "int8")
#: Which concrete precisions each backend offers (bf16 additionally needs bf16 hardware).
BACKEND_PRECISIONS = {"torch": ("fp32",), "torch-fast": ("fp32", "bf16"), "onnxruntime": ("fp32", "int8"),
                      "openvino": ("fp32", "bf16", "int8")}
ORT_INSTALL_HINT = "pip install onnxruntime (or pip install pose[export])"
_ALIASES = {"fast": "torch-fast", "ort": "onnxruntime", "onnx": "onnxruntime", "ov": "openvino"}
_AUTOCAST = {"bf16": torch.bfloat16}


def check_precision(backend: str, precision: str, device="cpu") -> None:
    """Raise a one-line ConfigError unless ``backend`` (a resolved name) can run ``precision`` on ``device``."""
    if precision not in PRECISIONS or precision == "auto":
        raise ConfigError(f"precision '{precision}' is unknown; expected one of {', '.join(PRECISIONS[1:])}")
    offered = BACKEND_PRECISIONS.get(backend, ("fp32",))
    if precision not in offered:
        where = [b for b, ps in BACKEND_PRECISIONS.items() if precision in ps]
        raise ConfigError(f"precision '{precision}' is not offered by the {backend} backend (it runs "
                          f"{', '.join(offered)}); use --backend {' or '.join(where)}")
    if precision == "bf16":
        ok, why = bf16_support(device)
        if not ok:
            raise ConfigError(f"precision 'bf16' refused: {why}; use fp32")
    if backend == "openvino" and torch.device(device).type != "cpu":
        raise ConfigError(f"the openvino backend runs on the CPU; got device '{device}'")


def describe_backend(backend) -> dict:
    """``{"backend", "precision", "reason"}`` of any backend (``reason``: why it was chosen, if known)."""
    precision = getattr(backend, "precision", "fp32")
    reason = getattr(backend, "choice_reason", "") or "as requested"
    if precision == "int8":
        reason = f"{reason}; {INT8_LABEL}"
    return {"backend": getattr(backend, "name", type(backend).__name__), "precision": precision, "reason": reason}


class _Described:
    """``describe()`` for the backend classes (see :func:`describe_backend`)."""

    precision = "fp32"
    choice_reason = ""

    def describe(self) -> dict:
        return describe_backend(self)

def crops_to_tensor(crops_nhwc) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB crops (numpy or tensor) -> float32 (N, 3, H, W) in [0, 255], the network input."""
    x = crops_nhwc if isinstance(crops_nhwc, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(crops_nhwc))
    return x.permute(0, 3, 1, 2).float()


# ------------------------------------------------------------------------------------------------
# Plain torch
# ------------------------------------------------------------------------------------------------
class TorchBackend(_Described):
    """Runs a ``torch.nn.Module`` in eval mode under ``torch.inference_mode``.

    Args:
        model: maps float RGB crops in [0, 255], (B, 3, H, W), to heatmaps (B, K, h, w).
        device: where to run (``"cpu"``, ``"cuda"``, ``"cuda:1"``...).
        channels_last: feed NHWC-strided tensors (faster convolutions on CPU and GPU).
        autocast_dtype: ``torch.float16`` / ``torch.bfloat16`` for mixed precision on GPU, or None.
    """

    name = "torch"

    def __init__(self, model: torch.nn.Module, device="cpu", *, channels_last: bool = False,
                 autocast_dtype: Optional[torch.dtype] = None):
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        self.channels_last = channels_last
        self.autocast_dtype = autocast_dtype
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    def __call__(self, crops_nchw: torch.Tensor) -> np.ndarray:
        x = crops_nchw.to(self.device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            if self.autocast_dtype is not None:
                with torch.autocast(self.device.type, dtype=self.autocast_dtype):
                    out = self.model(x)
            else:
                out = self.model(x)
        return out.float().contiguous().cpu().numpy()


# ------------------------------------------------------------------------------------------------
# Torch backend with inference optimisations
# ------------------------------------------------------------------------------------------------
class OptimizedTorchBackend(TorchBackend):
    """Eager PyTorch with BN folding, channels_last and optional compile / autocast.

    Args:
        model: maps float RGB crops in [0, 255], (B, 3, H, W), to heatmaps (B, K, h, w). Not modified
            (folding works on a copy).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        fold_bn: fold eval-mode BatchNorms into the convolutions (:func:`fold_batchnorm`).
        channels_last: NHWC-strided weights and inputs (the faster oneDNN/cuDNN conv path).
        compile: wrap in ``torch.compile(options={"freezing": True})``. The first call per batch shape
            compiles (20-150 s on a 2-core CPU); worth it only for long runs with fixed shapes.
        autocast_dtype: ``torch.float16`` / ``torch.bfloat16`` mixed precision (GPU). On a CPU without
            bf16 units it is much slower, so a warning is logged there.
        precision: ``fp32`` or ``bf16`` (bf16 autocast; :func:`check_precision` first). Sets
            ``autocast_dtype`` unless that is given.
    """

    name = "torch-fast"

    def __init__(self, model: nn.Module, device="cpu", *, fold_bn: bool = True, channels_last: bool = True,
                 compile: bool = False, autocast_dtype: Optional[torch.dtype] = None, precision: str = "fp32"):
        if precision != "fp32":
            check_precision(self.name, precision, device)
            autocast_dtype = autocast_dtype or _AUTOCAST[precision]
        self.precision = precision if autocast_dtype is None else {torch.bfloat16: "bf16"}.get(autocast_dtype,
                                                                                              str(autocast_dtype))
        module = fold_batchnorm(model) if fold_bn else copy.deepcopy(model).eval()
        for p in module.parameters():
            p.requires_grad_(False)
        super().__init__(module, device, channels_last=channels_last, autocast_dtype=autocast_dtype)
        self.module = self.model
        if autocast_dtype is not None and self.device.type == "cpu" and not bf16_support("cpu")[0]:
            logger.warning("autocast to %s on a CPU without bf16 units: much slower than float32", autocast_dtype)
        self.compiled = compile
        if compile:
            self.model = torch.compile(self.module, options={"freezing": True})


# ------------------------------------------------------------------------------------------------
# Files: ONNX Runtime and TorchScript
# ------------------------------------------------------------------------------------------------
def import_onnxruntime():
    """``onnxruntime``, or :class:`ConfigError` with the install hint when it is missing."""
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError(f"the onnxruntime backend needs the onnxruntime package: {ORT_INSTALL_HINT}") from None
    return onnxruntime


class OnnxRuntimeBackend(_Described):
    """ONNX Runtime inference of an exported pose network (input ``images``, output ``heatmaps``).

    Args:
        onnx_path: an ``.onnx`` file written by :func:`pose.export.export_onnx`.
        threads: intra-op threads (default: ONNX Runtime's choice, one per physical core).
        providers: execution providers (default ``["CPUExecutionProvider"]``).
        precision: ``fp32``, or ``int8`` when ``onnx_path`` is a quantised file (:mod:`pose.quantize`);
            a label for ``describe()``, the file decides the arithmetic.
    """

    name = "onnxruntime"

    def __init__(self, onnx_path: PathLike, *, threads: Optional[int] = None,
                 providers: Optional[Sequence[str]] = None, precision: str = "fp32"):
        ort = import_onnxruntime()
        self.precision = precision
        if threads is not None and int(threads) < 1:
            raise ConfigError(f"OnnxRuntimeBackend threads: got {threads}, expected an integer >= 1")
        if isinstance(onnx_path, nn.Module):
            raise ConfigError("OnnxRuntimeBackend takes an .onnx file; export the module first "
                              "(pose.loading.build_runtime does both, with a cache)")
        self.onnx_path = Path(onnx_path)
        if not self.onnx_path.is_file():
            raise DataError(f"ONNX model '{self.onnx_path}' does not exist; expected a file written by pose-export")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if threads is not None:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        providers = list(providers) if providers else ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(str(self.onnx_path), sess_options=options, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types for unreadable graphs
            reason = " ".join(str(e).split())[:200]
            raise DataError(f"ONNX model '{self.onnx_path}' cannot be loaded by onnxruntime ({reason})") from None
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    def __call__(self, crops_nchw: torch.Tensor) -> np.ndarray:
        """(B, 3, H, W) float32 RGB [0, 255] -> (B, K, h, w) float32 numpy heatmaps."""
        if isinstance(crops_nchw, torch.Tensor):
            x = crops_nchw.detach().to("cpu", torch.float32).contiguous().numpy()
        else:
            x = np.ascontiguousarray(crops_nchw, dtype=np.float32)
        return self.session.run([self.output_name], {self.input_name: x})[0]

    @property
    def output_names(self) -> Tuple[str, ...]:
        """Every output of the graph, in order (a V2p pyramid has one per level)."""
        return tuple(o.name for o in self.session.get_outputs())

    def run_all(self, crops_nchw: torch.Tensor) -> Tuple[np.ndarray, ...]:
        """Every output of the graph (``__call__`` returns only the first, the pose heatmaps)."""
        x = np.ascontiguousarray(torch.as_tensor(crops_nchw).detach().cpu().numpy(), dtype=np.float32)
        return tuple(self.session.run(list(self.output_names), {self.input_name: x}))


class TorchScriptBackend(_Described):
    """Runs a saved TorchScript pose network (CPU); same call convention as the other backends."""

    name = "torchscript"

    def __init__(self, path: PathLike):
        path = Path(path)
        if not path.is_file():
            raise DataError(f"TorchScript file '{path}' does not exist")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            self.module = torch.jit.load(str(path), map_location="cpu").eval()
        self.path = path

    def __call__(self, crops_nchw: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            return self.module(crops_nchw.float()).float().numpy()

    def run_all(self, crops_nchw: torch.Tensor) -> Tuple[np.ndarray, ...]:
        """Every output of the module: a tuple / list / dict of tensors (a V2p pyramid), or one tensor."""
        with torch.inference_mode():
            out = self.module(crops_nchw.float())
        if isinstance(out, dict):
            out = list(out.values())
        outputs = out if isinstance(out, (tuple, list)) else (out,)
        return tuple(t.float().numpy() for t in outputs)


# ------------------------------------------------------------------------------------------------
# Factory
# ------------------------------------------------------------------------------------------------
def resolve_backend_name(name: str, device="cpu") -> str:
    """The canonical backend for ``name``: aliases mapped, ``auto`` = the fastest runtime installed here
    (on a CPU: OpenVINO, else ONNX Runtime, else ``torch-fast``; on a GPU: ``torch-fast``). Unknown names
    raise ConfigError. The precision ``auto`` picks is settled by :func:`pose.loading.build_runtime`."""
    key = str(name).strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key == "auto":
        key = "torch-fast"
        if torch.device(device).type == "cpu":
            if openvino_available():
                key = "openvino"
            else:
                try:
                    import onnxruntime  # noqa: F401
                    key = "onnxruntime"
                except ImportError:
                    pass
    if key not in BACKENDS:
        raise ConfigError(f"backend '{name}' is unknown; expected one of {', '.join(BACKENDS)}")
    return key


def build_backend(network: Union[nn.Module, PathLike], name: str = "torch", *, device="cpu",
                  threads: Optional[int] = None, compile: bool = False,
                  autocast_dtype: Optional[torch.dtype] = None, precision: str = "fp32",
                  performance_hint: str = "LATENCY") -> Backend:
    """A backend callable by name (see :data:`BACKENDS`).

    Args:
        network: the eval-mode module (``torch``, ``torch-fast``) or an ``.onnx`` file (``onnxruntime``,
            ``openvino``; for ``int8`` a quantised file, :mod:`pose.quantize`).
        name: ``torch`` (plain eager), ``torch-fast`` (BN fold + channels_last), ``onnxruntime``,
            ``openvino`` or ``auto``.
        precision: a concrete precision the backend offers (:data:`BACKEND_PRECISIONS`).
        performance_hint: OpenVINO ``LATENCY`` or ``THROUGHPUT``.
        device: torch device for the torch backends; ``onnxruntime`` runs on the CPU provider unless
            ``device`` is a CUDA device (then CUDA provider first, CPU as fallback).
        threads: ONNX Runtime intra-op threads.
        compile, autocast_dtype: see :class:`OptimizedTorchBackend`.
    """
    key = resolve_backend_name(name, device)
    check_precision(key, precision, device)
    if key in ("onnxruntime", "openvino") and isinstance(network, nn.Module):
        raise ConfigError(f"the {key} backend takes an .onnx file; export the module first "
                          "(pose.loading.build_runtime does both, with a cache)")
    if key == "onnxruntime":
        providers = None
        if torch.device(device).type == "cuda":
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        return OnnxRuntimeBackend(network, threads=threads, providers=providers, precision=precision)
    if key == "openvino":
        return OpenVinoBackend(network, precision=precision, threads=threads, performance_hint=performance_hint)
    if not isinstance(network, nn.Module):
        raise ConfigError(f"backend '{key}' runs a torch module; got {type(network).__name__}")
    if key == "torch":
        return TorchBackend(network, device, autocast_dtype=autocast_dtype)
    return OptimizedTorchBackend(network, device, compile=compile, autocast_dtype=autocast_dtype,
                                 precision=precision)
