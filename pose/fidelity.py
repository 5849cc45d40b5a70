"""Fidelity of a reduced-precision runtime: how far its decoded keypoints move from the fp32 ones.

Heatmap differences alone say little: on flat (untrained) heatmaps a tiny error moves many argmaxes,
on a trained network's sharp peaks a larger one moves none. So the check decodes both outputs with the
model's codec and measures keypoint displacement (model-input pixels): mean, max and the share within
0.5 px. :func:`compare_keypoints` is used by ``pose-export --precision`` (all keypoints of the user's
crops), by the ``auto`` precision probe in :func:`pose.loading.build_runtime` (only keypoints the fp32
network is confident about) and by the benchmark's fidelity table (image pixels, with AP).

:data:`MEAN_DISPLACEMENT_BOUND_PX` is the documented bound: a reduced-precision runtime keeps fp32
fidelity when its mean displacement is at most 0.25 model-input pixels (a quarter of the heatmap's
quarter-pixel refinement step at stride 4, i.e. below the decoder's own resolution).

Symbols: N crops, K keypoints, (H, W) model input, (h, w) heatmap.
"""
from dataclasses import asdict, dataclass
from typing import Callable, Optional

import numpy as np
import torch

from pose.backends import crops_to_tensor

#: Largest mean keypoint displacement (model-input pixels) that counts as keeping fp32 fidelity.
MEAN_DISPLACEMENT_BOUND_PX = 0.25
#: Heatmap peak above which the ``auto`` probe counts a keypoint as seen (targets peak at 1).
PROBE_MIN_CONFIDENCE = 0.3
#: Fewest confident keypoints the ``auto`` probe needs before it trusts its own mean.
PROBE_MIN_KEYPOINTS = 10


@dataclass(frozen=True)
class KeypointFidelity:
    """Displacement of a candidate's decoded keypoints from the reference's (model-input pixels)."""

    name: str
    num_keypoints: int
    mean_px: float
    max_px: float
    within_half_px: float
    max_heatmap_diff: float
    bound_px: float = MEAN_DISPLACEMENT_BOUND_PX

    @property
    def ok(self) -> bool:
        return self.num_keypoints > 0 and self.mean_px <= self.bound_px

    def to_dict(self) -> dict:
        return dict(asdict(self), ok=self.ok)

    def summary(self) -> str:
        return (f"{self.name}: mean keypoint displacement {self.mean_px:.3f} px (bound {self.bound_px:g}), "
                f"max {self.max_px:.3f} px, {100 * self.within_half_px:.1f}% within 0.5 px, "
                f"max |heatmap diff| {self.max_heatmap_diff:.3g}, on {self.num_keypoints} keypoints: "
                f"{'OK' if self.ok else 'BEYOND THE BOUND'}")


def heatmaps_of(backend: Callable[[torch.Tensor], np.ndarray], crops_nhwc: np.ndarray,
                batch_size: int = 8) -> np.ndarray:
    """(N, K, h, w) float32 heatmaps of ``backend`` on (N, H, W, 3) uint8 crops."""
    out = [np.asarray(backend(crops_to_tensor(crops_nhwc[i:i + batch_size])), dtype=np.float32)
           for i in range(0, len(crops_nhwc), batch_size)]
    return np.concatenate(out)


def compare_keypoints(reference, candidate, crops_nhwc: np.ndarray, codec, *, name: str = "candidate",
                      min_confidence: Optional[float] = None, bound_px: float = MEAN_DISPLACEMENT_BOUND_PX,
                      batch_size: int = 8) -> KeypointFidelity:
    """Decode both backends' heatmaps on the same crops and measure keypoint displacement.

    Args:
        reference, candidate: backends (crops tensor -> heatmaps).
        crops_nhwc: (N, H, W, 3) uint8 crops cut by the predictor (:func:`pose.export.sample_crops`).
        codec: the model's :class:`~pose.codec.HeatmapCodec` (decodes to model-input pixels).
        min_confidence: count only keypoints whose reference peak is at least this (None: all).
    """
    crops = np.asarray(crops_nhwc)
    ref_maps, cand_maps = heatmaps_of(reference, crops, batch_size), heatmaps_of(candidate, crops, batch_size)
    ref_kp, ref_conf = codec.decode(ref_maps)     # (N, K, 2), (N, K)
    cand_kp, _ = codec.decode(cand_maps)
    dist = np.linalg.norm(ref_kp - cand_kp, axis=-1)  # (N, K)
    if min_confidence is not None:
        dist = dist[np.asarray(ref_conf) >= min_confidence]
    dist = dist.reshape(-1)
    return KeypointFidelity(name=name, num_keypoints=int(dist.size),
                            mean_px=float(dist.mean()) if dist.size else float("nan"),
                            max_px=float(dist.max()) if dist.size else float("nan"),
                            within_half_px=float((dist <= 0.5).mean()) if dist.size else float("nan"),
                            max_heatmap_diff=float(np.abs(ref_maps - cand_maps).max()) if ref_maps.size else 0.0,
                            bound_px=bound_px)
