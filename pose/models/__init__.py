"""Model presets and ``build_model``: the only place a model config is read.

``build_model(cfg.MODEL)`` understands the official HRNet schema (``MODEL.NAME: pose_hrnet``,
``MODEL.NUM_JOINTS``, ``MODEL.EXTRA.STAGE{2,3,4}.*``, ``MODEL.EXTRA.FINAL_CONV_KERNEL``), so the official
experiment YAMLs build unchanged, plus the project key ``MODEL.ARCH``, a preset name from
``HRNET_ARCHS`` that replaces the 40 lines of ``EXTRA`` stage spec. When both are given they must agree.
"""
from types import MappingProxyType
from typing import Any, Mapping, Optional

from pose.errors import ConfigError
from pose.models.complexity import count_macs, count_parameters, macs_by_module, model_summary
from pose.models.hrnet import (
    HRNetArch,
    PoseHRNet,
    StageSpec,
    check_input_size,
    normalize_crops,
)

__all__ = [
    "HRNET_ARCHS", "HRNetArch", "StageSpec", "PoseHRNet", "build_model", "build_model_from_arch",
    "arch_from_model_cfg", "check_input_size", "normalize_crops", "count_parameters", "count_macs",
    "macs_by_module", "model_summary",
]

MODEL_NAMES = ("pose_hrnet",)


def _hrnet(width: int, num_blocks: int = 4, modules=(1, 4, 3)) -> HRNetArch:
    widths = tuple(width * 2 ** b for b in range(4))
    return HRNetArch(stages=tuple(
        StageSpec(num_modules=modules[s], num_branches=s + 2, block="BASIC",
                  num_blocks=(num_blocks,) * (s + 2), num_channels=widths[:s + 2])
        for s in range(3)
    ))


# Preset table (frozen): the official W32/W48 pose nets (experiments/coco/hrnet/*.yaml) and a CPU-sized
# net for tests and smoke runs (widths 16-32-64-128, one module per stage, 2 blocks per branch; the
# 8-16-32-64 variant could not memorise the 4-image sample to AP 0.9 in a CPU test's budget).
HRNET_ARCHS: Mapping[str, HRNetArch] = MappingProxyType({
    "hrnet_w32": _hrnet(32),
    "hrnet_w48": _hrnet(48),
    "hrnet_tiny": _hrnet(16, num_blocks=2, modules=(1, 1, 1)),
})


def get_arch(name: str) -> HRNetArch:
    """The preset called ``name``; ConfigError listing the valid names otherwise."""
    try:
        return HRNET_ARCHS[name]
    except KeyError:
        raise ConfigError(f"MODEL.ARCH {name!r} is unknown; valid: {sorted(HRNET_ARCHS)}") from None


def build_model_from_arch(name: str, num_keypoints: int = 17) -> PoseHRNet:
    """A PoseHRNet from a preset name (notebook use), PyTorch default init."""
    arch = get_arch(name)
    return PoseHRNet(num_keypoints, arch.stages, stem_channels=arch.stem_channels,
                     final_conv_kernel=arch.final_conv_kernel)


