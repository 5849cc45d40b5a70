"""MPII person samples from the official JSON layout (``annot/{train,valid,test}.json``).

Each entry is ``{"image": file name, "center": [x, y], "scale": s, "joints": [[x, y]] * 16,
"joints_vis": [0|1] * 16}`` with 1-based MATLAB coordinates. The official adjustments
(``lib/dataset/mpii.py``) are reproduced:

- ``scale = (s, s)``; if ``center_x != -1``: ``center_y += 15 * s`` and ``scale *= 1.25``;
- ``center -= 1`` and ``joints -= 1`` (1-based -> 0-based);
- entries without ``joints`` (the test split) get zero joints with visibility 0.

An entry whose window cannot be cropped (``scale <= 0``, :func:`pose.geometry.window_problems`) is
skipped; one warning per file gives the count (the official code would crop a point).

The samples are :class:`pose.data.topdown.PersonSample` (``image_id`` = the file stem as an integer
when it is all digits, else -1; ``bbox_xywh`` None; box score 1) and feed the same
:class:`pose.data.topdown.TopDownDataset`.
"""
import logging
from pathlib import Path
from typing import List

import numpy as np

from pose import geometry
from pose.data.topdown import PersonSample, check_image_dir, check_image_files, warn_skipped_boxes
from pose.errors import DataError
from pose.fileio import read_json
from pose.keypoints import MPII_16, KeypointSpec

logger = logging.getLogger(__name__)


def _vector(entry: dict, key: str, shape, path, i: int) -> np.ndarray:
    value = entry.get(key)
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        arr = np.zeros(0)
    if arr.shape != shape or not np.isfinite(arr).all():
        raise DataError(f"annotation file '{path}': entry {i} ({entry.get('image')}) has {key} "
                        f"{str(value)[:60]}; expected finite numbers of shape {shape}")
    return arr


def load_mpii_samples(ann_file, image_dir, *, spec: KeypointSpec = MPII_16, skip_missing_images: bool = False,
                      check_images: bool = True) -> List[PersonSample]:
    """Person samples of an MPII JSON annotation file, in file order.

    Args:
        ann_file: official MPII JSON (a list of person entries).
        image_dir: folder holding the images named by ``image``.
        spec: keypoint layout (16 MPII joints).
        skip_missing_images, check_images: see :func:`pose.data.topdown.check_image_files`.

    Raises:
        DataError: not a JSON list, an entry without ``image``/``center``/``scale``, joints of the
            wrong shape, a missing image folder or missing images.
    """
    image_dir = check_image_dir(image_dir)
    data = read_json(ann_file, "annotation file")
    if not isinstance(data, list):
        raise DataError(f"annotation file '{ann_file}': top level is a {type(data).__name__}; "
                        "expected a list of MPII entries {image, center, scale, joints, joints_vis}")
    k = spec.num_keypoints
    samples = []
    codes = []
    for i, entry in enumerate(data):
        if not isinstance(entry, dict) or not isinstance(entry.get("image"), str):
            raise DataError(f"annotation file '{ann_file}': entry {i} has no 'image' file name; "
                            "expected an object with image, center, scale")
        center = _vector(entry, "center", (2,), ann_file, i)
        s = float(_vector(entry, "scale", (), ann_file, i))
        scale = np.array([s, s], dtype=np.float64)
        if center[0] != -1:
            center[1] = center[1] + 15 * scale[1]
            scale = scale * 1.25
        center = center - 1
        codes.append(int(geometry.window_problems(center, scale)[0]))
        if codes[-1] != geometry.BOX_OK:
            continue
        if "joints" in entry:
            joints = _vector(entry, "joints", (k, 2), ann_file, i) - 1
            vis = _vector(entry, "joints_vis", (k,), ann_file, i)
            visible = (vis > 0).astype(np.float32)
        else:
            joints = np.zeros((k, 2))
            visible = np.zeros(k, np.float32)
        stem = Path(entry["image"]).stem
        samples.append(PersonSample(
            image_path=str(image_dir / entry["image"]), image_id=int(stem) if stem.isdigit() else -1,
            center=center, scale=scale, joints=joints, joints_visible=visible, box_score=1.0))
    warn_skipped_boxes(np.array(codes, dtype=np.int64), ann_file, "annotations")
    if check_images:
        samples = check_image_files(samples, ann_file, skip_missing_images=skip_missing_images)
    return samples
