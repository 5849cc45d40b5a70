"""Keypoints in crop pixels <-> Gaussian heatmaps: targets, decoding, flip test.

:class:`HeatmapCodec` is the only place that knows sigma, the stride, how a Gaussian is rendered,
how a heatmap is decoded and refined, and how flipped heatmaps are undone. Everything is numpy in
and out and vectorised over (N persons, K joints); pixel conventions are those of
:mod:`pose.geometry`.

Encodings (``encoding``):
    ``"msra"``      official HRNet targets: the peak sits on the integer heatmap pixel
                    ``int(x / stride + 0.5)``, a ``(6 sigma + 1)^2`` patch pasted clipped.
    ``"unbiased"``  DarkPose/UDP targets: a Gaussian evaluated at the sub-pixel heatmap position
                    over the whole map (``x / stride`` for the official grid; ``x * (w-1)/(W-1)``
                    about the ``(size-1)/2`` centres for UDP, see ``HeatmapCodec.crop_to_heatmap``).
    Default: ``"unbiased"`` for the ``udp`` decoder, ``"msra"`` otherwise (what official
    checkpoints were trained with).

Decoders (``decoder``), all returning crop-pixel coordinates and the heatmap maxima as scores:
    ``"none"``     integer argmax (official ``get_max_preds``: first index on ties, (0, 0) where
                   the max is <= 0);
    ``"quarter"``  official POST_PROCESS: +-0.25 px towards the larger neighbour when
                   ``1 < px < w-1`` and ``1 < py < h-1``;
    ``"dark"``     DARK: Gaussian modulation (``blur_kernel``), log, one Newton (Taylor) step when
                   ``1 < px < w-2`` and ``1 < py < h-2``; official ``size/2`` mapping;
    ``"udp"``      DARK refinement with the UDP ``(size - 1)`` mapping, unbiased targets and no
                   flip shift (``unbiased`` is True: crops must use ``crop_matrix(..., unbiased=True)``).

Pixel conventions (the one rule for decoders that share a forward pass). A model is trained in one
convention, and its heatmaps can only be read by the decoders of that convention, because the crop, the
targets and the flip treatment all depend on it (UDP is a representation, not a decode-only option):
    ``"official"``  ``size/2`` crops, ``msra`` (or DarkPose ``unbiased``) targets on the ``x / stride``
                    grid, the one-pixel SHIFT_HEATMAP flip: decoders ``none``, ``quarter``, ``dark``;
    ``"udp"``       ``(size - 1)`` crops, ``unbiased`` targets, exact flip: decoder ``udp``.
:data:`CONVENTIONS` holds the table; :meth:`HeatmapCodec.with_decoding` (and so
``pose.evaluation.decoder_codecs``, ``pose-eval --decoders``, ``TEST.DECODER`` on a checkpoint) refuses a
decoder of the other convention with a one-line :class:`~pose.errors.ConfigError`, and
:meth:`HeatmapCodec.require_convention` checks a codec against a model that declares its convention (the
zoo). Scoring the official heatmaps with ``udp`` moved keypoints by up to 6 px on a perfect oracle
(AP 0.896 instead of 1.000, issue 18).

Round trips (tested): ``decode(encode(k))`` recovers sub-pixel ``k`` within 0.05 px for ``dark`` and
``udp`` with unbiased targets. With ``msra`` targets the peak is quantised, so every decoder returns
``round(x / stride) * stride`` (DARK within 0.01 px of it): the error is at most ``stride / 2`` per
axis (2 px at 4x). Use ``HeatmapCodec(..., decoder="dark", encoding="unbiased")`` to train for DARK.

Flip test: with the official ``size/2`` grid, ``flip_average`` of a perfect model's outputs (the
mirrored crop encodes ``W - 1 - x``) returns the plain maps exactly for keypoints on the stride grid;
off the grid the one-pixel shift leaves the official bias (+0.25 heatmap px on average on x). UDP
needs no shift and is exact everywhere.

Degenerate maps are defined, not NaN: an all-zero or all-negative map decodes to (0, 0) with its
maximum as score (official); for DARK the modulated all-zero map is kept at zero (DarkPose makes it
0/0 = NaN but never uses it). Heatmaps containing NaN or +inf raise ``ValueError``.

Why one long module: the codec is the single owner of the heatmap representation (house style P4), so
targets, every decoder and the flip test stay side by side where a reader can check they agree.
"""
import logging
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from pose.errors import ConfigError
from pose.keypoints import flip_permutation

logger = logging.getLogger(__name__)

DECODERS = ("none", "quarter", "dark", "udp")
ENCODINGS = ("msra", "unbiased")
#: Pixel convention -> the decoders that read heatmaps of a model trained in it (see the module docstring).
CONVENTIONS = {"official": ("none", "quarter", "dark"), "udp": ("udp",)}
_CONVENTION_TEXT = {"official": "the official convention (size/2 crops, x/stride targets, shifted flip)",
                    "udp": "the UDP convention ((size-1) crops, unbiased targets, unshifted flip)"}

