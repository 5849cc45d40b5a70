"""Training augmentation as pure functions: (rng, joints, window) -> parameters, then apply them.

The random generator is always passed in (``np.random.Generator``), never global, and every
probability is a named argument, so an augmentation is reproducible from its seed and testable
with explicit draws. Coordinates are image pixels (``*_img``); the crop window is the official
``(center, scale)`` pair with ``scale = window size / 200`` (width, height).

Official order (``JointsDataset.__getitem__``), reproduced by :func:`sample_augmentation`:

1. half body (if more than ``num_joints_half_body`` joints are visible and ``random() < prob``);
2. scale ``s *= clip(randn*SF + 1, 1-SF, 1+SF)``;
3. rotation ``r = clip(randn*RF, -2RF, 2RF)`` with probability ``rot_prob`` (0.6), else 0;
4. horizontal flip with probability ``flip_prob`` (0.5): image mirrored, joints
   ``x -> width - 1 - x`` with left/right swapped, ``center_x -> width - 1 - center_x``.

One option: the official half-body choice uses a *standard-normal* draw (``randn() < 0.5`` picks the
upper body, P ~ 0.69); ``draw="official"`` (the default) reproduces it, ``draw="fair"`` is the paper's
uniform 50/50 choice.
"""
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

from pose import geometry
from pose.config import HALF_BODY_DRAWS


@dataclass(frozen=True)
class AugmentParams:
    """One sampled augmentation for one person.

    Attributes:
        center: (2,) crop centre in image pixels, **after** the flip (if ``flip``).
        scale: (2,) crop window / 200 (width, height), after half body and scaling.
        rotation: degrees, counter-clockwise as in the official ``get_affine_transform``.
        flip: mirror the image (and joints) horizontally before cropping.
        half_body: the window came from the half-body rule.
    """

    center: np.ndarray
    scale: np.ndarray
    rotation: float = 0.0
    flip: bool = False
    half_body: bool = False


def half_body_window(joints: np.ndarray, visible: np.ndarray, *, upper_ids: Sequence[int],
                     lower_ids: Sequence[int], aspect_ratio: float, num_joints_half_body: int = 0,
                     draw: str = "official", rng: Optional[np.random.Generator] = None,
                     draw_value: Optional[float] = None, padding: float = 1.5
                     ) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """Official half-body window around the upper or the lower body.

    The visible joints are split into ``upper_ids`` and ``lower_ids``. The upper half is chosen if
    ``draw_value < 0.5`` and it has more than 2 joints; otherwise the lower half if it has more than
    2 joints, else the upper. The centre is the mean of the chosen joints; ``w, h = max - min``,
    enlarged to ``aspect_ratio`` (w/h), divided by 200 and multiplied by ``padding`` (1.5).
    Computed in float32 like the official code.

    Args:
        joints: (K, 2|3) image pixels; visible: (K,) or (K, 1|3) (> 0 means visible).
        upper_ids, lower_ids: joint indices of each half.
        aspect_ratio: model input width / height.
        num_joints_half_body: return ``None`` unless more than this many joints are visible
            (the official pre-condition, 8; 0 disables the check).
        draw: ``"fair"`` (``draw_value = rng.random()``) or ``"official"`` (``rng.standard_normal()``).
        rng: generator used when ``draw_value`` is not given.
        draw_value: explicit draw (``< 0.5`` prefers the upper body).
        padding: window enlargement (official 1.5).

    Returns:
        ``(center (2,) float32, scale (2,) float32)`` or ``None`` when fewer than 2 joints qualify or
        they all lie on one point (the window would have zero size).
    """
    vis = np.asarray(visible, dtype=np.float64)
    vis = vis.reshape(vis.shape[0], -1)[:, 0] > 0
    if vis.sum() <= num_joints_half_body:
        return None
    if draw_value is None:
        if draw not in HALF_BODY_DRAWS:
            raise ValueError(f"half_body_window: draw='{draw}', expected one of {HALF_BODY_DRAWS}")
        if rng is None:
            raise ValueError("half_body_window: pass rng or draw_value")
        draw_value = rng.random() if draw == "fair" else rng.standard_normal()
    xy = np.asarray(joints, dtype=np.float32)[:, :2]
    ids = np.arange(xy.shape[0])
    upper = xy[vis & np.isin(ids, list(upper_ids))]
    lower = xy[vis & np.isin(ids, list(lower_ids))]
    if draw_value < 0.5 and len(upper) > 2:
        chosen = upper
    else:
        chosen = lower if len(lower) > 2 else upper
    if len(chosen) < 2:
        return None
    center = chosen.mean(axis=0)
    w, h = chosen.max(axis=0) - chosen.min(axis=0)
    if not (w > 0 or h > 0):  # all chosen joints on one point: a zero-size window (the official code crops it)
        return None
    if w > aspect_ratio * h:
        h = w / np.float32(aspect_ratio)
    elif w < aspect_ratio * h:
        w = h * np.float32(aspect_ratio)
    scale = np.array([w / geometry.PIXEL_STD, h / geometry.PIXEL_STD], dtype=np.float32) * np.float32(padding)
    return center.astype(np.float32), scale


