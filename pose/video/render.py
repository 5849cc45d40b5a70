"""Drawing poses, the FPS overlay and the untrained-weights banner with OpenCV (no model code).

Functions take an (H, W, 3) uint8 image in either channel order and return a new image; colours are
3-tuples applied in the image's own order (the default palette reads fine either way). Keypoints are
in image pixels (``PoseResult.keypoints_img``); joints and limbs below ``score_threshold`` are not
drawn. :func:`render` makes the demo's annotated BGR picture from an RGB frame.
"""
import colorsys
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from pose.keypoints import KeypointSpec
from pose.structures import PoseResult

Color = Tuple[int, int, int]

#: Drawn across every picture made with untrained weights (and stored in their records).
UNTRAINED_TEXT = "UNTRAINED WEIGHTS - keypoints are meaningless"

LEFT_COLOR: Color = (0, 200, 255)
RIGHT_COLOR: Color = (255, 120, 0)
CENTER_COLOR: Color = (0, 220, 0)
JOINT_COLOR: Color = (255, 255, 255)
_MAX_COORD = 1 << 15  # cv2 drawing uses int32 with shift; keep far-away points finite and in range


def track_color(track_id: Optional[int]) -> Color:
    """A distinct, stable colour for a track id (golden-ratio hue steps); grey for ``None``."""
    if track_id is None:
        return (200, 200, 200)
    hue = (int(track_id) * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return int(b * 255), int(g * 255), int(r * 255)


def _side(name: str) -> int:
    """-1 left, +1 right, 0 centre, from a joint name (``left_knee``, ``l_knee``, ``r_ankle`` ...)."""
    n = name.lower()
    if n.startswith(("left", "l_")):
        return -1
    if n.startswith(("right", "r_")):
        return 1
    return 0


def limb_colors(spec: KeypointSpec) -> Tuple[Color, ...]:
    """Colour of each ``spec.skeleton`` limb by body side (left / right / centre)."""
    out = []
    for a, b in spec.skeleton:
        side = _side(spec.keypoint_names[a]) or _side(spec.keypoint_names[b])
        out.append(LEFT_COLOR if side < 0 else RIGHT_COLOR if side > 0 else CENTER_COLOR)
    return tuple(out)


def _thickness(image: np.ndarray) -> int:
    return max(1, int(round(min(image.shape[:2]) / 320)))


def draw_poses(image: np.ndarray, results: Sequence[PoseResult], spec: KeypointSpec, *,
               score_threshold: float = 0.3, track_colors: bool = True, draw_boxes: bool = False,
               draw_ids: bool = True, thickness: Optional[int] = None) -> np.ndarray:
    """Draw skeleton limbs and joints of every pose; returns a new image.

    Args:
        image: (H, W, 3) uint8, RGB or BGR.
        results: poses with ``keypoints_img`` (K, 3) matching ``spec``.
        spec: keypoint layout (COCO-17, MPII-16, ...); ``spec.skeleton`` gives the limbs.
        score_threshold: joints scored below this (and limbs touching them) are skipped.
        track_colors: colour each person by ``track_id`` (when it has one); otherwise limbs are
            coloured by body side.
        draw_boxes: also draw ``bbox_xywh`` when present.
        draw_ids: write the track id next to each tracked person.
        thickness: line thickness in pixels (default scales with the image size).
    """
    if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3
            and image.dtype == np.uint8):
        raise ValueError(f"draw_poses: expected an (H, W, 3) uint8 image, got "
                         f"{getattr(image, 'shape', None)} {getattr(image, 'dtype', '')}")
    canvas = np.ascontiguousarray(image).copy()
    th = thickness or _thickness(canvas)
    radius = th + 2
    side_colors = limb_colors(spec)
    for r in results:
        kp = np.asarray(r.keypoints_img, dtype=np.float64)
        if kp.shape != (spec.num_keypoints, 3):
            raise ValueError(f"draw_poses: keypoints of shape {kp.shape} do not fit spec '{spec.name}' "
                             f"({spec.num_keypoints} joints)")
        ok = np.isfinite(kp).all(1) & (kp[:, 2] >= score_threshold)
        pts = np.clip(np.nan_to_num(kp[:, :2]), -_MAX_COORD, _MAX_COORD).round().astype(np.int32)
        person = track_color(r.track_id) if track_colors and r.track_id is not None else None
        for (a, b), color in zip(spec.skeleton, side_colors):
            if ok[a] and ok[b]:
                cv2.line(canvas, tuple(map(int, pts[a])), tuple(map(int, pts[b])), person or color, th,
                         cv2.LINE_AA)
        for k in np.flatnonzero(ok):
            cv2.circle(canvas, tuple(map(int, pts[k])), radius, person or JOINT_COLOR, -1, cv2.LINE_AA)
            cv2.circle(canvas, tuple(map(int, pts[k])), radius, (0, 0, 0), 1, cv2.LINE_AA)
        box_color = person or CENTER_COLOR
        if draw_boxes and r.bbox_xywh is not None:
            x, y, w, h = (float(v) for v in r.bbox_xywh)
            p0 = (int(round(x)), int(round(y)))
            p1 = (int(round(x + w)), int(round(y + h)))
            cv2.rectangle(canvas, p0, p1, box_color, th)
        if draw_ids and r.track_id is not None and ok.any():
            anchor = pts[ok].min(0)
            org = (int(anchor[0]), int(max(anchor[1] - 2 * radius, 12)))
            cv2.putText(canvas, f"#{r.track_id}", org, cv2.FONT_HERSHEY_SIMPLEX, 0.4 * th + 0.2, box_color,
                        th, cv2.LINE_AA)
    return canvas


def draw_fps(image: np.ndarray, fps: float, *, color: Color = (255, 255, 255)) -> np.ndarray:
    """Write ``"FPS 12.3"`` in the top-left corner on a dark backing; returns a new image."""
    canvas = np.ascontiguousarray(image).copy()
    th = _thickness(canvas)
    scale = 0.5 * th + 0.1
    text = f"FPS {fps:.1f}"
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, th)
    cv2.rectangle(canvas, (0, 0), (w + 8, h + base + 8), (0, 0, 0), -1)
    cv2.putText(canvas, text, (4, h + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, color, th, cv2.LINE_AA)
    return canvas


def draw_untrained_banner(image: np.ndarray) -> np.ndarray:
    """Full-width red banner with ``UNTRAINED_TEXT`` across the bottom of a BGR image; returns a new one."""
    canvas = np.ascontiguousarray(image).copy()
    h, w = canvas.shape[:2]
    scale = max(0.4, min(w, h) / 900.0)
    thick = max(1, int(round(scale * 2)))
    (tw, th), base = cv2.getTextSize(UNTRAINED_TEXT, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    bar = min(h, th + base + 12)
    cv2.rectangle(canvas, (0, h - bar), (w - 1, h - 1), (0, 0, 255), -1)
    cv2.putText(canvas, UNTRAINED_TEXT, (max(4, (w - tw) // 2), h - base - 6), cv2.FONT_HERSHEY_SIMPLEX,
                scale, (255, 255, 255), thick, cv2.LINE_AA)
    return canvas


def render(image_rgb: np.ndarray, results, spec, *, kpt_thr: float, fps: Optional[float],
           untrained: bool) -> np.ndarray:
    """Annotated BGR picture: skeletons (track colours), optional FPS overlay and untrained banner."""
    canvas = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)
    canvas = draw_poses(canvas, results, spec, score_threshold=kpt_thr, draw_boxes=True)
    if fps is not None:
        canvas = draw_fps(canvas, fps)
    return draw_untrained_banner(canvas) if untrained else canvas
