"""Frozen records that cross module boundaries.

Coordinate spaces are in the names: ``*_img`` is image pixels, ``*_crop`` is model-input pixels,
``*_hm`` is heatmap pixels (see :mod:`pose.geometry` for the pixel convention). Boxes are
``[x, y, w, h]`` (COCO ``bbox``) unless the name says ``xyxy``.
"""
from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class PersonBox:
    """One person box in image pixels.

    Attributes:
        bbox_xywh: (4,) ``[x, y, w, h]``; used as given (callers clean GT boxes beforehand).
        score: detector confidence (1.0 for ground-truth boxes).
        image_id: COCO image id, if known.
        track_id: id assigned by a tracker, if any.
    """

    bbox_xywh: tuple
    score: float = 1.0
    image_id: Optional[int] = None
    track_id: Optional[int] = None


@dataclass(frozen=True)
class PoseResult:
    """One person's keypoints in image pixels.

    Attributes:
        keypoints_img: (K, 3) ``[x, y, score]`` with score = heatmap maximum.
        center_img: (2,) crop centre in image pixels.
        scale: (2,) crop size / 200 (official ``scale``), width and height.
        box_score: score of the box the crop came from.
        image_id: COCO image id, if known.
        bbox_xywh: the input box, if the crop came from a box.
        track_id: tracker id, if any.
    """

    keypoints_img: np.ndarray
    center_img: np.ndarray
    scale: np.ndarray
    box_score: float = 1.0
    image_id: Optional[int] = None
    bbox_xywh: Optional[tuple] = None
    track_id: Optional[int] = None
