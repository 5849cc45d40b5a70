"""Checkpoints: safe reading, strict weight loading, ImageNet init and the project's own format.

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
- the project checkpoint written by :func:`save_checkpoint` (``format: 'pose-checkpoint'``), which also
  holds the config YAML, codec parameters, keypoint spec, input size and the training state, so
  :func:`build_from_checkpoint` rebuilds model, config, codec and spec from one file.

Loading is strict (:func:`load_weights`): missing or unexpected names and shape mismatches raise a
:class:`~pose.errors.CheckpointError` that lists them, with specific messages for a wrong keypoint
count and a wrong HRNet width. Random weights are never kept silently (the official ``test.py``
loads with ``strict=False``).
"""
import contextlib
import logging
import os
import pickle
import random
import re
import warnings
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from pose.errors import CheckpointError, ConfigError
from pose.fileio import atomic_write

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
StateDict = Dict[str, torch.Tensor]

FORMAT = "pose-checkpoint"
FORMAT_VERSION = 1
# The official pose yamls' EXTRA.PRETRAINED_LAYERS (research doc 1.7).
OFFICIAL_PRETRAINED_LAYERS = ("conv1", "bn1", "conv2", "bn2", "layer1", "transition1", "stage2",
                              "transition2", "stage3", "transition3", "stage4")
_REQUIRED_FIELDS = ("state_dict", "config_yaml", "codec", "keypoint_spec", "input_size")
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
    if obj.get("format") == FORMAT or "state_dict" in obj:
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


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
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
        from pose.models import HRNET_ARCHS
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
    model = _unwrap(model)
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
                             prefixes: Sequence[str] = OFFICIAL_PRETRAINED_LAYERS) -> PretrainedLoadReport:
    """Initialise the backbone from an ImageNet classification HRNet checkpoint (official ``init_weights``).

    A checkpoint key is kept when its first dotted component is in ``prefixes`` (``['*']`` keeps all)
    and the model has the same name; keys without a counterpart (the classifier's ``incre_modules``,
    ``downsamp_modules``, ``final_layer``, ``classifier`` and ``stage4.2.fuse_layers.{1,2,3}``) are
    dropped. The pose head keeps its initialisation. A ``module.`` prefix is stripped (the official
    loader does not; stripping only makes more files usable).

    Raises:
        CheckpointError: unreadable file, a kept key with a different shape (listed), or no key at all
            matching the model (not an HRNet classification checkpoint of this width).
    """
    model = _unwrap(model)
    where = "state dict" if isinstance(source, Mapping) else str(source)
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


# ------------------------------------------------------------------------------------------------
# RNG state
# ------------------------------------------------------------------------------------------------
def collect_rng_state() -> dict:
    """Global RNG states of torch, numpy (legacy ``np.random``), python ``random`` and CUDA, as plain data."""
    np_state = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [str(np_state[0]), [int(x) for x in np_state[1]], int(np_state[2]), int(np_state[3]),
                  float(np_state[4])],
        "python": [int(version), [int(x) for x in internal], gauss_next],
    }
    if torch.cuda.is_available():
        state["cuda"] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng_state(state: Mapping) -> None:
    """Inverse of :func:`collect_rng_state`; missing entries are left alone (CUDA only if available)."""
    if "torch" in state:
        torch.set_rng_state(state["torch"].cpu())
    if "numpy" in state:
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss),
                             float(cached)))
    if "python" in state:
        version, internal, gauss_next = state["python"]
        random.setstate((int(version), tuple(int(x) for x in internal), gauss_next))
    if state.get("cuda") and torch.cuda.is_available():
        states = list(state["cuda"])[:torch.cuda.device_count()]
        for i, s in enumerate(states):
            torch.cuda.set_rng_state(s.cpu(), i)


# ------------------------------------------------------------------------------------------------
# The project checkpoint
# ------------------------------------------------------------------------------------------------
_PLAIN = (str, int, float, bool, type(None), torch.Tensor, torch.Size, torch.dtype, torch.device)


