"""The project's own checkpoint: weights plus everything needed to rebuild and resume.

:func:`save_checkpoint` writes one self-describing file (``format: 'pose-checkpoint'``): the weights
under their official names, the full config YAML, the codec parameters, the keypoint spec, the input
size and, for training runs, the optimizer / scheduler / scaler states, epoch, step and every RNG
state. Everything loads back with ``torch.load(weights_only=True)`` (:func:`pose.weights.read_checkpoint`).
:func:`pose.loading.load_model` rebuilds model, config, codec and spec from such a file; training
resumes from it (:mod:`pose.training`).
"""
import logging
import os
import random
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import numpy as np
import torch

from pose.config import config_to_yaml
from pose.errors import CheckpointError
from pose.fileio import atomic_write
from pose.weights import read_checkpoint, unwrap_model

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

FORMAT = "pose-checkpoint"
FORMAT_VERSION = 1
_REQUIRED_FIELDS = ("state_dict", "config_yaml", "codec", "keypoint_spec", "input_size")


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
    path = Path(path)
    config_yaml = cfg if isinstance(cfg, str) else config_to_yaml(cfg)
    input_size = [int(v) for v in (cfg.MODEL.IMAGE_SIZE if not isinstance(cfg, str) else codec.input_size)]
    state = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "state_dict": OrderedDict((k, v.detach().cpu()) for k, v in unwrap_model(model).state_dict().items()),
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
