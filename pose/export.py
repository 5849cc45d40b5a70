"""Export a pose network to ONNX and TorchScript, and check the export against PyTorch on the spot.

Exported graphs take what ``PoseHRNet.forward`` takes: ``images`` float32 (B, 3, H, W) RGB in [0, 255]
(normalisation is inside the graph) and return ``heatmaps`` float32 (B, K, H/4, W/4). The batch axis is
dynamic; H and W are fixed to the model's input size.

- ONNX: ``torch.onnx.export(..., dynamo=False)`` (the TorchScript-based exporter, which handles HRNet
  in ~2-4 s) at opset :data:`ONNX_OPSET` (17); the opset, input size, input convention and producer are
  stored in the file's ``metadata_props`` when the ``onnx`` package is installed.
- TorchScript: ``torch.jit.trace`` of ``forward`` (TorchScript is deprecated upstream but still runs
  without Python model code).

Every file is written to a temporary name in the output folder and renamed into place
(:func:`pose.fileio.atomic_path`). :func:`export_onnx_cached` keeps one export per weights + input size
+ opset (the ``onnxruntime`` backend's file, see :func:`cached_onnx_path`). :func:`verify_backend` runs
the export and the eager model on the same crops and reports the largest heatmap difference and the
largest decoded keypoint difference (crop pixels).

Reduced precision (:func:`export_precision`, ``pose-export --precision bf16|int8``): the file is checked
on the runtime that will run it (OpenVINO bf16 / torch-fast bf16; ONNX Runtime or OpenVINO int8) against
fp32 PyTorch on the user's calibration crops, and is written only when the mean keypoint displacement is
within :data:`pose.fidelity.MEAN_DISPLACEMENT_BOUND_PX` (unless forced). The bound per precision is
:data:`PRECISION_BOUNDS`.

Symbols: N crops, K keypoints, (H, W) model input, (h, w) heatmap.

Why one module (~490 lines): export, the export cache and the verification that every exported file (each
format, each precision, each read-out) is checked against PyTorch before it is kept form one contract;
the runtime and quantisation parts already live in :mod:`pose.runtime` and :mod:`pose.quantize`.
"""
import hashlib
import json
import logging
import os
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Union

import cv2
import numpy as np
import torch
from torch import nn

from pose.backends import (
    OnnxRuntimeBackend,
    OpenVinoBackend,
    OptimizedTorchBackend,
    TorchBackend,
    TorchScriptBackend,
    check_precision,
    crops_to_tensor,
    openvino_available,
)
from pose.errors import ConfigError, PoseError
from pose.fidelity import MEAN_DISPLACEMENT_BOUND_PX, compare_keypoints
from pose.fileio import atomic_path, ensure_output_dir, write_json
from pose.quantize import INT8_LABEL, quantize_onnx
from pose.zoo import default_cache_dir

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
ONNX_OPSET = 17
INPUT_NAME, OUTPUT_NAME = "images", "heatmaps"
HEATMAP_TOLERANCE = 1e-3   # absolute, heatmap units
KEYPOINT_TOLERANCE = 0.01  # crop pixels
FORMATS = ("onnx", "torchscript")
#: What each export precision is verified against (fp32 PyTorch on the same crops).
PRECISION_BOUNDS = {
    "fp32": f"max |heatmap diff| <= {HEATMAP_TOLERANCE:g} and max keypoint diff <= {KEYPOINT_TOLERANCE:g} px",
    "bf16": f"mean keypoint displacement <= {MEAN_DISPLACEMENT_BOUND_PX:g} px (all keypoints of the crops)",
    "int8": f"mean keypoint displacement <= {MEAN_DISPLACEMENT_BOUND_PX:g} px (all keypoints of the crops)",
}


class ExportMismatchError(PoseError, ValueError):
    """An exported model disagrees with the PyTorch model beyond the tolerance."""


def _example_input(input_size: Sequence[int], batch: int = 1) -> torch.Tensor:
    w, h = int(input_size[0]), int(input_size[1])
    return torch.rand(batch, 3, h, w, generator=torch.Generator().manual_seed(0)) * 255.0


