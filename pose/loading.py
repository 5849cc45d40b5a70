"""THE place where a weights path, a zoo name or "untrained" becomes a model, codec, spec and predictor.

Used by evaluation, training validation checks, the video pipeline, export and the Python API, so
every entry point resolves weights, configs and runtimes the same way:

- :func:`config_for_zoo_model`: the config of a zoo model, from its entry (arch, sizes, sigma and the
  inference settings of its published score); works without the repository's ``configs/``.
- :func:`load_model`: ``(model, cfg, codec, spec)`` for a project checkpoint (self-describing), an
  official / mmpose weights file (with a config, or a zoo name that brings its own), or untrained
  weights of a config's architecture (``pretrained=False``).
- :func:`build_runtime`: a runtime backend for a model (``torch``, ``torch-fast``, ``onnxruntime``
  exported once and cached by :mod:`pose.export`, ``auto``).
- :func:`load_predictor`: both, wrapped in the one :class:`~pose.predictor.TopDownPredictor`.

One rule settles every conflict between a checkpoint and a config (:func:`check_fits_checkpoint`):
the values the weights were trained with (architecture, sizes, keypoints, target) are *bound*; a
config or an override may repeat them but not change them. Inference choices (decoder, flip test,
batch, backend) are free.
"""
import ast
import contextlib
import logging
import os
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import torch

from pose.backends import PRECISIONS
from pose.checkpoint import FORMAT, load_checkpoint
from pose.codec import HeatmapCodec, build_codec, decoding_from_config
from pose.config import config_from_yaml_text, get_default_config, keypoint_spec_for_config, with_overrides
from pose.errors import CheckpointError, ConfigError, PoseError
from pose.fileio import ASSETS_DIR
from pose.keypoints import KeypointSpec
from pose.models import arch_from_model_cfg, build_model, require_heatmap_head
from pose.predictor import TopDownPredictor
from pose.runtime import build_runtime, calibration_crops_from
from pose.weights import (
    PretrainedLoadReport,
    check_classifier_state_dict,
    load_imagenet_pretrained,
    load_state_dict_any,
    load_weights,
    read_checkpoint,
)
from pose.zoo import ZOO, get_imagenet_info, get_model_info, resolve_imagenet_weights, resolve_weights

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
Loaded = Tuple[torch.nn.Module, Any, HeatmapCodec, KeypointSpec]

#: The zoo model used when a command or the API names none.
DEFAULT_MODEL = "hrnet_w32_coco_256x192"
#: The real photo the ``auto`` precision probe crops when no calibration images are given (COCO val2017
#: 000000000785, one skier, CC BY 2.0; provenance in ``pose/assets/README.md``).
AUTO_PROBE_IMAGE = ASSETS_DIR / "probe_coco_000000000785.jpg"
#: Friendly names accepted in ``overrides`` besides dotted config keys.
OVERRIDE_ALIASES = {"num_keypoints": "MODEL.NUM_JOINTS", "input_size": "MODEL.IMAGE_SIZE",
                    "heatmap_size": "MODEL.HEATMAP_SIZE", "flip_test": "TEST.FLIP_TEST",
                    "decoder": "TEST.DECODER", "post_process": "TEST.POST_PROCESS",
                    "shift_heatmap": "TEST.SHIFT_HEATMAP", "blur_kernel": "TEST.BLUR_KERNEL"}
# MODEL.* keys that do not describe the trained network (training-time initialisation only).
_INIT_ONLY_KEYS = ("MODEL.PRETRAINED", "MODEL.INIT_WEIGHTS", "MODEL.EXTRA.PRETRAINED_LAYERS")


