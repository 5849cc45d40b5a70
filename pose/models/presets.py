"""Frozen HRNet architecture facts: stage specs, the preset tables, and the official names and values.

Torch-free on purpose (config validation and checkpoint loading import it without building a model).
Provenance: the official experiment YAMLs of ``leoxiaobin/deep-high-resolution-net.pytorch``
(``experiments/coco/hrnet/*.yaml``) and ``HRNet/HRNet-Image-Classification``
(``experiments/cls_hrnet_*.yaml``, commit f760c98, copied in ``shared/reference/official-cls-configs/``),
and that repository's README table.

Vocabulary: the *trunk* is stem + stage 1 (``layer1``) + stages 2-4; it returns one tensor per branch,
branch ``b`` at 1/(4*2^b) of the input. A *head* reads the branches out (arXiv 1908.07919, Fig. 4):
``v1`` (top branch only: pose heatmaps), ``v2`` (all branches upsampled and concatenated: heatmaps),
``v2p`` (the v2 concatenation pooled to a feature pyramid: detection) and ``classification`` (ImageNet).
"""
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping, Sequence, Tuple, Union

from pose.errors import ConfigError

# ---- names the official YAMLs use ------------------------------------------------------------------

BASIC = "BASIC"
BOTTLENECK = "BOTTLENECK"
BLOCK_NAMES = (BASIC, BOTTLENECK)
# Residual-block expansion (output channels / block width), a fact of the two block types.
BLOCK_EXPANSION = MappingProxyType({BASIC: 1, BOTTLENECK: 4})
FUSE_METHODS = ("SUM",)  # the official code always sums; no other method exists there

# Keys of one MODEL.EXTRA.STAGEn section, in the official YAML order.
STAGE_KEYS = ("NUM_MODULES", "NUM_BRANCHES", "BLOCK", "NUM_BLOCKS", "NUM_CHANNELS", "FUSE_METHOD")
# Every official classification YAML spells STAGE1's branch count this way; the official code never
# reads it (nor STAGE1.NUM_MODULES), so a loader that accepts those files must tolerate it.
STAGE1_BRANCHES_TYPO = "NUM_RANCHES"

# MODEL.EXTRA.PRETRAINED_LAYERS of the official pose YAMLs: the ImageNet-checkpoint key prefixes copied
# into the pose net (everything but the classifier head and the pose net's own final_layer).
OFFICIAL_PRETRAINED_LAYERS = ("conv1", "bn1", "conv2", "bn2", "layer1", "transition1", "stage2",
                              "transition2", "stage3", "transition3", "stage4")

# ImageNet statistics (RGB, in [0, 1] units) used by every official HRNet pipeline.
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)

# ---- model families and heads ----------------------------------------------------------------------

POSE_HRNET = "pose_hrnet"  # official pose repo: MODEL.NAME of experiments/coco|mpii/hrnet/*.yaml
CLS_HRNET = "cls_hrnet"    # official classification repo: MODEL.NAME of experiments/cls_hrnet_*.yaml
MODEL_NAMES = (POSE_HRNET, CLS_HRNET)

HEAD_V1 = "v1"                           # 1x1 conv on the top branch (official pose_hrnet)
HEAD_V2 = "v2"                           # concat of all branches -> conv-BN-ReLU -> conv (HRNetV2)
HEAD_V2P = "v2p"                         # v2 concat -> 1x1 reduce -> avg-pool pyramid -> conv per level
HEAD_CLASSIFICATION = "classification"   # incre/downsamp/final_layer/classifier (official cls_hrnet)
HEAD_NAMES = (HEAD_V1, HEAD_V2, HEAD_V2P, HEAD_CLASSIFICATION)
HEATMAP_HEADS = (HEAD_V1, HEAD_V2)  # the heads a pose predictor, training and pose-export can use
# Heads each MODEL.NAME accepts; the first is its default when no head is named.
HEADS_BY_MODEL_NAME = MappingProxyType({
    POSE_HRNET: (HEAD_V1, HEAD_V2, HEAD_V2P),
    CLS_HRNET: (HEAD_CLASSIFICATION,),
})

# Classification head widths (official cls_hrnet.py ``head_channels``), fixed whatever the trunk width:
# each branch goes through one Bottleneck to 4x these (128/256/512/1024), then a 1x1 conv to 2048.
CLS_HEAD_CHANNELS = (32, 64, 128, 256)
CLS_FEATURE_CHANNELS = 2048
IMAGENET_NUM_CLASSES = 1000

# HRNetV2p (official HRNet-Object-Detection ``HRFPN``): 256 channels, 5 levels at strides 4..64.
PYRAMID_CHANNELS = 256
PYRAMID_LEVELS = 5
PYRAMID_LEVEL_CHOICES = (4, 5)


# ---- stage and architecture records ----------------------------------------------------------------