def export_onnx(model: nn.Module, path: PathLike, input_size: Sequence[int], *, opset: int = ONNX_OPSET,
                metadata: Optional[Dict[str, str]] = None) -> Path:
    """Write ``model`` (eval mode, CPU) as ONNX with a dynamic batch axis; returns ``path``.

    Args:
        model: maps (B, 3, H, W) RGB [0, 255] to (B, K, h, w).
        path: output ``.onnx`` file (its folder must exist).
        input_size: model input (W, H).
        opset: ONNX opset (17 is what the benchmarks used).
        metadata: extra ``metadata_props`` entries (strings).
    """
    path = Path(path)
    model = model.eval().cpu()
    example = _example_input(input_size, 2)
    props = {"producer": "pose", "opset": str(opset), "input_size_wh": f"{int(input_size[0])}x{int(input_size[1])}",
             "input": f"{INPUT_NAME}: float32 (B,3,H,W) RGB in [0,255], normalisation inside the graph",
             "output": f"{OUTPUT_NAME}: float32 (B,K,H/4,W/4)"}
    props.update({str(k): str(v) for k, v in (metadata or {}).items()})
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        with torch.no_grad():
            torch.onnx.export(model, (example,), str(tmp), dynamo=False, opset_version=opset,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                              do_constant_folding=True)
        _add_onnx_metadata(tmp, props)
    logger.info("wrote ONNX (opset %d) %s", opset, path)
    return path


def _add_onnx_metadata(path: Path, props: Dict[str, str]) -> None:
    try:
        import onnx
    except ImportError:
        logger.info("onnx package not installed: %s written without metadata_props", path)
        return
    proto = onnx.load(str(path))
    existing = {p.key: p for p in proto.metadata_props}
    for key, value in props.items():
        if key in existing:
            existing[key].value = value
        else:
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
    onnx.save(proto, str(path))


def read_onnx_metadata(path: PathLike) -> Dict[str, str]:
    """``metadata_props`` of an ONNX file as a dict (needs the ``onnx`` package)."""
    import onnx
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def export_torchscript(model: nn.Module, path: PathLike, input_size: Sequence[int]) -> Path:
    """Write ``torch.jit.trace(model)`` (eval mode, CPU, any batch size) to ``path``; returns ``path``."""
    path = Path(path)
    model = model.eval().cpu()
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        with torch.no_grad():
            traced = torch.jit.trace(model, _example_input(input_size, 2), check_trace=False)
        torch.jit.save(traced, str(tmp))
    logger.info("wrote TorchScript %s", path)
    return path


