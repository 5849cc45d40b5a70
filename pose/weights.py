"""Reading weight files safely and loading them strictly: official, mmpose, DataParallel and ImageNet layouts.

Every file goes through :func:`read_checkpoint`, which calls ``torch.load(..., weights_only=True)``:
a file whose pickle would construct arbitrary Python objects (and so could run code) is refused,
never retried with ``weights_only=False``. Numpy arrays and scalars (found in some third-party
checkpoints' metadata) are allowlisted; they are rebuilt from raw bytes and run no code.

Accepted weight layouts (:func:`extract_state_dict`), all mapped onto the official HRNet names
(``conv1``, ``bn1``, ..., ``stage4``, ``final_layer``):

- a plain state dict (official ``pose_hrnet_w32_256x192.pth``, ``model_best.pth``, ``final_state.pth``);
- ``{'state_dict': ...}`` or ``{'model': <dict>}``, with or without DataParallel's ``module.`` prefix;
- the official training ``checkpoint.pth`` (``epoch``, ``model``, ``perf``, ``optimizer``,
  ``state_dict``, ``best_state_dict``): we take ``state_dict``, the weights of the saved epoch that go
  with its ``epoch``/``optimizer`` (the best weights are also written as ``model_best.pth``);
- mmpose top-down HRNet checkpoints: ``backbone.*`` -> top level, ``keypoint_head.final_layer.*``
  (mmpose 0.x) or ``head.final_layer.*`` (mmpose 1.x) -> ``final_layer.*``;
- the project's own checkpoint (:mod:`pose.checkpoint`), whose weights sit under ``state_dict``.

Loading is strict (:func:`load_weights`): missing or unexpected names and shape mismatches raise a
:class:`~pose.errors.CheckpointError` that lists them, with specific messages for a wrong keypoint
count and a wrong HRNet width. Random weights are never kept silently (the official ``test.py``
loads with ``strict=False``). ImageNet initialisation (:func:`load_imagenet_pretrained`) copies the
backbone of a classification checkpoint through the official ``PRETRAINED_LAYERS`` filter and reports
what was loaded and what was skipped.
"""
import logging
import os
import pickle
import re
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from pose.errors import CheckpointError
from pose.models import HRNET_ARCHS
from pose.models.presets import OFFICIAL_PRETRAINED_LAYERS

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
StateDict = Dict[str, torch.Tensor]

# Keys of the classification HRNet that only exist there (research doc 1.8).
_CLASSIFIER_PREFIXES = ("incre_modules.", "downsamp_modules.", "classifier.")
_LIST_LIMIT = 10


# ------------------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------------------
def _numpy_safe_globals() -> list:
    """Numpy array/scalar reconstruction helpers, under their numpy 2 and numpy 1 module names."""
    from numpy._core import multiarray as ma
    out = [ma._reconstruct, (ma._reconstruct, "numpy.core.multiarray._reconstruct"),
           ma.scalar, (ma.scalar, "numpy.core.multiarray.scalar"), np.ndarray, np.dtype]
    # Concrete dtype classes (np.dtypes.Float32DType ...), object dtype deliberately excluded.
    out += sorted({type(np.dtype(c)) for c in "?bhilqBHILQefdgFDG"}, key=lambda t: t.__name__)
    return out


def _sniff(head: bytes) -> Optional[str]:
    """What a non-checkpoint file looks like, from its first bytes (None: could be a checkpoint)."""
    if head.startswith(b"PK\x03\x04") or head.startswith(b"\x80"):
        return None  # zip archive (torch >= 1.6) or a raw pickle (legacy torch.save)
    for magic, what in ((b"\xff\xd8\xff", "a JPEG image"), (b"\x89PNG", "a PNG image"),
                        (b"\x1f\x8b", "a gzip archive"), (b"<", "an HTML/XML page"),
                        (b"\x89HDF", "an HDF5 file"), (b"\x08", "an ONNX/protobuf file")):
        if head.startswith(magic):
            return what
    try:
        head.decode("utf-8")
        return "a text file"
    except UnicodeDecodeError:
        return "an unknown binary file"


