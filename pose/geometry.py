"""Crop geometry: boxes, crop windows, affine matrices, warps and joint flips (pure numpy + cv2).

Pixel convention (stated once, used everywhere in ``pose``)
-----------------------------------------------------------
A crop *window* is a ``center`` (x, y) in image pixels and a ``scale`` (w, h) in units of
``PIXEL_STD`` = 200 pixels. Only ``scale[0]`` sets the zoom: the official code ignores
``scale[1]``, so the crop is isotropic and the window's aspect ratio must already match the output
(:func:`boxes_to_center_scale` does that). With ``s = scale[0] * 200 / out_w``:

- **official ("size/2") convention** (``unbiased=False``, every HRNet config): output pixel ``p``
  samples image point ``center + (p - out_size / 2) * s``, rotated by ``rotation`` degrees about
  ``center``;
- **UDP / DarkPose ("size - 1") convention** (``unbiased=True``): output pixel ``p`` samples
  ``center + (p - (out_size - 1) / 2) * (scale[0] * 200 - 1) / (out_w - 1)``.

"Output" is whatever grid the points live on: the model input (crop pixels, ``*_crop``) or the
heatmap (``*_hm``); :func:`crop_to_image` takes that grid's size. Matrices map image -> output and
are built exactly like ``get_affine_transform`` (three float32 point pairs given to
``cv2.getAffineTransform``), so crops are bit-identical to the official ones.

Shapes: boxes ``(N, 4)`` ``[x, y, w, h]`` unless the name says ``xyxy``; points ``(N, K, 2)``;
matrices ``(N, 2, 3)`` float64. Single-item inputs (``(2,)`` centre, ``(2, 3)`` matrix) are accepted
where noted and give single-item outputs.

Which boxes and windows cannot be cropped (:func:`box_problems`, :func:`gt_box_problems`,
:func:`window_problems`) is decided here once, for every reader, the predictor, the demo and the API.
The module is a little over 400 lines: boxes, windows and matrices share the one convention above.
"""
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from pose.keypoints import flip_permutation

#: Pixels per unit of ``scale`` (the official ``pixel_std``).
PIXEL_STD = 200.0
#: Context added around a person box before cropping (official ``* 1.25`` in ``_xywh2cs``).
BOX_PADDING = 1.25

__all__ = [
    "PIXEL_STD", "BOX_PADDING", "BOX_OK", "BOX_PROBLEMS", "MAX_BOX_EXTENT", "MAX_WINDOW_EXTENT", "box_problems",
    "gt_box_problems",
    "window_problems", "count_box_problems", "xywh_to_xyxy", "xyxy_to_xywh", "box_iou_xyxy", "nms_xyxy",
    "clean_gt_boxes",
    "boxes_to_center_scale",
    "window_area", "window_to_xywh", "crop_matrix", "invert_affine", "apply_affine", "crop_to_image",
    "warp_crop", "flip_joints_lr",
]


# --------------------------------------------------------------------------------------------
# Boxes
# --------------------------------------------------------------------------------------------
def xywh_to_xyxy(boxes_xywh: np.ndarray) -> np.ndarray:
    """``[x, y, w, h]`` -> ``[x1, y1, x2, y2]`` with ``x2 = x + w`` (continuous extent), shape (..., 4)."""
    b = np.asarray(boxes_xywh, dtype=np.float64)
    return np.concatenate([b[..., :2], b[..., :2] + b[..., 2:4]], axis=-1)


def xyxy_to_xywh(boxes_xyxy: np.ndarray) -> np.ndarray:
    """Inverse of :func:`xywh_to_xyxy`, shape (..., 4)."""
    b = np.asarray(boxes_xyxy, dtype=np.float64)
    return np.concatenate([b[..., :2], b[..., 2:4] - b[..., :2]], axis=-1)