# ------------------------------------------------------------------------------------------------
# The export cache (onnxruntime backend)
# ------------------------------------------------------------------------------------------------
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

    ``<weights folder>/<weights stem>.<W>x<H>.opset<N>.<hash16>.onnx`` when ``weights_path`` is given and
    its folder is writable, else ``<cache_dir or $POSE_CACHE/onnx>/<arch>_<W>x<H>.opset<N>.<hash16>.onnx``.
    The hash covers the weights, the input size and the opset, so changed weights never reuse a stale export.
    """
    digest = weights_fingerprint(model, input_size, opset)[:16]
    w, h = int(input_size[0]), int(input_size[1])
    if weights_path is not None and cache_dir is None:
        weights_path = Path(weights_path)
        if _writable_dir(weights_path.parent):
            return weights_path.parent / f"{weights_path.stem}.{w}x{h}.opset{opset}.{digest}.onnx"
    if cache_dir is None:
        cache_dir = default_cache_dir() / "onnx"
    return Path(cache_dir) / f"{type(model).__name__.lower()}_{w}x{h}.opset{opset}.{digest}.onnx"


def export_onnx_cached(model: nn.Module, input_size: Sequence[int], *, weights_path: Optional[PathLike] = None,
                       cache_dir: Optional[PathLike] = None, opset: int = ONNX_OPSET) -> Path:
    """The cached ONNX file for ``model`` (exported now, atomically, if absent). See :func:`cached_onnx_path`."""
    path = cached_onnx_path(model, input_size, weights_path=weights_path, cache_dir=cache_dir, opset=opset)
    if path.is_file():
        logger.info("reusing cached ONNX export %s", path)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    logger.info("exporting the model to ONNX (opset %d) at %s (one-off, a few seconds)", opset, path)
    export_onnx(model, path, input_size, opset=opset)
    return path


# ------------------------------------------------------------------------------------------------
# Verification
# ------------------------------------------------------------------------------------------------
@dataclass
class VerifyResult:
    """Largest differences between an export and the PyTorch model on the same crops."""

    format: str
    num_crops: int
    max_heatmap_diff: float
    max_keypoint_diff_px: float
    heatmap_tolerance: float = HEATMAP_TOLERANCE
    keypoint_tolerance: float = KEYPOINT_TOLERANCE

    @property
    def ok(self) -> bool:
        return self.max_heatmap_diff <= self.heatmap_tolerance and self.max_keypoint_diff_px <= self.keypoint_tolerance

    def summary(self) -> str:
        return (f"{self.format}: max |heatmap diff| {self.max_heatmap_diff:.3g} "
                f"(tolerance {self.heatmap_tolerance:g}), "
                f"max keypoint diff {self.max_keypoint_diff_px:.3g} px (tolerance {self.keypoint_tolerance:g}) "
                f"on {self.num_crops} crops: {'OK' if self.ok else 'MISMATCH'}")


def sample_crops(predictor, images: Sequence[np.ndarray] = (), *, num_random: int = 4,
                 seed: int = 0, input_size: Optional[Sequence[int]] = None) -> np.ndarray:
    """Crops (N, H, W, 3) uint8 for verification, made by ``predictor.crop`` exactly as inference does.

    Per image: the whole image and its centred half-size window. Without images: ``num_random`` seeded
    random crops (smooth noise, so the heatmaps are not flat) of ``input_size`` (W, H) (default: the
    predictor's; ``predictor`` may then be None).
    """
    w, h = input_size if input_size is not None else predictor.input_size
    crops = []
    for image in images:
        ih, iw = image.shape[:2]
        boxes = np.array([[0, 0, iw, ih], [iw / 4, ih / 4, iw / 2, ih / 2]], dtype=np.float64)
        centers, scales = predictor.make_windows(boxes)
        crops.append(predictor.crop(image, centers, scales))
    if not crops:
        rng = np.random.default_rng(seed)
        coarse = rng.uniform(0, 255, size=(num_random, h // 8, w // 8, 3)).astype(np.float32)
        smooth = np.stack([cv2.resize(c, (w, h), interpolation=cv2.INTER_LINEAR) for c in coarse])
        noise = rng.normal(0, 12, size=smooth.shape)
        crops.append(np.clip(smooth + noise, 0, 255).astype(np.uint8))
    return np.concatenate(crops)


def verify_backend(reference: Callable[[torch.Tensor], np.ndarray], candidate: Callable[[torch.Tensor], np.ndarray],
                   crops: np.ndarray, codec, *, name: str = "export", batch_size: int = 8,
                   heatmap_tolerance: float = HEATMAP_TOLERANCE,
                   keypoint_tolerance: float = KEYPOINT_TOLERANCE) -> VerifyResult:
    """Compare two backends on crops (N, H, W, 3) uint8: heatmaps and keypoints decoded by ``codec``.

    Keypoints are compared in crop pixels (``codec.decode``), over every joint of every crop.
    """
    crops = np.asarray(crops)
    ref_maps, cand_maps = [], []
    for start in range(0, len(crops), batch_size):
        x = crops_to_tensor(crops[start:start + batch_size])
        ref_maps.append(np.asarray(reference(x), dtype=np.float32))
        cand_maps.append(np.asarray(candidate(x), dtype=np.float32))
    ref_maps, cand_maps = np.concatenate(ref_maps), np.concatenate(cand_maps)
    if ref_maps.shape != cand_maps.shape:
        raise ExportMismatchError(f"{name}: heatmaps of shape {cand_maps.shape}, expected {ref_maps.shape}")
    ref_kp, _ = codec.decode(ref_maps)
    cand_kp, _ = codec.decode(cand_maps)
    return VerifyResult(format=name, num_crops=len(crops),
                        max_heatmap_diff=float(np.abs(ref_maps - cand_maps).max()) if ref_maps.size else 0.0,
                        max_keypoint_diff_px=float(np.abs(ref_kp - cand_kp).max()) if ref_kp.size else 0.0,
                        heatmap_tolerance=heatmap_tolerance, keypoint_tolerance=keypoint_tolerance)


# ------------------------------------------------------------------------------------------------
# Reduced precision: export, check on the target runtime, write only within the bound
# ------------------------------------------------------------------------------------------------
def export_precision(model: nn.Module, codec, spec, output_dir: PathLike, *, stem: str, precision: str,
                     crops: np.ndarray, runtime: Optional[str] = None, force: bool = False,
                     opset: int = ONNX_OPSET) -> dict:
    """Write a ``bf16`` (``<stem>.onnx`` + the runtime to use) or ``int8`` (``<stem>.int8.onnx``) export.

    The candidate runs on ``runtime`` (bf16: ``openvino`` when installed, else ``torch-fast``; int8:
    ``onnxruntime`` or ``openvino``) and is compared with fp32 PyTorch on ``crops`` (N, H, W, 3) uint8
    (:func:`pose.fidelity.compare_keypoints`, every keypoint). Within :data:`PRECISION_BOUNDS` (or with
    ``force``) the file and ``<stem>.export.json`` are written; otherwise nothing is written.

    Raises:
        ExportMismatchError: beyond the bound and not forced.
        ConfigError: the precision is not offered by ``runtime`` or this hardware.
    """
    if precision not in ("bf16", "int8"):
        raise ConfigError(f"export precision '{precision}' is not a reduced precision; expected bf16 or int8")
    if crops is None or len(crops) == 0:
        raise ConfigError(f"--precision {precision} needs --calibration-images DIR (photos of people)")
    default = {"bf16": "openvino" if openvino_available() else "torch-fast", "int8": "onnxruntime"}
    runtime = runtime or default[precision]
    check_precision(runtime, precision)
    out = ensure_output_dir(output_dir)
    model = model.eval().cpu()
    input_size = tuple(int(v) for v in codec.input_size)
    with tempfile.TemporaryDirectory(dir=out, prefix=".pose-export-") as tmp:
        fp32_file = export_onnx(model, Path(tmp) / f"{stem}.onnx", input_size, opset=opset,
                                metadata={"keypoints": ",".join(spec.keypoint_names), "precision": precision})
        written = fp32_file
        if precision == "int8":
            written = quantize_onnx(fp32_file, Path(tmp) / f"{stem}.int8.onnx", crops)
        if runtime == "torch-fast":
            candidate = OptimizedTorchBackend(model, precision=precision)
        elif runtime == "openvino":
            candidate = OpenVinoBackend(written, precision=precision)
        else:
            candidate = OnnxRuntimeBackend(written, precision=precision)
        check = compare_keypoints(TorchBackend(model), candidate, crops, codec, name=f"{runtime} {precision}")
        logger.info(check.summary())
        if not check.ok and not force:
            raise ExportMismatchError(f"{check.summary()}; nothing written (--force writes it anyway)")
        final = out / written.name
        os.replace(written, final)
    result = {"path": str(final), "precision": precision, "runtime": runtime, "bound": PRECISION_BOUNDS[precision],
              "fidelity": check.to_dict(), "forced": bool(force and not check.ok),
              "note": INT8_LABEL if precision == "int8" else ""}
    write_json(out / f"{stem}.export.json", {
        "input_size_wh": list(input_size), "opset": opset, "codec": codec.to_dict(),
        "keypoint_names": list(spec.keypoint_names), "flip_pairs": [list(p) for p in spec.flip_pairs],
        "exports": {f"onnx-{precision}": result}}, indent=2)
    return result


# ------------------------------------------------------------------------------------------------
# One call: export + verify + sidecar
# ------------------------------------------------------------------------------------------------
def export_model(model: nn.Module, codec, spec, output_dir: PathLike, *, stem: str,
                 formats: Sequence[str] = FORMATS, opset: int = ONNX_OPSET, crops: Optional[np.ndarray] = None,
                 verify: bool = True, heatmap_tolerance: float = HEATMAP_TOLERANCE,
                 keypoint_tolerance: float = KEYPOINT_TOLERANCE) -> Dict[str, dict]:
    """Export ``model`` in each of ``formats`` to ``output_dir`` and verify each export.

    Writes ``<stem>.onnx`` and/or ``<stem>.torchscript.pt`` plus ``<stem>.export.json`` (input size,
    opset, codec, keypoint names and flip pairs, and the verification numbers), all atomically.

    Args:
        crops: (N, H, W, 3) uint8 verification crops (see :func:`sample_crops`); required if ``verify``.

    Returns:
        ``{format: {"path": str, "verify": {...} or None}}``.

    Raises:
        ExportMismatchError: an export differs from PyTorch beyond a tolerance (the file is kept so it can
            be inspected; the sidecar records the numbers).
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise PoseError(f"export format(s) {unknown or '(none)'} unknown; expected some of {', '.join(FORMATS)}")
    out = ensure_output_dir(output_dir)
    input_size = tuple(int(v) for v in codec.input_size)
    model = model.eval().cpu()
    reference = TorchBackend(model, "cpu")
    results: Dict[str, dict] = {}
    for fmt in formats:
        if fmt == "onnx":
            path = export_onnx(model, out / f"{stem}.onnx", input_size, opset=opset,
                               metadata={"keypoints": ",".join(spec.keypoint_names),
                                         "keypoint_spec": json.dumps(spec.to_dict())})
        else:
            path = export_torchscript(model, out / f"{stem}.torchscript.pt", input_size)
        check = None
        if verify:
            if crops is None:
                raise ValueError("export_model: crops are required when verify=True")
            candidate = OnnxRuntimeBackend(path) if fmt == "onnx" else TorchScriptBackend(path)
            check = verify_backend(reference, candidate, crops, codec, name=fmt,
                                   heatmap_tolerance=heatmap_tolerance, keypoint_tolerance=keypoint_tolerance)
            logger.info(check.summary())
        results[fmt] = {"path": str(path), "verify": None if check is None else dict(asdict(check), ok=check.ok)}
    sidecar = {
        "input_size_wh": list(input_size), "opset": opset if "onnx" in formats else None,
        "input": f"{INPUT_NAME}: float32 (B,3,H,W) RGB in [0,255]; normalisation is inside the model",
        "output": f"{OUTPUT_NAME}: float32 (B,K,H/4,W/4)",
        "codec": codec.to_dict(), "keypoint_names": list(spec.keypoint_names),
        "flip_pairs": [list(p) for p in spec.flip_pairs], "keypoint_spec": spec.to_dict(), "exports": results,
    }
    write_json(out / f"{stem}.export.json", sidecar, indent=2)
    bad = [r["verify"] for r in results.values() if r["verify"] is not None and not r["verify"]["ok"]]
    if bad:
        b = bad[0]
        raise ExportMismatchError(
            f"{b['format']} export differs from PyTorch: max |heatmap diff| {b['max_heatmap_diff']:.3g} "
            f"(tolerance {b['heatmap_tolerance']:g}), max keypoint diff {b['max_keypoint_diff_px']:.3g} px "
            f"(tolerance {b['keypoint_tolerance']:g})")
    return results


# ------------------------------------------------------------------------------------------------
# Any HRNet read-out (V2p feature pyramid, classification logits): every output exported and verified
# ------------------------------------------------------------------------------------------------
class PixelReadout(nn.Module):
    """``images`` (B, 3, H, W) RGB in [0, 255] -> a tuple with every output of an HRNet read-out.

    A V2p backbone's ``forward`` takes normalised images (torchvision's contract); the export takes
    pixels like every other pose export, through ``forward_pixels``, and returns its levels as a tuple
    (ONNX and TorchScript keep the order, the names travel as the ONNX output names).
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor):
        forward = getattr(self.model, "forward_pixels", self.model)
        out = forward(images)
        if isinstance(out, dict):
            return tuple(out.values())
        return out if isinstance(out, tuple) else (out,)


def readout_output_names(model: nn.Module) -> tuple:
    """ONNX output names of a read-out: ``level<i>_stride<s>`` for a V2p pyramid, ``logits`` for a
    classifier, ``heatmaps`` for V1/V2."""
    strides = getattr(model, "strides", None)
    if strides is not None:
        return tuple(f"level{i}_stride{s}" for i, s in enumerate(strides))
    return ("logits",) if hasattr(model, "num_classes") else (OUTPUT_NAME,)


def export_readout(model: nn.Module, output_dir: PathLike, *, stem: str, input_size: Sequence[int],
                   formats: Sequence[str] = FORMATS, opset: int = ONNX_OPSET, verify: bool = True,
                   num_images: int = 2, tolerance: float = HEATMAP_TOLERANCE) -> Dict[str, dict]:
    """Export any HRNet read-out (``HRNetV2p``, ``ClsHRNet``, ...) with all its outputs, and verify each.

    Writes ``<stem>.onnx`` / ``<stem>.torchscript.pt`` and ``<stem>.export.json``. Verification runs the
    eager model and the export on ``num_images`` seeded random images of ``input_size`` (W, H) and
    compares every output (``OnnxRuntimeBackend.run_all`` / ``TorchScriptBackend.run_all``).

    Returns:
        ``{format: {"path": str, "verify": {"max_abs_diff": {output: float}, "ok": bool} or None}}``.

    Raises:
        ExportMismatchError: an output differs beyond ``tolerance`` or has another shape.
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise PoseError(f"export format(s) {unknown or '(none)'} unknown; expected some of {', '.join(FORMATS)}")
    out_dir = ensure_output_dir(output_dir)
    wrapper = PixelReadout(model.eval().cpu()).eval()
    names = readout_output_names(model)
    example = _example_input(input_size, 2)
    results: Dict[str, dict] = {}
    for fmt in formats:
        path = out_dir / (f"{stem}.onnx" if fmt == "onnx" else f"{stem}.torchscript.pt")
        with atomic_path(path) as tmp, warnings.catch_warnings(), torch.no_grad():
            for category in (DeprecationWarning, FutureWarning, torch.jit.TracerWarning):
                warnings.simplefilter("ignore", category)
            if fmt == "onnx":
                torch.onnx.export(wrapper, (example,), str(tmp), dynamo=False, opset_version=opset,
                                  input_names=[INPUT_NAME], output_names=list(names),
                                  dynamic_axes={n: {0: "batch"} for n in (INPUT_NAME, *names)},
                                  do_constant_folding=True)
            else:
                torch.jit.save(torch.jit.trace(wrapper, example, check_trace=False), str(tmp))
        check = None
        if verify:
            candidate = OnnxRuntimeBackend(path) if fmt == "onnx" else TorchScriptBackend(path)
            images = _example_input(input_size, num_images)
            with torch.inference_mode():
                want = [t.numpy() for t in wrapper(images)]
            got = candidate.run_all(images)
            if [g.shape for g in got] != [w.shape for w in want]:
                raise ExportMismatchError(f"{fmt} export of {stem}: outputs {[g.shape for g in got]}, expected "
                                          f"{[w.shape for w in want]}")
            diffs = {n: float(np.abs(g - w).max()) for n, g, w in zip(names, got, want)}
            check = {"max_abs_diff": diffs, "tolerance": tolerance, "ok": max(diffs.values()) <= tolerance}
            logger.info("%s %s: max |diff| per output %s", fmt, stem, diffs)
        results[fmt] = {"path": str(path), "verify": check}
    write_json(out_dir / f"{stem}.export.json",
               {"input_size_wh": [int(v) for v in input_size], "model": type(model).__name__,
                "input": f"{INPUT_NAME}: float32 (B,3,H,W) RGB in [0,255]; normalisation is inside the model",
                "outputs": list(names), "opset": opset if "onnx" in formats else None, "exports": results},
               indent=2)
    bad = [(fmt, r["verify"]) for fmt, r in results.items() if r["verify"] is not None and not r["verify"]["ok"]]
    if bad:
        fmt, check = bad[0]
        worst = max(check["max_abs_diff"], key=check["max_abs_diff"].get)
        raise ExportMismatchError(f"{fmt} export of {stem} differs from PyTorch: output {worst} max |diff| "
                                  f"{check['max_abs_diff'][worst]:.3g} (tolerance {tolerance:g})")
    return results
