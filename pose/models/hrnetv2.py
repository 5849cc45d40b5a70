"""HRNetV2 and HRNetV2p: the trunk read out from every branch (arXiv 1908.07919, Fig. 4 (b) and (c)).

- **V2** (``PoseHRNetV2``): all four branches of the last module (multi-scale output), the lower ones
  bilinearly upsampled to the top branch's resolution and concatenated (C + 2C + 4C + 8C = 15C channels),
  then conv1x1-BN-ReLU and the task's KxK output conv. This is the head of the official facial-landmark
  models (``HRNet/HRNet-Facial-Landmark-Detection``, ``lib/models/hrnet.py``: HRNetV2-W18 on
  300W/WFLW/COFW/AFLW), and an option for body pose.
- **V2p** (``HRNetV2p``): the same concatenation, reduced by a 1x1 conv to 256 channels, average-pooled
  to a pyramid (kernel = stride = 2^i, i.e. strides 4, 8, 16, 32, 64 of the input), and one conv per
  level (3x3 as in the official ``HRFPN`` neck of ``HRNet/HRNet-Object-Detection``, or 1x1). It is a
  detection backbone in torchvision's contract: an ``out_channels`` attribute and an ``OrderedDict`` of
  feature maps keyed ``'0'``..``'4'``, which ``FasterRCNN`` / ``MaskRCNN`` / ``KeypointRCNN`` accept.

State-dict names (flat: the trunk's official names, then the head's):
- V2: ``head.0`` (conv1x1 15C->15C, with bias), ``head.1`` (BN), ``head.3`` (conv KxK 15C->K, bias), the
  official facial-landmark names (``head.2`` is the ReLU);
- V2p: ``reduction_conv.0`` (conv1x1 15C->256, bias) and ``fpn_conv.{i}`` (conv per level, bias), the
  official ``HRFPN`` names without its ``neck.`` prefix.

Deviations from the official code, stated once:
- the facial code pads its 1x1 conv by 1 when FINAL_CONV_KERNEL is 3, which grows the map by 2 pixels
  per side; here the 1x1 conv never pads, so the output stays at H/4 x W/4 for both kernels
  (the official facial YAMLs use kernel 1, where both agree);
- ``HRFPN`` upsamples with ``scale_factor=2**i``; here with ``size=`` of the top branch. For the
  exact power-of-two sizes the trunk enforces, both give the same bilinear weights.
"""
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pose.errors import ConfigError
from pose.models.hrnet import OFFICIAL_STAGE1, HRNetTrunk, StageLike, _bn, check_heatmap_head
from pose.models.presets import PYRAMID_CHANNELS, PYRAMID_LEVEL_CHOICES, PYRAMID_LEVELS


def upsample_concat(branches: List[torch.Tensor]) -> torch.Tensor:
    """The HRNetV2 representation: every branch bilinearly upsampled to branch 0, then concatenated.

    Args:
        branches: ``[(B, C_b, H/(4*2^b), W/(4*2^b))]``, top branch first.

    Returns:
        (B, sum C_b, H/4, W/4); 15C channels for the regular widths C, 2C, 4C, 8C.
    """
    size = branches[0].shape[-2:]
    # align_corners=False as in the official facial-landmark and HRFPN code (bilinear, not nearest:
    # the trunk's own fuse layers upsample with nearest, this head does not).
    upsampled = [branches[0]] + [F.interpolate(t, size=size, mode="bilinear", align_corners=False)
                                 for t in branches[1:]]
    return torch.cat(upsampled, dim=1)