# ------------------------------------------------------------------------------------------------
# Configs
# ------------------------------------------------------------------------------------------------
def config_for_zoo_model(name: str):
    """The frozen config of a zoo model, built from its entry (no repository files needed)."""
    info = get_model_info(name)
    w, h = info.input_size
    cfg = get_default_config()
    cfg.MODEL.ARCH = info.arch
    cfg.MODEL.NUM_JOINTS = info.num_keypoints
    cfg.MODEL.IMAGE_SIZE = [w, h]
    cfg.MODEL.HEATMAP_SIZE = [w // 4, h // 4]
    cfg.MODEL.SIGMA = float(info.sigma)
    cfg.DATASET.DATASET = info.dataset
    cfg.DATASET.COLOR_RGB = True
    cfg.TEST.FLIP_TEST = bool(info.flip_test)
    cfg.TEST.POST_PROCESS = info.decoder == "quarter"
    cfg.TEST.DECODER = info.decoder
    cfg.TEST.SHIFT_HEATMAP = bool(info.shift_heatmap)
    cfg.freeze()
    return cfg


def override_pairs(overrides) -> list:
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


# ------------------------------------------------------------------------------------------------
# The one rule: what a checkpoint fixes
# ------------------------------------------------------------------------------------------------
def _is_bound(key: str) -> bool:
    """True for config keys the weights were trained with (architecture, sizes, target, keypoint layout)."""
    if key == "DATASET.DATASET":
        return True
    init_only = any(key == k or key.startswith(k + ".") for k in _INIT_ONLY_KEYS)
    return key.startswith("MODEL.") and not init_only


def _leaves(node, prefix: str = "") -> Dict[str, Any]:
    out = {}
    for key, value in node.items():
        if isinstance(value, Mapping):
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _normalized(value: Any) -> Any:
    if isinstance(value, str):
        with contextlib.suppress(ValueError, SyntaxError):
            value = ast.literal_eval(value)
    if isinstance(value, (list, tuple)):
        return [_normalized(v) for v in value]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    return float(value)


def _architecture(cfg):
    try:
        return arch_from_model_cfg(cfg.MODEL)
    except PoseError:
        return None


def _conflict(key: str, value, trained, path: PathLike, source: str) -> ConfigError:
    return ConfigError(f"{source} {key}={value!r} conflicts with checkpoint '{path}', whose weights were "
                       f"trained with {key}={trained!r}; drop or fix it, or use another checkpoint")


def check_overrides_fit_checkpoint(pairs: Sequence, trained_cfg, path: PathLike) -> None:
    """Raise ConfigError if a ``KEY VALUE`` override changes a bound value (checked before merging, so
    the message names the override rather than a later consistency rule it would break)."""
    trained = _leaves(trained_cfg)
    for key, value in zip(pairs[0::2], pairs[1::2]):
        if _is_bound(key) and key in trained and _normalized(value) != _normalized(trained[key]):
            raise _conflict(key, value, trained[key], path, "override")


def check_fits_checkpoint(cfg, trained_cfg, path: PathLike, source: str) -> None:
    """Raise ConfigError if ``cfg`` changes a value the checkpoint's weights were trained with.

    Bound values: every ``MODEL.*`` key except the initialisation-only ones (``PRETRAINED``,
    ``INIT_WEIGHTS``, ``EXTRA.PRETRAINED_LAYERS``), and ``DATASET.DATASET`` (the keypoint layout). The
    stage keys (``MODEL.ARCH``, ``MODEL.EXTRA.*``) are compared as the architecture they describe, so a
    preset name and its spelled-out stages agree.

    Args:
        cfg: the config the caller wants to run with (a user config, or the checkpoint's + overrides).
        trained_cfg: the config stored in the checkpoint.
        source: what ``cfg`` came from, for the message (``"override"``, ``"config 'x.yaml'"``).
    """
    mine, theirs = _leaves(cfg), _leaves(trained_cfg)
    same_arch = _architecture(trained_cfg) is not None and _architecture(cfg) == _architecture(trained_cfg)
    for key, trained in theirs.items():
        if not _is_bound(key):
            continue
        if same_arch and (key == "MODEL.ARCH" or key.startswith("MODEL.EXTRA.")):
            continue
        value = mine.get(key)
        if _normalized(value) != _normalized(trained):
            raise _conflict(key, value, trained, path, source)


def check_spec_fits_checkpoint(wanted: KeypointSpec, trained: KeypointSpec, path: PathLike) -> None:
    """Raise ConfigError if the config's keypoint set is not the one the checkpoint was trained on (the
    names in channel order and the flip pairs are what the weights depend on)."""
    if wanted.keypoint_names != trained.keypoint_names or wanted.flip_pairs != trained.flip_pairs:
        what = ("keypoint names" if wanted.keypoint_names != trained.keypoint_names else "flip pairs")
        raise ConfigError(f"config keypoint set '{wanted.name}' ({wanted.num_keypoints} keypoints) differs in its "
                          f"{what} from checkpoint '{path}', trained on '{trained.name}' "
                          f"({trained.num_keypoints} keypoints); use that set's config or another checkpoint")


# ------------------------------------------------------------------------------------------------
# Models
# ------------------------------------------------------------------------------------------------
def build_from_checkpoint(path: PathLike, *, cfg=None, overrides=None, checkpoint: Optional[Mapping] = None
                          ) -> Loaded:
    """Rebuild ``(model, cfg, codec, spec)`` from one project checkpoint.

    Args:
        path: a file written by :func:`pose.checkpoint.save_checkpoint`.
        cfg: a config that supplies the dataset and test settings (its bound values must agree with the
            checkpoint's, see :func:`check_fits_checkpoint`); default: the checkpoint's own.
        overrides: inference settings as a mapping ``{"TEST.FLIP_TEST": False, "decoder": "dark"}`` or a
            flat ``["TEST.FLIP_TEST", "False", ...]`` list (aliases: :data:`OVERRIDE_ALIASES`).
        checkpoint: the file's content when the caller already read it (avoids a second read).

    Returns:
        The model (eval mode, strict weights, CPU), the frozen config, the codec (the checkpoint's, with
        the decoding choices of the config when one or overrides were given) and the keypoint spec.

    Raises:
        CheckpointError: unreadable or inconsistent checkpoint.
        ConfigError: a config or an override changes a checkpoint-bound value (named), or is invalid.
    """
    ckpt = load_checkpoint(path, checkpoint)
    trained_cfg = config_from_yaml_text(ckpt["config_yaml"], f"checkpoint '{path}' config")
    pairs = override_pairs(overrides)
    check_overrides_fit_checkpoint(pairs, trained_cfg, path)
    run_cfg = with_overrides(trained_cfg if cfg is None else cfg, pairs,
                             source=f"checkpoint '{path}' config" if cfg is None else "config")
    check_fits_checkpoint(run_cfg, trained_cfg, path, "override" if cfg is None else "config value")

    try:
        spec = KeypointSpec.from_dict(ckpt["keypoint_spec"])
    except ConfigError as e:
        raise CheckpointError(f"checkpoint '{path}': {e}") from None
    if cfg is not None or "DATASET.KEYPOINTS" in pairs[0::2]:
        check_spec_fits_checkpoint(keypoint_spec_for_config(run_cfg), spec, path)
    if spec.num_keypoints != trained_cfg.MODEL.NUM_JOINTS:
        raise CheckpointError(f"checkpoint '{path}': keypoint_spec has {spec.num_keypoints} keypoints but "
                              f"MODEL.NUM_JOINTS is {trained_cfg.MODEL.NUM_JOINTS}; the file is inconsistent")
    if [int(v) for v in ckpt["input_size"]] != [int(v) for v in trained_cfg.MODEL.IMAGE_SIZE]:
        raise CheckpointError(f"checkpoint '{path}': input_size {list(ckpt['input_size'])} differs from "
                              f"MODEL.IMAGE_SIZE {list(trained_cfg.MODEL.IMAGE_SIZE)}; the file is inconsistent")
    try:
        codec = HeatmapCodec.from_dict(dict(ckpt["codec"]))
    except (TypeError, ValueError) as e:  # PoseErrors are ValueErrors too
        raise CheckpointError(f"checkpoint '{path}': {e}") from None
    if cfg is not None or pairs:  # decoding follows the run config; sizes, sigma, targets stay trained
        codec = codec.with_decoding(**decoding_from_config(run_cfg, codec.convention))

    model = build_model(trained_cfg.MODEL)
    try:
        load_weights(model, ckpt["state_dict"], strict=True)
    except CheckpointError as e:
        raise CheckpointError(f"checkpoint '{path}': {e}") from None
    return model.eval(), run_cfg, codec, spec


def untrained_model(cfg, *, seed: int = 0) -> torch.nn.Module:
    """The config's architecture with PyTorch's default init, seeded (smoke runs and timing only)."""
    torch.manual_seed(int(seed))
    return build_model(cfg.MODEL).eval()


def load_model(weights=None, cfg=None, *, overrides=(), offline: bool = False, pretrained: bool = True) -> Loaded:
    """Model, config, codec and keypoint spec for ``weights``.

    Args:
        weights: a project checkpoint (self-describing), an official / mmpose state-dict file (needs
            ``cfg``, or a zoo name which brings its own), or a zoo name (downloaded and cached). With
            ``pretrained=False`` a zoo name only selects the architecture (default :data:`DEFAULT_MODEL`).
        cfg: the experiment config (dataset, test settings); for a project checkpoint, its bound values
            must agree with the checkpoint's.
        overrides: ``KEY VALUE`` pairs (or a mapping, see :data:`OVERRIDE_ALIASES`) for inference settings.
        offline: never download (a zoo name must be cached).
        pretrained: False = untrained weights of the architecture of ``cfg`` (or of the zoo model named
            by ``weights``), seeded; the caller must say so wherever results go.

    Returns:
        ``(model, cfg, codec, spec)``; the model is on the CPU in eval mode with strictly loaded weights.
    """
    pairs = override_pairs(overrides)
    if cfg is not None:
        require_heatmap_head(cfg.MODEL, "a pose model")
    if not pretrained:
        if cfg is None:
            cfg = config_for_zoo_model(str(weights or DEFAULT_MODEL))
        cfg = with_overrides(cfg, pairs)
        return untrained_model(cfg), cfg, build_codec(cfg), keypoint_spec_for_config(cfg)
    if weights is None or str(weights) == "":
        raise ConfigError("no weights: pass a checkpoint file or a zoo name (e.g. "
                          f"{DEFAULT_MODEL}), or pretrained=False for untrained weights")
    is_zoo_name = str(weights) in ZOO
    if is_zoo_name:  # zoo files are plain weights; their entry says how they were trained (before any download)
        cfg = with_overrides(config_for_zoo_model(str(weights)) if cfg is None else cfg, pairs)
        codec = build_codec(cfg)
        codec.require_convention(ZOO[str(weights)].convention, f"zoo model '{weights}'")
    path = resolve_weights(weights, offline=offline)
    obj = read_checkpoint(path)
    if obj.get("format") == FORMAT:
        return build_from_checkpoint(path, cfg=cfg, overrides=pairs, checkpoint=obj)
    if not is_zoo_name:  # the config describes plain weights, its TEST.DECODER their convention
        if cfg is None:
            raise ConfigError(f"weights '{path}' are plain/official/mmpose weights without a config; "
                              "pass --cfg FILE (e.g. configs/coco_hrnet_w32_256x192.yaml)")
        cfg = with_overrides(cfg, pairs)
        codec = build_codec(cfg)
    model = build_model(cfg.MODEL)
    load_weights(model, obj, strict=True, name=path)
    return model.eval(), cfg, codec, keypoint_spec_for_config(cfg)


# ------------------------------------------------------------------------------------------------
# Runtimes and predictors
# ------------------------------------------------------------------------------------------------
def load_predictor(weights=None, cfg=None, *, overrides=(), device="cpu", batch_size: Optional[int] = None,
                   flip_test: Optional[bool] = None, offline: bool = False, backend: Optional[str] = None,
                   pretrained: bool = True, precision: str = "fp32", calibration_images=None,
                   performance_hint: str = "LATENCY") -> Tuple[TopDownPredictor, Any]:
    """A ready :class:`TopDownPredictor` and its config (see :func:`load_model` for the arguments).

    ``precision`` (:data:`PRECISIONS`; ``auto`` = the rule of :func:`build_runtime`) and
    ``calibration_images`` (a folder or image paths: int8 calibration and the ``auto`` probe; for ``auto``
    without them, the bundled photo :data:`AUTO_PROBE_IMAGE`) choose the numerics;
    ``predictor.backend.describe()`` reports the backend, precision and why.

    ``flip_test``, ``batch_size`` and ``backend`` default to ``TEST.FLIP_TEST``,
    ``TEST.BATCH_SIZE_PER_GPU`` and ``TEST.BACKEND`` (``torch`` = the plain module, bit-for-bit the
    official numerics; ``torch-fast`` = BatchNorm folded + channels_last; ``onnxruntime`` = exported
    once, cached next to the weights; ``auto`` = the fastest available; see :mod:`pose.backends`).
    """
    model, cfg, codec, spec = load_model(weights, cfg, overrides=overrides, offline=offline, pretrained=pretrained)
    weights_path = resolve_weights(weights, offline=True) if pretrained else None
    if calibration_images is None and precision == "auto":
        calibration_images = [AUTO_PROBE_IMAGE]  # a real photo: noise crops give a trained network few joints
    crops = calibration_crops_from(calibration_images, TopDownPredictor(model, codec, spec, flip_test=False))
    network = build_runtime(model, backend or str(cfg.TEST.BACKEND), device=device,
                            input_size=codec.input_size, weights_path=weights_path, precision=precision,
                            codec=codec, calibration_crops=crops, performance_hint=performance_hint)
    predictor = TopDownPredictor(
        network, codec, spec, device=device,
        flip_test=bool(cfg.TEST.FLIP_TEST if flip_test is None else flip_test),
        batch_size=int(batch_size or cfg.TEST.BATCH_SIZE_PER_GPU))
    return predictor, cfg


def weights_label(weights, pretrained: bool = True) -> str:
    """How reports name the weights: the zoo name or path, or ``random:<arch source>`` when untrained."""
    text = str(weights or DEFAULT_MODEL)
    return text if pretrained else f"random:{text}"


__all__ = ["AUTO_PROBE_IMAGE", "DEFAULT_MODEL", "OVERRIDE_ALIASES", "PRECISIONS", "build_from_checkpoint",
           "build_runtime", "calibration_crops_from",
           "check_fits_checkpoint", "config_for_zoo_model", "load_model", "load_predictor", "override_pairs",
           "untrained_model", "weights_label"]


# ------------------------------------------------------------------------------------------------
# ImageNet initialisation (MODEL.PRETRAINED)
# ------------------------------------------------------------------------------------------------
def is_imagenet_zoo_name(name: str) -> bool:
    """True when ``name`` is an ImageNet zoo entry or alias (``hrnet_w32_imagenet``, ``HRNet_W48_C_ssld``)."""
    return get_imagenet_info(str(name)) is not None


def load_imagenet_init(model: torch.nn.Module, name: str, prefixes: Sequence[str], *,
                       offline: bool = False, cache_dir: Optional[PathLike] = None) -> PretrainedLoadReport:
    """Initialise ``model``'s trunk from a named ImageNet classifier (``MODEL.PRETRAINED <zoo name>``).

    The file is downloaded into the cache once. Entries without a published checksum are checked for
    completeness (every official classifier tensor, with its shape) before use. The returned report
    says what was loaded into the network and what was skipped.
    """
    path, info = resolve_imagenet_weights(name, offline=offline, cache_dir=cache_dir)
    state = load_state_dict_any(path)
    if info.sha256_prefix is None:
        count = check_classifier_state_dict(state, info.arch, str(path))
        logger.info("%s: all %d tensors of the official %s classifier present with their shapes",
                    path.name, count, info.arch)
    return load_imagenet_pretrained(model, state, prefixes, source_name=f"{info.name} ({path})")
