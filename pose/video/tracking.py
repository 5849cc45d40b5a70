"""Across-frame person identity (``track_id``) for video, and boxes from poses for skipped detector frames.

Tracking (:class:`PoseTracker`), per frame:

1. Similarity between every live track and every new item (a :class:`PersonBox` or a
   :class:`PoseResult`): box IoU (``metric="iou"``), keypoint OKS (``"oks"``), or their mean
   (``"iou+oks"``). A track compares with its last matched box/keypoints.
2. Hungarian assignment on ``1 - similarity`` (``scipy.optimize.linear_sum_assignment``); an assigned
   pair is kept only if its similarity is ``>= match_threshold``.
3. Birth: an unmatched item whose score is ``>= min_new_score`` starts a new track with the next
   integer id (ids are never reused). An unmatched item below that score gets ``track_id=None``.
4. Death: a track not matched in a frame counts one miss; matching resets the count. A track with
   more than ``max_missed`` consecutive misses is removed, so a person hidden for up to
   ``max_missed`` frames keeps their id.

Keypoint OKS is :func:`pose.evaluation.oks.oks_matrix` (the evaluation's formula); smoothing is
:mod:`pose.video.smoothing`.

:func:`boxes_from_keypoints` turns the previous frame's poses into boxes, so the detector can run
only every N-th frame (``--det-every N``).
"""
import dataclasses
import logging
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, TypeVar

import numpy as np
from scipy.optimize import linear_sum_assignment

from pose.errors import ConfigError
from pose.evaluation.oks import oks_matrix
from pose.geometry import box_iou_xyxy, window_to_xywh, xywh_to_xyxy
from pose.keypoints import COCO_17
from pose.structures import PersonBox, PoseResult

logger = logging.getLogger(__name__)

Item = TypeVar("Item", PersonBox, PoseResult)
TRACK_METRICS = ("iou", "oks", "iou+oks")
DEFAULT_OKS_SIGMA = 0.08  # used for layouts without OKS sigmas (e.g. MPII): about the COCO mean


# ---------------------------------------------------------------------------------------------
# Similarities
# ---------------------------------------------------------------------------------------------