class PoseHRNetV2(HRNetTrunk):
    """HRNet trunk (multi-scale output) + the HRNetV2 heatmap head.

    Args:
        num_keypoints: K, heatmap channels.
        stages: three stage specs (stage 2, 3, 4), StageSpec or plain tuples.
        stem_channels: width of conv1/conv2 (official 64).
        final_conv_kernel: 1 (official) or 3 (padding 1) for the last conv ``head.3``.
        stage1: ``layer1``; default the official 4 Bottlenecks of width 64.

    ``forward(images)``: (B, 3, H, W) RGB in [0, 255] -> (B, K, H/4, W/4) heatmaps, like ``PoseHRNet``.
    Shapes: W18 at 256x192 concatenates 270 channels at 64x48, W32 480 channels (see
    ``tests/models/test_hrnetv2.py``).
    """

    def __init__(self, num_keypoints: int, stages: Sequence[StageLike], *, stem_channels: int = 64,
                 final_conv_kernel: int = 1, stage1: StageLike = OFFICIAL_STAGE1):
        check_heatmap_head(num_keypoints, final_conv_kernel)
        super().__init__(stages, stage1=stage1, stem_channels=stem_channels, multi_scale_output=True)
        self.num_keypoints = int(num_keypoints)
        concat_channels = sum(self.branch_channels)
        # conv-BN-ReLU as one Sequential so BN folding (pose.backends) recognises the pair.
        self.head = nn.Sequential(
            nn.Conv2d(concat_channels, concat_channels, kernel_size=1, bias=True),
            _bn(concat_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(concat_channels, self.num_keypoints, kernel_size=final_conv_kernel,
                      padding=1 if final_conv_kernel == 3 else 0, bias=True),
        )

    def forward_head(self, branches: List[torch.Tensor],
                     taps: Optional[Dict[str, torch.Tensor]] = None) -> torch.Tensor:
        """Four branches -> (B, K, H/4, W/4) heatmaps; taps ``concat`` (B, 15C, H/4, W/4)."""
        x = upsample_concat(branches)
        if taps is not None:
            taps["concat"] = x
        return self.head(x)


class HRNetV2p(HRNetTrunk):
    """HRNet trunk (multi-scale output) + the HRNetV2p pyramid: a detection backbone for torchvision.

    Args:
        stages: three stage specs (stage 2, 3, 4), StageSpec or plain tuples.
        stem_channels: width of conv1/conv2 (official 64).
        stage1: ``layer1``; default the official 4 Bottlenecks of width 64.
        num_levels: 5 (official; strides 4, 8, 16, 32, 64) or 4 (strides 4 to 32).
        out_channels: channels of every level (official 256), exposed as ``self.out_channels``.
        level_conv_kernel: 3 (official ``fpn_conv``, padding 1) or 1.

    ``forward(x)`` takes **ImageNet-normalised** (B, 3, H, W), as torchvision's detectors pass it (their
    ``GeneralizedRCNNTransform`` normalises and pads to multiples of 32), and returns
    ``OrderedDict('0': (B, 256, H/4, W/4), '1': (B, 256, H/8, W/8), ..., '4': (B, 256, H/64, W/64))``.
    Pooling floors odd sizes (800x800 gives 200, 100, 50, 25, 12). ``forward_pixels`` takes RGB in
    [0, 255] instead. With 5 levels torchvision's default anchor generator (5 sizes) and RoI poolers
    (levels '0'-'3') fit as they are; with 4 levels pass an ``AnchorGenerator`` with 4 sizes.
    """

    def __init__(self, stages: Sequence[StageLike], *, stem_channels: int = 64,
                 stage1: StageLike = OFFICIAL_STAGE1, num_levels: int = PYRAMID_LEVELS,
                 out_channels: int = PYRAMID_CHANNELS, level_conv_kernel: int = 3):
        if num_levels not in PYRAMID_LEVEL_CHOICES:
            raise ConfigError(f"pyramid levels must be one of {list(PYRAMID_LEVEL_CHOICES)}, "
                              f"got {num_levels}")
        if level_conv_kernel not in (1, 3):
            raise ConfigError(f"pyramid level conv kernel must be 1 or 3, got {level_conv_kernel}")
        if int(out_channels) < 1:
            raise ConfigError(f"pyramid out_channels must be >= 1, got {out_channels}")
        super().__init__(stages, stage1=stage1, stem_channels=stem_channels, multi_scale_output=True)
        self.out_channels = int(out_channels)  # torchvision's backbone contract
        self.num_levels = int(num_levels)
        self.strides = tuple(4 * 2 ** i for i in range(self.num_levels))
        self.reduction_conv = nn.Sequential(nn.Conv2d(sum(self.branch_channels), self.out_channels,
                                                      kernel_size=1, bias=True))
        self.fpn_conv = nn.ModuleList(
            nn.Conv2d(self.out_channels, self.out_channels, kernel_size=level_conv_kernel,
                      padding=level_conv_kernel // 2, bias=True)
            for _ in range(self.num_levels))

    def init_weights(self, std: float = 0.001) -> None:
        """Trunk: the pose init (N(0, std^2)); pyramid convs: official HRFPN kaiming-normal (a=1), bias 0.

        For detection the trunk is normally loaded from an ImageNet classifier afterwards.
        """
        super().init_weights(std)
        for conv in [self.reduction_conv[0], *self.fpn_conv]:
            nn.init.kaiming_normal_(conv.weight, a=1)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        """ImageNet-normalised (B, 3, H, W) -> the pyramid (torchvision passes normalised images)."""
        return self.forward_normalized(x)

    def forward_pixels(self, images: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        """(B, 3, H, W) RGB in [0, 255] -> the pyramid (normalisation buffers inside, like PoseHRNet)."""
        return super().forward(images)

    def forward_head(self, branches: List[torch.Tensor],
                     taps: Optional[Dict[str, torch.Tensor]] = None) -> "OrderedDict[str, torch.Tensor]":
        """Four branches -> ``OrderedDict`` of ``num_levels`` (B, out_channels, H/s, W/s), s = 4..64."""
        reduced = self.reduction_conv(upsample_concat(branches))  # (B, 256, H/4, W/4)
        if taps is not None:
            taps["reduced"] = reduced
        levels = [reduced] + [F.avg_pool2d(reduced, kernel_size=2 ** i, stride=2 ** i)
                              for i in range(1, self.num_levels)]
        return OrderedDict((str(i), conv(level))
                           for i, (conv, level) in enumerate(zip(self.fpn_conv, levels)))