@dataclass(frozen=True)
class StageSpec:
    """One HRNet stage: ``num_modules`` HighResolutionModules over ``num_branches`` parallel branches.

    Attributes:
        num_modules: exchange units in the stage (official NUM_MODULES).
        num_branches: parallel resolutions (official NUM_BRANCHES).
        block: ``'BASIC'`` or ``'BOTTLENECK'`` (official BLOCK).
        num_blocks: residual blocks per branch (length ``num_branches``).
        num_channels: block width per branch (length ``num_branches``); a branch carries
            ``num_channels[b] * expansion`` channels.
        fuse_method: only ``'SUM'`` (the official one).
    """

    num_modules: int
    num_branches: int
    block: str
    num_blocks: Tuple[int, ...]
    num_channels: Tuple[int, ...]
    fuse_method: str = "SUM"

    def __post_init__(self):
        object.__setattr__(self, "num_blocks", tuple(int(v) for v in self.num_blocks))
        object.__setattr__(self, "num_channels", tuple(int(v) for v in self.num_channels))
        object.__setattr__(self, "block", str(self.block).upper())
        object.__setattr__(self, "fuse_method", str(self.fuse_method).upper())
        if self.block not in BLOCK_NAMES:
            raise ConfigError(f"BLOCK {self.block!r} is unknown; valid: {sorted(BLOCK_NAMES)}")
        if self.fuse_method not in FUSE_METHODS:
            raise ConfigError(f"FUSE_METHOD {self.fuse_method!r} is unknown; valid: {list(FUSE_METHODS)}")
        if int(self.num_modules) < 1 or int(self.num_branches) < 1:
            raise ConfigError(f"NUM_MODULES and NUM_BRANCHES must be >= 1, got {self.num_modules} and "
                              f"{self.num_branches}")
        if len(self.num_blocks) != self.num_branches or len(self.num_channels) != self.num_branches:
            raise ConfigError(f"NUM_BLOCKS {list(self.num_blocks)} and NUM_CHANNELS "
                              f"{list(self.num_channels)} must each have NUM_BRANCHES = "
                              f"{self.num_branches} entries")
        if min(self.num_blocks) < 1 or min(self.num_channels) < 1:
            raise ConfigError(f"NUM_BLOCKS {list(self.num_blocks)} and NUM_CHANNELS "
                              f"{list(self.num_channels)} must be positive")

    @property
    def branch_channels(self) -> Tuple[int, ...]:
        """Channels each branch carries: ``num_channels[b] * expansion``."""
        return tuple(c * BLOCK_EXPANSION[self.block] for c in self.num_channels)


StageLike = Union[StageSpec, Sequence]


def as_stage_spec(stage: StageLike) -> StageSpec:
    """A StageSpec, or a plain tuple ``(num_modules, num_branches, block, num_blocks, num_channels)``."""
    return stage if isinstance(stage, StageSpec) else StageSpec(*stage)


# Stage 1 of the official pose net (``layer1``: 4 Bottlenecks of width 64 -> 256 channels). The official
# pose code hard-codes it; the classification code reads it from MODEL.EXTRA.STAGE1.
OFFICIAL_STAGE1 = StageSpec(1, 1, BOTTLENECK, (4,), (64,))


@dataclass(frozen=True)
class HRNetArch:
    """A complete HRNet trunk (plus the V1/V2 final conv kernel): everything but the head's outputs.

    Attributes:
        stages: stage 2, 3 and 4 specs.
        stem_channels: width of conv1/conv2 (official 64).
        final_conv_kernel: kernel of the heatmap heads' last conv, 1 or 3 (official 1).
        stage1: ``layer1``, one residual layer (1 module, 1 branch); default the official pose one.
    """

    stages: Tuple[StageSpec, StageSpec, StageSpec]
    stem_channels: int = 64
    final_conv_kernel: int = 1
    stage1: StageSpec = OFFICIAL_STAGE1

    def __post_init__(self):
        object.__setattr__(self, "stages", tuple(as_stage_spec(s) for s in self.stages))
        stage1 = as_stage_spec(self.stage1)
        if stage1.num_modules != 1 or stage1.num_branches != 1:
            raise ConfigError(f"STAGE1 must have NUM_MODULES 1 and one branch (it is a single residual "
                              f"layer, layer1), got {stage1.num_modules} and {stage1.num_branches}")
        object.__setattr__(self, "stage1", stage1)

    @property
    def branch_channels(self) -> Tuple[int, ...]:
        """Channels of the trunk's output branches (the last stage's), top branch first."""
        return self.stages[-1].branch_channels


def _stage(num_modules: int, width: int, num_branches: int, num_blocks: int) -> StageSpec:
    return StageSpec(num_modules, num_branches, BASIC, (num_blocks,) * num_branches,
                     tuple(width * 2 ** b for b in range(num_branches)))


def hrnet_arch(width: int, *, num_blocks: int = 4, modules: Tuple[int, int, int] = (1, 4, 3),
               stage1_blocks: int = 4, stage1_channels: int = 64) -> HRNetArch:
    """The regular HRNet family: widths ``C, 2C, 4C, 8C``, BASIC blocks, official stage 1 by default."""
    stages = tuple(_stage(modules[s], width, s + 2, num_blocks) for s in range(3))
    return HRNetArch(stages=stages, stage1=StageSpec(1, 1, BOTTLENECK, (stage1_blocks,), (stage1_channels,)))