def read_checkpoint(path: PathLike) -> dict:
    """Load a checkpoint file safely (``weights_only=True``) onto the CPU.

    Raises:
        CheckpointError: the file is missing, empty, truncated, not a ``torch.save`` file, holds
            pickled objects that could run code (refused, not loaded), or is not a dict.
    """
    path = Path(path)
    expected = "expected a PyTorch checkpoint (.pth) written by torch.save"
    if not path.exists():
        raise CheckpointError(f"checkpoint '{path}' does not exist; {expected}")
    if path.is_dir():
        raise CheckpointError(f"checkpoint '{path}' is a folder; {expected}")
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise CheckpointError(f"checkpoint '{path}' cannot be read ({e.strerror}); {expected}") from None
    if not head:
        raise CheckpointError(f"checkpoint '{path}' is empty (0 bytes); {expected}")
    looks_like = _sniff(head)
    if looks_like:
        raise CheckpointError(f"checkpoint '{path}' is not a PyTorch checkpoint (it looks like "
                              f"{looks_like}); {expected}")
    try:
        with warnings.catch_warnings(), torch.serialization.safe_globals(_numpy_safe_globals()):
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # torch's weights-only unpickler raises this same type
        msg = str(e)
        blocked = re.search(r"GLOBAL ([\w.]+)", msg)
        if blocked or "global" in msg.lower():
            what = f" (e.g. {blocked.group(1)})" if blocked else ""
            raise CheckpointError(f"checkpoint '{path}' contains non-tensor Python objects{what} that could "
                                  "run code when unpickled; it was not loaded (only tensors, dicts, lists, "
                                  "strings and numbers are accepted)") from None
        detail = msg.split("WeightsUnpickler error:")[-1].strip().split("\n")[0][:80] or "bad pickle data"
        raise CheckpointError(f"checkpoint '{path}' holds pickle data the safe (weights-only) loader does "
                              f"not accept ({detail}); it was not loaded; {expected}") from None
    except (RuntimeError, EOFError, KeyError, ValueError, IndexError, OSError) as e:
        first = str(e).strip().splitlines()[0].split(". ")[0][:120] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"checkpoint '{path}' is truncated or corrupt ({first}); {expected}") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint '{path}' holds a {type(obj).__name__}; expected a dict "
                              "(a state dict or a checkpoint dict)")
    return obj


def extract_state_dict(obj: Mapping, path: PathLike = "<state dict>") -> StateDict:
    """The model weights inside a checkpoint dict, renamed to the official HRNet state-dict names.

    Args:
        obj: what :func:`read_checkpoint` returned, or a state dict.
        path: the file name, used in error messages only.

    Returns:
        A new ``OrderedDict`` name -> tensor (shapes are checked later by :func:`load_weights`).
    """
    if "state_dict" in obj:
        inner, where = obj.get("state_dict"), "'state_dict'"
    elif isinstance(obj.get("model"), dict):  # {'model': state_dict}; official checkpoint.pth has a str here
        inner, where = obj["model"], "'model'"
    else:
        inner, where = obj, "the top level"
    if not isinstance(inner, dict) or not inner:
        raise CheckpointError(f"checkpoint '{path}': {where} is not a state dict (top-level keys: "
                              f"{_names(list(obj))}); expected a dict of tensors, or one under 'state_dict'")
    bad = [k for k, v in inner.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"checkpoint '{path}': {where} has non-tensor entries ({_names(bad)}); "
                              "expected a state dict of tensors")
    keys = list(inner)
    if all(k.startswith("module.") for k in keys):  # DataParallel / DDP wrapper
        keys = [k[len("module."):] for k in keys]
    if any(k.startswith("backbone.") for k in keys):
        keys = [_mmpose_name(k) for k in keys]
    out = OrderedDict()
    for new, value in zip(keys, inner.values()):
        if new.startswith("data_preprocessor."):  # mmpose 1.x normalisation buffers; ours live in the model
            continue
        out[new] = value
    return out


