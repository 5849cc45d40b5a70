"""Heatmap losses and the official training "accuracy".

All losses take heatmaps ``(B, K, H, W)`` in heatmap pixels and per-joint weights ``(B, K)`` or
``(B, K, 1)`` (the official shape), and return a scalar ``torch.Tensor``. They are pure functions;
:class:`JointsMSELoss` is a thin ``nn.Module`` shim for code that wants a module.

Official facts reproduced here (``lib/core/loss.py``, ``lib/core/evaluate.py``):

- ``JointsMSELoss`` = ``(1/K) sum_k 0.5 * mean_{b,pixels}((w_bk*pred - w_bk*gt)^2)``
  = ``0.5 * mean((w * (pred - gt))^2)``: the weight enters **squared** (matters for non-binary
  joint weights only).
- OHKM: per sample and joint ``l = 0.5 * mean_pixels((w*(p-g))^2)``; per sample the mean of the
  ``topk`` largest; then the mean over the batch.
- The logged accuracy is a PCK on the heatmap argmax with threshold 0.5 whose normaliser is
  ``[H, W] / 10`` applied to ``(x, y)`` (swapped for non-square maps), skipping joints whose target
  argmax has ``x <= 1`` or ``y <= 1``. It is computed in numpy (it is a log value, not a loss).
"""
from typing import Tuple, Union

import numpy as np
import torch
from torch import nn

from pose.codec import argmax_heatmaps

ArrayLike = Union[np.ndarray, torch.Tensor]


def _per_joint_mse(pred: torch.Tensor, target: torch.Tensor, target_weight,
                   use_target_weight: bool) -> torch.Tensor:
    """(B, K) tensor of ``0.5 * mean_pixels((w*(pred - gt))^2)``."""
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} "
                         "must both be (B, K, H, W)")
    b, k = pred.shape[:2]
    diff = (pred - target).reshape(b, k, -1)
    if use_target_weight:
        diff = diff * target_weight.to(diff.dtype).reshape(b, k, 1)   # (B,K) or (B,K,1)
    return 0.5 * diff.pow(2).mean(dim=2)


def joints_mse_loss(pred: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor = None,
                    use_target_weight: bool = True) -> torch.Tensor:
    """Official ``JointsMSELoss``.

    Args:
        pred, target: (B, K, H, W) heatmaps.
        target_weight: (B, K) or (B, K, 1) per-joint weights (required when ``use_target_weight``).
        use_target_weight: multiply both maps by the weight before the squared error.

    Returns:
        scalar tensor ``0.5 * mean((w * (pred - target))^2)``.
    """
    if use_target_weight and target_weight is None:
        raise ValueError("joints_mse_loss: target_weight is required when use_target_weight=True")
    return _per_joint_mse(pred, target, target_weight, use_target_weight).mean()


def joints_ohkm_mse_loss(pred: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor = None,
                         use_target_weight: bool = True, topk: int = 8) -> torch.Tensor:
    """Official ``JointsOHKMMSELoss``: per sample, the mean of the ``topk`` largest per-joint losses,
    then the mean over the batch.

    Args:
        pred, target: (B, K, H, W); target_weight: (B, K) or (B, K, 1); topk: 1 <= topk <= K.
    """
    if use_target_weight and target_weight is None:
        raise ValueError("joints_ohkm_mse_loss: target_weight is required when use_target_weight=True")
    per_joint = _per_joint_mse(pred, target, target_weight, use_target_weight)
    if not 1 <= topk <= per_joint.shape[1]:
        raise ValueError(f"joints_ohkm_mse_loss: topk={topk} must be in [1, {per_joint.shape[1]}]")
    top, _ = torch.topk(per_joint, k=topk, dim=1, sorted=False)
    return top.mean(dim=1).mean()


class JointsMSELoss(nn.Module):
    """Module shim around :func:`joints_mse_loss` / :func:`joints_ohkm_mse_loss` (``use_ohkm``)."""

    def __init__(self, use_target_weight: bool = True, use_ohkm: bool = False, topk: int = 8):
        super().__init__()
        self.use_target_weight = use_target_weight
        self.use_ohkm = use_ohkm
        self.topk = topk

    def forward(self, pred, target, target_weight=None):
        if self.use_ohkm:
            return joints_ohkm_mse_loss(pred, target, target_weight, self.use_target_weight, self.topk)
        return joints_mse_loss(pred, target, target_weight, self.use_target_weight)


def _to_numpy(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def heatmap_accuracy(output: ArrayLike, target: ArrayLike, threshold: float = 0.5
                     ) -> Tuple[np.ndarray, float, int, np.ndarray]:
    """Official training accuracy (PCK of the heatmap argmax), computed in numpy.

    Args:
        output, target: (B, K, H, W) heatmaps (numpy arrays or torch tensors).
        threshold: normalised-distance threshold (strict ``<``).

    Returns:
        acc: (K+1,) float64, ``[avg, joint_0, ..., joint_{K-1}]``; -1 for a joint with no valid
            sample (and ``acc[0]`` stays 0 if no joint is valid);
        avg: mean accuracy over the joints that have a valid sample (0 if none);
        cnt: number of such joints;
        pred: (B, K, 2) float32 argmax of ``output`` in heatmap pixels.
    """
    output = _to_numpy(output)
    target = _to_numpy(target)
    if output.shape != target.shape or output.ndim != 4:
        raise ValueError(f"output {output.shape} and target {target.shape} must both be (B, K, H, W)")
    h, w = output.shape[2:]
    # A diverged model must not crash the log line: non-finite values are mapped to finite ones.
    pred, _ = argmax_heatmaps(np.nan_to_num(output))
    gt, _ = argmax_heatmaps(target)
    # Official quirk: normaliser [h, w] / 10 is applied to (x, y).
    norm = np.array([h, w], dtype=np.float64) / 10.0
    valid = (gt[..., 0] > 1) & (gt[..., 1] > 1)                       # (B, K)
    dists = np.linalg.norm(pred / norm - gt / norm, axis=-1)           # (B, K) float64
    num_valid = valid.sum(axis=0)                                      # (K,)
    hits = ((dists < threshold) & valid).sum(axis=0)
    per_joint = np.where(num_valid > 0, hits / np.maximum(num_valid, 1), -1.0)
    cnt = int((num_valid > 0).sum())
    avg = float(per_joint[num_valid > 0].sum() / cnt) if cnt else 0.0
    acc = np.concatenate([[avg if cnt else 0.0], per_joint]).astype(np.float64)
    return acc, avg, cnt, pred
