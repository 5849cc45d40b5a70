"""BatchNorm folding for inference: each eval-mode BatchNorm2d merged into the convolution before it.

Used by the ``torch-fast`` backend (:class:`pose.backends.OptimizedTorchBackend`); re-exported by
:mod:`pose.backends`.
"""
import copy
import logging

import torch
from torch import nn

from pose.models.hrnet import BasicBlock, Bottleneck, HRNetTrunk

logger = logging.getLogger(__name__)

# Attribute pairs (conv, bn) where the forward applies ``bn(conv(x))`` directly: HRNet's stem and the
# residual blocks. Only used on modules whose forward is known to follow this pattern.
_CONV_BN_ATTRS = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))
_CONV_BN_OWNERS = (BasicBlock, Bottleneck, HRNetTrunk)  # every network (V1/V2/V2p/cls) is an HRNetTrunk


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new Conv2d computing ``bn(conv(x))`` with eval-mode BN statistics.

    ``w' = w * g / sqrt(var + eps)`` per output channel, ``b' = (b - mean) * g / sqrt(var + eps) + beta``;
    computed in float64 and stored in the conv's dtype.
    """
    if conv.out_channels != bn.num_features:
        raise ValueError(f"cannot fold BatchNorm2d({bn.num_features}) into a conv with "
                         f"{conv.out_channels} output channels")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("cannot fold a BatchNorm2d without running statistics (track_running_stats=False)")
    dtype = conv.weight.dtype
    w = conv.weight.detach().double()
    b = conv.bias.detach().double() if conv.bias is not None else torch.zeros(conv.out_channels, dtype=torch.float64,
                                                                                device=w.device)
    gamma = bn.weight.detach().double() if bn.weight is not None else torch.ones_like(b)
    beta = bn.bias.detach().double() if bn.bias is not None else torch.zeros_like(b)
    factor = gamma / torch.sqrt(bn.running_var.detach().double() + bn.eps)
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                      padding=conv.padding, dilation=conv.dilation, groups=conv.groups, bias=True,
                      padding_mode=conv.padding_mode).to(device=w.device)
    with torch.no_grad():
        fused.weight.copy_((w * factor.view(-1, 1, 1, 1)).to(dtype))
        fused.bias = nn.Parameter(((b - bn.running_mean.detach().double()) * factor + beta).to(dtype))
    fused.weight.requires_grad_(conv.weight.requires_grad)
    fused.bias.requires_grad_(conv.weight.requires_grad)
    return fused.to(dtype)


def _fold_into(module: nn.Module, owners: tuple) -> int:
    """Fold in place below ``module`` (which is already a private copy); returns the count."""
    count = 0
    if isinstance(module, nn.Sequential):
        names = list(module._modules)
        for a, b in zip(names[:-1], names[1:]):
            conv, bn = module._modules[a], module._modules[b]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                module._modules[a] = fold_conv_bn(conv, bn)
                module._modules[b] = nn.Identity()
                count += 1
    if isinstance(module, owners):
        for conv_name, bn_name in _CONV_BN_ATTRS:
            conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                setattr(module, conv_name, fold_conv_bn(conv, bn))
                setattr(module, bn_name, nn.Identity())
                count += 1
    for child in module.children():
        count += _fold_into(child, owners)
    return count


def count_batchnorms(model: nn.Module) -> int:
    """Number of ``BatchNorm`` modules (any dimensionality) left in ``model``."""
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` in eval mode with every BatchNorm2d folded into its preceding conv.

    Folded pairs: a Conv2d directly followed by a BatchNorm2d inside any ``nn.Sequential`` (HRNet's
    downsample, transition and fuse layers) and the attribute pairs ``conv1/bn1``, ``conv2/bn2``,
    ``conv3/bn3`` of HRNet's stem and residual blocks. Each folded BN becomes ``nn.Identity`` and its conv
    gains a bias, so outputs equal the eval-mode original within float32 rounding (~1e-5 on W32). The
    input normalisation is not folded into ``conv1``: that is inexact at zero-padded borders.

    The number folded is stored as ``model.num_folded_batchnorms`` (292 for HRNet-W32); BNs that do not
    follow a conv in a recognised pattern are left in place and logged.
    """
    folded = copy.deepcopy(model).eval()
    count = _fold_into(folded, _CONV_BN_OWNERS)
    left = count_batchnorms(folded)
    if left:
        logger.info("fold_batchnorm: %d BatchNorm layers folded, %d left (not after a conv in a known pattern)",
                    count, left)
    folded.num_folded_batchnorms = count
    return folded