def _mmpose_name(key: str) -> str:
    for prefix in ("keypoint_head.final_layer.", "head.final_layer."):
        if key.startswith(prefix):
            return "final_layer." + key[len(prefix):]
    return key[len("backbone."):] if key.startswith("backbone.") else key


def load_state_dict_any(path: PathLike) -> StateDict:
    """:func:`read_checkpoint` + :func:`extract_state_dict`: any supported layout -> official names."""
    return extract_state_dict(read_checkpoint(path), path)


# ------------------------------------------------------------------------------------------------
# Strict loading
# ------------------------------------------------------------------------------------------------
def _names(names: Sequence[str], limit: int = _LIST_LIMIT) -> str:
    """``a, b, c`` or ``a, b, ... (+N more)`` for long lists."""
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown + (f", ... (+{len(names) - limit} more)" if len(names) > limit else "")


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The bare network inside a ``DataParallel`` / ``DistributedDataParallel`` wrapper (else ``model``)."""
    return model.module if isinstance(model, (torch.nn.DataParallel,
                                              torch.nn.parallel.DistributedDataParallel)) else model


def _hrnet_width(sd: Mapping[str, Any]) -> Optional[int]:
    """Channels of the highest-resolution branch (32 for W32), from the head's input or transition1."""
    for key, dim in (("final_layer.weight", 1), ("transition1.0.0.weight", 0)):
        if key in sd and len(sd[key].shape) > dim:
            return int(sd[key].shape[dim])
    return None


def _mismatch_message(ckpt: Mapping[str, torch.Tensor], model_sd: Mapping[str, torch.Tensor], where: str,
                      missing: list, unexpected: list, shapes: list) -> str:
    """One line explaining why ``ckpt`` does not fit the model, most specific diagnosis first."""
    if any(k.startswith(_CLASSIFIER_PREFIXES) for k in ckpt):
        return (f"{where} looks like an ImageNet classification checkpoint (it has "
                f"{_names([k for k in ckpt if k.startswith(_CLASSIFIER_PREFIXES)], 3)}); load it with "
                "load_imagenet_pretrained (MODEL.PRETRAINED), not as pose weights")
    if not set(ckpt) & set(model_sd):
        return (f"{where} has no parameter names in common with the model (it has {_names(list(ckpt), 3)}; "
                f"the model has {_names(list(model_sd), 3)}); expected HRNet pose weights")
    w_ckpt, w_model = _hrnet_width(ckpt), _hrnet_width(model_sd)
    if w_ckpt and w_model and w_ckpt != w_model:
        preset = f"hrnet_w{w_ckpt}"
        fix = (f"build the model with MODEL.ARCH {preset}" if preset in HRNET_ARCHS
               else f"build a model whose highest-resolution width is {w_ckpt}")
        return (f"{where} is an HRNet-W{w_ckpt} checkpoint but the model is HRNet-W{w_model} "
                f"(highest-resolution width {w_ckpt} vs {w_model}); {fix}, or use W{w_model} weights")
    head = "final_layer.weight"
    if [s[0] for s in shapes] in ([head], [head, "final_layer.bias"]) and not missing and not unexpected:
        k_ckpt, k_model = int(ckpt[head].shape[0]), int(model_sd[head].shape[0])
        return (f"{where} predicts {k_ckpt} keypoints ({head} {list(ckpt[head].shape)}) but the model is "
                f"built for {k_model}; set MODEL.NUM_JOINTS to {k_ckpt} with the matching dataset, or use "
                f"weights trained on {k_model} keypoints")
    parts = []
    if missing:
        parts.append(f"missing {len(missing)} keys: {_names(missing)}")
    if unexpected:
        parts.append(f"unexpected {len(unexpected)} keys: {_names(unexpected)}")
    if shapes:
        parts.append(f"{len(shapes)} shape mismatches: " + _names(
            [f"{k} checkpoint {list(a)} vs model {list(b)}" for k, a, b in shapes]))
    kind = "architecture mismatch" if any(not k.startswith("final_layer.") for k in missing + unexpected) \
        else "does not fit the model"
    return f"{where}: {kind}; " + "; ".join(parts)