def _require(node: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in node:
        raise ConfigError(f"{path}.{key} is missing")
    return node[key]


def _stage_from_node(node: Mapping[str, Any], path: str) -> StageSpec:
    values = [_require(node, key, path) for key in
              ("NUM_MODULES", "NUM_BRANCHES", "BLOCK", "NUM_BLOCKS", "NUM_CHANNELS")]
    try:
        return StageSpec(int(values[0]), int(values[1]), str(values[2]), tuple(values[3]), tuple(values[4]),
                         str(node.get("FUSE_METHOD", "SUM")))
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{path}: expected integers / integer lists ({err})") from None


def _extra_int(extra: Mapping[str, Any], key: str, default: Optional[int]) -> Optional[int]:
    if key not in extra:
        return default
    try:
        return int(extra[key])
    except (TypeError, ValueError):
        raise ConfigError(f"MODEL.EXTRA.{key} must be an integer, got {extra[key]!r}") from None


def arch_from_model_cfg(model_cfg: Mapping[str, Any]) -> HRNetArch:
    """Resolve the architecture from ``MODEL.ARCH`` and/or ``MODEL.EXTRA`` (see ``build_model``)."""
    arch_name = str(model_cfg.get("ARCH", "") or "")
    extra = model_cfg.get("EXTRA", None) or {}
    has_stages = "STAGE2" in extra
    preset = get_arch(arch_name) if arch_name else None

    if not has_stages:
        if preset is None:
            raise ConfigError("MODEL.ARCH is empty and MODEL.EXTRA has no STAGE2: set MODEL.ARCH to one of "
                              f"{sorted(HRNET_ARCHS)} or give MODEL.EXTRA.STAGE2/3/4")
        stages = preset.stages
    else:
        stages = tuple(_stage_from_node(_require(extra, f"STAGE{k}", "MODEL.EXTRA"), f"MODEL.EXTRA.STAGE{k}")
                       for k in (2, 3, 4))
    stem = _extra_int(extra, "STEM_INPLANES", preset.stem_channels if preset else 64)
    kernel = _extra_int(extra, "FINAL_CONV_KERNEL", preset.final_conv_kernel if preset else 1)
    arch = HRNetArch(stages=stages, stem_channels=stem, final_conv_kernel=kernel)

    if preset is not None and arch != preset:
        for k, (given, wanted) in enumerate(zip(arch.stages, preset.stages), start=2):
            if given != wanted:
                raise ConfigError(f"MODEL.EXTRA.STAGE{k} {given} disagrees with MODEL.ARCH {arch_name!r} "
                                  f"({wanted}); drop MODEL.EXTRA.STAGE* or MODEL.ARCH, or make them agree")
        raise ConfigError(f"MODEL.EXTRA STEM_INPLANES/FINAL_CONV_KERNEL ({stem}, {kernel}) disagree with "
                          f"MODEL.ARCH {arch_name!r} ({preset.stem_channels}, {preset.final_conv_kernel})")
    return arch


def build_model(model_cfg: Mapping[str, Any]) -> PoseHRNet:
    """Build the pose network from the ``cfg.MODEL`` node (a yacs CfgNode or a plain nested dict).

    Keys read: ``NAME`` (only ``'pose_hrnet'``; default when absent), ``NUM_JOINTS``, ``ARCH`` (preset
    name or empty), ``EXTRA.STAGE{2,3,4}.{NUM_MODULES, NUM_BRANCHES, BLOCK, NUM_BLOCKS, NUM_CHANNELS,
    FUSE_METHOD}``, ``EXTRA.FINAL_CONV_KERNEL`` (default 1), ``EXTRA.STEM_INPLANES`` (default 64) and, if
    present, ``IMAGE_SIZE`` ``[W, H]`` (checked to be multiples of the model's size divisor).

    With ``ARCH`` set and no ``EXTRA.STAGE2`` the preset is used; with both, they must agree. The model
    keeps PyTorch's default init (call ``model.init_weights()`` for the official training init).

    Raises:
        ConfigError: unknown NAME/ARCH/BLOCK, missing or inconsistent keys, unsupported IMAGE_SIZE.
    """
    name = str(model_cfg.get("NAME", "pose_hrnet"))
    if name not in MODEL_NAMES:
        raise ConfigError(f"MODEL.NAME {name!r} is not supported; valid: {list(MODEL_NAMES)}")
    raw_joints = _require(model_cfg, "NUM_JOINTS", "MODEL")
    try:
        num_joints = int(raw_joints)
    except (TypeError, ValueError):
        raise ConfigError(f"MODEL.NUM_JOINTS must be an integer, got {raw_joints!r}") from None
    arch = arch_from_model_cfg(model_cfg)
    model = PoseHRNet(num_joints, arch.stages, stem_channels=arch.stem_channels,
                      final_conv_kernel=arch.final_conv_kernel)
    image_size = model_cfg.get("IMAGE_SIZE", None)
    if image_size is not None:
        check_input_size(tuple(image_size), model.size_divisor)
    return model