def box_iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes ``a`` (N, 4) and ``b`` (M, 4) in ``[x, y, w, h]`` -> (N, M)."""
    return box_iou_xyxy(xywh_to_xyxy(np.asarray(a, dtype=np.float64).reshape(-1, 4)),
                        xywh_to_xyxy(np.asarray(b, dtype=np.float64).reshape(-1, 4)))


def _item_box(item) -> np.ndarray:
    box = item.bbox_xywh
    if box is None and isinstance(item, PoseResult):  # a pose without its box: the window it came from
        return window_to_xywh(item.center_img, item.scale)
    return np.asarray(box, dtype=np.float64)


def _item_score(item) -> float:
    return float(item.score if isinstance(item, PersonBox) else item.box_score)


# ---------------------------------------------------------------------------------------------
# Tracker
# ---------------------------------------------------------------------------------------------

@dataclass
class Track:
    """State of one track: last matched box (xywh) and keypoints (K, 3) or None."""

    track_id: int
    box_xywh: np.ndarray
    keypoints: Optional[np.ndarray]
    missed: int = 0
    hits: int = 1


class PoseTracker:
    """Assign persistent ``track_id``s to per-frame boxes or poses (rules in the module docstring).

    Args:
        metric: ``"iou"`` (boxes), ``"oks"`` (keypoints; items must be PoseResult) or ``"iou+oks"``
            (mean of both; falls back to IoU for pairs without keypoints).
        match_threshold: minimum similarity for a track and an item to be matched.
        min_new_score: minimum box score for an unmatched item to start a track.
        max_missed: consecutive frames a track may go unmatched before it is removed.
        oks_sigmas: per-joint OKS sigmas; default COCO's for 17 joints, else 0.08 for every joint.
        keypoint_score_threshold: joints below this score are ignored by OKS.
    """

    def __init__(self, *, metric: str = "iou", match_threshold: float = 0.3, min_new_score: float = 0.5,
                 max_missed: int = 10, oks_sigmas: Optional[Sequence[float]] = None,
                 keypoint_score_threshold: float = 0.3):
        if metric not in TRACK_METRICS:
            raise ConfigError(f"tracker metric: got '{metric}', expected one of {', '.join(TRACK_METRICS)}")
        if not 0.0 < match_threshold <= 1.0:
            raise ConfigError(f"tracker match_threshold: got {match_threshold}, expected a value in (0, 1]")
        if int(max_missed) < 0:
            raise ConfigError(f"tracker max_missed: got {max_missed}, expected an integer >= 0")
        self.metric = metric
        self.match_threshold = float(match_threshold)
        self.min_new_score = float(min_new_score)
        self.max_missed = int(max_missed)
        self.oks_sigmas = None if oks_sigmas is None else np.asarray(oks_sigmas, dtype=np.float64)
        self.keypoint_score_threshold = float(keypoint_score_threshold)
        self.tracks: List[Track] = []
        self._next_id = 0

    def reset(self) -> None:
        """Forget all tracks; ids restart at 0."""
        self.tracks, self._next_id = [], 0

    def _sigmas(self, k: int) -> np.ndarray:
        if self.oks_sigmas is not None:
            if len(self.oks_sigmas) != k:
                raise ConfigError(f"tracker oks_sigmas: {len(self.oks_sigmas)} values for poses with "
                                  f"{k} joints")
            return self.oks_sigmas
        if k == COCO_17.num_keypoints:
            return np.asarray(COCO_17.oks_sigmas)
        return np.full(k, DEFAULT_OKS_SIGMA)

    def similarity(self, items: Sequence[Item]) -> np.ndarray:
        """(num_tracks, num_items) similarity of the live tracks with ``items``."""
        n_t, n_d = len(self.tracks), len(items)
        if n_t == 0 or n_d == 0:
            return np.zeros((n_t, n_d))
        iou = box_iou_xywh(np.stack([t.box_xywh for t in self.tracks]),
                           np.stack([_item_box(d) for d in items]))
        if self.metric == "iou":
            return iou
        has_kp = (all(isinstance(d, PoseResult) for d in items)
                  and all(t.keypoints is not None for t in self.tracks))
        if not has_kp:
            if self.metric == "oks":
                raise ConfigError("tracker metric 'oks' needs PoseResult items with keypoints; use 'iou' "
                                  "for boxes")
            return iou
        kp_t = np.stack([t.keypoints for t in self.tracks])
        kp_d = np.stack([np.asarray(d.keypoints_img, dtype=np.float64) for d in items])
        areas = np.maximum([t.box_xywh[2] * t.box_xywh[3] for t in self.tracks], 1.0)[:, None]  # track areas
        oks = oks_matrix(kp_t, kp_d, areas, self._sigmas(kp_t.shape[1]),
                         score_threshold=self.keypoint_score_threshold)
        return oks if self.metric == "oks" else 0.5 * (iou + oks)

    def update(self, items: Sequence[Item]) -> List[Item]:
        """Match one frame's items to the tracks.

        Returns copies of ``items`` (same order) with ``track_id`` set (``None`` for a low-score item
        that matched nothing).
        """
        items = list(items)
        sim = self.similarity(items)
        assigned: Dict[int, int] = {}  # item index -> track index
        if sim.size:
            rows, cols = linear_sum_assignment(1.0 - sim)
            for r, c in zip(rows, cols):
                if sim[r, c] >= self.match_threshold:
                    assigned[c] = r
        matched_tracks = set(assigned.values())
        out = []
        for j, item in enumerate(items):
            kp = np.asarray(item.keypoints_img, dtype=np.float64) if isinstance(item, PoseResult) else None
            if j in assigned:
                track = self.tracks[assigned[j]]
                track.box_xywh, track.missed, track.hits = _item_box(item), 0, track.hits + 1
                if kp is not None:
                    track.keypoints = kp
                out.append(dataclasses.replace(item, track_id=track.track_id))
            elif _item_score(item) >= self.min_new_score:
                track = Track(self._next_id, _item_box(item), kp)
                self._next_id += 1
                self.tracks.append(track)
                matched_tracks.add(len(self.tracks) - 1)
                out.append(dataclasses.replace(item, track_id=track.track_id))
            else:
                out.append(dataclasses.replace(item, track_id=None))
        survivors = []
        for i, track in enumerate(self.tracks):
            if i not in matched_tracks:
                track.missed += 1
            if track.missed <= self.max_missed:
                survivors.append(track)
            else:
                logger.debug("track %d ended after %d missed frames", track.track_id, track.missed)
        self.tracks = survivors
        return out


# ---------------------------------------------------------------------------------------------
# Boxes from poses
# ---------------------------------------------------------------------------------------------

def boxes_from_keypoints(results: Sequence[PoseResult], padding: float = 1.2, *, score_threshold: float = 0.3,
                         min_keypoints: int = 2,
                         image_size: Optional[Tuple[int, int]] = None) -> List[PersonBox]:
    """Person boxes for the next frame from this frame's poses (detector skipped: ``--det-every N``).

    Each box is the extent of the joints scored ``>= score_threshold``, scaled by ``padding`` about
    its centre (both sides), clipped to ``image_size`` (W, H) if given. The pose's ``box_score``,
    ``image_id`` and ``track_id`` carry over. Poses with fewer than ``min_keypoints`` such joints
    are dropped (they would give a degenerate box).
    """
    boxes = []
    for r in results:
        kp = np.asarray(r.keypoints_img, dtype=np.float64)
        good = kp[kp[:, 2] >= score_threshold, :2]
        if len(good) < max(int(min_keypoints), 1):
            continue
        lo, hi = good.min(0), good.max(0)
        c, half = (lo + hi) / 2, np.maximum((hi - lo) / 2 * padding, 1.0)
        x0, y0 = c - half
        x1, y1 = c + half
        if image_size is not None:
            w, h = image_size
            x0, x1 = np.clip([x0, x1], 0, w)
            y0, y1 = np.clip([y0, y1], 0, h)
            if x1 - x0 < 1 or y1 - y0 < 1:
                continue
        boxes.append(PersonBox(bbox_xywh=(float(x0), float(y0), float(x1 - x0), float(y1 - y0)),
                               score=float(r.box_score), image_id=r.image_id, track_id=r.track_id))
    return boxes
