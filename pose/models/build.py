"""``build_model``: the only place a model config is read (a yacs CfgNode or a plain nested dict).

The official schemas build unchanged:
- pose (``experiments/coco|mpii/hrnet/*.yaml``): ``MODEL.NAME: pose_hrnet``, ``MODEL.NUM_JOINTS``,
  ``MODEL.EXTRA.STAGE{2,3,4}.*``, ``MODEL.EXTRA.FINAL_CONV_KERNEL``;
- classification (``experiments/cls_hrnet_*.yaml``): ``MODEL.NAME: cls_hrnet``, ``MODEL.EXTRA.STAGE1``
  (with the official typo ``NUM_RANCHES``) to ``STAGE4``, ``MODEL.EXTRA.WITH_HEAD`` (ignored, as the
  official code ignores it), optional ``MODEL.NUM_CLASSES`` (official default 1000).

Project keys, all optional (read with ``.get``):
- ``MODEL.ARCH``: a preset name replacing the stage spec (``HRNET_ARCHS`` for V1, any of
  ``TRUNK_ARCHS`` for the other heads); when stages are given too they must agree;
- ``MODEL.HEAD`` (or ``MODEL.EXTRA.HEAD``, which today's schema already accepts): ``v1`` (default for
  pose_hrnet), ``v2``, ``v2p`` (pose_hrnet) or ``classification`` (cls_hrnet's only head);
- ``MODEL.EXTRA.PYRAMID_LEVELS`` (4 or 5, default 5), ``MODEL.EXTRA.PYRAMID_CHANNELS`` (default 256)
  and ``MODEL.EXTRA.PYRAMID_CONV_KERNEL`` (1 or 3, default 3) for ``v2p``.
"""
from typing import Any, Mapping, Optional

from torch import nn

from pose.errors import ConfigError
from pose.models.classification import ClsHRNet
from pose.models.hrnet import PoseHRNet, check_input_size, trunk_kwargs
from pose.models.hrnetv2 import HRNetV2p, PoseHRNetV2
from pose.models.presets import (
    CLS_HRNET,
    HEAD_CLASSIFICATION,
    HEAD_NAMES,
    HEAD_V1,
    HEAD_V2,
    HEAD_V2P,
    HEADS_BY_MODEL_NAME,
    HEATMAP_HEADS,
    HRNET_ARCHS,
    IMAGENET_NUM_CLASSES,
    OFFICIAL_STAGE1,
    POSE_HRNET,
    PYRAMID_CHANNELS,
    PYRAMID_LEVELS,
    STAGE1_BRANCHES_TYPO,
    STAGE_KEYS,
    HRNetArch,
    StageSpec,
    get_arch,
    presets_for_head,
)


