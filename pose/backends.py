"""Fast inference backends for :class:`pose.predictor.TopDownPredictor`.

A *backend* is any callable mapping a float32 (B, 3, H, W) batch of RGB crops in [0, 255] (a torch
tensor, NCHW) to (B, K, h, w) float32 heatmaps (a numpy array). Normalisation stays inside the network
(``PoseHRNet.forward``), and so inside every exported graph.

Backends (``build_backend(model, name)``):

- ``torch``: :class:`pose.predictor.TorchBackend`, the plain eager model (the official code's path).
- ``torch-fast``: :class:`OptimizedTorchBackend`: BatchNorm folded into the convolutions
  (:func:`fold_batchnorm`) and channels_last tensors. On the project's 2-core CPU this is 1.3-1.4x the
  eager model, with no compile step (``shared/research/cpu-performance.md`` section 3). Optional
  ``torch.compile(options={"freezing": True})`` adds 5-10% but costs 20-150 s per new batch shape;
  optional fp16/bf16 autocast is meant for GPUs (bf16 on a CPU without bf16 units is ~48x slower).
- ``onnxruntime``: :class:`OnnxRuntimeBackend`: the model exported once to ONNX (opset 17, dynamic
  batch axis, cached by a hash of weights + input size + opset) and run by ONNX Runtime with all graph
  optimisations. The fastest CPU path measured (about 2.2x eager at batch 1, 1.7-1.8x at batch 8-32).

Symbols: B batch, K keypoints, (H, W) model input, (h, w) heatmap.
"""
import copy
import hashlib
import logging
import os
import queue
import threading
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from pose.errors import ConfigError, DataError
from pose.export import ONNX_OPSET
from pose.predictor import TorchBackend

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
BACKENDS = ("torch", "torch-fast", "onnxruntime", "auto")
ORT_INSTALL_HINT = "pip install onnxruntime (or pip install pose[export])"

# Attribute pairs (conv, bn) where the forward applies ``bn(conv(x))`` directly: HRNet's stem and the
# residual blocks. Only used on modules whose forward is known to follow this pattern.
_CONV_BN_ATTRS = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))


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


def _conv_bn_pair_owners() -> tuple:
    """Module classes whose forward applies ``bnN(convN(x))`` for the attribute pairs above."""
    from pose.models.hrnet import BasicBlock, Bottleneck, PoseHRNet
    return (BasicBlock, Bottleneck, PoseHRNet)


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
    count = _fold_into(folded, _conv_bn_pair_owners())
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
# ONNX Runtime backend
# ------------------------------------------------------------------------------------------------
def import_onnxruntime():
    """``onnxruntime``, or :class:`ConfigError` with the install hint when it is missing."""
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError(f"the onnxruntime backend needs the onnxruntime package: {ORT_INSTALL_HINT}") from None
    return onnxruntime


def weights_fingerprint(model: nn.Module, input_size: Sequence[int], opset: int = ONNX_OPSET) -> str:
    """sha256 hex digest of every parameter and buffer (names, shapes, bytes) + input (W, H) + opset."""
    h = hashlib.sha256()
    h.update(f"{type(model).__name__}|input={int(input_size[0])}x{int(input_size[1])}|opset={opset}".encode())
    tensors = list(model.named_parameters()) + list(model.named_buffers())
    for name, t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"|{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _writable_dir(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)


def cached_onnx_path(model: nn.Module, input_size: Sequence[int], *, weights_path: Optional[PathLike] = None,
                     cache_dir: Optional[PathLike] = None, opset: int = ONNX_OPSET) -> Path:
    """Where the ONNX export of ``model`` at ``input_size`` is cached.

    ``<weights folder>/<weights stem>.<hash16>.onnx`` when ``weights_path`` is given and its folder is
    writable, else ``<cache_dir or $POSE_CACHE/onnx>/<arch>_<W>x<H>.<hash16>.onnx``. The hash covers the
    weights, the input size and the opset, so changed weights never reuse a stale export.
    """
    digest = weights_fingerprint(model, input_size, opset)[:16]
    w, h = int(input_size[0]), int(input_size[1])
    if weights_path is not None and cache_dir is None:
        weights_path = Path(weights_path)
        if _writable_dir(weights_path.parent):
            return weights_path.parent / f"{weights_path.stem}.{w}x{h}.opset{opset}.{digest}.onnx"
    if cache_dir is None:
        from pose.zoo import default_cache_dir
        cache_dir = default_cache_dir() / "onnx"
    return Path(cache_dir) / f"{type(model).__name__.lower()}_{w}x{h}.opset{opset}.{digest}.onnx"


def export_onnx_cached(model: nn.Module, input_size: Sequence[int], *, weights_path: Optional[PathLike] = None,
                       cache_dir: Optional[PathLike] = None, opset: int = ONNX_OPSET) -> Path:
    """The cached ONNX file for ``model`` (exported now, atomically, if absent). See :func:`cached_onnx_path`."""
    from pose import export

    path = cached_onnx_path(model, input_size, weights_path=weights_path, cache_dir=cache_dir, opset=opset)
    if path.is_file():
        logger.info("reusing cached ONNX export %s", path)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    logger.info("exporting the model to ONNX (opset %d) at %s (one-off, a few seconds)", opset, path)
    export.export_onnx(model, path, input_size, opset=opset)
    return path


