"""The official ImageNet classifier ``cls_hrnet`` (HRNet-W*-C): the trunk + the classification head.

Provenance: ``lib/models/cls_hrnet.py`` of HRNet/HRNet-Image-Classification (commit f760c98), re-implemented
from ``shared/reference/README.md`` ("The head, for anyone reimplementing it") and the official README:

- every trunk branch keeps its own output (the last stage-4 module has multi-scale output);
- ``incre_modules[i]``: one Bottleneck (planes 32/64/128/256, fixed whatever the trunk width) lifts
  branch i to 128/256/512/1024 channels, with a conv1x1+BN residual downsample;
- ``downsamp_modules[i]``: conv3x3 stride 2 **with bias**, BN, ReLU; from the top branch down,
  ``y = incre_0(s_0)``, then ``y = incre_{i+1}(s_{i+1}) + downsamp_i(y)`` (no ReLU after the sum);
- ``final_layer``: conv1x1 1024->2048 **with bias**, BN, ReLU; then average pooling over the whole map
  (``F.avg_pool2d``; the mean when tracing, as the official code does, which differs by <= 3.6e-7);
- ``classifier``: Linear(2048, num_classes), 1000 for ImageNet.

State-dict names are exactly the official ones (``incre_modules``, ``downsamp_modules``, ``final_layer``,
``classifier`` after the trunk's), so official checkpoints load with ``strict=True``.
"""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pose.errors import ConfigError
from pose.models.hrnet import (
    OFFICIAL_STAGE1,
    Bottleneck,
    HRNetTrunk,
    StageLike,
    _bn,
    _is_tracing,
    make_res_layer,
)
from pose.models.presets import CLS_FEATURE_CHANNELS, CLS_HEAD_CHANNELS, IMAGENET_NUM_CLASSES


def make_incre_modules(branch_channels: Sequence[int]) -> nn.ModuleList:
    """One Bottleneck per branch, to ``4 * CLS_HEAD_CHANNELS[i]`` (128/256/512/1024) channels."""
    if len(branch_channels) > len(CLS_HEAD_CHANNELS):
        raise ConfigError(f"the classification head has widths for {len(CLS_HEAD_CHANNELS)} branches, "
                          f"the trunk has {len(branch_channels)}")
    return nn.ModuleList(make_res_layer(Bottleneck, c, CLS_HEAD_CHANNELS[i], 1)
                         for i, c in enumerate(branch_channels))


def make_downsamp_modules(num_branches: int) -> nn.ModuleList:
    """``num_branches - 1`` stride-2 conv3x3 (with bias) - BN - ReLU steps from branch i to i + 1's width."""
    steps = []
    for i in range(num_branches - 1):
        in_ch = CLS_HEAD_CHANNELS[i] * Bottleneck.expansion
        out_ch = CLS_HEAD_CHANNELS[i + 1] * Bottleneck.expansion
        steps.append(nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=2, padding=1, bias=True),
                                   _bn(out_ch), nn.ReLU(inplace=True)))
    return nn.ModuleList(steps)


def make_feature_layer(num_branches: int) -> nn.Sequential:
    """conv1x1 (with bias) from the last incre width to 2048, BN, ReLU (official ``final_layer``)."""
    in_ch = CLS_HEAD_CHANNELS[num_branches - 1] * Bottleneck.expansion
    return nn.Sequential(nn.Conv2d(in_ch, CLS_FEATURE_CHANNELS, kernel_size=1, bias=True),
                         _bn(CLS_FEATURE_CHANNELS), nn.ReLU(inplace=True))


def global_average_pool(x: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, C). ``F.avg_pool2d`` over the whole map, bit-identical to the official eager
    path; the mean while tracing, so an export does not bake the map size in (as the official code)."""
    if _is_tracing():
        return x.flatten(start_dim=2).mean(dim=2)
    return F.avg_pool2d(x, kernel_size=tuple(x.shape[2:])).flatten(start_dim=1)


class ClsHRNet(HRNetTrunk):
    """Official ``cls_hrnet``: HRNet trunk (multi-scale output) + the ImageNet classification head.

    Args:
        stages: three stage specs (stage 2, 3, 4), StageSpec or plain tuples.
        stem_channels: width of conv1/conv2 (official 64).
        stage1: ``layer1`` (official ``MODEL.EXTRA.STAGE1``); e.g. 1 Bottleneck of width 32 for
            W18-small-v1, the pose net's 4 x 64 for W18 to W64.
        num_classes: outputs of ``classifier`` (official 1000).

    ``forward(images)``: (B, 3, H, W) RGB in [0, 255] -> (B, num_classes) logits. ``forward_normalized``
    is the official forward on ImageNet-normalised input (eval preprocessing: ``pose.models.imagenet``).
    """

    def __init__(self, stages: Sequence[StageLike], *, stem_channels: int = 64,
                 stage1: StageLike = OFFICIAL_STAGE1, num_classes: int = IMAGENET_NUM_CLASSES):
        if int(num_classes) < 1:
            raise ConfigError(f"num_classes must be >= 1, got {num_classes}")
        super().__init__(stages, stage1=stage1, stem_channels=stem_channels, multi_scale_output=True)
        self.num_classes = int(num_classes)
        num_branches = len(self.branch_channels)
        # Registration order = official state_dict order: incre, downsamp, final_layer, classifier.
        self.incre_modules = make_incre_modules(self.branch_channels)
        self.downsamp_modules = make_downsamp_modules(num_branches)
        self.final_layer = make_feature_layer(num_branches)
        self.classifier = nn.Linear(CLS_FEATURE_CHANNELS, self.num_classes)

    def init_weights(self) -> None:
        """The official classification init: conv weights kaiming-normal (fan_out, ReLU), BN weight 1
        and bias 0; conv biases and the classifier keep PyTorch's defaults (as ``get_cls_net``)."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward_head(self, branches: List[torch.Tensor],
                     taps: Optional[Dict[str, torch.Tensor]] = None) -> torch.Tensor:
        """Four branches -> (B, num_classes) logits.

        Taps (keys of the golden files): ``incre{i}_out`` (B, 128*2^i, H/(4*2^i), W/(4*2^i)),
        ``downsamp{i}_out``, ``final_layer_out`` (B, 2048, H/32, W/32) and ``pooled`` (B, 2048).
        """
        record = taps if taps is not None else {}
        y = self.incre_modules[0](branches[0])
        record["incre0_out"] = y
        for i, down in enumerate(self.downsamp_modules):
            lifted = self.incre_modules[i + 1](branches[i + 1])
            record[f"incre{i + 1}_out"] = lifted
            stepped = down(y)
            record[f"downsamp{i}_out"] = stepped
            y = lifted + stepped  # the official order of the sum; no ReLU after it
        y = self.final_layer(y)
        record["final_layer_out"] = y
        pooled = global_average_pool(y)  # (B, 2048)
        record["pooled"] = pooled
        return self.classifier(pooled)