def load_weights(model: torch.nn.Module, source: Union[PathLike, Mapping], *, strict: bool = True,
                 name: Optional[PathLike] = None):
    """Load pose weights (any layout of :func:`extract_state_dict`) into ``model``.

    Args:
        model: the network (a DataParallel/DDP wrapper is unwrapped).
        source: a checkpoint path, a checkpoint dict or a state dict.
        name: the file a dict was read from, for error messages.
        strict: if True (the default, and what every library path uses) any missing or unexpected name
            raises; with False they are logged as warnings. Shape mismatches always raise.

    Returns:
        ``torch``'s ``_IncompatibleKeys(missing_keys, unexpected_keys)`` (empty when strict).

    Raises:
        CheckpointError: unreadable file, or weights that do not fit; the message lists the offending
            names (first ten and a count) and names a wrong keypoint count or HRNet width explicitly.
    """
    model = unwrap_model(model)
    if isinstance(source, Mapping):
        where = "state dict" if name is None else f"checkpoint '{name}'"
        ckpt = extract_state_dict(source, name or where)
    else:
        where = f"checkpoint '{source}'"
        ckpt = load_state_dict_any(source)
    model_sd = model.state_dict()
    missing = [k for k in model_sd if k not in ckpt]
    # Checkpoints from torch < 0.4.1 lack BN's num_batches_tracked; torch fills it with 0, and so do we.
    for k in [k for k in missing if k.endswith(".num_batches_tracked")
              and k[:-len("num_batches_tracked")] + "running_mean" in ckpt]:
        ckpt[k] = torch.zeros_like(model_sd[k])
        missing.remove(k)
    unexpected = [k for k in ckpt if k not in model_sd]
    shapes = [(k, tuple(v.shape), tuple(model_sd[k].shape)) for k, v in ckpt.items()
              if k in model_sd and tuple(v.shape) != tuple(model_sd[k].shape)]
    if shapes or (strict and (missing or unexpected)):
        raise CheckpointError(_mismatch_message(ckpt, model_sd, where, missing, unexpected, shapes))
    if missing or unexpected:
        logger.warning("%s: non-strict load; missing %d keys (%s), unexpected %d keys (%s)", where,
                       len(missing), _names(missing), len(unexpected), _names(unexpected))
    result = model.load_state_dict(ckpt, strict=strict)
    logger.info("loaded %d tensors from %s", len(ckpt), where)
    return result


# ------------------------------------------------------------------------------------------------
# ImageNet initialisation
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PretrainedLoadReport:
    """What :func:`load_imagenet_pretrained` did.

    Attributes:
        source: the file (or ``"state dict"``).
        loaded_keys: model keys now holding ImageNet values.
        skipped: reason -> checkpoint keys not used (``"not in PRETRAINED_LAYERS"``,
            ``"no counterpart in the model"``).
        left_at_init: model keys that keep their initialisation (normally ``final_layer.*``).
    """

    source: str
    loaded_keys: Tuple[str, ...]
    skipped: Dict[str, Tuple[str, ...]] = field(default_factory=dict)
    left_at_init: Tuple[str, ...] = ()

    @property
    def num_loaded(self) -> int:
        return len(self.loaded_keys)

    def summary(self) -> str:
        skipped = "; ".join(f"{len(v)} {reason}" for reason, v in self.skipped.items() if v) or "none"
        return (f"ImageNet init from {self.source}: loaded {self.num_loaded} tensors; skipped {skipped}; "
                f"{len(self.left_at_init)} model tensors left at init ({_names(self.left_at_init, 5)})")


