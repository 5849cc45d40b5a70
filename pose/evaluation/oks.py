"""Object keypoint similarity (COCO's OKS): the one formula behind OKS-NMS, evaluation and tracking.

``OKS(a, b) = mean_k exp(-d_k^2 / (2 s^2 (2 sigma_k)^2))`` with ``d_k`` the distance between joint k of
the two poses, ``s^2`` an object area in pixels^2 and ``sigma_k`` the per-joint constant of the
keypoint set (COCO's are in :data:`pose.keypoints.COCO_17`). The official NMS counts all K joints and
uses the mean of the two areas; the tracker counts only joints scored in both poses and uses the
track's area. Arithmetic is done in the order of the official ``oks_iou`` (``d^2 / var / area / 2``)
and in the keypoints' own dtype (float32 in the official pipeline), which the golden NMS results need.

Symbols: N and M poses, K joints.
"""
from typing import Optional, Sequence

import numpy as np

from pose.keypoints import COCO_17


def oks_matrix(keypoints_a: np.ndarray, keypoints_b: np.ndarray, areas: np.ndarray, sigmas: Sequence[float], *,
               score_threshold: Optional[float] = None) -> np.ndarray:
    """Pairwise OKS between poses ``a`` (N, K, 2|3) and ``b`` (M, K, 2|3) in image pixels.

    Args:
        areas: object areas ``s^2``, broadcastable to (N, M) (e.g. (N, 1) reference areas, or the (1, M)
            mean areas of the official NMS).
        sigmas: (K,) per-joint OKS sigmas.
        score_threshold: None: every joint counts (official NMS). Else only joints whose score (third
            column) is ``>= score_threshold`` in both poses count; pairs without such a joint get 0.

    Returns:
        (N, M) float64 OKS values in [0, 1].
    """
    a, b = np.asarray(keypoints_a), np.asarray(keypoints_b)
    sig = np.asarray(sigmas, dtype=np.float64)
    if a.ndim != 3 or b.ndim != 3 or a.shape[1] != b.shape[1] or sig.shape != (a.shape[1],):
        raise ValueError(f"oks_matrix: shapes {a.shape}, {b.shape}, sigmas {sig.shape} do not match "
                         "(N,K,C), (M,K,C), (K,)")
    variances = (sig * 2) ** 2
    dx = b[None, :, :, 0] - a[:, None, :, 0]                                   # (N, M, K)
    dy = b[None, :, :, 1] - a[:, None, :, 1]
    e = (dx ** 2 + dy ** 2) / variances / np.asarray(areas, dtype=np.float64)[..., None] / 2
    if score_threshold is None:
        return np.sum(np.exp(-e), axis=2) / a.shape[1]
    valid = (a[:, None, :, 2] >= score_threshold) & (b[None, :, :, 2] >= score_threshold)
    n = valid.sum(axis=2)
    return np.where(n > 0, (np.exp(-e) * valid).sum(axis=2) / np.maximum(n, 1), 0.0)


def oks_iou(keypoints: np.ndarray, others: np.ndarray, area: float, other_areas: np.ndarray,
            sigmas: Optional[Sequence[float]] = None) -> np.ndarray:
    """OKS of one person against M others, as the official ``oks_iou`` (OKS-NMS).

    All K joints count (no visibility test); the area is the mean of the two persons' areas plus
    ``np.spacing(1)``.

    Args:
        keypoints: (K, 2|3) image pixels; a third (score) column is ignored.
        others: (M, K, 2|3).
        area: the person's area (official: crop area ``prod(scale * 200)``).
        other_areas: (M,) areas of the others.
        sigmas: (K,) OKS sigmas; default COCO's 17.

    Returns:
        (M,) float64 OKS values in [0, 1].
    """
    sigmas = COCO_17.oks_sigmas if sigmas is None else sigmas
    g, d = np.asarray(keypoints), np.asarray(others)
    if g.ndim != 2 or d.ndim != 3:
        raise ValueError(f"oks_iou: shapes {g.shape}, {d.shape} do not match (K,C), (M,K,C)")
    mean_area = (area + np.asarray(other_areas, dtype=np.float64)) / 2 + np.spacing(1)
    return oks_matrix(g[None], d, mean_area[None, :], sigmas)[0]
