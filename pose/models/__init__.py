"""HRNet models: one trunk, four heads (arXiv 1908.07919), presets, ``build_model`` and cost counting.

Files:
    presets         torch-free facts: StageSpec, HRNetArch, preset tables, official names and numbers
    hrnet           blocks, HighResolutionModule, HRNetTrunk (every branch) and PoseHRNet (V1 heatmaps)
    hrnetv2         PoseHRNetV2 (V2 heatmaps) and HRNetV2p (feature pyramid for torchvision detectors)
    classification  ClsHRNet: the official ImageNet classifier (cls_hrnet)
    imagenet        the official ImageNet eval crop and ``classify`` (top-k of one image)
    build           ``build_model(cfg.MODEL)``: the only place a model config is read
    complexity      parameter and multiply-add counts, as the official ``get_model_summary``

``build_model(cfg.MODEL)`` understands the official HRNet schemas (``MODEL.NAME: pose_hrnet`` with
``MODEL.EXTRA.STAGE{2,3,4}``; ``MODEL.NAME: cls_hrnet`` with ``STAGE1`` to ``STAGE4``), so the official
experiment YAMLs build unchanged, plus the project keys ``MODEL.ARCH`` (a preset name) and ``MODEL.HEAD``
(``v1``, ``v2``, ``v2p``, ``classification``); see ``pose.models.build``.
"""
from pose.models.build import (
    arch_from_model_cfg,
    build_model,
    build_model_from_arch,
    build_network,
    head_from_model_cfg,
    require_heatmap_head,
)
from pose.models.classification import ClsHRNet
from pose.models.complexity import (
    count_macs,
    count_parameters,
    macs_by_module,
    macs_to_readme_gflops,
    model_summary,
)
from pose.models.hrnet import HRNetTrunk, PoseHRNet, check_input_size, normalize_crops
from pose.models.hrnetv2 import HRNetV2p, PoseHRNetV2, upsample_concat
from pose.models.imagenet import TopKClasses, classify, imagenet_categories, imagenet_eval_crop
from pose.models.presets import (
    CLS_HRNET_ARCHS,
    HEAD_NAMES,
    HRNET_ARCHS,
    MODEL_NAMES,
    OFFICIAL_CLS_RESULTS,
    TRUNK_ARCHS,
    HRNetArch,
    StageSpec,
    get_arch,
)

__all__ = [
    "HRNET_ARCHS", "CLS_HRNET_ARCHS", "TRUNK_ARCHS", "OFFICIAL_CLS_RESULTS", "HEAD_NAMES", "MODEL_NAMES",
    "HRNetArch", "StageSpec", "get_arch",
    "HRNetTrunk", "PoseHRNet", "PoseHRNetV2", "HRNetV2p", "ClsHRNet", "upsample_concat",
    "build_model", "build_model_from_arch", "build_network", "arch_from_model_cfg", "head_from_model_cfg",
    "require_heatmap_head",
    "check_input_size", "normalize_crops",
    "count_parameters", "count_macs", "macs_by_module", "macs_to_readme_gflops", "model_summary",
    "classify", "imagenet_eval_crop", "imagenet_categories", "TopKClasses",
]
