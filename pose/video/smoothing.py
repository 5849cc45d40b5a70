"""Temporal keypoint smoothing for video: the One-Euro filter, one per track.

:class:`OneEuroFilter` (Casiez, Roussel & Vogel, CHI 2012) is an adaptive low-pass filter whose
cutoff rises with speed, ``cutoff = min_cutoff + beta * |dx/dt|``: slow motion is smoothed hard (low
jitter), fast motion passes with little lag. :class:`KeypointSmoother` runs one filter per track over
its (K, 2) keypoints; joints below ``score_threshold`` pass through unfiltered and do not update the
filter, so an unreliable joint neither drags nor is dragged.
"""
import dataclasses
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from pose.errors import ConfigError
from pose.structures import PoseResult


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