def _plain(obj: Any, where: str) -> Any:
    """``obj`` with numpy values converted, checked to hold only what ``weights_only`` loading accepts."""
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, _PLAIN):
        return obj
    if isinstance(obj, (dict, OrderedDict, Counter)):
        items = {k: _plain(v, f"{where}.{k}") for k, v in obj.items()}
        for k in items:
            if not isinstance(k, (str, int, float, bool, type(None))):
                raise TypeError(f"checkpoint field {where}: key {k!r} is a {type(k).__name__}; "
                                "expected str/int")
        return type(obj)(items) if type(obj) in (OrderedDict, Counter) else items
    if isinstance(obj, (list, tuple)):
        values = [_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return tuple(values) if type(obj) is tuple else values  # namedtuples etc. become lists
    raise TypeError(f"checkpoint field {where} is a {type(obj).__name__}; only tensors, dicts, lists, str, "
                    "int, float, bool and None can be loaded back with weights_only=True")


def save_checkpoint(path: PathLike, *, model: torch.nn.Module, cfg, codec, spec, optimizer=None,
                    scheduler=None, scaler=None, epoch: int = 0, step: int = 0,
                    rng_state: Optional[Mapping] = None, best_metric: Optional[float] = None,
                    extra: Optional[Mapping] = None) -> Path:
    """Write a self-describing checkpoint atomically (temp file in the same folder, fsync, rename).

    The file is a dict: ``format``, ``format_version``, ``state_dict`` (official names, CPU tensors),
    ``config_yaml`` (full config text), ``codec`` (``codec.to_dict()``), ``keypoint_spec``
    (``spec.to_dict()``), ``input_size`` ``[W, H]``, ``num_keypoints``, ``epoch``, ``step``,
    ``best_metric``, and when given ``optimizer`` / ``scheduler`` / ``scaler`` state dicts,
    ``rng_state`` (:func:`collect_rng_state`) and ``extra``. Everything loads with ``weights_only=True``.

    Args:
        cfg: the yacs config (or its YAML text).

    Returns:
        The checkpoint path. A failure at any point leaves a previous file at ``path`` untouched.
    """
    from pose.config import config_to_yaml

    path = Path(path)
    config_yaml = cfg if isinstance(cfg, str) else config_to_yaml(cfg)
    input_size = [int(v) for v in (cfg.MODEL.IMAGE_SIZE if not isinstance(cfg, str) else codec.input_size)]
    state = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "state_dict": OrderedDict((k, v.detach().cpu()) for k, v in _unwrap(model).state_dict().items()),
        "config_yaml": config_yaml,
        "codec": codec.to_dict(),
        "keypoint_spec": spec.to_dict(),
        "input_size": input_size,
        "num_keypoints": int(spec.num_keypoints),
        "epoch": int(epoch),
        "step": int(step),
        "best_metric": None if best_metric is None else float(best_metric),
    }
    for name, obj in (("optimizer", optimizer), ("scheduler", scheduler), ("scaler", scaler)):
        if obj is not None:
            state[name] = obj.state_dict()
    if rng_state is not None:
        state["rng_state"] = dict(rng_state)
    if extra is not None:
        state["extra"] = dict(extra)
    state = _plain(state, "checkpoint")
    with atomic_write(path, "wb") as f:  # a failure at any point leaves a previous file untouched
        torch.save(state, f)
    logger.info("saved checkpoint %s (epoch %d, step %d)", path, epoch, step)
    return path


def load_checkpoint(path: PathLike, obj: Optional[Mapping] = None) -> dict:
    """Read a project checkpoint written by :func:`save_checkpoint` and check its format fields.

    Args:
        obj: the file's content when the caller already read it (:func:`read_checkpoint`).

    Raises:
        CheckpointError: unreadable file, not a project checkpoint (official/mmpose weights load with
            :func:`load_weights` instead), a newer format version, or a missing field.
    """
    obj = read_checkpoint(path) if obj is None else obj
    if obj.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint '{path}' is not a pose checkpoint (no format: '{FORMAT}' field); "
                              "plain, official or mmpose weights carry no config: load them with "
                              "load_weights (--weights) together with a config file")
    version = obj.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise CheckpointError(f"checkpoint '{path}': format_version {version!r} is not supported; expected "
                              f"1..{FORMAT_VERSION} (written by a newer pose?)")
    missing = [k for k in _REQUIRED_FIELDS if k not in obj]
    if missing:
        raise CheckpointError(f"checkpoint '{path}': missing fields {missing}; expected "
                              f"{list(_REQUIRED_FIELDS)}")
    if not isinstance(obj["config_yaml"], str):
        raise CheckpointError(f"checkpoint '{path}': config_yaml is a {type(obj['config_yaml']).__name__}; "
                              "expected YAML text")
    return obj


# ------------------------------------------------------------------------------------------------
# Rebuilding everything from one project checkpoint
# ------------------------------------------------------------------------------------------------
# Friendly names accepted in ``overrides`` besides dotted config keys.
OVERRIDE_ALIASES = {"num_keypoints": "MODEL.NUM_JOINTS", "input_size": "MODEL.IMAGE_SIZE",
                    "heatmap_size": "MODEL.HEATMAP_SIZE", "flip_test": "TEST.FLIP_TEST",
                    "decoder": "TEST.DECODER", "post_process": "TEST.POST_PROCESS",
                    "shift_heatmap": "TEST.SHIFT_HEATMAP", "blur_kernel": "TEST.BLUR_KERNEL"}
# MODEL.* keys that do not describe the trained network (training-time init only).
_UNBOUND_MODEL_KEYS = ("MODEL.PRETRAINED", "MODEL.INIT_WEIGHTS", "MODEL.EXTRA.PRETRAINED_LAYERS")
# Codec fields fixed by training; the others (decoder, flip shift, blur kernel) are inference choices.
_BOUND_CODEC_FIELDS = ("input_size", "heatmap_size", "sigma", "encoding")


def _is_bound(key: str) -> bool:
    """True for config keys the weights were trained with (architecture, sizes, keypoint layout)."""
    if key == "DATASET.DATASET":
        return True
    unbound = any(key == k or key.startswith(k + ".") for k in _UNBOUND_MODEL_KEYS)
    return key.startswith("MODEL.") and not unbound