#: Codes of :func:`box_problems` / :func:`gt_box_problems` / :func:`window_problems`: 0 is a usable box,
#: the others say why a box cannot give a crop (the phrases :func:`count_box_problems` counts).
BOX_OK = 0
BOX_PROBLEMS = {1: "non-finite boxes", 2: "zero-size boxes", 3: "boxes outside the image", 4: "boxes too large",
                5: "annotations with area <= 0"}
_SINGULAR = {1: "non-finite box", 2: "zero-size box", 3: "box outside the image", 4: "box too large",
             5: "annotation with area <= 0"}
#: Largest box coordinate or size (pixels) that is cropped: beyond 2**24 a float32 window (the official
#: dtype of centre and scale) no longer holds whole pixels, so neither the crop nor the keypoints mapped
#: back mean anything (and 1e39 overflows float32 to inf).
MAX_BOX_EXTENT = float(2 ** 24)
#: Largest crop window side (``scale * 200``, pixels): a box within :data:`MAX_BOX_EXTENT` grows by the
#: 1.25 padding and the aspect fix, so windows get 4x the room (aspect ratios up to 3.2 stay consistent).
MAX_WINDOW_EXTENT = 4 * MAX_BOX_EXTENT


def box_problems(boxes_xywh: np.ndarray, image_size: Optional[Sequence[float]] = None) -> np.ndarray:
    """Why each box cannot be cropped: (N,) int codes, :data:`BOX_OK` (0) or a key of :data:`BOX_PROBLEMS`.

    A box is unusable when a coordinate is NaN/inf (1), when its width or height is not > 0 or both are
    under one pixel (2: zero or negative size; a point window has a singular matrix, and a window of one
    pixel is singular in the UDP ``size - 1`` convention), when a coordinate or its far corner is
    beyond :data:`MAX_BOX_EXTENT` in magnitude (4), or, given ``image_size`` ``(W, H)``, when it does not
    overlap the image ``[0, W] x [0, H]`` at all (3). The first problem found is reported (in the order
    1, 2, 4, 3). Detector boxes (``--det-file``, the demo, the API) are filtered with this function.
    """
    b = np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4)
    codes = np.zeros(len(b), dtype=np.int64)
    finite = np.isfinite(b).all(axis=1)
    codes[~finite] = 1
    with np.errstate(invalid="ignore", over="ignore"):
        empty = finite & (~((b[:, 2] > 0) & (b[:, 3] > 0)) | ((b[:, 2] < 1) & (b[:, 3] < 1)))
        codes[empty] = 2
        far = np.abs(np.concatenate([b, b[:, :2] + b[:, 2:]], axis=1)).max(axis=1) > MAX_BOX_EXTENT
        huge = finite & ~empty & far
        codes[huge] = 4
        if image_size is not None:
            w, h = float(image_size[0]), float(image_size[1])
            outside = (finite & ~empty & ~huge) & ((b[:, 0] >= w) | (b[:, 1] >= h) | (b[:, 0] + b[:, 2] <= 0)
                                                   | (b[:, 1] + b[:, 3] <= 0))
            codes[outside] = 3
    return codes


def gt_box_problems(boxes_xywh: np.ndarray, image_w: float, image_h: float,
                    areas: Optional[np.ndarray] = None) -> np.ndarray:
    """Why each ground-truth box is skipped: :func:`box_problems` of the annotated box, then the official rules.

    The box itself decides first (whatever its ``area`` says): non-finite (1), zero or negative size (2),
    too large (4) or not overlapping the image (3). Then the official filter: ``area <= 0`` (5), and the
    box that :func:`clean_gt_boxes` makes of it: ``x2 < x1`` or ``y2 < y1`` (it starts on the last pixel
    row/column or beyond: 3) and, unlike the official code, a cleaned box of 0 x 0 pixels (an annotation
    under 1 px each way: 2), whose crop window would be a point (the official code trains on a flat crop).

    Returns:
        (N,) int codes, 0 for the boxes to keep.
    """
    b = np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4)
    codes = box_problems(b, (image_w, image_h))
    if areas is not None:
        with np.errstate(invalid="ignore"):
            no_area = ~(np.asarray(areas, dtype=np.float64).reshape(-1) > 0)
        codes[(codes == BOX_OK) & no_area] = 5
    clean = _clean_boxes(np.nan_to_num(b), image_w, image_h)
    w, h = clean[:, 2], clean[:, 3]
    codes[(codes == BOX_OK) & ((w < 0) | (h < 0))] = 3
    codes[(codes == BOX_OK) & (w == 0) & (h == 0)] = 2
    return codes


