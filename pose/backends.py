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
- ``torchscript``: :class:`TorchScriptBackend`, a saved ``torch.jit`` file (export verification).

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

from pose.errors import ConfigError, DataError
from pose.models.hrnet import BasicBlock, Bottleneck, HRNetTrunk

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
Backend = Callable[[torch.Tensor], np.ndarray]
BACKENDS = ("torch", "torch-fast", "onnxruntime", "auto")
ORT_INSTALL_HINT = "pip install onnxruntime (or pip install pose[export])"
_ALIASES = {"fast": "torch-fast", "ort": "onnxruntime", "onnx": "onnxruntime"}

# Attribute pairs (conv, bn) where the forward applies ``bn(conv(x))`` directly: HRNet's stem and the
# residual blocks. Only used on modules whose forward is known to follow this pattern.
_CONV_BN_ATTRS = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))
_CONV_BN_OWNERS = (BasicBlock, Bottleneck, HRNetTrunk)  # every network (V1/V2/V2p/cls) is an HRNetTrunk


def crops_to_tensor(crops_nhwc) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB crops (numpy or tensor) -> float32 (N, 3, H, W) in [0, 255], the network input."""
    x = crops_nhwc if isinstance(crops_nhwc, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(crops_nhwc))
    return x.permute(0, 3, 1, 2).float()


# ------------------------------------------------------------------------------------------------
# Plain torch
# ------------------------------------------------------------------------------------------------
class TorchBackend:
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
# BatchNorm folding
# ------------------------------------------------------------------------------------------------
def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new Conv2d computing ``bn(conv(x))`` with eval-mode BN statistics.

    ``w' = w * g / sqrt(var + eps)`` per output channel, ``b' = (b - mean) * g / sqrt(var + eps) + beta``;
    computed in float64 and stored in the conv's dtype.
    """
    if conv.out_channels != bn.num_features:
        raise ValueError(f"cannot fold BatchNorm2d({bn.num_features}) into a conv with "
                         f"{conv.out_channels} output channels")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("cannot fold a BatchNorm2d without running statistics (track_running_stats=False)")
    dtype = conv.weight.dtype
    w = conv.weight.detach().double()
    b = conv.bias.detach().double() if conv.bias is not None else torch.zeros(conv.out_channels, dtype=torch.float64,
                                                                                device=w.device)
    gamma = bn.weight.detach().double() if bn.weight is not None else torch.ones_like(b)
    beta = bn.bias.detach().double() if bn.bias is not None else torch.zeros_like(b)
    factor = gamma / torch.sqrt(bn.running_var.detach().double() + bn.eps)
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                      padding=conv.padding, dilation=conv.dilation, groups=conv.groups, bias=True,
                      padding_mode=conv.padding_mode).to(device=w.device)
    with torch.no_grad():
        fused.weight.copy_((w * factor.view(-1, 1, 1, 1)).to(dtype))
        fused.bias = nn.Parameter(((b - bn.running_mean.detach().double()) * factor + beta).to(dtype))
    fused.weight.requires_grad_(conv.weight.requires_grad)
    fused.bias.requires_grad_(conv.weight.requires_grad)
    return fused.to(dtype)


def _fold_into(module: nn.Module, owners: tuple) -> int:
    """Fold in place below ``module`` (which is already a private copy); returns the count."""
    count = 0
    if isinstance(module, nn.Sequential):
        names = list(module._modules)
        for a, b in zip(names[:-1], names[1:]):
            conv, bn = module._modules[a], module._modules[b]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                module._modules[a] = fold_conv_bn(conv, bn)
                module._modules[b] = nn.Identity()
                count += 1
    if isinstance(module, owners):
        for conv_name, bn_name in _CONV_BN_ATTRS:
            conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                setattr(module, conv_name, fold_conv_bn(conv, bn))
                setattr(module, bn_name, nn.Identity())
                count += 1
    for child in module.children():
        count += _fold_into(child, owners)
    return count