def random_scale_rotation(rng: np.random.Generator, scale_factor: float, rot_factor: float,
                          rot_prob: float = 0.6) -> Tuple[float, float]:
    """Official scale/rotation jitter.

    Returns:
        ``(scale_multiplier, rotation_deg)``: ``clip(randn*SF + 1, 1-SF, 1+SF)`` and
        ``clip(randn*RF, -2RF, 2RF)`` with probability ``rot_prob``, else 0.
    """
    mult = float(np.clip(rng.standard_normal() * scale_factor + 1.0, 1.0 - scale_factor, 1.0 + scale_factor))
    rot = 0.0
    if rng.random() <= rot_prob:
        rot = float(np.clip(rng.standard_normal() * rot_factor, -2.0 * rot_factor, 2.0 * rot_factor))
    return mult, rot


def flip_center(center: np.ndarray, image_width: int) -> np.ndarray:
    """(2,) centre mirrored as in the official code: ``x -> width - 1 - x``."""
    out = np.array(center, dtype=np.float64, copy=True)
    out[0] = image_width - out[0] - 1
    return out


def flip_image_and_joints(image: np.ndarray, joints: np.ndarray, visible: np.ndarray,
                          flip_pairs: Sequence[Tuple[int, int]]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mirror an (H, W, C) image and its joints (image pixels) horizontally.

    Returns:
        ``(image (H, W, C) contiguous copy, joints (K, 2|3), visible (K,))`` with left/right swapped
        (:func:`pose.geometry.flip_joints_lr`).
    """
    width = image.shape[1]
    flipped = np.ascontiguousarray(image[:, ::-1])
    joints, visible = geometry.flip_joints_lr(joints, visible, width, flip_pairs)
    return flipped, joints, visible


def sample_augmentation(rng: np.random.Generator, center: np.ndarray, scale: np.ndarray,
                        joints: np.ndarray, visible: np.ndarray, *, image_width: int,
                        input_size: Tuple[int, int], upper_ids: Sequence[int] = (),
                        lower_ids: Sequence[int] = (), scale_factor: float = 0.35,
                        rot_factor: float = 45.0, rot_prob: float = 0.6, flip_prob: float = 0.5,
                        half_body_prob: float = 0.0, num_joints_half_body: int = 8,
                        half_body_draw: str = "official") -> AugmentParams:
    """Draw one augmentation for a person (official order, see the module docstring).

    Args:
        rng: the sample's generator.
        center, scale: (2,) the person's window (image pixels, size/200).
        joints: (K, 2|3) image pixels; visible: (K,).
        image_width: width of the source image (for the flipped centre).
        input_size: model input (W, H), for the half-body aspect ratio.
        scale_factor, rot_factor, rot_prob: scale/rotation jitter (0 disables each).
        flip_prob: probability of a horizontal flip (0 disables).
        half_body_prob, num_joints_half_body, half_body_draw: half-body rule (prob <= 0 disables).

    Returns:
        :class:`AugmentParams`; ``center`` is already mirrored when ``flip`` is True.
    """
    c = np.asarray(center, dtype=np.float64).copy()
    s = np.asarray(scale, dtype=np.float64).copy()
    half = False
    vis = np.asarray(visible).reshape(len(visible), -1)[:, 0] > 0
    if half_body_prob > 0 and vis.sum() > num_joints_half_body and rng.random() < half_body_prob:
        window = half_body_window(joints, visible, upper_ids=upper_ids, lower_ids=lower_ids,
                                  aspect_ratio=input_size[0] / input_size[1],
                                  num_joints_half_body=num_joints_half_body, draw=half_body_draw, rng=rng)
        if window is not None:
            c, s = window[0].astype(np.float64), window[1].astype(np.float64)
            half = True
    mult, rot = random_scale_rotation(rng, scale_factor, rot_factor, rot_prob)
    s = s * mult
    flip = bool(flip_prob > 0 and rng.random() < flip_prob)
    if flip:
        c = flip_center(c, image_width)
    return AugmentParams(center=c, scale=s, rotation=rot, flip=flip, half_body=half)


def apply_augmentation(image: np.ndarray, joints: np.ndarray, visible: np.ndarray, params: AugmentParams,
                       flip_pairs: Sequence[Tuple[int, int]]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply the image-level part of ``params`` (the flip); the crop uses ``params.center/scale/rotation``.

    Returns:
        ``(image, joints, visible)`` (unchanged objects when there is no flip).
    """
    if params.flip:
        return flip_image_and_joints(image, joints, visible, flip_pairs)
    return image, joints, visible