def window_problems(centers: np.ndarray, scales: np.ndarray, output_size: Optional[Sequence[int]] = None, *,
                    unbiased: bool = False) -> np.ndarray:
    """Why each crop window cannot be used: (N,) int codes as :func:`box_problems` (0 = usable).

    Non-finite centre or scale (1); a scale not > 0, or (given the grid ``output_size`` ``(W, H)``) a
    crop matrix that is singular or not finite (2: e.g. a sub-pixel UDP window); a centre beyond
    :data:`MAX_BOX_EXTENT` or a side beyond :data:`MAX_WINDOW_EXTENT` pixels (4). The window of a box
    that :func:`box_problems` accepts is accepted here too, except in the UDP convention for a box of
    about one pixel beyond ~1e5 px from the origin (its float32 window points coincide): the predictor
    refuses that one with a DataError.
    """
    c = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
    s = np.asarray(scales, dtype=np.float64).reshape(-1, 2)
    codes = np.zeros(len(c), dtype=np.int64)
    finite = np.isfinite(c).all(axis=1) & np.isfinite(s).all(axis=1)
    codes[~finite] = 1
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        empty = finite & ~(s > 0).all(axis=1)
        codes[empty] = 2
        huge = finite & ~empty & ((np.abs(c).max(axis=1) > MAX_BOX_EXTENT)
                                  | (s.max(axis=1) * PIXEL_STD > MAX_WINDOW_EXTENT))
        codes[huge] = 4
        rest = np.flatnonzero(codes == BOX_OK)
        if len(rest) and output_size is not None:
            m = crop_matrix(c[rest], s[rest], np.zeros(len(rest)), output_size, unbiased=unbiased)
            det = m[:, 0, 0] * m[:, 1, 1] - m[:, 0, 1] * m[:, 1, 0]
            singular = ~(np.isfinite(m).all(axis=(1, 2)) & (det != 0) & np.isfinite(1.0 / det))
            codes[rest[singular]] = 2
    return codes


def count_box_problems(codes: np.ndarray) -> str:
    """``"2 zero-size boxes, 1 box outside the image"`` for the non-zero codes of :func:`box_problems`."""
    codes = np.asarray(codes)
    counts = [(k, int((codes == k).sum())) for k in BOX_PROBLEMS]
    return ", ".join(f"{n} {_SINGULAR[k] if n == 1 else BOX_PROBLEMS[k]}" for k, n in counts if n)