def load_imagenet_pretrained(model: torch.nn.Module, source: Union[PathLike, Mapping],
                             prefixes: Sequence[str] = OFFICIAL_PRETRAINED_LAYERS, *,
                             source_name: Optional[str] = None) -> PretrainedLoadReport:
    """Initialise the backbone from an ImageNet classification HRNet checkpoint (official ``init_weights``).

    A checkpoint key is kept when its first dotted component is in ``prefixes`` (``['*']`` keeps all)
    and the model has the same name; keys without a counterpart (the classifier's ``incre_modules``,
    ``downsamp_modules``, ``final_layer``, ``classifier`` and ``stage4.2.fuse_layers.{1,2,3}``) are
    dropped. The pose head keeps its initialisation. A ``module.`` prefix is stripped (the official
    loader does not; stripping only makes more files usable). ``source_name`` names an already-read
    state dict in the report and in errors.

    Raises:
        CheckpointError: unreadable file, a kept key with a different shape (listed), or no key at all
            matching the model (not an HRNet classification checkpoint of this width).
    """
    model = unwrap_model(model)
    where = source_name or ("state dict" if isinstance(source, Mapping) else str(source))
    ckpt = extract_state_dict(source if isinstance(source, Mapping) else read_checkpoint(source), where)
    model_sd = model.state_dict()
    take_all = len(prefixes) > 0 and prefixes[0] == "*"
    filtered, absent, kept = [], [], OrderedDict()
    for key, value in ckpt.items():
        if not take_all and key.split(".", 1)[0] not in prefixes:
            filtered.append(key)
        elif key not in model_sd:
            absent.append(key)
        else:
            kept[key] = value
    shapes = [f"{k} checkpoint {list(v.shape)} vs model {list(model_sd[k].shape)}"
              for k, v in kept.items() if v.shape != model_sd[k].shape]
    if shapes:
        w_ckpt, w_model = _hrnet_width({k: v for k, v in kept.items()}), _hrnet_width(model_sd)
        hint = f" (checkpoint is HRNet-W{w_ckpt}, model HRNet-W{w_model})" if w_ckpt and w_model else ""
        raise CheckpointError(f"ImageNet checkpoint '{where}': {len(shapes)} shape mismatches{hint}: "
                              f"{_names(shapes)}")
    if not kept:
        raise CheckpointError(f"ImageNet checkpoint '{where}': no key matches the model after the "
                              f"PRETRAINED_LAYERS filter {list(prefixes)} (it has {_names(list(ckpt), 3)}); "
                              "expected an HRNet classification checkpoint")
    model.load_state_dict(kept, strict=False)
    report = PretrainedLoadReport(
        source=where, loaded_keys=tuple(kept),
        skipped={"not in PRETRAINED_LAYERS": tuple(filtered), "no counterpart in the model": tuple(absent)},
        left_at_init=tuple(k for k in model_sd if k not in kept))
    logger.info(report.summary())
    expected_missing = [k for k in report.left_at_init
                        if (take_all or k.split(".", 1)[0] in prefixes) and not k.startswith("final_layer.")]
    if expected_missing:
        logger.warning("ImageNet checkpoint '%s' lacks %d backbone tensors selected by PRETRAINED_LAYERS "
                       "(%s); they keep their initialisation", where, len(expected_missing),
                       _names(expected_missing))
    return report


def check_classifier_state_dict(state_dict: Mapping[str, torch.Tensor], arch: str,
                                where: str = "<state dict>") -> int:
    """Check that a file holds a complete official ``cls_hrnet`` classifier of preset ``arch``.

    Used for downloads without a published checksum: every tensor of the official classifier must be
    there, with its shape, and nothing else (``num_batches_tracked`` may be missing: files saved before
    PyTorch 0.4.1 lack it). The network is built on the meta device, so nothing is allocated.

    Returns:
        The number of tensors checked.

    Raises:
        CheckpointError: missing, unexpected or mis-shaped tensors, listed.
    """
    from pose.models import build_model_from_arch

    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in
                    build_model_from_arch(arch, head="classification").state_dict().items()}
    missing = [k for k in expected if k not in state_dict and not k.endswith(".num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [f"{k} {list(state_dict[k].shape)} vs {list(expected[k])}" for k in expected
              if k in state_dict and tuple(state_dict[k].shape) != expected[k]]
    problems = [f"{len(v)} {what} ({_names(v, 3)})" for what, v in
                (("missing", missing), ("unexpected", unexpected), ("with another shape", shapes)) if v]
    if problems:
        raise CheckpointError(f"ImageNet checkpoint '{where}' is not a complete official {arch} classifier: "
                              f"{'; '.join(problems)}")
    return len(expected)