class OnnxRuntimeBackend:
    """ONNX Runtime inference of an exported pose network (input ``images``, output ``heatmaps``).

    Args:
        source: an ``.onnx`` file written by :func:`pose.export.export_onnx`, or a torch module (exported
            once and cached, see :func:`export_onnx_cached`; then ``input_size`` is required).
        threads: intra-op threads (default: ONNX Runtime's choice, one per physical core).
        providers: execution providers (default ``["CPUExecutionProvider"]``).
        input_size: model input (W, H), when ``source`` is a module.
        weights_path, cache_dir: where the export is cached (see :func:`cached_onnx_path`).
    """

    name = "onnxruntime"

    def __init__(self, source: Union[PathLike, nn.Module], *, threads: Optional[int] = None,
                 providers: Optional[Sequence[str]] = None, input_size: Optional[Sequence[int]] = None,
                 weights_path: Optional[PathLike] = None, cache_dir: Optional[PathLike] = None):
        ort = import_onnxruntime()
        if threads is not None and int(threads) < 1:
            raise ConfigError(f"OnnxRuntimeBackend threads: got {threads}, expected an integer >= 1")
        if isinstance(source, nn.Module):
            if input_size is None:
                raise ConfigError("OnnxRuntimeBackend: input_size (W, H) is required to export a torch model")
            source = export_onnx_cached(source, input_size, weights_path=weights_path, cache_dir=cache_dir)
        self.onnx_path = Path(source)
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


# ------------------------------------------------------------------------------------------------
# Factory
# ------------------------------------------------------------------------------------------------
def build_backend(model: nn.Module, name: str = "torch", *, device="cpu", input_size: Optional[Sequence[int]] = None,
                  weights_path: Optional[PathLike] = None, cache_dir: Optional[PathLike] = None,
                  threads: Optional[int] = None, compile: bool = False,
                  autocast_dtype: Optional[torch.dtype] = None) -> Callable[[torch.Tensor], np.ndarray]:
    """A backend callable for :class:`pose.predictor.TopDownPredictor` by name.

    Args:
        model: the eval-mode network (``PoseHRNet``; normalisation inside its forward).
        name: ``torch`` (plain eager), ``torch-fast`` (BN fold + channels_last) or ``onnxruntime``.
        device: torch device for the torch backends; ``onnxruntime`` runs on the CPU provider unless
            ``device`` is a CUDA device (then CUDA provider first, CPU as fallback).
        input_size: model input (W, H); required for ``onnxruntime``.
        weights_path, cache_dir: where the ONNX export is cached (``onnxruntime``).
        threads: ONNX Runtime intra-op threads.
        compile, autocast_dtype: see :class:`OptimizedTorchBackend`.
    """
    key = str(name).strip().lower().replace("_", "-")
    if key == "auto":  # the fastest available here: ONNX Runtime on CPU when installed, else folded torch
        key = "torch-fast"
        if torch.device(device).type == "cpu":
            try:
                import onnxruntime  # noqa: F401
                key = "onnxruntime"
            except ImportError:
                pass
    if key == "torch":
        return TorchBackend(model, device, autocast_dtype=autocast_dtype)
    if key in ("torch-fast", "fast"):
        return OptimizedTorchBackend(model, device, compile=compile, autocast_dtype=autocast_dtype)
    if key in ("onnxruntime", "ort", "onnx"):
        providers = None
        if torch.device(device).type == "cuda":
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        return OnnxRuntimeBackend(model, threads=threads, providers=providers, input_size=input_size,
                                  weights_path=weights_path, cache_dir=cache_dir)
    raise ConfigError(f"backend '{name}' is unknown; expected one of {', '.join(BACKENDS)}")


# ------------------------------------------------------------------------------------------------
# Overlap pre-processing with the forward pass
# ------------------------------------------------------------------------------------------------
_DONE = object()


def prefetch(iterable: Iterable, size: int = 2) -> Iterator:
    """Iterate ``iterable`` in a background thread, keeping up to ``size`` items ready.

    Lets frame decoding / cropping (numpy, OpenCV: they release the GIL) overlap the model forward.
    Exceptions raised by the producer are re-raised in the consumer; items keep their order.
    """
    if size < 1:
        raise ValueError(f"prefetch size must be >= 1, got {size}")
    q: "queue.Queue[Tuple[object, Optional[BaseException]]]" = queue.Queue(maxsize=size)
    stop = threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                q.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False  # the consumer went away

    def produce():
        try:
            for item in iterable:
                if not put((item, None)):
                    return
            put((_DONE, None))
        except BaseException as e:  # handed to the consumer
            put((_DONE, e))

    thread = threading.Thread(target=produce, name="pose-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, error = q.get()
            if item is _DONE:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