def _override_pairs(overrides) -> list:
    """A flat ``[KEY, VALUE, ...]`` list from a mapping or a flat list; aliases become config keys."""
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        flat = []
        for key, value in overrides.items():
            flat += [OVERRIDE_ALIASES.get(key, key), value]
        return flat
    flat = list(overrides)
    if len(flat) % 2:
        raise ConfigError(f"overrides: {len(flat)} items; expected KEY VALUE pairs")
    return [OVERRIDE_ALIASES.get(k, k) if i % 2 == 0 else k for i, k in enumerate(flat)]


def _normalized(value: Any) -> Any:
    import ast
    if isinstance(value, str):
        with contextlib.suppress(ValueError, SyntaxError):
            value = ast.literal_eval(value)
    if isinstance(value, (list, tuple)):
        return [_normalized(v) for v in value]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    return float(value)


def _config_value(cfg, key: str) -> Any:
    node = cfg
    for part in key.split("."):
        if not hasattr(node, "__contains__") or part not in node:
            return None
        node = node[part]
    return node


def build_from_checkpoint(path: PathLike, *, overrides=None, checkpoint: Optional[Mapping] = None):
    """Rebuild ``(model, cfg, codec, spec)`` from one project checkpoint.

    Args:
        path: a file written by :func:`save_checkpoint`.
        overrides: inference settings as a mapping ``{"TEST.FLIP_TEST": False, "decoder": "dark"}`` or
            a flat ``["TEST.FLIP_TEST", "False", ...]`` list (aliases: ``OVERRIDE_ALIASES``). Keys bound
            to the weights (``MODEL.*`` such as NUM_JOINTS / IMAGE_SIZE, and DATASET.DATASET) may be given
            only with the value the checkpoint already has.
        checkpoint: the file's content when the caller already read it (avoids a second read).

    Returns:
        The model (eval mode, strict weights, CPU), the frozen config, the codec (the checkpoint's, with
        decoder settings taken from the overridden config) and the keypoint spec.

    Raises:
        CheckpointError: unreadable or inconsistent checkpoint.
        ConfigError: an override changes a checkpoint-bound value (named), or is otherwise invalid.
    """
    from pose.codec import HeatmapCodec, build_codec
    from pose.config import config_from_yaml_text
    from pose.keypoints import KeypointSpec
    from pose.models import build_model

    ckpt = load_checkpoint(path, checkpoint)
    source = f"checkpoint '{path}' config"
    base_cfg = config_from_yaml_text(ckpt["config_yaml"], source)
    pairs = _override_pairs(overrides)
    for key, value in zip(pairs[0::2], pairs[1::2]):
        if _is_bound(key):
            old = _config_value(base_cfg, key)
            if old is not None and _normalized(value) != _normalized(old):
                raise ConfigError(f"override {key}={value!r} conflicts with checkpoint '{path}', whose "
                                  f"weights were trained with {key}={old!r}; drop the override or use "
                                  "another checkpoint")
    cfg = config_from_yaml_text(ckpt["config_yaml"], source, pairs) if pairs else base_cfg

    try:
        spec = KeypointSpec.from_dict(ckpt["keypoint_spec"])
    except ConfigError as e:
        raise CheckpointError(f"checkpoint '{path}': {e}") from None
    if spec.num_keypoints != cfg.MODEL.NUM_JOINTS:
        raise CheckpointError(f"checkpoint '{path}': keypoint_spec has {spec.num_keypoints} keypoints but "
                              f"MODEL.NUM_JOINTS is {cfg.MODEL.NUM_JOINTS}; the file is inconsistent")
    if [int(v) for v in ckpt["input_size"]] != [int(v) for v in cfg.MODEL.IMAGE_SIZE]:
        raise CheckpointError(f"checkpoint '{path}': input_size {list(ckpt['input_size'])} differs from "
                              f"MODEL.IMAGE_SIZE {list(cfg.MODEL.IMAGE_SIZE)}; the file is inconsistent")
    codec_fields = dict(ckpt["codec"])
    if pairs:  # decoder choices follow the overridden config; geometry stays the checkpoint's
        rebuilt = build_codec(cfg).to_dict()
        codec_fields.update({k: v for k, v in rebuilt.items() if k not in _BOUND_CODEC_FIELDS})
    try:
        codec = HeatmapCodec.from_dict(codec_fields)
    except (TypeError, ValueError) as e:  # PoseErrors are ValueErrors too
        raise CheckpointError(f"checkpoint '{path}': {e}") from None

    model = build_model(cfg.MODEL)
    try:
        load_weights(model, ckpt["state_dict"], strict=True)
    except CheckpointError as e:
        raise CheckpointError(f"checkpoint '{path}': {e}") from None
    model.eval()
    return model, cfg, codec, spec


# load_predictor(path, **overrides) -> TopDownPredictor lives here: build_from_checkpoint(path, overrides=...)
# then TopDownPredictor(model, codec, spec, flip_test=cfg.TEST.FLIP_TEST, ...). Added by the lead.
