"""Across-frame person identity (``track_id``) and temporal keypoint smoothing for video.

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

Smoothing (:class:`OneEuroFilter`, Casiez, Roussel & Vogel, CHI 2012): an adaptive low-pass filter
whose cutoff rises with speed, ``cutoff = min_cutoff + beta * |dx/dt|``: slow motion is smoothed
hard (low jitter), fast motion passes with little lag. :class:`KeypointSmoother` runs one filter per
track over its (K, 2) keypoints; joints below ``score_threshold`` pass through unfiltered and do
not update the filter, so an unreliable joint neither drags nor is dragged.

:func:`boxes_from_keypoints` turns the previous frame's poses into boxes, so the detector can run
only every N-th frame (``--det-every N``).
"""
import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, TypeVar

import numpy as np
from scipy.optimize import linear_sum_assignment

from pose.errors import ConfigError
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
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ax1, ay1 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx1, by1 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.minimum(ax1[:, None], bx1[None]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(ay1[:, None], by1[None]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = np.clip(a[:, 2], 0, None) * np.clip(a[:, 3], 0, None)
    area_b = np.clip(b[:, 2], 0, None) * np.clip(b[:, 3], 0, None)
    union = area_a[:, None] + area_b[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def keypoint_oks(a: np.ndarray, b: np.ndarray, areas: np.ndarray, sigmas: np.ndarray,
                 score_threshold: float = 0.3) -> np.ndarray:
    """Pairwise object keypoint similarity (COCO formula) between poses ``a`` (N, K, 3) and ``b`` (M, K, 3).

    ``oks = mean_k exp(-d_k^2 / (2 * area * (2 sigma_k)^2))`` over joints scored ``>= score_threshold``
    in both poses; ``areas`` (N,) are the reference (track) areas in pixels^2. No shared joint -> 0.
    Returns (N, M).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    d2 = ((a[:, None, :, :2] - b[None, :, :, :2]) ** 2).sum(-1)  # (N, M, K)
    var = (2.0 * np.asarray(sigmas, dtype=np.float64)) ** 2
    e = d2 / (2.0 * np.maximum(np.asarray(areas, dtype=np.float64), 1.0)[:, None, None] * var)
    valid = (a[:, None, :, 2] >= score_threshold) & (b[None, :, :, 2] >= score_threshold)
    n = valid.sum(-1)
    return np.where(n > 0, (np.exp(-e) * valid).sum(-1) / np.maximum(n, 1), 0.0)


def _item_box(item) -> np.ndarray:
    box = item.bbox_xywh
    if box is None and isinstance(item, PoseResult):  # a pose without its box: the window it came from
        wh = np.asarray(item.scale, dtype=np.float64) * 200.0
        c = np.asarray(item.center_img, dtype=np.float64)
        return np.concatenate([c - wh / 2, wh])
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
        areas = np.array([t.box_xywh[2] * t.box_xywh[3] for t in self.tracks])
        oks = keypoint_oks(kp_t, kp_d, areas, self._sigmas(kp_t.shape[1]), self.keypoint_score_threshold)
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
# One-Euro filter
# ---------------------------------------------------------------------------------------------

def _alpha(cutoff: np.ndarray, dt: np.ndarray) -> np.ndarray:
    """Smoothing factor of a first-order low-pass filter: ``1 / (1 + tau / dt)``, ``tau = 1 / (2 pi fc)``."""
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One-Euro filter (Casiez et al. 2012), element-wise over an array of any fixed shape.

    Defaults suit keypoints in image pixels at video rates: ``min_cutoff=1.0`` Hz (jitter cutoff when
    still), ``beta=0.05`` (cutoff gain per pixel/second of speed; higher = less lag when moving, more
    jitter), ``d_cutoff=1.0`` Hz (cutoff for the speed estimate), as recommended by the paper's
    tuning procedure (set beta 0, lower min_cutoff until jitter is acceptable, raise beta until lag
    is acceptable).

    Call with the new value and its time in seconds (or ``None`` for ``1 / freq`` steps). ``mask``
    (same shape, bool) marks elements to filter; the others are returned unchanged and keep their
    state, and their next update uses the real elapsed time.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.05, d_cutoff: float = 1.0,
                 freq: float = 30.0):
        for name, v in (("min_cutoff", min_cutoff), ("d_cutoff", d_cutoff), ("freq", freq)):
            if not v > 0:
                raise ConfigError(f"OneEuroFilter {name}: got {v}, expected a value > 0")
        if beta < 0:
            raise ConfigError(f"OneEuroFilter beta: got {beta}, expected a value >= 0")
        self.min_cutoff, self.beta = float(min_cutoff), float(beta)
        self.d_cutoff, self.freq = float(d_cutoff), float(freq)
        self.reset()

    def reset(self) -> None:
        self._x = self._dx = self._t = self._init = None
        self._steps = 0

    def __call__(self, x: np.ndarray, t: Optional[float] = None,
                 mask: Optional[np.ndarray] = None) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        t = self._steps / self.freq if t is None else float(t)
        self._steps += 1
        if self._x is None or self._x.shape != x.shape:
            self._x, self._dx = x.copy(), np.zeros_like(x)
            self._t, self._init = np.full(x.shape, t), np.zeros(x.shape, dtype=bool)
        m = np.ones(x.shape, dtype=bool) if mask is None else np.broadcast_to(np.asarray(mask, bool), x.shape)
        first = m & ~self._init
        upd = m & self._init
        out = x.copy()
        if upd.any():
            dt = np.maximum(t - self._t[upd], 1e-6)
            xu = x[upd]
            dx = (xu - self._x[upd]) / dt
            a_d = _alpha(np.full_like(dt, self.d_cutoff), dt)
            dx_hat = a_d * dx + (1.0 - a_d) * self._dx[upd]
            cutoff = self.min_cutoff + self.beta * np.abs(dx_hat)
            a = _alpha(cutoff, dt)
            x_hat = a * xu + (1.0 - a) * self._x[upd]
            out[upd] = x_hat
            self._x[upd], self._dx[upd], self._t[upd] = x_hat, dx_hat, t
        if first.any():
            self._x[first], self._dx[first], self._t[first] = x[first], 0.0, t
            self._init |= first
        return out


class KeypointSmoother:
    """One :class:`OneEuroFilter` per ``track_id`` over ``keypoints_img[:, :2]``.

    Joints with score ``< score_threshold`` are not filtered (returned as predicted) and do not
    update their filter. Results without a ``track_id`` pass through unchanged. A track's filter is
    forgotten after ``forget_after`` calls without it (a reappearing id starts fresh).
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.05, d_cutoff: float = 1.0, *,
                 score_threshold: float = 0.3, freq: float = 30.0, forget_after: int = 30):
        self.params = dict(min_cutoff=min_cutoff, beta=beta, d_cutoff=d_cutoff, freq=freq)
        OneEuroFilter(**self.params)  # validate now
        self.score_threshold = float(score_threshold)
        self.forget_after = int(forget_after)
        self._filters: Dict[int, Tuple[OneEuroFilter, int]] = {}
        self._calls = 0

    def reset(self) -> None:
        self._filters.clear()
        self._calls = 0

    def __call__(self, results: Sequence[PoseResult],
                 timestamp_s: Optional[float] = None) -> List[PoseResult]:
        """Smooth one frame's results; ``timestamp_s`` in seconds (``None``: ``1 / freq`` per call)."""
        t = self._calls / self.params["freq"] if timestamp_s is None else float(timestamp_s)
        self._calls += 1
        out = []
        for r in results:
            if r.track_id is None:
                out.append(r)
                continue
            filt = self._filters.get(r.track_id, (None, 0))[0] or OneEuroFilter(**self.params)
            self._filters[r.track_id] = (filt, self._calls)
            kp = np.array(r.keypoints_img, dtype=np.float64, copy=True)
            mask = (kp[:, 2] >= self.score_threshold)[:, None]
            kp[:, :2] = filt(kp[:, :2], t, mask)
            out.append(dataclasses.replace(r, keypoints_img=kp.astype(np.asarray(r.keypoints_img).dtype)))
        stale = [tid for tid, (_, last) in self._filters.items() if self._calls - last > self.forget_after]
        for tid in stale:
            del self._filters[tid]
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
