"""HRNet for top-down pose estimation (``pose_hrnet``), state-dict compatible with the official code.

Provenance: the architecture of ``lib/models/pose_hrnet.py`` in leoxiaobin/deep-high-resolution-net.pytorch
(commit 6f69e46), re-implemented from the written spec in ``shared/research/official-hrnet.md`` section 1.
Attribute names, nesting and registration order reproduce the official ``state_dict()`` exactly (1754
entries for W32), so official checkpoints load with ``strict=True``; the numbers reproduce the official
forward pass (golden test in ``tests/test_models.py``).

Layout (B batch, K keypoints, input H x W; every size in the library is ``(W, H)``)::

    images (B,3,H,W) RGB in [0,255]
      -> normalize_crops                         (ImageNet mean/std, buffers inside the model)
      -> stem: conv1-bn1-relu-conv2-bn2-relu     (B,stem,H/4,W/4)
      -> layer1: 4 Bottlenecks                   (B,256,H/4,W/4)
      -> transition1, stage2, transition2, stage3, transition3, stage4
         branch b runs at 1/(4*2^b) resolution; the last stage-4 module fuses into branch 0 only
      -> final_layer (conv KxK, bias)            (B,K,H/4,W/4) heatmaps

Deliberate differences from the official code, none of which changes a number for the official configs:
- the official HighResolutionModule overwrites its input list and the caller's channel list in place;
  here every forward builds new lists;
- the official forward applies a non-identity transition of an *existing* branch to the last branch
  (``y_list[-1]``); here existing branch ``i`` is transitioned from branch ``i``. Official configs
  only have identity transitions there. New branches are made from the last (lowest-resolution)
  branch, as in the official code;
- the model normalises its input itself (``forward``); ``forward_normalized`` is the official forward.
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from pose.errors import ConfigError

BN_MOMENTUM = 0.1  # official BN_MOMENTUM; eps stays PyTorch's 1e-5 (1e-4 moves the golden output by 9e-3)

IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)

FUSE_METHODS = ("SUM",)


# --------------------------------------------------------------------------------------------------
# Input normalisation and size checks
# --------------------------------------------------------------------------------------------------

def _pixel_stats(dtype=torch.float32, device=None) -> Tuple[torch.Tensor, torch.Tensor]:
    """ImageNet mean and std in [0, 255] pixel units, each (1, 3, 1, 1)."""
    mean = torch.tensor([255.0 * m for m in IMAGENET_MEAN_RGB], dtype=dtype, device=device)
    std = torch.tensor([255.0 * s for s in IMAGENET_STD_RGB], dtype=dtype, device=device)
    return mean.view(1, 3, 1, 1), std.view(1, 3, 1, 1)


def normalize_crops(images: torch.Tensor, pixel_mean: Optional[torch.Tensor] = None,
                    pixel_std: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The one place crops are normalised: ``(images - 255*mean) / (255*std)`` per RGB channel.

    Equal (within float32 rounding, ~5e-7) to the official ``ToTensor()`` + ``Normalize(mean, std)``.

    Args:
        images: (B, 3, H, W) RGB in [0, 255], float or uint8 (uint8 is converted to the stats' dtype).
        pixel_mean, pixel_std: (1, 3, 1, 1) in [0, 255] units; default ImageNet's.

    Returns:
        (B, 3, H, W) float tensor.
    """
    if pixel_mean is None or pixel_std is None:
        dtype = images.dtype if images.is_floating_point() else torch.float32
        pixel_mean, pixel_std = _pixel_stats(dtype, images.device)
    if not images.is_floating_point():
        images = images.to(pixel_mean.dtype)
    return (images - pixel_mean) / pixel_std


def check_input_size(input_size: Sequence[int], divisor: int = 32) -> None:
    """Raise ConfigError unless both sides of ``input_size`` ``(W, H)`` are positive multiples of ``divisor``.

    The fuse layers upsample lower branches by exact powers of two (nearest), so every branch must be
    exactly half the size of the one above: with 4 branches H and W must be multiples of 32.
    """
    w, h = (int(v) for v in input_size)
    if w <= 0 or h <= 0 or w % divisor or h % divisor:
        raise ConfigError(f"input size (W, H) = ({w}, {h}) is not supported by this HRNet: both sides must "
                          f"be positive multiples of {divisor} (MODEL.IMAGE_SIZE), e.g. (192, 256)")


def _is_tracing() -> bool:
    return torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling()


# --------------------------------------------------------------------------------------------------
# Architecture description (plain, frozen values; presets live in pose.models.HRNET_ARCHS)
# --------------------------------------------------------------------------------------------------

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
        if self.block not in BLOCKS:
            raise ConfigError(f"BLOCK {self.block!r} is unknown; valid: {sorted(BLOCKS)}")
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


