"""The HRNet trunk and the V1 pose network (``pose_hrnet``), state-dict compatible with the official code.

Provenance: the architecture of ``lib/models/pose_hrnet.py`` in leoxiaobin/deep-high-resolution-net.pytorch
(commit 6f69e46) and of ``lib/models/cls_hrnet.py`` in HRNet/HRNet-Image-Classification (commit f760c98),
re-implemented from the written spec in ``shared/research/official-hrnet.md`` section 1 and
``shared/reference/README.md``. Attribute names, nesting and registration order reproduce the official
``state_dict()`` exactly (1754 entries for pose W32, 1956 for the W32 classifier), so official
checkpoints load with ``strict=True``; the numbers reproduce the official forward passes (golden tests in
``tests/test_models.py`` and ``tests/models/``).

Layout (B batch, K keypoints, input H x W; every size in the library is ``(W, H)``)::

    images (B,3,H,W) RGB in [0,255]
      -> normalize_crops                         (ImageNet mean/std, buffers inside the model)
      -> stem: conv1-bn1-relu-conv2-bn2-relu     (B,stem,H/4,W/4)
      -> layer1: stage 1, one residual layer     (B,256,H/4,W/4) for the official 4 Bottlenecks x 64
      -> transition1, stage2, transition2, stage3, transition3, stage4
         branch b runs at 1/(4*2^b) resolution                          = HRNetTrunk, all branches
      -> V1 (PoseHRNet): the last stage-4 module fuses into branch 0 only,
         final_layer (conv KxK, bias)            (B,K,H/4,W/4) heatmaps
    The other heads (pose.models.hrnetv2, pose.models.classification) subclass HRNetTrunk.

Deliberate differences from the official code, none of which changes a number for the official configs:
- the official HighResolutionModule overwrites its input list and the caller's channel list in place;
  here every forward builds new lists;
- the official forward applies a non-identity transition of an *existing* branch to the last branch
  (``y_list[-1]``); here existing branch ``i`` is transitioned from branch ``i``. Official configs
  only have identity transitions there. New branches are made from the last (lowest-resolution)
  branch, as in the official code;
- the official pose code hard-codes layer1 (4 Bottlenecks x 64); here it is the ``stage1`` spec, whose
  default is that layer (the classification code reads it from ``MODEL.EXTRA.STAGE1``);
- the model normalises its input itself (``forward``); ``forward_normalized`` is the official forward.

Why one module (~490 lines): the blocks, the multi-resolution module and the trunk carry the official
state-dict names together; splitting them would scatter the key layout that checkpoints depend on.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from pose.errors import ConfigError
from pose.models.presets import (  # noqa: F401  (re-exported: pose.models.hrnet.StageSpec etc. stay importable)
    BASIC,
    BLOCK_NAMES,
    BOTTLENECK,
    FUSE_METHODS,
    IMAGENET_MEAN_RGB,
    IMAGENET_STD_RGB,
    OFFICIAL_STAGE1,
    HRNetArch,
    StageLike,
    StageSpec,
    as_stage_spec,
)

BN_MOMENTUM = 0.1  # official BN_MOMENTUM; eps stays PyTorch's 1e-5 (1e-4 moves the golden output by 9e-3)


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


BLOCKS = {BASIC: BasicBlock, BOTTLENECK: Bottleneck}  # keyed by presets.BLOCK_NAMES


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
# The trunk and the V1 pose network
# --------------------------------------------------------------------------------------------------

class HRNetTrunk(nn.Module):
    """The HRNet trunk: stem, stage 1 (``layer1``) and stages 2-4, returning every branch it fuses into.

    Its children sit at the top level under the official names (``conv1, bn1, conv2, bn2, layer1,
    transition1, stage2, transition2, stage3, transition3, stage4``); a network with a head subclasses
    the trunk and adds the head's own top-level children after them, so its ``state_dict()`` is flat and
    in the official order. The trunk is usable on its own as a multi-resolution feature extractor.

    Args:
        stages: three stage specs (stage 2, 3, 4), each a StageSpec or a plain tuple
            ``(num_modules, num_branches, block, num_blocks, num_channels)``.
        stage1: ``layer1`` as a one-branch StageSpec (block, number of blocks, width); default the
            official pose net's 4 Bottlenecks of width 64 (256 channels).
        stem_channels: width of conv1/conv2 (official 64).
        multi_scale_output: the last stage-4 module fuses into every branch (True: HRNetV2, the
            classifier) or into branch 0 only (False: the official pose net, whose V1 head reads branch 0).

    ``forward(images)`` takes (B, 3, H, W) RGB in [0, 255] (normalisation buffers inside) and returns what
    ``forward_head`` makes of the branches; for the bare trunk that is the branch list
    ``[(B, C_b, H/(4*2^b), W/(4*2^b))]``. H and W must be multiples of ``size_divisor`` (32 with 4 branches).
    """

    def __init__(self, stages: Sequence[StageLike], *, stage1: StageLike = OFFICIAL_STAGE1,
                 stem_channels: int = 64, multi_scale_output: bool = True):
        super().__init__()
        stages = tuple(as_stage_spec(s) for s in stages)
        stage1 = as_stage_spec(stage1)
        if len(stages) != 3:
            raise ConfigError(f"HRNet needs exactly 3 stage specs (STAGE2, STAGE3, STAGE4), "
                              f"got {len(stages)}")
        if stage1.num_branches != 1 or stage1.num_modules != 1:
            raise ConfigError(f"STAGE1 must have one module and one branch (it is layer1), got "
                              f"{stage1.num_modules} and {stage1.num_branches}")
        if int(stem_channels) < 1:
            raise ConfigError(f"stem_channels must be >= 1, got {stem_channels}")
        self.stage_specs = stages
        self.stage1_spec = stage1
        self.multi_scale_output = bool(multi_scale_output)
        self.size_divisor = 4 * 2 ** (max(s.num_branches for s in stages) - 1)

        # Registration order below is the official state_dict order.
        self.conv1 = nn.Conv2d(3, stem_channels, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = _bn(stem_channels)
        self.conv2 = nn.Conv2d(stem_channels, stem_channels, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn2 = _bn(stem_channels)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = make_res_layer(BLOCKS[stage1.block], stem_channels, stage1.num_channels[0],
                                     stage1.num_blocks[0])

        pre_channels = list(stage1.branch_channels)
        for k, spec in enumerate(stages, start=2):
            block = BLOCKS[spec.block]
            cur_channels = list(spec.branch_channels)
            setattr(self, f"transition{k - 1}", make_transition(pre_channels, cur_channels))
            modules = []
            for m in range(spec.num_modules):
                single_scale = k == 4 and m == spec.num_modules - 1 and not self.multi_scale_output
                modules.append(HighResolutionModule(block, spec.num_blocks, cur_channels, spec.num_channels,
                                                    multi_scale_output=not single_scale))
            setattr(self, f"stage{k}", nn.Sequential(*modules))
            pre_channels = cur_channels
        # Channels of the branches forward_features returns (one entry without multi-scale output).
        self.branch_channels = tuple(pre_channels if self.multi_scale_output else pre_channels[:1])

        # [0, 255]-unit ImageNet statistics; non-persistent so checkpoints keep the official keys.
        mean, std = _pixel_stats()
        self.register_buffer("pixel_mean", mean, persistent=False)
        self.register_buffer("pixel_std", std, persistent=False)

    # ---- initialisation -------------------------------------------------------------------------

    def init_weights(self, std: float = 0.001) -> None:
        """The official pose training init: conv weights N(0, std^2), conv biases 0, BN weight 1, bias 0.

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

    def forward(self, images: torch.Tensor):
        """(B, 3, H, W) RGB in [0, 255] (float or uint8) -> the head's output (see ``forward_head``)."""
        return self.forward_normalized(normalize_crops(images, self.pixel_mean, self.pixel_std))

    def forward_normalized(self, x: torch.Tensor):
        """The official forward: (B, 3, H, W) ImageNet-normalised RGB -> the head's output."""
        return self.forward_head(self.forward_features(x))

    def forward_head(self, branches: List[torch.Tensor], taps: Optional[Dict[str, torch.Tensor]] = None):
        """The head: the bare trunk returns the branch list unchanged. Subclasses record their
        intermediate tensors in ``taps`` when it is given (``extract_features``)."""
        return branches

    def forward_features(self, x: torch.Tensor) -> List[torch.Tensor]:
        """Normalised (B, 3, H, W) -> the stage-4 output branches, top (highest-resolution) first.

        Without multi-scale output (the official pose net) this is a one-element list ``[(B, C0, H/4, W/4)]``.
        """
        return self._forward_trunk(x, None)

    def extract_features(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Intermediate tensors for parity checks, keyed like the golden files' ``feat/*``.

        Returns ``stem_out``, ``layer1_out``, ``stage{2,3,4}_out{b}`` for every branch each stage returns,
        the head's own taps, and ``output`` (what ``forward_normalized`` returns). ``x`` is normalised
        (B, 3, H, W).
        """
        taps: Dict[str, torch.Tensor] = {}
        features = self._forward_trunk(x, taps)
        taps["output"] = self.forward_head(features, taps)
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
        x = self.layer1(x)  # (B, stage-1 channels, H/4, W/4)
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


def trunk_kwargs(arch: HRNetArch) -> Dict[str, object]:
    """The trunk arguments of a preset (``stage1``, ``stem_channels``), for ``Network(stages, **...)``."""
    return {"stage1": arch.stage1, "stem_channels": arch.stem_channels}


def check_heatmap_head(num_keypoints: int, final_conv_kernel: int) -> None:
    """ConfigError unless K >= 1 and the final conv kernel is 1 or 3 (the heatmap heads V1 and V2)."""
    if final_conv_kernel not in (1, 3):
        raise ConfigError(f"FINAL_CONV_KERNEL must be 1 or 3, got {final_conv_kernel}")
    if int(num_keypoints) < 1:
        raise ConfigError(f"num_keypoints must be >= 1, got {num_keypoints}")


class PoseHRNet(HRNetTrunk):
    """Official ``pose_hrnet``: the HRNet trunk + the V1 heatmap head, with input normalisation inside.

    V1 reads the top branch only: the last stage-4 module fuses into branch 0 (official
    ``multi_scale_output=False``) and ``final_layer`` (conv KxK with bias) maps it to K heatmaps.

    Args:
        num_keypoints: K, heatmap channels.
        stages: three stage specs (stage 2, 3, 4), each a StageSpec or a plain tuple
            ``(num_modules, num_branches, block, num_blocks, num_channels)``.
        stem_channels: width of conv1/conv2 (official 64).
        final_conv_kernel: 1 (official) or 3 (padding 1) for ``final_layer``.
        stage1: ``layer1``; default the official 4 Bottlenecks of width 64 (256 output channels).

    ``forward(images)`` takes (B, 3, H, W) RGB in [0, 255] and returns (B, K, H/4, W/4) heatmaps in both
    train and eval mode; H and W must be multiples of ``size_divisor`` (32 with 4 branches).
    """

    def __init__(self, num_keypoints: int, stages: Sequence[StageLike], *, stem_channels: int = 64,
                 final_conv_kernel: int = 1, stage1: StageLike = OFFICIAL_STAGE1):
        check_heatmap_head(num_keypoints, final_conv_kernel)
        super().__init__(stages, stage1=stage1, stem_channels=stem_channels, multi_scale_output=False)
        self.num_keypoints = int(num_keypoints)
        self.final_layer = nn.Conv2d(self.branch_channels[0], self.num_keypoints,
                                     kernel_size=final_conv_kernel, stride=1,
                                     padding=1 if final_conv_kernel == 3 else 0, bias=True)

    def forward_head(self, branches: List[torch.Tensor],
                     taps: Optional[Dict[str, torch.Tensor]] = None) -> torch.Tensor:
        """[(B, C0, H/4, W/4)] -> (B, K, H/4, W/4) heatmaps."""
        return self.final_layer(branches[0])