def box_iou_xyxy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes ``a`` (N, 4) and ``b`` (M, 4), ``[x1, y1, x2, y2]`` -> (N, M) float64.

    Boxes with negative extent count as empty; a pair whose union is empty has IoU 0.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def nms_xyxy(boxes_xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy box NMS: kept indices (int64) in decreasing score order (stable on ties).

    A box is suppressed when its IoU with a kept, higher-scoring box is ``> iou_threshold``.
    """
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        order = rest[box_iou_xyxy(boxes[i], boxes[rest])[0] <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def _clean_boxes(b: np.ndarray, image_w: float, image_h: float) -> np.ndarray:
    """The official cleaning arithmetic (see :func:`clean_gt_boxes`) on (N, 4) float64 boxes."""
    x1 = np.maximum(0.0, b[:, 0])
    y1 = np.maximum(0.0, b[:, 1])
    x2 = np.minimum(image_w - 1.0, x1 + np.maximum(0.0, b[:, 2] - 1.0))
    y2 = np.minimum(image_h - 1.0, y1 + np.maximum(0.0, b[:, 3] - 1.0))
    return np.stack([x1, y1, x2 - x1, y2 - y1], axis=1)


def clean_gt_boxes(boxes_xywh: np.ndarray, image_w: int, image_h: int,
                   areas: np.ndarray = None) -> Tuple[np.ndarray, np.ndarray]:
    """The official sanitising of ground-truth boxes (COCO ``_load_coco_keypoint_annotation_kernal``).

    ``x1 = max(0, x)``, ``y1 = max(0, y)``, ``x2 = min(W - 1, x1 + max(0, w - 1))``,
    ``y2 = min(H - 1, y1 + max(0, h - 1))``; the box becomes ``[x1, y1, x2 - x1, y2 - y1]``, i.e.
    one pixel narrower and shorter than the annotation unless clipped. Detections are never cleaned.

    Args:
        boxes_xywh: (N, 4) annotation boxes in image pixels.
        image_w, image_h: image size.
        areas: optional (N,) annotation ``area`` values; the official code drops ``area <= 0``.

    Returns:
        boxes (N, 4) float64 cleaned boxes, valid (N,) bool: :func:`gt_box_problems` is 0 (the official
        ``x2 >= x1``, ``y2 >= y1``, area > 0, and the box itself neither empty nor outside the image).
        Invalid rows hold the unclipped arithmetic and must be skipped by the caller.
    """
    b = np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4)
    return _clean_boxes(b, image_w, image_h), gt_box_problems(b, image_w, image_h, areas) == BOX_OK


def boxes_to_center_scale(boxes_xywh: np.ndarray, input_size: Sequence[int],
                          padding: float = BOX_PADDING) -> Tuple[np.ndarray, np.ndarray]:
    """Boxes -> crop windows, the official ``_xywh2cs`` (float32 results, same rounding).

    The centre is the box centre; the box grows (never shrinks) to the ``W:H`` aspect of
    ``input_size``; ``scale = (w, h) / 200 * padding``. (The official code skips the padding for
    the sentinel ``center_x == -1``; that quirk is not reproduced.)

    Args:
        boxes_xywh: (N, 4) image-pixel boxes.
        input_size: model input ``(W, H)``.
        padding: context factor (1.25 official, 1.5 for half-body boxes).

    Returns:
        centers (N, 2) float32, scales (N, 2) float32.
    """
    b = np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4)
    x, y, w, h = b.T
    centers = np.stack([x + w * 0.5, y + h * 0.5], axis=1).astype(np.float32)
    aspect = float(input_size[0]) / float(input_size[1])
    wider = w > aspect * h
    taller = w < aspect * h
    h = np.where(wider, w / aspect, h)
    w = np.where(taller, h * aspect, w)
    scales = np.stack([w / PIXEL_STD, h / PIXEL_STD], axis=1).astype(np.float32)
    return centers, scales * np.float32(padding)


def window_area(scale: np.ndarray) -> float:
    """Official window area ``prod(scale * 200)`` (OKS-NMS), computed in the scale's own float dtype
    (float32 in the official pipeline, which the golden NMS results depend on)."""
    s = np.asarray(scale)
    if not np.issubdtype(s.dtype, np.floating):
        s = s.astype(np.float64)
    return float(np.prod(s * s.dtype.type(PIXEL_STD)))


def window_to_xywh(center: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The (4,) ``[x, y, w, h]`` box of a window (``scale * 200`` centred on ``center``), float64."""
    wh = np.asarray(scale, dtype=np.float64).reshape(2) * PIXEL_STD
    c = np.asarray(center, dtype=np.float64).reshape(2)
    return np.concatenate([c - wh / 2, wh])


# --------------------------------------------------------------------------------------------
# Affine matrices
# --------------------------------------------------------------------------------------------
def _third_points(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``b + rot90(a - b)`` (official ``get_3rd_point``), float32 (N, 2)."""
    d = a - b
    return b + np.stack([-d[:, 1], d[:, 0]], axis=1)


def _solve_affine(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(N, 3, 2) float32 point triples -> (N, 2, 3) float64 matrices with ``dst = M @ [src, 1]``.

    Solved by ``cv2.getAffineTransform`` itself: a closed form agrees to 1e-16, but cv2's
    fixed-point ``warpAffine`` rounds on knife edges, and only the identical matrix gives
    bit-identical crops (about 2 us per window).
    """
    out = np.empty((len(src), 2, 3), np.float64)
    for i in range(len(src)):
        out[i] = cv2.getAffineTransform(src[i], dst[i])
    return out


def crop_matrix(centers: np.ndarray, scales: np.ndarray, rotations_deg, output_size: Sequence[int], *,
                unbiased: bool = False) -> np.ndarray:
    """Image -> output-grid affine matrices (official ``get_affine_transform``, vectorised).

    Args:
        centers: (N, 2) window centres in image pixels, or one (2,) centre.
        scales: (N, 2) window sizes / 200 (only ``scale[:, 0]`` is used), or one (2,).
        rotations_deg: (N,) or scalar rotation in degrees (positive = counter-clockwise image
            content as in the official augmentation).
        output_size: ``(W, H)`` of the grid (input size for crops, heatmap size for heatmaps).
        unbiased: use the UDP/DarkPose ``(size - 1)`` convention instead of ``size/2``.

    Returns:
        (N, 2, 3) float64 matrices (a single (2, 3) for a single centre).
    """
    single = np.ndim(centers) == 1
    c64 = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
    c = np.asarray(centers).reshape(-1, 2).astype(np.float32)
    s = np.asarray(scales, dtype=np.float32).reshape(-1, 2)
    n = len(c)
    if len(s) != n:
        raise ValueError(f"crop_matrix: {n} centers but {len(s)} scales")
    rot = np.broadcast_to(np.asarray(rotations_deg, dtype=np.float64), (n,))
    out_w, out_h = float(output_size[0]), float(output_size[1])

    src_w = s[:, 0] * np.float32(PIXEL_STD)                     # float32, like scale * 200.0
    if unbiased:
        half_src = (src_w - np.float32(1.0)) * np.float32(-0.5)
        dst0 = np.array([(out_w - 1) * 0.5, (out_h - 1) * 0.5])
        dst_dir_y = (out_w - 1) * -0.5
    else:
        half_src = src_w * np.float32(-0.5)
        dst0 = np.array([out_w * 0.5, out_h * 0.5])
        dst_dir_y = out_w * -0.5
    rad = np.pi * rot / 180.0
    sn, cs = np.sin(rad), np.cos(rad)
    half_src = half_src.astype(np.float64)
    src_dir = np.stack([-half_src * sn, half_src * cs], axis=1)     # get_dir((0, half), rot)

    src = np.empty((n, 3, 2), np.float32)
    dst = np.empty((n, 3, 2), np.float32)
    src[:, 0] = c
    src[:, 1] = c64 + src_dir
    dst[:, 0] = dst0
    dst[:, 1] = dst0 + np.array([0.0, np.float32(dst_dir_y)])
    src[:, 2] = _third_points(src[:, 0], src[:, 1])
    dst[:, 2] = _third_points(dst[:, 0], dst[:, 1])
    m = _solve_affine(src, dst)
    return m[0] if single else m


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Exact inverse of (..., 2, 3) affine matrices (closed form, float64)."""
    m = np.asarray(m, dtype=np.float64)
    a, b, tx = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    c, d, ty = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    det = a * d - b * c
    if np.any(det == 0):
        raise ValueError("invert_affine: singular matrix (zero-size crop window?)")
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
    out = np.empty_like(m)
    out[..., 0, 0], out[..., 0, 1], out[..., 0, 2] = ia, ib, -(ia * tx + ib * ty)
    out[..., 1, 0], out[..., 1, 1], out[..., 1, 2] = ic, id_, -(ic * tx + id_ * ty)
    return out


def apply_affine(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Map points (N, K, 2) with matrices (N, 2, 3) (or (K, 2) with one (2, 3)); float64 out."""
    p = np.asarray(points, dtype=np.float64)
    m = np.asarray(m, dtype=np.float64)
    if m.ndim == 2:
        return p @ m[:, :2].T + m[:, 2]
    return np.einsum("nkj,nij->nki", p, m[:, :, :2]) + m[:, None, :, 2]


def crop_to_image(points: np.ndarray, centers: np.ndarray, scales: np.ndarray, output_size: Sequence[int],
                  *, unbiased: bool = False) -> np.ndarray:
    """Points on an output grid (crop or heatmap pixels) -> image pixels, via the inverse crop matrix.

    ``crop_to_image(coords_hm, c, s, heatmap_size)`` is the official ``transform_preds``;
    ``crop_to_image(keypoints_crop, c, s, input_size)`` is the same mapping for crop pixels.

    Args:
        points: (N, K, 2) coordinates on the grid of size ``output_size`` = ``(W, H)``.
        centers, scales: (N, 2) windows used for the crop.
        unbiased: the grid uses the ``(size - 1)`` convention (UDP / DarkPose).

    Returns:
        (N, K, 2) float64 image coordinates.
    """
    p = np.asarray(points, dtype=np.float64)
    n = p.shape[0]
    inv = invert_affine(crop_matrix(np.asarray(centers).reshape(n, 2), np.asarray(scales).reshape(n, 2),
                                    np.zeros(n), output_size, unbiased=unbiased))
    return apply_affine(p, inv)


# --------------------------------------------------------------------------------------------
# Warping
# --------------------------------------------------------------------------------------------
def warp_crop(image_rgb: np.ndarray, matrices: np.ndarray, output_size: Sequence[int]) -> np.ndarray:
    """Crop windows out of one image with ``cv2.warpAffine`` (bilinear, constant-0 border).

    Args:
        image_rgb: (H, W, C) image (uint8 RGB in the library; any dtype cv2 accepts works).
        matrices: (N, 2, 3) image -> crop matrices from :func:`crop_matrix`, or one (2, 3).
        output_size: crop ``(W, H)``.

    Returns:
        (N, H, W, C) crops of the image's dtype ((H, W, C) for a single matrix).
    """
    m = np.asarray(matrices, dtype=np.float64)
    size = (int(output_size[0]), int(output_size[1]))
    if m.ndim == 2:
        return cv2.warpAffine(image_rgb, m, size, flags=cv2.INTER_LINEAR)
    out = np.empty((len(m), size[1], size[0]) + image_rgb.shape[2:], dtype=image_rgb.dtype)
    for i in range(len(m)):   # one cv2 call per window; cv2 has no batched warp
        out[i] = cv2.warpAffine(image_rgb, m[i], size, flags=cv2.INTER_LINEAR)
    return out


# --------------------------------------------------------------------------------------------
# Flips
# --------------------------------------------------------------------------------------------
def flip_joints_lr(joints: np.ndarray, visible: np.ndarray, image_width: float,
                   flip_pairs: Sequence[Sequence[int]]) -> Tuple[np.ndarray, np.ndarray]:
    """Horizontal flip of joints for a mirrored image (official ``fliplr_joints``).

    ``x -> image_width - 1 - x``, left/right channels swapped, then joints multiplied by visibility
    (so invisible joints become 0, exactly as the official training code). Returns new arrays.

    Args:
        joints: (..., K, D) with D >= 2 (x, y[, extra]); leading dims are batch dims.
        visible: (..., K) or (..., K, D) visibility.
        image_width: width of the image the joints live in.
        flip_pairs: (left, right) index pairs.

    Returns:
        joints (..., K, D) float64, visible (same shape as given).
    """
    j = np.array(joints, dtype=np.float64)
    v = np.asarray(visible)
    k = j.shape[-2]
    perm = flip_permutation(k, flip_pairs)
    j[..., 0] = image_width - j[..., 0] - 1
    j = j[..., perm, :]
    v = v[..., perm] if v.ndim == j.ndim - 1 else v[..., perm, :]
    vb = v[..., None] if v.ndim == j.ndim - 1 else v
    return j * vb, v.copy()