def count_batchnorms(model: nn.Module) -> int:
    """Number of ``BatchNorm`` modules (any dimensionality) left in ``model``."""
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` in eval mode with every BatchNorm2d folded into its preceding conv.

    Folded pairs: a Conv2d directly followed by a BatchNorm2d inside any ``nn.Sequential`` (HRNet's
    downsample, transition and fuse layers) and the attribute pairs ``conv1/bn1``, ``conv2/bn2``,
    ``conv3/bn3`` of HRNet's stem and residual blocks. Each folded BN becomes ``nn.Identity`` and its conv
    gains a bias, so outputs equal the eval-mode original within float32 rounding (~1e-5 on W32). The
    input normalisation is not folded into ``conv1``: that is inexact at zero-padded borders.

    The number folded is stored as ``model.num_folded_batchnorms`` (292 for HRNet-W32); BNs that do not
    follow a conv in a recognised pattern are left in place and logged.
    """
    folded = copy.deepcopy(model).eval()
    count = _fold_into(folded, _CONV_BN_OWNERS)
    left = count_batchnorms(folded)
    if left:
        logger.info("fold_batchnorm: %d BatchNorm layers folded, %d left (not after a conv in a known pattern)",
                    count, left)
    folded.num_folded_batchnorms = count
    return folded


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
    """

    name = "torch-fast"

    def __init__(self, model: nn.Module, device="cpu", *, fold_bn: bool = True, channels_last: bool = True,
                 compile: bool = False, autocast_dtype: Optional[torch.dtype] = None):
        module = fold_batchnorm(model) if fold_bn else copy.deepcopy(model).eval()
        for p in module.parameters():
            p.requires_grad_(False)
        super().__init__(module, device, channels_last=channels_last, autocast_dtype=autocast_dtype)
        self.module = self.model
        if autocast_dtype is not None and self.device.type == "cpu":
            logger.warning("autocast to %s on the CPU: without native %s units this is much slower than "
                           "float32", autocast_dtype, autocast_dtype)
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


class OnnxRuntimeBackend:
    """ONNX Runtime inference of an exported pose network (input ``images``, output ``heatmaps``).

    Args:
        onnx_path: an ``.onnx`` file written by :func:`pose.export.export_onnx`.
        threads: intra-op threads (default: ONNX Runtime's choice, one per physical core).
        providers: execution providers (default ``["CPUExecutionProvider"]``).
    """

    name = "onnxruntime"

    def __init__(self, onnx_path: PathLike, *, threads: Optional[int] = None,
                 providers: Optional[Sequence[str]] = None):
        ort = import_onnxruntime()
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


class TorchScriptBackend:
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
    """The canonical backend for ``name``: aliases mapped, ``auto`` = the fastest available here
    (ONNX Runtime on a CPU when installed, else ``torch-fast``). Unknown names raise ConfigError."""
    key = str(name).strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key == "auto":
        key = "torch-fast"
        if torch.device(device).type == "cpu":
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
                  autocast_dtype: Optional[torch.dtype] = None) -> Backend:
    """A backend callable by name (see :data:`BACKENDS`).

    Args:
        network: the eval-mode module (``torch``, ``torch-fast``) or an ``.onnx`` file (``onnxruntime``).
        name: ``torch`` (plain eager), ``torch-fast`` (BN fold + channels_last), ``onnxruntime`` or ``auto``.
        device: torch device for the torch backends; ``onnxruntime`` runs on the CPU provider unless
            ``device`` is a CUDA device (then CUDA provider first, CPU as fallback).
        threads: ONNX Runtime intra-op threads.
        compile, autocast_dtype: see :class:`OptimizedTorchBackend`.
    """
    key = resolve_backend_name(name, device)
    if key == "onnxruntime":
        providers = None
        if torch.device(device).type == "cuda":
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        return OnnxRuntimeBackend(network, threads=threads, providers=providers)
    if not isinstance(network, nn.Module):
        raise ConfigError(f"backend '{key}' runs a torch module; got {type(network).__name__}")
    if key == "torch":
        return TorchBackend(network, device, autocast_dtype=autocast_dtype)
    return OptimizedTorchBackend(network, device, compile=compile, autocast_dtype=autocast_dtype)