__all__ = [
    "CONVENTIONS", "DECODERS", "ENCODINGS", "HeatmapCodec", "build_codec", "decoder_convention",
    "decoding_from_config", "default_decoder", "msra_targets", "unbiased_targets",
    "argmax_heatmaps", "refine_quarter", "dark_modulate", "refine_dark", "flip_back",
]


# --------------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------------
def _window_weights(mu: np.ndarray, visible: np.ndarray, heatmap_size, tmp: float) -> np.ndarray:
    """Official in-map rule: weight 0 unless visible and the 3-sigma window touches the map.

    ``ul = int(mu - tmp)``, ``br = int(mu + tmp + 1)`` with Python ``int`` (truncation toward 0).
    """
    w, h = heatmap_size
    ul = np.trunc(mu - tmp)
    br = np.trunc(mu + tmp + 1)
    outside = (ul[..., 0] >= w) | (ul[..., 1] >= h) | (br[..., 0] < 0) | (br[..., 1] < 0)
    return ((np.asarray(visible) > 0) & ~outside).astype(np.float32)


def _check_points(keypoints: np.ndarray, visible: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    k = np.asarray(keypoints, dtype=np.float64)
    if k.ndim != 3 or k.shape[-1] < 2:
        raise ValueError(f"keypoints must be (N, K, 2), got shape {k.shape}")
    v = np.asarray(visible)
    if v.ndim == 3:          # official (N, K, 1) or (N, K, 3) visibility
        v = v[..., 0]
    if v.shape != k.shape[:2]:
        raise ValueError(f"visible must be (N, K) = {k.shape[:2]}, got shape {v.shape}")
    return k[..., :2], v


def msra_targets(keypoints_crop: np.ndarray, visible: np.ndarray, input_size: Sequence[int],
                 heatmap_size: Sequence[int], sigma: float) -> Tuple[np.ndarray, np.ndarray]:
    """Official HRNet Gaussian targets (``JointsDataset.generate_target``), loop-free.

    The peak is the integer pixel ``mu = int(x / stride + 0.5)``; the unnormalised Gaussian patch
    of ``(6 sigma + 1)`` pixels per side is pasted clipped to the map. Rendered separably: the
    patch is the outer product of two 1-D Gaussians restricted to the official window.

    Args:
        keypoints_crop: (N, K, 2) crop-pixel coordinates.
        visible: (N, K) visibility; > 0 counts as visible (weight 1).
        input_size, heatmap_size: ``(W, H)`` of the crop and of the heatmap.
        sigma: Gaussian sigma in heatmap pixels.

    Returns:
        heatmaps (N, K, h, w) float32, weights (N, K) float32 (0 for invisible or off-map joints).
    """
    k, v = _check_points(keypoints_crop, visible)
    w, h = int(heatmap_size[0]), int(heatmap_size[1])
    stride = np.array([input_size[0] / w, input_size[1] / h], dtype=np.float64)
    mu = np.trunc(k / stride + 0.5)                       # int(x / stride + 0.5)
    tmp = sigma * 3
    weights = _window_weights(mu, v, (w, h), tmp)
    ul = np.trunc(mu - tmp)
    br = np.trunc(mu + tmp + 1)
    center = float((2 * tmp + 1) // 2)                   # x0 = size // 2 inside the patch

    def axis_profile(n, axis):
        xs = np.arange(n, dtype=np.float64)
        lo, hi = ul[..., axis, None], br[..., axis, None]
        d = xs - lo - center
        g = np.exp(-(d * d) / (2.0 * sigma * sigma))
        return np.where((xs >= lo) & (xs < hi), g, 0.0)

    gx = axis_profile(w, 0) * (weights > 0.5)[..., None]
    gy = axis_profile(h, 1)
    heatmaps = (gy[..., :, None] * gx[..., None, :]).astype(np.float32)
    return heatmaps, weights


def unbiased_targets(keypoints_hm: np.ndarray, visible: np.ndarray, heatmap_size: Sequence[int],
                     sigma: float) -> Tuple[np.ndarray, np.ndarray]:
    """DarkPose/UDP unbiased targets from joints already in heatmap pixels.

    ``exp(-((x - mu_x)^2 + (y - mu_y)^2) / (2 sigma^2))`` over the whole map at sub-pixel ``mu``,
    no rounding and no window; the weight is 0 for invisible joints and where the 3-sigma window
    ``[int(mu - 3 sigma), int(mu + 3 sigma + 1)]`` lies fully off the map.

    Returns:
        heatmaps (N, K, h, w) float32, weights (N, K) float32.
    """
    mu, v = _check_points(keypoints_hm, visible)
    w, h = int(heatmap_size[0]), int(heatmap_size[1])
    weights = _window_weights(mu, v, (w, h), sigma * 3)
    inv = 1.0 / (2.0 * sigma * sigma)
    dx = np.arange(w, dtype=np.float64) - mu[..., 0, None]
    dy = np.arange(h, dtype=np.float64) - mu[..., 1, None]
    gx = np.exp(-dx * dx * inv) * (weights > 0.5)[..., None]
    gy = np.exp(-dy * dy * inv)
    return (gy[..., :, None] * gx[..., None, :]).astype(np.float32), weights


# --------------------------------------------------------------------------------------------
# Decoding steps (heatmap space)
# --------------------------------------------------------------------------------------------
def _check_heatmaps(heatmaps: np.ndarray) -> np.ndarray:
    hm = np.asarray(heatmaps)
    if hm.ndim != 4:
        raise ValueError(f"heatmaps must be (N, K, H, W), got shape {hm.shape}")
    if hm.dtype != np.float32 and hm.dtype != np.float64:
        hm = hm.astype(np.float32)
    return hm


def argmax_heatmaps(heatmaps: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Official ``get_max_preds``: integer argmax per map.

    Ties go to the first index in row-major order; coordinates are set to (0, 0) where the
    maximum is <= 0 (the maximum itself is returned unchanged).

    Args:
        heatmaps: (N, K, H, W).

    Returns:
        coords_hm (N, K, 2) float32 ``(x, y)``, maxvals (N, K) float32.

    Raises:
        ValueError: a map contains NaN or +inf.
    """
    hm = _check_heatmaps(heatmaps)
    n, k, h, w = hm.shape
    flat = hm.reshape(n, k, h * w)
    if h * w == 0:
        raise ValueError(f"heatmaps have an empty spatial size {h}x{w}")
    idx = np.argmax(flat, axis=2)
    maxvals = _gather(flat, w, idx, 0).astype(np.float32)
    if not np.isfinite(maxvals).all():
        bad = np.argwhere(~np.isfinite(maxvals))
        raise ValueError(f"heatmaps contain NaN or +inf ({len(bad)} maps, first at person {bad[0][0]}, "
                         f"joint {bad[0][1]}); expected finite model outputs")
    coords = np.stack([idx % w, idx // w], axis=2).astype(np.float32)
    coords *= (maxvals > 0)[..., None]
    return coords, maxvals


def _gather(hm_flat: np.ndarray, w: int, x: np.ndarray, y) -> np.ndarray:
    """``hm[n, k, y, x]`` for index arrays (..., N, K) (already clipped into the map).

    One fancy index into the flat buffer (``take_along_axis`` costs several times more per call).
    """
    n, k, hw = hm_flat.shape
    base = (np.arange(n * k) * hw).reshape(n, k)
    return np.ravel(hm_flat)[base + y * w + x]


def refine_quarter(heatmaps: np.ndarray, coords_hm: np.ndarray) -> np.ndarray:
    """Official POST_PROCESS: move 0.25 px towards the larger neighbour on each axis.

    Applied where ``1 < px < W-1`` and ``1 < py < H-1`` with ``p = floor(coord + 0.5)``; a zero
    difference gives no shift. Returns new (N, K, 2) float32 coordinates.
    """
    hm = _check_heatmaps(heatmaps)
    n, k, h, w = hm.shape
    flat = hm.reshape(n, k, h * w)
    p = np.floor(coords_hm + 0.5).astype(np.int64)
    px, py = p[..., 0], p[..., 1]
    ok = (px > 1) & (px < w - 1) & (py > 1) & (py < h - 1)
    px, py = np.where(ok, px, 2), np.where(ok, py, 2)
    xp, xm = np.minimum(px + 1, w - 1), np.maximum(px - 1, 0)
    yp, ym = np.minimum(py + 1, h - 1), np.maximum(py - 1, 0)
    v = _gather(flat, w, np.stack([xp, xm, px, px]), np.stack([py, py, yp, ym]))
    diff_x, diff_y = v[0] - v[1], v[2] - v[3]
    shift = np.stack([np.sign(diff_x), np.sign(diff_y)], axis=2).astype(np.float32) * np.float32(0.25)
    return (coords_hm + shift * ok[..., None]).astype(np.float32)


def dark_modulate(heatmaps: np.ndarray, kernel: int = 11) -> np.ndarray:
    """DARK's Gaussian modulation (DarkPose ``gaussian_blur``), on a copy.

    Each map is zero-padded by ``(kernel-1)/2``, blurred with ``cv2.GaussianBlur((k, k), 0)`` (sigma
    ``0.3((k-1)/2 - 1) + 0.8``), cropped back and rescaled so its maximum equals the original one.
    The zero pad is wider than the kernel radius, so this equals a separable blur with a constant-0
    border, done here for all maps at once. A map whose blurred maximum is 0 (the all-zero map)
    stays 0 instead of DarkPose's 0/0 = NaN.

    Returns:
        (N, K, H, W) float32.
    """
    hm = _check_heatmaps(heatmaps)
    n, k, h, w = hm.shape
    if hm.size == 0:
        return np.zeros(hm.shape, np.float32)
    g = cv2.getGaussianKernel(int(kernel), 0).astype(np.float64)
    one = np.ones((1, 1), np.float64)
    rows = hm.reshape(n * k * h, w).astype(np.float64)
    rows = cv2.sepFilter2D(rows, -1, g, one, borderType=cv2.BORDER_CONSTANT)           # along x
    cols = np.ascontiguousarray(rows.reshape(n * k, h, w).transpose(0, 2, 1)).reshape(n * k * w, h)
    cols = cv2.sepFilter2D(cols, -1, g, one, borderType=cv2.BORDER_CONSTANT)           # along y
    blurred = cols.reshape(n, k, w, h).transpose(0, 1, 3, 2).astype(np.float32)
    m0 = hm.reshape(n, k, -1).max(axis=2).astype(np.float32)
    m1 = blurred.reshape(n, k, -1).max(axis=2)
    ratio = np.divide(m0, m1, out=np.zeros_like(m0), where=m1 != 0)
    return blurred * ratio[..., None, None]


# (dx, dy) of the 13 log-heatmap samples the Taylor step reads.
_TAYLOR_TAPS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1), (2, 0), (-2, 0), (0, 2), (0, -2),
                (1, 1), (-1, 1), (1, -1), (-1, -1))


def _local_blur(heatmaps: np.ndarray, ii: np.ndarray, jj: np.ndarray, px: np.ndarray, py: np.ndarray,
                kernel: int) -> np.ndarray:
    """The DARK blur (constant-0 border) evaluated only on the 5x5 grid around each (px, py).

    Args:
        heatmaps: (N, K, H, W).
        ii, jj, px, py: (M,) person, joint and pixel indices of the selected joints.

    Returns:
        (M, 5, 5) float64 indexed ``[dy + 2, dx + 2]``; equal to :func:`dark_modulate` before its
        rescale, at a few hundred multiply-adds per joint instead of a whole-map blur.
    """
    n, k, h, w = heatmaps.shape
    reach = kernel // 2 + 2
    span = 2 * reach + 1
    patch = np.zeros((len(ii), span, span), np.float64)
    inner = (px >= reach) & (px < w - reach) & (py >= reach) & (py < h - reach)
    if inner.any():   # whole patch inside the map: one strided copy per joint
        windows = np.lib.stride_tricks.sliding_window_view(heatmaps, (span, span), axis=(2, 3))
        sel = np.nonzero(inner)[0]
        patch[sel] = windows[ii[sel], jj[sel], py[sel] - reach, px[sel] - reach]
    if not inner.all():   # near a border: gather with zeros outside the map
        sel = np.nonzero(~inner)[0]
        offsets = np.arange(span) - reach
        ys, xs = py[sel, None] + offsets, px[sel, None] + offsets                     # (S, span)
        inside = ((ys >= 0) & (ys < h))[:, :, None] & ((xs >= 0) & (xs < w))[:, None, :]
        vals = heatmaps[ii[sel, None, None], jj[sel, None, None],
                        np.clip(ys, 0, h - 1)[:, :, None], np.clip(xs, 0, w - 1)[:, None, :]]
        patch[sel] = vals * inside
    g = cv2.getGaussianKernel(kernel, 0).ravel()
    band = np.zeros((5, span))
    for j in range(5):
        band[j, j:j + kernel] = g
    # Two plain GEMMs over all joints at once (stacks of tiny matmuls are far slower in numpy).
    rows = patch.reshape(-1, span) @ band.T                                        # blur along x
    rows = rows.reshape(-1, span, 5).transpose(0, 2, 1).reshape(-1, span) @ band.T  # along y
    return rows.reshape(-1, 5, 5).transpose(0, 2, 1)


def refine_dark(heatmaps: np.ndarray, coords_hm: np.ndarray, kernel: int = 11,
                maxvals: Optional[np.ndarray] = None) -> np.ndarray:
    """DARK refinement: modulate, ``log(max(., 1e-10))``, one Newton step at the integer argmax.

    Applied where ``1 < px < W-2`` and ``1 < py < H-2`` (``p = int(coord)``) and the Hessian's
    determinant is non-zero; the offset is not clamped (as DarkPose). Returns (N, K, 2) float32.

    Fast path: the step only reads 13 log values, and the max-rescale of the modulation adds the
    same constant to all of them, so it cancels in every derivative. When the map maximum is > 0
    and the 13 blurred values are > 1e-10 the rescaled values are too (the blur of a map bounded by
    its max ``m0 > 0`` stays <= m0, so the rescale factor is >= 1) and the clamp is inactive; the
    blur is then evaluated on the 5x5 neighbourhood only. Other joints in the window take the
    whole-map :func:`dark_modulate` path, exactly as DarkPose. ``maxvals`` (N, K), the map maxima
    from :func:`argmax_heatmaps`, saves a pass over the maps.
    """
    hm = _check_heatmaps(heatmaps)
    n, k, h, w = hm.shape
    coords_hm = np.asarray(coords_hm, dtype=np.float32)
    if w < 5 or h < 5 or hm.size == 0:   # no pixel can be inside the window; keep the argmax
        return coords_hm.copy()
    p = np.trunc(coords_hm).astype(np.int64)
    px, py = p[..., 0], p[..., 1]
    ok = (px > 1) & (px < w - 2) & (py > 1) & (py < h - 2)
    px, py = np.where(ok, px, 2), np.where(ok, py, 2)

    m0 = hm.reshape(n, k, -1).max(axis=2) if maxvals is None else np.asarray(maxvals).reshape(n, k)
    logs = np.zeros((n, k, len(_TAYLOR_TAPS)))
    ii, jj = np.nonzero(ok)
    if len(ii):
        sx, sy = px[ii, jj], py[ii, jj]
        local = _local_blur(hm, ii, jj, sx, sy, kernel)
        vals = np.stack([local[:, dy + 2, dx + 2] for dx, dy in _TAYLOR_TAPS], axis=-1)   # (M, 13)
        fast = (m0[ii, jj] > 0) & (vals.min(axis=-1) > 1e-10)
        logs[ii, jj] = np.log(np.where(fast[:, None], vals, 1.0))
        slow = np.nonzero(~fast)[0]
        if len(slow):
            si, sj, sx, sy = ii[slow], jj[slow], sx[slow, None], sy[slow, None]
            mod = dark_modulate(hm[si, sj][:, None], kernel)                            # (S, 1, h, w)
            mod = np.log(np.maximum(mod, np.float32(1e-10))).reshape(len(si), 1, h * w)
            logs[si, sj] = np.stack([_gather(mod, w, sx + dx, sy + dy)[:, 0] for dx, dy in _TAYLOR_TAPS],
                                    axis=-1)
    c, xp, xm, yp, ym, xpp, xmm, ypp, ymm, pp, mp, pm, mm = np.moveaxis(logs, -1, 0)
    dx = 0.5 * (xp - xm)
    dy = 0.5 * (yp - ym)
    dxx = 0.25 * (xpp - 2 * c + xmm)
    dyy = 0.25 * (ypp - 2 * c + ymm)
    dxy = 0.25 * (pp - mp - pm + mm)
    det = dxx * dyy - dxy * dxy
    ok &= det != 0
    safe = np.where(ok, det, 1.0)
    off_x = -(dyy * dx - dxy * dy) / safe
    off_y = -(-dxy * dx + dxx * dy) / safe
    offset = np.stack([off_x, off_y], axis=2) * ok[..., None]
    return (coords_hm + offset).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Flip test
# --------------------------------------------------------------------------------------------
def flip_back(heatmaps_flipped: np.ndarray, flip_pairs: Sequence[Sequence[int]]) -> np.ndarray:
    """Undo a horizontal input flip on heatmaps: reverse the width axis and swap left/right channels.

    Args:
        heatmaps_flipped: (N, K, H, W) model output for the mirrored crops.
        flip_pairs: (left, right) channel pairs.

    Returns:
        A new (N, K, H, W) array (the input is never modified, unlike the official ``flip_back``).
    """
    hm = _check_heatmaps(heatmaps_flipped)
    perm = flip_permutation(hm.shape[1], flip_pairs)
    return np.ascontiguousarray(hm[:, perm, :, ::-1])


# --------------------------------------------------------------------------------------------
# The codec
# --------------------------------------------------------------------------------------------
def _pair(value, field: str) -> Tuple[int, int]:
    try:
        a, b = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{field}: expected two positive integers (W, H), got {value!r}") from None
    if a <= 0 or b <= 0:
        raise ConfigError(f"{field}: expected two positive integers (W, H), got {value!r}")
    return a, b


class HeatmapCodec:
    """Keypoints in crop pixels <-> heatmaps. Conventions: :mod:`pose.geometry` and this module.

    Args:
        input_size: model input ``(W, H)`` in pixels.
        heatmap_size: heatmap ``(w, h)``.
        sigma: target Gaussian sigma in heatmap pixels.
        decoder: one of :data:`DECODERS`.
        flip_shift: official SHIFT_HEATMAP (shift the un-flipped maps one pixel right before
            averaging); ignored (no shift) for ``udp``, whose flip is exact.
        blur_kernel: DARK modulation kernel (odd; 1 = no modulation, DarkPose uses 11, or 3 at 128x96).
        encoding: one of :data:`ENCODINGS`; default ``unbiased`` for ``udp`` else ``msra``.
    """

    def __init__(self, input_size: Sequence[int], heatmap_size: Sequence[int], sigma: float, *,
                 decoder: str = "quarter", flip_shift: bool = True, blur_kernel: int = 11,
                 encoding: Optional[str] = None):
        self.input_size = _pair(input_size, "input_size")
        self.heatmap_size = _pair(heatmap_size, "heatmap_size")
        (W, H), (w, h) = self.input_size, self.heatmap_size
        if W * h != H * w:
            raise ConfigError(f"heatmap_size {w}x{h} and input_size {W}x{H}: expected the same stride "
                              "on both axes (input = heatmap * stride)")
        self.sigma = float(sigma)
        if not self.sigma > 0:
            raise ConfigError(f"sigma: expected a positive number, got {sigma!r}")
        decoder = str(decoder).lower()
        if decoder not in DECODERS:
            raise ConfigError(f"decoder: expected one of {', '.join(DECODERS)}, got {decoder!r}")
        self.decoder = decoder
        self.flip_shift = bool(flip_shift)
        self.blur_kernel = int(blur_kernel)
        if self.blur_kernel < 1 or self.blur_kernel % 2 == 0:
            raise ConfigError(f"blur_kernel: expected an odd positive integer, got {blur_kernel!r}")
        encoding = ("unbiased" if decoder == "udp" else "msra") if encoding is None else str(encoding).lower()
        if encoding not in ENCODINGS:
            raise ConfigError(f"encoding: expected one of {', '.join(ENCODINGS)}, got {encoding!r}")
        if decoder == "udp" and encoding == "msra":  # msra peaks sit on the x/stride grid, not UDP's
            raise ConfigError("encoding 'msra' renders targets on the official x/stride grid; the udp decoder "
                              "needs encoding 'unbiased'")
        self.encoding = encoding

    # -- conventions -------------------------------------------------------------------------
    @property
    def unbiased(self) -> bool:
        """True when crops and coordinates use the UDP ``(size - 1)`` convention (decoder ``udp``)."""
        return self.convention == "udp"

    @property
    def convention(self) -> str:
        """The pixel convention of this codec's crops, targets and flip (a key of :data:`CONVENTIONS`)."""
        return decoder_convention(self.decoder)

    def check_decoder(self, decoder: str) -> str:
        """``decoder`` (lower case) if it reads heatmaps of this codec's convention, else ConfigError."""
        name = str(decoder).lower()
        if name in DECODERS and decoder_convention(name) != self.convention:
            fits = CONVENTIONS[self.convention]
            raise ConfigError(f"decoder '{name}' does not fit this model: it was trained in "
                              f"{_CONVENTION_TEXT[self.convention]}, so its heatmaps take only "
                              f"{', '.join(fits)} ('{name}' needs a model trained in "
                              f"{_CONVENTION_TEXT[decoder_convention(name)]})")
        return name

    def require_convention(self, convention: str, model: str) -> None:
        """ConfigError unless this codec's decoder fits ``model``, trained in ``convention``."""
        if convention not in CONVENTIONS:
            raise ConfigError(f"{model}: unknown pixel convention {convention!r}; expected one of "
                              f"{', '.join(CONVENTIONS)}")
        if self.convention != convention:
            raise ConfigError(f"decoder '{self.decoder}' does not fit {model}: it was trained in "
                              f"{_CONVENTION_TEXT[convention]}; use one of {', '.join(CONVENTIONS[convention])}")

    @property
    def shifts_flip(self) -> bool:
        """Whether :meth:`flip_average` applies the official one-pixel shift."""
        return self.flip_shift and not self.unbiased

    def _hm_from_crop(self) -> Tuple[float, np.ndarray]:
        """``(r, t)`` with ``heatmap = crop * r + t``: the crop -> heatmap map of this convention.

        Both grids are windows on the same image region, so the map is the isotropic one implied
        by :func:`pose.geometry.crop_matrix` at the two sizes (factor from the widths, centres
        aligned): official ``r = w / W``, ``t = 0``; UDP/DarkPose ``r = (w-1)/(W-1)`` about the
        centres ``(size - 1) / 2`` (for 256x192 -> 64x48, ``t_y`` = 0.126 heatmap px; this is
        exactly DarkPose's heatmap -> image transform, while mmpose's UDP scales each axis by
        ``(size-1)`` ratios separately).
        """
        (W, H), (w, h) = self.input_size, self.heatmap_size
        if self.unbiased:
            r = (w - 1) / max(W - 1, 1)
            return r, np.array([(w - 1) / 2 - (W - 1) / 2 * r, (h - 1) / 2 - (H - 1) / 2 * r])
        return w / W, np.zeros(2)

    def crop_to_heatmap(self, keypoints_crop: np.ndarray) -> np.ndarray:
        """(..., 2) crop pixels -> heatmap pixels (official ``x / stride``), float64."""
        r, t = self._hm_from_crop()
        return np.asarray(keypoints_crop, dtype=np.float64)[..., :2] * r + t

    def heatmap_to_crop(self, coords_hm: np.ndarray) -> np.ndarray:
        """(..., 2) heatmap pixels -> crop pixels (inverse of :meth:`crop_to_heatmap`), float32."""
        r, t = self._hm_from_crop()
        return ((np.asarray(coords_hm, dtype=np.float64)[..., :2] - t) / r).astype(np.float32)

    # -- encode ------------------------------------------------------------------------------
    def encode(self, keypoints_crop: np.ndarray, visible: np.ndarray,
               joint_weights: Optional[Sequence[float]] = None) -> Tuple[np.ndarray, np.ndarray]:
        """Training targets.

        Args:
            keypoints_crop: (N, K, 2) crop-pixel coordinates.
            visible: (N, K) visibility (> 0 is visible).
            joint_weights: optional (K,) per-joint loss weights multiplied into the weights.

        Returns:
            heatmaps (N, K, h, w) float32, weights (N, K) float32.
        """
        if self.encoding == "msra":
            heatmaps, weights = msra_targets(keypoints_crop, visible, self.input_size, self.heatmap_size,
                                             self.sigma)
        else:
            kp, v = _check_points(keypoints_crop, visible)
            heatmaps, weights = unbiased_targets(self.crop_to_heatmap(kp), v, self.heatmap_size, self.sigma)
        if joint_weights is not None:
            jw = np.asarray(joint_weights, dtype=np.float32).reshape(-1)
            if jw.size != weights.shape[1]:
                raise ValueError(f"joint_weights has {jw.size} values, expected {weights.shape[1]}")
            weights = weights * jw
        return heatmaps, weights

    # -- decode ------------------------------------------------------------------------------
    def decode_heatmap_space(self, heatmaps: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(N, K, h, w) -> coords_hm (N, K, 2) float32 in heatmap pixels, maxvals (N, K) float32."""
        coords, maxvals = argmax_heatmaps(heatmaps)
        if self.decoder == "quarter":
            coords = refine_quarter(heatmaps, coords)
        elif self.decoder in ("dark", "udp"):
            coords = refine_dark(heatmaps, coords, self.blur_kernel, maxvals)
        return coords, maxvals

    def decode(self, heatmaps: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(N, K, h, w) heatmaps -> keypoints_crop (N, K, 2) float32, scores (N, K) float32.

        Scores are the heatmap maxima (before any DARK blur). Map the keypoints to the image with
        ``pose.geometry.crop_to_image(kp, centers, scales, codec.input_size, unbiased=codec.unbiased)``.
        """
        coords, maxvals = self.decode_heatmap_space(heatmaps)
        return self.heatmap_to_crop(coords), maxvals

    # -- flip test ---------------------------------------------------------------------------
    def flip_back(self, heatmaps_flipped: np.ndarray, flip_pairs: Sequence[Sequence[int]]) -> np.ndarray:
        """See :func:`flip_back` (new array; no shift)."""
        return flip_back(heatmaps_flipped, flip_pairs)

    def flip_average(self, heatmaps: np.ndarray, heatmaps_flipped_raw: np.ndarray,
                     flip_pairs: Sequence[Sequence[int]]) -> np.ndarray:
        """Flip test: un-flip the mirrored crops' raw output and average with the plain output.

        With :attr:`shifts_flip` the un-flipped maps move one pixel right first
        (``f[..., 1:] = f[..., :-1]``, column 0 kept), as the official SHIFT_HEATMAP. That
        compensates the ``size/2`` convention: a joint at crop x is encoded at ``x / s``, its
        mirror at ``(W - 1 - x) / s``, which un-flips to ``x / s - 1 + 1/s``. UDP needs no shift.

        Returns:
            (N, K, h, w) float32.
        """
        hm = _check_heatmaps(heatmaps)
        f = flip_back(heatmaps_flipped_raw, flip_pairs)
        if f.shape != hm.shape:
            raise ValueError(f"flipped heatmaps {f.shape} do not match heatmaps {hm.shape}")
        if self.shifts_flip:
            f[..., 1:] = f[..., :-1].copy()
        return ((hm + f) * 0.5).astype(np.float32)

    # -- another decoder on the same representation --------------------------------------------
    @property
    def decoding(self) -> dict:
        """The inference-time choices (decoder, flip shift, DARK kernel); the rest is fixed by training."""
        return {"decoder": self.decoder, "flip_shift": self.flip_shift, "blur_kernel": self.blur_kernel}

    def with_decoding(self, decoder: Optional[str] = None, *, flip_shift: Optional[bool] = None,
                      blur_kernel: Optional[int] = None) -> "HeatmapCodec":
        """This codec's sizes, sigma and target encoding with other decoding choices (None = keep).

        Raises:
            ConfigError: ``decoder`` belongs to another pixel convention (see :data:`CONVENTIONS`).
        """
        if decoder is not None:
            decoder = self.check_decoder(decoder)
        params = self.to_dict()
        for key, value in (("decoder", decoder), ("flip_shift", flip_shift), ("blur_kernel", blur_kernel)):
            if value is not None:
                params[key] = value
        return HeatmapCodec.from_dict(params)

    # -- persistence -------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Plain types only (stored in checkpoints)."""
        return {"input_size": list(self.input_size), "heatmap_size": list(self.heatmap_size),
                "sigma": self.sigma, "decoder": self.decoder, "flip_shift": self.flip_shift,
                "blur_kernel": self.blur_kernel, "encoding": self.encoding}

    @classmethod
    def from_dict(cls, d: dict) -> "HeatmapCodec":
        try:
            return cls(d["input_size"], d["heatmap_size"], d["sigma"], decoder=d.get("decoder", "quarter"),
                       flip_shift=d.get("flip_shift", True), blur_kernel=d.get("blur_kernel", 11),
                       encoding=d.get("encoding"))
        except (KeyError, TypeError) as e:
            raise ConfigError(f"codec: malformed entry ({e!r}); "
                              "expected the fields of HeatmapCodec.to_dict") from None

    def __eq__(self, other) -> bool:
        return isinstance(other, HeatmapCodec) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return "HeatmapCodec(" + ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items()) + ")"


def decoder_convention(decoder: str) -> str:
    """The pixel convention (a key of :data:`CONVENTIONS`) whose heatmaps ``decoder`` reads."""
    name = str(decoder).lower()
    for convention, names in CONVENTIONS.items():
        if name in names:
            return convention
    raise ConfigError(f"decoder: expected one of {', '.join(DECODERS)}, got {name!r}")


def default_decoder(decoder: str, post_process: bool, convention: str = "official") -> str:
    """``decoder`` if set; else for a model of the official convention the official choice (``quarter``
    with POST_PROCESS, ``none`` without), for a UDP model ``udp``."""
    name = str(decoder or "").lower()
    if not name:
        if convention == "udp":
            return "udp"
        return "quarter" if post_process else "none"
    if name not in DECODERS:
        raise ConfigError(f"TEST.DECODER: expected one of {', '.join(DECODERS)} or '', got {name!r}")
    return name


def decoding_from_config(cfg, convention: str = "official") -> dict:
    """The inference-time choices a config makes (keyword arguments of :meth:`HeatmapCodec.with_decoding`):
    ``TEST.DECODER`` (``''`` -> :func:`default_decoder` for a model of ``convention``),
    ``TEST.SHIFT_HEATMAP``, ``TEST.BLUR_KERNEL``; missing keys fall back to the official behaviour."""
    test = getattr(cfg, "TEST", None)
    return {"decoder": default_decoder(getattr(test, "DECODER", ""), getattr(test, "POST_PROCESS", True), convention),
            "flip_shift": bool(getattr(test, "SHIFT_HEATMAP", True)),
            "blur_kernel": int(getattr(test, "BLUR_KERNEL", 11))}


def build_codec(cfg) -> HeatmapCodec:
    """Codec from a config tree: ``MODEL.IMAGE_SIZE``, ``MODEL.HEATMAP_SIZE``, ``MODEL.SIGMA``,
    ``TEST.DECODER`` (``''`` -> ``quarter`` if ``TEST.POST_PROCESS`` else ``none``),
    ``TEST.SHIFT_HEATMAP``, ``TEST.BLUR_KERNEL`` and the optional ``MODEL.TARGET_ENCODING``
    (``''`` -> the decoder's default). Missing project keys fall back to the official behaviour.
    The config's decoder sets the convention of the model it describes (``udp`` = a UDP model).
    """
    model = cfg.MODEL
    target_type = str(getattr(model, "TARGET_TYPE", "gaussian")).lower()
    if target_type != "gaussian":
        raise ConfigError(f"MODEL.TARGET_TYPE: only 'gaussian' is supported, got {target_type!r}")
    return HeatmapCodec(model.IMAGE_SIZE, model.HEATMAP_SIZE, getattr(model, "SIGMA", 2),
                        encoding=(getattr(model, "TARGET_ENCODING", "") or None), **decoding_from_config(cfg))