def _require(node: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in node:
        raise ConfigError(f"{path}.{key} is missing")
    return node[key]


def _int(node: Mapping[str, Any], key: str, path: str, default: Optional[int]) -> Optional[int]:
    if key not in node:
        return default
    try:
        return int(node[key])
    except (TypeError, ValueError):
        raise ConfigError(f"{path}.{key} must be an integer, got {node[key]!r}") from None


def _stage_from_node(node: Mapping[str, Any], path: str) -> StageSpec:
    values = [_require(node, key, path) for key in STAGE_KEYS[:5]]
    try:
        return StageSpec(int(values[0]), int(values[1]), str(values[2]), tuple(values[3]), tuple(values[4]),
                         str(node.get("FUSE_METHOD", "SUM")))
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{path}: expected integers / integer lists ({err})") from None


def _stage1_from_node(node: Mapping[str, Any], path: str) -> StageSpec:
    """STAGE1 as the official classification code reads it: BLOCK, NUM_BLOCKS[0], NUM_CHANNELS[0].

    NUM_MODULES and the branch count (spelled NUM_BRANCHES or the official NUM_RANCHES) may be given and
    must then be 1: stage 1 is one residual layer.
    """
    branches = {key: node[key] for key in ("NUM_BRANCHES", STAGE1_BRANCHES_TYPO) if key in node}
    merged = {"NUM_MODULES": 1, "FUSE_METHOD": "SUM", **dict(node),
              "NUM_BRANCHES": next(iter(branches.values()), 1)}
    if len(set(map(str, branches.values()))) > 1:
        raise ConfigError(f"{path}: NUM_BRANCHES and {STAGE1_BRANCHES_TYPO} disagree ({branches})")
    spec = _stage_from_node(merged, path)
    if spec.num_modules != 1 or spec.num_branches != 1:
        raise ConfigError(f"{path}: NUM_MODULES and NUM_BRANCHES must be 1 (stage 1 is one residual layer, "
                          f"layer1), got {spec.num_modules} and {spec.num_branches}")
    return spec


def head_from_model_cfg(model_cfg: Mapping[str, Any]) -> str:
    """The head named by ``MODEL.HEAD`` / ``MODEL.EXTRA.HEAD``, checked against ``MODEL.NAME``.

    Raises:
        ConfigError: unknown NAME or HEAD, the two HEAD keys disagree, or the head does not belong to NAME.
    """
    name = str(model_cfg.get("NAME", POSE_HRNET))
    if name not in HEADS_BY_MODEL_NAME:
        raise ConfigError(f"MODEL.NAME {name!r} is not supported; valid: [{POSE_HRNET!r}] (heads "
                          f"{', '.join(HEADS_BY_MODEL_NAME[POSE_HRNET])}) and [{CLS_HRNET!r}] (ImageNet "
                          "classification)")
    extra = model_cfg.get("EXTRA", None) or {}
    given = {key: str(node.get("HEAD")).lower() for key, node in (("MODEL.HEAD", model_cfg),
                                                                   ("MODEL.EXTRA.HEAD", extra))
             if node.get("HEAD", None) not in (None, "")}
    if len(set(given.values())) > 1:
        raise ConfigError(f"MODEL.HEAD and MODEL.EXTRA.HEAD disagree ({given}); set one of them")
    allowed = HEADS_BY_MODEL_NAME[name]
    head = next(iter(given.values()), allowed[0])
    if head not in HEAD_NAMES:
        raise ConfigError(f"{next(iter(given))} {head!r} is unknown; valid: {list(HEAD_NAMES)}")
    if head not in allowed:
        owner = next(n for n, heads in HEADS_BY_MODEL_NAME.items() if head in heads)
        raise ConfigError(f"{next(iter(given))} {head!r} does not go with MODEL.NAME {name!r} (its heads: "
                          f"{list(allowed)}); use MODEL.NAME {owner!r}")
    return head


def require_heatmap_head(model_cfg: Mapping[str, Any], purpose: str) -> str:
    """The head of ``model_cfg``, which must give heatmaps (v1, v2) for ``purpose`` (e.g. 'training').

    Raises:
        ConfigError: a v2p backbone or a classifier, with what to use instead.
    """
    head = head_from_model_cfg(model_cfg)
    if head not in HEATMAP_HEADS:
        raise ConfigError(f"MODEL.HEAD {head!r} (MODEL.NAME {model_cfg.get('NAME', POSE_HRNET)!r}) gives no "
                          f"heatmaps, but {purpose} needs them; expected one of {list(HEATMAP_HEADS)} "
                          "(build v2p / classification networks with pose.models.build_model and export them "
                          "with pose.export.export_readout)")
    return head


def arch_from_model_cfg(model_cfg: Mapping[str, Any]) -> HRNetArch:
    """Resolve the architecture from ``MODEL.ARCH`` and/or ``MODEL.EXTRA`` (see ``build_model``)."""
    head = head_from_model_cfg(model_cfg)
    arch_name = str(model_cfg.get("ARCH", "") or "")
    extra = model_cfg.get("EXTRA", None) or {}
    has_stages = "STAGE2" in extra
    presets = presets_for_head(head)
    preset = get_arch(arch_name, presets) if arch_name else None

    if not has_stages:
        if preset is None:
            raise ConfigError("MODEL.ARCH is empty and MODEL.EXTRA has no STAGE2: set MODEL.ARCH to one of "
                              f"{sorted(presets)} or give MODEL.EXTRA.STAGE2/3/4")
        stages = preset.stages
    else:
        stages = tuple(_stage_from_node(_require(extra, f"STAGE{k}", "MODEL.EXTRA"), f"MODEL.EXTRA.STAGE{k}")
                       for k in (2, 3, 4))
    if "STAGE1" in extra:
        stage1 = _stage1_from_node(extra["STAGE1"], "MODEL.EXTRA.STAGE1")
    else:
        stage1 = preset.stage1 if preset else OFFICIAL_STAGE1
    stem = _int(extra, "STEM_INPLANES", "MODEL.EXTRA", preset.stem_channels if preset else 64)
    kernel = _int(extra, "FINAL_CONV_KERNEL", "MODEL.EXTRA", preset.final_conv_kernel if preset else 1)
    arch = HRNetArch(stages=stages, stem_channels=stem, final_conv_kernel=kernel, stage1=stage1)

    if preset is not None and arch != preset:
        for k, (given, wanted) in enumerate(zip(arch.stages, preset.stages), start=2):
            if given != wanted:
                raise ConfigError(f"MODEL.EXTRA.STAGE{k} {given} disagrees with MODEL.ARCH {arch_name!r} "
                                  f"({wanted}); drop MODEL.EXTRA.STAGE* or MODEL.ARCH, or make them agree")
        if arch.stage1 != preset.stage1:
            raise ConfigError(f"MODEL.EXTRA.STAGE1 {arch.stage1} disagrees with MODEL.ARCH {arch_name!r} "
                              f"({preset.stage1})")
        raise ConfigError(f"MODEL.EXTRA STEM_INPLANES/FINAL_CONV_KERNEL ({stem}, {kernel}) disagree with "
                          f"MODEL.ARCH {arch_name!r} ({preset.stem_channels}, {preset.final_conv_kernel})")
    return arch


def build_network(arch: HRNetArch, *, head: str = HEAD_V1, num_keypoints: int = 17,
                  num_classes: int = IMAGENET_NUM_CLASSES, pyramid_levels: int = PYRAMID_LEVELS,
                  pyramid_channels: int = PYRAMID_CHANNELS, pyramid_conv_kernel: int = 3) -> nn.Module:
    """Assemble trunk + ``head`` from plain values (PyTorch default init).

    ``num_keypoints`` is read by the heatmap heads (v1, v2), ``num_classes`` by classification and the
    ``pyramid_*`` values by v2p.
    """
    trunk = trunk_kwargs(arch)
    if head == HEAD_V1:
        return PoseHRNet(num_keypoints, arch.stages, final_conv_kernel=arch.final_conv_kernel, **trunk)
    if head == HEAD_V2:
        return PoseHRNetV2(num_keypoints, arch.stages, final_conv_kernel=arch.final_conv_kernel, **trunk)
    if head == HEAD_V2P:
        return HRNetV2p(arch.stages, num_levels=pyramid_levels, out_channels=pyramid_channels,
                        level_conv_kernel=pyramid_conv_kernel, **trunk)
    if head == HEAD_CLASSIFICATION:
        return ClsHRNet(arch.stages, num_classes=num_classes, **trunk)
    raise ConfigError(f"head {head!r} is unknown; valid: {list(HEAD_NAMES)}")


def build_model_from_arch(name: str, num_keypoints: int = 17, *, head: str = HEAD_V1,
                          num_classes: int = IMAGENET_NUM_CLASSES) -> nn.Module:
    """A network from a preset name (notebook use), PyTorch default init.

    ``head='v1'`` (default) looks the name up in ``HRNET_ARCHS`` and returns a PoseHRNet; the other heads
    accept any ``TRUNK_ARCHS`` name (e.g. ``build_model_from_arch('hrnet_w18_small_v1',
    head='classification')``).
    """
    if head not in HEAD_NAMES:
        raise ConfigError(f"head {head!r} is unknown; valid: {list(HEAD_NAMES)}")
    arch = get_arch(name, presets_for_head(head))
    return build_network(arch, head=head, num_keypoints=num_keypoints, num_classes=num_classes)


def build_model(model_cfg: Mapping[str, Any]) -> nn.Module:
    """Build the network from the ``cfg.MODEL`` node (a yacs CfgNode or a plain nested dict).

    Keys read: ``NAME`` (``'pose_hrnet'``, the default, or ``'cls_hrnet'``), ``HEAD`` / ``EXTRA.HEAD``
    (see the module docstring), ``NUM_JOINTS`` (heatmap heads), ``NUM_CLASSES`` (classification, default
    1000), ``ARCH`` (preset name or empty), ``EXTRA.STAGE{1,2,3,4}.{NUM_MODULES, NUM_BRANCHES, BLOCK,
    NUM_BLOCKS, NUM_CHANNELS, FUSE_METHOD}`` (STAGE1 optional, default the official pose layer1),
    ``EXTRA.FINAL_CONV_KERNEL`` (default 1), ``EXTRA.STEM_INPLANES`` (default 64), ``EXTRA.PYRAMID_*``
    (v2p) and, if present, ``IMAGE_SIZE`` ``[W, H]`` (checked to be multiples of the model's size divisor).

    Returns:
        ``PoseHRNet`` (v1), ``PoseHRNetV2`` (v2), ``HRNetV2p`` (v2p) or ``ClsHRNet`` (classification),
        with PyTorch's default init (``model.init_weights()`` gives the official training init).

    Raises:
        ConfigError: unknown NAME/HEAD/ARCH/BLOCK, missing or inconsistent keys, unsupported IMAGE_SIZE.
    """
    head = head_from_model_cfg(model_cfg)
    num_joints = 17
    if head in (HEAD_V1, HEAD_V2):
        raw_joints = _require(model_cfg, "NUM_JOINTS", "MODEL")
        try:
            num_joints = int(raw_joints)
        except (TypeError, ValueError):
            raise ConfigError(f"MODEL.NUM_JOINTS must be an integer, got {raw_joints!r}") from None
    extra = model_cfg.get("EXTRA", None) or {}
    arch = arch_from_model_cfg(model_cfg)
    model = build_network(
        arch, head=head, num_keypoints=num_joints,
        num_classes=_int(model_cfg, "NUM_CLASSES", "MODEL", IMAGENET_NUM_CLASSES),
        pyramid_levels=_int(extra, "PYRAMID_LEVELS", "MODEL.EXTRA", PYRAMID_LEVELS),
        pyramid_channels=_int(extra, "PYRAMID_CHANNELS", "MODEL.EXTRA", PYRAMID_CHANNELS),
        pyramid_conv_kernel=_int(extra, "PYRAMID_CONV_KERNEL", "MODEL.EXTRA", 3))
    image_size = model_cfg.get("IMAGE_SIZE", None)
    if image_size is not None:
        check_input_size(tuple(image_size), model.size_divisor)
    return model


__all__ = ["HRNET_ARCHS", "arch_from_model_cfg", "build_model", "build_model_from_arch", "build_network",
           "head_from_model_cfg", "require_heatmap_head"]