# Pose presets (the official pose nets, experiments/coco/hrnet/*.yaml) and a CPU-sized net for tests and
# smoke runs (widths 16-32-64-128, one module per stage, 2 blocks per branch; the 8-16-32-64 variant could
# not memorise the 4-image sample to AP 0.9 in a CPU test's budget).
HRNET_ARCHS: Mapping[str, HRNetArch] = MappingProxyType({
    "hrnet_w32": hrnet_arch(32),
    "hrnet_w48": hrnet_arch(48),
    "hrnet_tiny": hrnet_arch(16, num_blocks=2, modules=(1, 1, 1)),
})

# Trunks of the official ImageNet classifiers (experiments/cls_hrnet_<name>_sgd_lr5e-2_wd1e-4_bs32_x100.yaml).
# W32 and W48 are the same trunks as the pose presets. The two small nets shrink stage 1 and the number
# of modules and blocks.
CLS_HRNET_ARCHS: Mapping[str, HRNetArch] = MappingProxyType({
    "hrnet_w18_small_v1": hrnet_arch(16, num_blocks=2, modules=(1, 1, 1), stage1_blocks=1,
                                     stage1_channels=32),
    "hrnet_w18_small_v2": hrnet_arch(18, num_blocks=2, modules=(1, 3, 2), stage1_blocks=2),
    "hrnet_w18": hrnet_arch(18),
    "hrnet_w30": hrnet_arch(30),
    "hrnet_w32": hrnet_arch(32),
    "hrnet_w40": hrnet_arch(40),
    "hrnet_w44": hrnet_arch(44),
    "hrnet_w48": hrnet_arch(48),
    "hrnet_w64": hrnet_arch(64),
})

# Every trunk preset. V1 (the published pose nets) resolves MODEL.ARCH in HRNET_ARCHS only; the other
# heads accept any trunk here (HRNetV2-W18 is the official facial-landmark trunk).
TRUNK_ARCHS: Mapping[str, HRNetArch] = MappingProxyType({**CLS_HRNET_ARCHS, **HRNET_ARCHS})


def get_arch(name: str, presets: Mapping[str, HRNetArch] = HRNET_ARCHS) -> HRNetArch:
    """The preset called ``name`` in ``presets``; ConfigError listing the valid names otherwise."""
    try:
        return presets[name]
    except KeyError:
        raise ConfigError(f"MODEL.ARCH {name!r} is unknown; valid: {sorted(presets)}") from None


def presets_for_head(head: str) -> Mapping[str, HRNetArch]:
    """Where MODEL.ARCH is looked up for ``head``: the pose presets for V1, every trunk otherwise."""
    return HRNET_ARCHS if head == HEAD_V1 else TRUNK_ARCHS


# ---- published numbers of the official classifiers -------------------------------------------------

@dataclass(frozen=True)
class PublishedClassifier:
    """One row of the HRNet-Image-Classification README table (ImageNet val, 224x224 centre crop).

    Attributes:
        model: the README's model name.
        config: the official experiment YAML.
        params_millions: "#Params" as printed.
        gflops: "GFLOPs" as printed; they are conv + linear multiply-adds / 2**30 (``get_model_summary``),
            not FLOPs.
        top1_error, top5_error: percent.
    """

    model: str
    config: str
    params_millions: float
    gflops: float
    top1_error: float
    top5_error: float


def _yaml(name: str) -> str:
    return f"cls_hrnet_{name}_sgd_lr5e-2_wd1e-4_bs32_x100.yaml"


OFFICIAL_CLS_RESULTS: Mapping[str, PublishedClassifier] = MappingProxyType({
    "hrnet_w18_small_v1": PublishedClassifier("HRNet-W18-C-Small-v1", _yaml("w18_small_v1"),
                                              13.2, 1.49, 27.7, 9.3),
    "hrnet_w18_small_v2": PublishedClassifier("HRNet-W18-C-Small-v2", _yaml("w18_small_v2"),
                                              15.6, 2.42, 24.9, 7.6),
    "hrnet_w18": PublishedClassifier("HRNet-W18-C", _yaml("w18"), 21.3, 3.99, 23.2, 6.6),
    "hrnet_w30": PublishedClassifier("HRNet-W30-C", _yaml("w30"), 37.7, 7.55, 21.8, 5.8),
    "hrnet_w32": PublishedClassifier("HRNet-W32-C", _yaml("w32"), 41.2, 8.31, 21.5, 5.8),
    "hrnet_w40": PublishedClassifier("HRNet-W40-C", _yaml("w40"), 57.6, 11.8, 21.1, 5.5),
    "hrnet_w44": PublishedClassifier("HRNet-W44-C", _yaml("w44"), 67.1, 13.9, 21.1, 5.6),
    "hrnet_w48": PublishedClassifier("HRNet-W48-C", _yaml("w48"), 77.5, 16.1, 20.7, 5.5),
    "hrnet_w64": PublishedClassifier("HRNet-W64-C", _yaml("w64"), 128.1, 26.9, 20.5, 5.4),
})