StageLike = Union[StageSpec, Sequence]


def as_stage_spec(stage: StageLike) -> StageSpec:
    """A StageSpec, or a plain tuple ``(num_modules, num_branches, block, num_blocks, num_channels)``."""
    return stage if isinstance(stage, StageSpec) else StageSpec(*stage)


@dataclass(frozen=True)
class HRNetArch:
    """A complete pose-HRNet architecture (everything but the number of keypoints)."""

    stages: Tuple[StageSpec, StageSpec, StageSpec]
    stem_channels: int = 64
    final_conv_kernel: int = 1

    def __post_init__(self):
        object.__setattr__(self, "stages", tuple(as_stage_spec(s) for s in self.stages))


# --------------------------------------------------------------------------------------------------
# Blocks
# --------------------------------------------------------------------------------------------------

def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-5, momentum=BN_MOMENTUM)


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the (optionally downsampled) input, then ReLU. Expansion 1."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None):
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = _bn(planes)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = _bn(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


class Bottleneck(nn.Module):
    """conv1x1-BN-ReLU-conv3x3(stride)-BN-ReLU-conv1x1(4*planes)-BN, plus the input, then ReLU."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = _bn(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = _bn(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = _bn(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


BLOCKS = {"BASIC": BasicBlock, "BOTTLENECK": Bottleneck}


def make_res_layer(block: type, inplanes: int, planes: int, num_blocks: int,
                   stride: int = 1) -> nn.Sequential:
    """``num_blocks`` residual blocks; block 0 gets a conv1x1+BN downsample when the shape changes."""
    downsample = None
    if stride != 1 or inplanes != planes * block.expansion:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, planes * block.expansion, kernel_size=1, stride=stride, bias=False),
            _bn(planes * block.expansion),
        )
    layers = [block(inplanes, planes, stride, downsample)]
    layers += [block(planes * block.expansion, planes) for _ in range(1, num_blocks)]
    return nn.Sequential(*layers)


# --------------------------------------------------------------------------------------------------
# HighResolutionModule and transitions
# --------------------------------------------------------------------------------------------------

def _make_fuse_step(in_ch: int, out_ch: int, last: bool) -> nn.Sequential:
    """One stride-2 step of a high->low fuse path: conv3x3 s2 + BN, ReLU only on intermediate steps."""
    layers = [nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=2, padding=1, bias=False), _bn(out_ch)]
    if not last:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """One exchange unit: each branch runs its residual blocks, then every output branch sums all inputs.

    Fusion of input branch ``j`` into output branch ``i`` (``fuse_layers[i][j]``):
    - ``j > i``: conv1x1 C_j->C_i, BN, nearest upsampling by ``2**(j-i)`` (nearest, not bilinear);
    - ``j == i``: identity (``None``);
    - ``j < i``: ``i-j`` steps of conv3x3 stride 2 + BN; intermediate steps keep C_j and end with ReLU,
      the last outputs C_i without ReLU.
    The sum is followed by ReLU, the only ReLU of the fusion. With ``multi_scale_output=False`` only
    output branch 0 is fused (the last module of the last stage).

    Args:
        block: BasicBlock or Bottleneck.
        num_blocks: blocks per branch.
        in_channels: input channels per branch (already times the block expansion).
        num_channels: block width per branch.
        multi_scale_output: fuse into every branch (True) or into branch 0 only.
    """

    def __init__(self, block: type, num_blocks: Sequence[int], in_channels: Sequence[int],
                 num_channels: Sequence[int], multi_scale_output: bool = True):
        super().__init__()
        num_branches = len(num_channels)
        if not (len(num_blocks) == len(in_channels) == num_branches):
            raise ConfigError(f"HighResolutionModule: num_blocks {list(num_blocks)}, in_channels "
                              f"{list(in_channels)} and num_channels {list(num_channels)} differ in length")
        self.num_branches = num_branches
        self.multi_scale_output = multi_scale_output
        self.branches = nn.ModuleList(
            make_res_layer(block, in_channels[b], num_channels[b], num_blocks[b]) for b in range(num_branches)
        )
        self.out_channels = tuple(c * block.expansion for c in num_channels)
        self.fuse_layers = self._make_fuse_layers() if num_branches > 1 else None
        self.relu = nn.ReLU(inplace=True)

    def _make_fuse_layers(self) -> nn.ModuleList:
        channels = self.out_channels
        num_outputs = self.num_branches if self.multi_scale_output else 1
        rows = []
        for i in range(num_outputs):
            row: List[Optional[nn.Module]] = []
            for j in range(self.num_branches):
                if j > i:
                    row.append(nn.Sequential(
                        nn.Conv2d(channels[j], channels[i], kernel_size=1, bias=False),
                        _bn(channels[i]),
                        nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"),
                    ))
                elif j == i:
                    row.append(None)
                else:
                    steps = [_make_fuse_step(channels[j], channels[j], last=False) for _ in range(i - j - 1)]
                    steps.append(_make_fuse_step(channels[j], channels[i], last=True))
                    row.append(nn.Sequential(*steps))
            rows.append(nn.ModuleList(row))
        return nn.ModuleList(rows)

    def forward(self, inputs: List[torch.Tensor]) -> List[torch.Tensor]:
        """``inputs``: one (B, C_b, H_b, W_b) tensor per branch -> fused outputs (1 or num_branches)."""
        xs = [branch(x) for branch, x in zip(self.branches, inputs)]
        if self.fuse_layers is None:
            return xs
        outputs = []
        for i, row in enumerate(self.fuse_layers):
            # Same summation order as the official code (j from 0, branch 0 counted once) so the
            # float32 result is identical.
            y = xs[0] if i == 0 else row[0](xs[0])
            for j in range(1, self.num_branches):
                y = y + (xs[j] if i == j else row[j](xs[j]))
            outputs.append(self.relu(y))
        return outputs


def make_transition(pre_channels: Sequence[int], cur_channels: Sequence[int]) -> nn.ModuleList:
    """Map a stage's branch list (``pre_channels``) to the next stage's (``cur_channels``).

    Existing branch ``i``: identity (``None``) if the width is unchanged, else conv3x3+BN+ReLU.
    New branch ``i >= len(pre)``: ``i + 1 - len(pre)`` steps of conv3x3 stride 2 + BN + ReLU applied to the
    last (lowest-resolution) branch; the intermediate steps keep ``pre[-1]`` channels.
    """
    layers: List[Optional[nn.Module]] = []
    for i, out_ch in enumerate(cur_channels):
        if i < len(pre_channels):
            if out_ch == pre_channels[i]:
                layers.append(None)
            else:
                layers.append(nn.Sequential(_conv3x3(pre_channels[i], out_ch), _bn(out_ch),
                                            nn.ReLU(inplace=True)))
        else:
            in_ch = pre_channels[-1]
            num_steps = i + 1 - len(pre_channels)
            steps = []
            for k in range(num_steps):
                step_out = out_ch if k == num_steps - 1 else in_ch
                steps.append(nn.Sequential(_conv3x3(in_ch, step_out, stride=2), _bn(step_out),
                                           nn.ReLU(inplace=True)))
            layers.append(nn.Sequential(*steps))
    return nn.ModuleList(layers)


def apply_transition(transition: nn.ModuleList, branches: List[torch.Tensor]) -> List[torch.Tensor]:
    """Run a transition: existing branches from themselves, new branches from the last branch."""
    outputs = []
    for i, layer in enumerate(transition):
        if i < len(branches):
            outputs.append(branches[i] if layer is None else layer(branches[i]))
        else:
            outputs.append(layer(branches[-1]))
    return outputs


# --------------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------------

class PoseHRNet(nn.Module):
    """Official ``pose_hrnet``: HRNet backbone + V1 heatmap head, with input normalisation inside.

    Args:
        num_keypoints: K, heatmap channels.
        stages: three stage specs (stage 2, 3, 4), each a StageSpec or a plain tuple
            ``(num_modules, num_branches, block, num_blocks, num_channels)``.
        stem_channels: width of conv1/conv2 (official 64). layer1 is always 4 Bottlenecks of width 64
            (256 output channels), as in the official code.
        final_conv_kernel: 1 (official) or 3 (padding 1) for ``final_layer``.

    ``forward(images)`` takes (B, 3, H, W) RGB in [0, 255] and returns (B, K, H/4, W/4) heatmaps in both
    train and eval mode; H and W must be multiples of ``size_divisor`` (32 with 4 branches).
    """

    LAYER1_PLANES = 64
    LAYER1_BLOCKS = 4

    def __init__(self, num_keypoints: int, stages: Sequence[StageLike], *, stem_channels: int = 64,
                 final_conv_kernel: int = 1):
        super().__init__()
        stages = tuple(as_stage_spec(s) for s in stages)
        if len(stages) != 3:
            raise ConfigError(f"pose HRNet needs exactly 3 stage specs (STAGE2, STAGE3, STAGE4), "
                              f"got {len(stages)}")
        if final_conv_kernel not in (1, 3):
            raise ConfigError(f"FINAL_CONV_KERNEL must be 1 or 3, got {final_conv_kernel}")
        if int(num_keypoints) < 1 or int(stem_channels) < 1:
            raise ConfigError(f"num_keypoints and stem_channels must be >= 1, "
                              f"got {num_keypoints}, {stem_channels}")
        self.num_keypoints = int(num_keypoints)
        self.stage_specs = stages
        self.size_divisor = 4 * 2 ** (max(s.num_branches for s in stages) - 1)

        # Registration order below is the official state_dict order.
        self.conv1 = nn.Conv2d(3, stem_channels, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = _bn(stem_channels)
        self.conv2 = nn.Conv2d(stem_channels, stem_channels, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn2 = _bn(stem_channels)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = make_res_layer(Bottleneck, stem_channels, self.LAYER1_PLANES, self.LAYER1_BLOCKS)

        pre_channels = [self.LAYER1_PLANES * Bottleneck.expansion]
        for k, spec in enumerate(stages, start=2):
            block = BLOCKS[spec.block]
            cur_channels = [c * block.expansion for c in spec.num_channels]
            setattr(self, f"transition{k - 1}", make_transition(pre_channels, cur_channels))
            is_last_stage = k == 4
            modules = []
            for m in range(spec.num_modules):
                multi_scale = not (is_last_stage and m == spec.num_modules - 1)
                modules.append(HighResolutionModule(block, spec.num_blocks, cur_channels, spec.num_channels,
                                                    multi_scale_output=multi_scale))
            setattr(self, f"stage{k}", nn.Sequential(*modules))
            pre_channels = cur_channels

        self.final_layer = nn.Conv2d(pre_channels[0], self.num_keypoints, kernel_size=final_conv_kernel,
                                     stride=1, padding=1 if final_conv_kernel == 3 else 0, bias=True)

        # [0, 255]-unit ImageNet statistics; non-persistent so checkpoints keep the official keys.
        mean, std = _pixel_stats()
        self.register_buffer("pixel_mean", mean, persistent=False)
        self.register_buffer("pixel_std", std, persistent=False)

    # ---- initialisation -------------------------------------------------------------------------

    def init_weights(self, std: float = 0.001) -> None:
        """The official training init: conv weights N(0, std^2), conv biases 0, BN weight 1 and bias 0.

        The constructor keeps PyTorch's default init, as the official test-time model does.
        """
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(module.weight, std=std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    # ---- forward --------------------------------------------------------------------------------

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB crops in [0, 255] (float or uint8) -> (B, K, H/4, W/4) heatmaps."""
        return self.forward_normalized(normalize_crops(images, self.pixel_mean, self.pixel_std))

    def forward_normalized(self, x: torch.Tensor) -> torch.Tensor:
        """The official forward: (B, 3, H, W) ImageNet-normalised RGB -> (B, K, H/4, W/4) heatmaps."""
        return self.final_layer(self.forward_features(x)[0])

    def forward_features(self, x: torch.Tensor) -> List[torch.Tensor]:
        """Normalised (B, 3, H, W) -> the stage-4 output branches.

        The last stage-4 module fuses into branch 0 only (official ``multi_scale_output=False``), so for
        the official architectures this is a one-element list ``[(B, C0, H/4, W/4)]``.
        """
        return self._forward_trunk(x, None)

    def extract_features(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Intermediate tensors for parity checks, keyed like the golden file's ``feat/*``.

        Returns ``stem_out``, ``layer1_out``, ``stage{2,3,4}_out{b}`` for every branch each stage returns,
        and ``output`` (the heatmaps). ``x`` is normalised (B, 3, H, W).
        """
        taps: Dict[str, torch.Tensor] = {}
        features = self._forward_trunk(x, taps)
        taps["output"] = self.final_layer(features[0])
        return taps

    def _forward_trunk(self, x: torch.Tensor, taps: Optional[Dict[str, torch.Tensor]]) -> List[torch.Tensor]:
        if not _is_tracing():  # a Python shape check would be baked into (or break) a trace/export
            h, w = x.shape[-2:]
            if h % self.size_divisor or w % self.size_divisor:
                check_input_size((int(w), int(h)), self.size_divisor)
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))  # (B, stem, H/4, W/4)
        if taps is not None:
            taps["stem_out"] = x
        x = self.layer1(x)  # (B, 256, H/4, W/4)
        if taps is not None:
            taps["layer1_out"] = x
        branches = [x]
        for k in (2, 3, 4):
            branches = apply_transition(getattr(self, f"transition{k - 1}"), branches)
            for module in getattr(self, f"stage{k}"):
                branches = module(branches)
            if taps is not None:
                taps.update({f"stage{k}_out{b}": t for b, t in enumerate(branches)})
        return branches
