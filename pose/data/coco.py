"""COCO keypoint samples (ground-truth or detected boxes) and the top-down dataset.

Readers turn annotation files into a list of :class:`PersonSample` (one person window each, image
pixels); :class:`CocoKeypointDataset` turns a sample into a crop (evaluation) or an augmented crop
plus heatmap targets (training). The MPII reader (:mod:`pose.data.mpii`) produces the same samples.

Official conventions reproduced (``lib/dataset/coco.py``):

- **GT boxes** (training and ``TEST.USE_GT_BBOX``): images in the order of the GT ``images`` list,
  each image's annotations in file order; crowd annotations, non-person categories, annotations
  with ``area <= 0`` or an empty cleaned box (:func:`pose.geometry.clean_gt_boxes`) and
  annotations whose keypoints are all zero are skipped. The window comes from the *cleaned* box.
  Box score 1.
- **Detected boxes** (``TEST.COCO_BBOX_FILE``): the detection list in its order, ``category_id``
  1 only, ``score >= IMAGE_THRE``, boxes used as given (not clipped), box score kept. The image is
  found through the detection's ``image_id`` in the GT ``images`` list (the official code parsed
  ``'%012d.jpg' % image_id``).
- Visibility ``v in {1, 2}`` becomes 1.

Decisions where the official code had none (it crashed or silently misbehaved):

- Structural problems raise a one-line :class:`~pose.errors.DataError` naming the file: not JSON,
  no ``images`` (or, for GT boxes, no ``annotations``), keypoints not of length 3K, a bbox that is
  not 4 finite numbers, duplicate image or annotation ids, images without ``width``/``height``,
  a detection file with no person boxes (or none on an image of the ``images`` list), a missing image
  folder, missing image files.
- A labelled joint (v > 0) with a non-finite or negative coordinate is set invisible (v = 0);
  one warning per file gives the count.
- A missing ``area`` (PoseTrack files) is computed as bbox ``w * h``; one warning per file.
- Annotations or detections whose ``image_id`` is not in the ``images`` list are skipped with one
  warning per file (count and first id): a GT subset with a full detection file is common.
- Images are checked up front, only those that samples use (an image listed without usable people
  need not exist). By default a missing file is an error naming the first missing file and how
  many others are missing; ``skip_missing_images=True`` drops their samples with a warning.
"""
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from pose import geometry
from pose.data import augment
from pose.errors import DataError
from pose.fileio import read_json
from pose.imageio import read_image_rgb
from pose.keypoints import COCO_17, KeypointSpec

logger = logging.getLogger(__name__)

PERSON_CATEGORY = 1
BOX_PADDING = 1.25


@dataclass(frozen=True, eq=False)
class PersonSample:
    """One person window of one image (all coordinates in image pixels).

    Attributes:
        image_path: path of the image file.
        image_id: COCO image id (MPII: the file stem as an integer when it is all digits, else -1).
        center: (2,) float64 window centre (COCO values are the official float32 numbers).
        scale: (2,) float64 window size / 200 (width, height), padding included.
        joints: (K, 2) float64 joint coordinates (0 where unlabelled).
        joints_visible: (K,) float32, 1 = labelled, 0 = not.
        box_score: detector score (1 for GT boxes and MPII).
        bbox_xywh: the box the window came from (cleaned GT box or detection as given); None for MPII.
        ann_id: annotation id (GT boxes), else None.
        det_index: index into the detection list (detected boxes), else None.
    """

    image_path: str
    image_id: int
    center: np.ndarray
    scale: np.ndarray
    joints: np.ndarray
    joints_visible: np.ndarray
    box_score: float = 1.0
    bbox_xywh: Optional[Tuple[float, float, float, float]] = None
    ann_id: Optional[int] = None
    det_index: Optional[int] = None


# ------------------------------------------------------------------------------------------------
# Reading and validating annotation files
# ------------------------------------------------------------------------------------------------
def _require_list(data: dict, key: str, path) -> list:
    if key not in data:
        raise DataError(f"annotation file '{path}': no '{key}' list; expected a COCO keypoint file "
                        "with 'images' and 'annotations'")
    value = data[key]
    if not isinstance(value, list):
        raise DataError(f"annotation file '{path}': '{key}' is a {type(value).__name__}; expected a list")
    return value


def _load_images(data: dict, path) -> Dict[int, dict]:
    """``images`` list -> ordered {image_id: image dict}; checks ids and sizes."""
    images = {}
    for i, img in enumerate(_require_list(data, "images", path)):
        if not isinstance(img, dict) or "id" not in img:
            raise DataError(f"annotation file '{path}': images[{i}] has no 'id'; expected an object with "
                            "'id', 'file_name', 'width', 'height'")
        image_id = img["id"]
        if not _is_id(image_id):
            raise DataError(f"annotation file '{path}': images[{i}] has id {image_id!r}; expected an integer")
        name = img.get("file_name", "")
        if not isinstance(name, str) or (not name and isinstance(image_id, str)):
            raise DataError(f"annotation file '{path}': images[{i}] has file_name {img.get('file_name')!r}; "
                            "expected a file name string")
        if image_id in images:
            raise DataError(f"annotation file '{path}': duplicate image id {image_id} (images[{i}]); "
                            "expected unique ids")
        images[image_id] = img
    return images


def _is_id(value) -> bool:
    """COCO ids are integers (strings are tolerated): hashable, never bool/float/list."""
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _image_file_name(img: dict) -> str:
    # Official fallback: the 12-digit COCO file name.
    return img.get("file_name") or "%012d.jpg" % int(img["id"])


def _image_size(img: dict, path) -> Tuple[float, float]:
    try:
        w, h = float(img["width"]), float(img["height"])
    except (KeyError, TypeError, ValueError):
        raise DataError(f"annotation file '{path}': image id {img['id']} has no numeric 'width'/'height'; "
                        "expected both (needed to clip GT boxes)") from None
    return w, h


def _bbox(entry: dict, path, what: str) -> np.ndarray:
    box = entry.get("bbox")
    try:
        arr = np.asarray(box, dtype=np.float64)
    except (TypeError, ValueError):
        arr = np.zeros(0)
    if arr.shape != (4,) or not np.isfinite(arr).all():
        raise DataError(f"'{path}': {what} has bbox {box!r}; expected 4 finite numbers [x, y, w, h]")
    return arr


def _keypoints(ann: dict, num_joints: int, path) -> Tuple[np.ndarray, np.ndarray]:
    """(K, 2) coordinates and (K,) raw visibility of an annotation (unchecked values)."""
    kps = ann.get("keypoints")
    try:
        arr = np.asarray(kps, dtype=np.float64)
    except (TypeError, ValueError):
        arr = np.zeros(0)
    if arr.shape != (3 * num_joints,):
        got = f"of length {len(kps)}" if isinstance(kps, list) else f"of type {type(kps).__name__}"
        raise DataError(f"annotation file '{path}': annotation id {ann.get('id')} has keypoints {got}; "
                        f"expected {3 * num_joints} (x, y, v for {num_joints} joints)")
    arr = arr.reshape(num_joints, 3)
    return arr[:, :2].copy(), arr[:, 2].copy()


def _warn_unknown_images(count: int, first, path, what: str) -> None:
    if count:
        logger.warning("'%s': %d %s refer to image ids not in the 'images' list (first: %s); skipped",
                       path, count, what, first)


def _annotations_by_image(data: dict, images: Dict[int, dict], path) -> Dict[int, list]:
    """{image_id: [annotation, ...]} in file order; checks ids; skips (with a warning) unknown images."""
    anns_by_image: Dict[object, list] = {image_id: [] for image_id in images}
    seen_ann_ids = set()
    unknown, first_unknown = 0, None
    for i, ann in enumerate(_require_list(data, "annotations", path)):
        if not isinstance(ann, dict) or "image_id" not in ann:
            raise DataError(f"annotation file '{path}': annotations[{i}] has no 'image_id'")
        ann_id = ann.get("id")
        if not _is_id(ann["image_id"]) or not (ann_id is None or _is_id(ann_id)):
            raise DataError(f"annotation file '{path}': annotations[{i}] has image_id {ann['image_id']!r} and id "
                            f"{ann_id!r}; expected integers")
        if ann_id is not None:
            if ann_id in seen_ann_ids:
                raise DataError(f"annotation file '{path}': duplicate annotation id {ann_id}; "
                                "expected unique ids")
            seen_ann_ids.add(ann_id)
        if ann["image_id"] not in anns_by_image:
            unknown += 1
            first_unknown = ann["image_id"] if first_unknown is None else first_unknown
            continue
        anns_by_image[ann["image_id"]].append(ann)
    _warn_unknown_images(unknown, first_unknown, path, "annotation(s)")
    return anns_by_image


def check_image_files(samples: List[PersonSample], source, *, skip_missing_images: bool = False
                      ) -> List[PersonSample]:
    """Check up front that every sample's image file exists.

    Args:
        samples: candidate samples.
        source: the annotation/detection file the samples came from (for messages).
        skip_missing_images: drop samples whose image is missing (warning) instead of raising.

    Raises:
        DataError: a file is missing (names the first one and how many others are missing).
    """
    present: Dict[str, bool] = {}
    for s in samples:
        if s.image_path not in present:
            present[s.image_path] = os.path.isfile(s.image_path)
    missing = [p for p, ok in present.items() if not ok]
    if not missing:
        return samples
    if not skip_missing_images:
        raise DataError(f"image '{missing[0]}' (listed in '{source}') does not exist, and {len(missing) - 1} "
                        "other image(s) are missing; expected every image of the annotation file "
                        "(or pass skip_missing_images=True)")
    kept = [s for s in samples if present[s.image_path]]
    logger.warning("'%s': %d listed image(s) are missing (first: '%s'); their %d sample(s) were skipped",
                   source, len(missing), missing[0], len(samples) - len(kept))
    return kept


def check_image_dir(image_dir) -> Path:
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise DataError(f"image folder '{image_dir}' does not exist; expected the folder holding the images")
    return image_dir


def _windows(boxes: np.ndarray, input_size, padding: float) -> Tuple[np.ndarray, np.ndarray]:
    if len(boxes) == 0:
        return np.zeros((0, 2)), np.zeros((0, 2))
    centers, scales = geometry.boxes_to_center_scale(boxes, tuple(input_size), padding=padding)
    return np.asarray(centers, dtype=np.float64), np.asarray(scales, dtype=np.float64)


def load_coco_gt_samples(ann_file, image_dir, *, input_size: Sequence[int], spec: KeypointSpec = COCO_17,
                         padding: float = BOX_PADDING, skip_missing_images: bool = False,
                         check_images: bool = True) -> List[PersonSample]:
    """Person samples from the GT boxes of a COCO keypoint file (official filtering and order).

    Args:
        ann_file: COCO keypoint annotation JSON.
        image_dir: folder that ``file_name`` is relative to.
        input_size: model input (W, H), for the window aspect ratio.
        spec: keypoint layout (K joints per annotation).
        padding: window enlargement (official 1.25).
        skip_missing_images: see :func:`check_image_files`.
        check_images: check image files up front.

    Returns:
        samples in official order; ``bbox_xywh`` is the cleaned box.
    """
    image_dir = check_image_dir(image_dir)
    data = read_json(ann_file, "annotation file")
    if not isinstance(data, dict):
        raise DataError(f"annotation file '{ann_file}': top level is a {type(data).__name__}; "
                        "expected an object with 'images' and 'annotations'")
    images = _load_images(data, ann_file)
    anns_by_image = _annotations_by_image(data, images, ann_file)
    no_area = 0

    k = spec.num_keypoints
    rows = []   # (image dict, ann, clean box (4,), joints (K,2), vis (K,))
    bad_joints = 0
    for image_id, img in images.items():
        anns = [a for a in anns_by_image[image_id] if not a.get("iscrowd", 0)]
        if not anns:
            continue
        width, height = _image_size(img, ann_file)
        boxes = np.stack([_bbox(a, ann_file, f"annotation id {a.get('id')}") for a in anns])
        areas = []
        for ann, raw_box in zip(anns, boxes):
            if "area" not in ann:
                no_area += 1
            areas.append(float(ann["area"]) if "area" in ann else float(raw_box[2] * raw_box[3]))
        clean, valid = geometry.clean_gt_boxes(boxes, width, height, areas=np.array(areas))
        for ann, box, ok in zip(anns, np.asarray(clean, dtype=np.float64), valid):
            if not ok:
                continue
            if ann.get("category_id", PERSON_CATEGORY) != PERSON_CATEGORY:
                continue
            joints, v = _keypoints(ann, k, ann_file)
            raw = np.concatenate([joints, v[:, None]], axis=1)
            if np.where(np.isfinite(raw), raw, 0).max() == 0:    # official: max(keypoints) == 0
                continue
            bad = (v > 0) & ~(np.isfinite(joints).all(axis=1) & (joints >= 0).all(axis=1))
            bad_joints += int(bad.sum())
            vis = ((v > 0) & ~bad).astype(np.float32)
            joints = np.nan_to_num(joints, nan=0.0, posinf=0.0, neginf=0.0)
            joints[bad] = 0.0
            rows.append((img, ann, box, joints, vis))
    if no_area:
        logger.warning("annotation file '%s': %d annotation(s) have no 'area' (PoseTrack style); "
                       "used bbox w*h instead", ann_file, no_area)
    if bad_joints:
        logger.warning("annotation file '%s': %d labelled joint(s) have non-finite or negative coordinates; "
                       "set invisible", ann_file, bad_joints)

    centers, scales = _windows(np.array([r[2] for r in rows]).reshape(-1, 4), input_size, padding)
    samples = [
        PersonSample(image_path=str(image_dir / _image_file_name(img)), image_id=int(img["id"]),
                     center=c, scale=s, joints=joints, joints_visible=vis, box_score=1.0,
                     bbox_xywh=tuple(float(x) for x in box), ann_id=ann.get("id"))
        for (img, ann, box, joints, vis), c, s in zip(rows, centers, scales)
    ]
    if check_images:
        samples = check_image_files(samples, ann_file, skip_missing_images=skip_missing_images)
    return samples


def load_coco_det_samples(detections: Union[str, os.PathLike, list], ann_file, image_dir, *,
                          input_size: Sequence[int], spec: KeypointSpec = COCO_17, image_thre: float = 0.0,
                          padding: float = BOX_PADDING, skip_missing_images: bool = False,
                          check_images: bool = True) -> List[PersonSample]:
    """Person samples from a COCO detection-results file (official filtering and order).

    Args:
        detections: detection JSON path (a list of ``{image_id, category_id, bbox, score}``), or that
            list already loaded.
        ann_file: COCO file whose ``images`` list maps image ids to file names (an ``image_info``
            file without annotations is fine).
        image_dir: folder that ``file_name`` is relative to.
        input_size: model input (W, H).
        spec: keypoint layout (joints are zero, visibility 0).
        image_thre: keep boxes with ``score >= image_thre``.
        padding: window enlargement (official 1.25).
        skip_missing_images, check_images: see :func:`load_coco_gt_samples`.
    """
    image_dir = check_image_dir(image_dir)
    source = "detections" if isinstance(detections, list) else detections
    dets = detections if isinstance(detections, list) else read_json(detections, "detection file")
    if not isinstance(dets, list):
        raise DataError(f"detection file '{source}': top level is a {type(dets).__name__}; "
                        "expected a list of COCO detection results {image_id, category_id, bbox, score}")
    data = read_json(ann_file, "annotation file")
    if not isinstance(data, dict):
        raise DataError(f"annotation file '{ann_file}': top level is a {type(data).__name__}; "
                        "expected an object with an 'images' list")
    images = _load_images(data, ann_file)

    rows = []   # (det index, image dict, box, score)
    persons, unknown, first_unknown = 0, 0, None
    for i, det in enumerate(dets):
        if not isinstance(det, dict) or not {"image_id", "category_id", "bbox", "score"} <= set(det):
            raise DataError(f"detection file '{source}': entry {i} is {str(det)[:80]}; "
                            "expected an object with image_id, category_id, bbox, score")
        if det["category_id"] != PERSON_CATEGORY:
            continue
        persons += 1
        score = det["score"]
        if (not isinstance(score, (int, float)) or isinstance(score, bool) or not math.isfinite(score)
                or not _is_id(det["image_id"])):
            raise DataError(f"detection file '{source}': entry {i} has image_id {det['image_id']!r} and score "
                            f"{score!r}; expected an integer image id and a finite number")
        score = float(score)
        if score < image_thre:
            continue
        if det["image_id"] not in images:
            unknown += 1
            first_unknown = det["image_id"] if first_unknown is None else first_unknown
            continue
        rows.append((i, images[det["image_id"]], _bbox(det, source, f"detection {i}"), score))
    if persons == 0:
        raise DataError(f"detection file '{source}': no person boxes (category_id {PERSON_CATEGORY}) among "
                        f"{len(dets)} entries; expected COCO person detections")
    if unknown and not rows:
        raise DataError(f"detection file '{source}': none of its {unknown} person boxes refers to an image "
                        f"of annotation file '{ann_file}' (first image_id: {first_unknown}); expected "
                        "detections for the images of that file")
    _warn_unknown_images(unknown, first_unknown, source, "detection(s)")
    if not rows:
        logger.warning("detection file '%s': no person box has score >= %g", source, image_thre)

    k = spec.num_keypoints
    centers, scales = _windows(np.array([r[2] for r in rows]).reshape(-1, 4), input_size, padding)
    samples = [
        PersonSample(image_path=str(image_dir / _image_file_name(img)), image_id=int(img["id"]),
                     center=c, scale=s, joints=np.zeros((k, 2)), joints_visible=np.zeros(k, np.float32),
                     box_score=score, bbox_xywh=tuple(float(x) for x in box), det_index=i)
        for (i, img, box, score), c, s in zip(rows, centers, scales)
    ]
    if check_images:
        samples = check_image_files(samples, source, skip_missing_images=skip_missing_images)
    return samples


# ------------------------------------------------------------------------------------------------
# The dataset
# ------------------------------------------------------------------------------------------------
class CocoKeypointDataset(torch.utils.data.Dataset):
    """Top-down person crops from a list of :class:`PersonSample` (COCO, MPII, PoseTrack...).

    Items are dicts of numpy arrays / Python scalars (the default ``DataLoader`` collate turns them
    into tensors). Crops are RGB uint8 ``(H, W, 3)`` like the predictor's input; the model
    normalises internally.

    Evaluation item: ``image`` (H, W, 3) uint8, ``center`` (2,) f64, ``scale`` (2,) f64,
    ``box_score`` f32, ``image_id`` int, ``index`` int.

    Training item adds: ``target`` (K, h, w) f32 heatmaps and ``target_weight`` (K,) f32 from
    ``codec.encode``, ``joints`` (K, 2) f32 in crop pixels (0 where invisible), ``joints_visible``
    (K,) f32, ``rotation`` f32 (degrees) and ``flipped`` bool; ``center``/``scale`` are the augmented
    window.

    Randomness: item ``i`` of epoch ``e`` uses ``np.random.default_rng([seed, e, i])``, so an epoch
    is reproducible whatever the number of workers or the order of access (deterministic resume).
    Call :meth:`set_epoch` before creating the epoch's ``DataLoader`` iterator (with
    ``persistent_workers`` the workers keep the epoch they were started with).

    Args:
        samples: the person samples.
        input_size: model input (W, H).
        spec: keypoint layout (flip pairs, half-body ids, joint weights).
        codec: :class:`pose.codec.HeatmapCodec`; required for training, optional for evaluation
            (its ``unbiased`` flag picks the crop pixel convention).
        train: produce augmented crops and targets.
        seed: base seed of the per-item generators.
        scale_factor, rot_factor, rot_prob, flip, flip_prob, half_body_prob, num_joints_half_body,
            half_body_draw: augmentation (see :mod:`pose.data.augment`).
        use_joint_weights: multiply target weights by ``spec.joint_weights``.
    """

    def __init__(self, samples: Sequence[PersonSample], *, input_size: Sequence[int], spec: KeypointSpec,
                 codec=None, train: bool = False, seed: int = 0, scale_factor: float = 0.35,
                 rot_factor: float = 45.0, rot_prob: float = 0.6, flip: bool = True, flip_prob: float = 0.5,
                 half_body_prob: float = 0.0, num_joints_half_body: int = 8, half_body_draw: str = "fair",
                 use_joint_weights: bool = False):
        if train and codec is None:
            raise ValueError("CocoKeypointDataset: train=True needs a codec to encode targets")
        if half_body_draw not in augment.HALF_BODY_DRAWS:
            raise ValueError(f"half_body_draw='{half_body_draw}', expected one of {augment.HALF_BODY_DRAWS}")
        self.samples = list(samples)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.spec = spec
        self.codec = codec
        self.train = train
        self.seed = int(seed)
        self.epoch = 0
        self.unbiased = bool(getattr(codec, "unbiased", False))
        self.aug = dict(scale_factor=scale_factor, rot_factor=rot_factor, rot_prob=rot_prob,
                        flip_prob=flip_prob if flip else 0.0, half_body_prob=half_body_prob,
                        num_joints_half_body=num_joints_half_body, half_body_draw=half_body_draw)
        self._last_image = None  # (path, image) cache of _read_image
        self.joint_weights = (np.asarray(spec.joint_weights, dtype=np.float32)
                              if use_joint_weights and spec.joint_weights else None)
        if use_joint_weights and self.joint_weights is None:
            raise ValueError(f"use_joint_weights=True but keypoint spec '{spec.name}' has no joint_weights")

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose augmentation draws the next items use."""
        self.epoch = int(epoch)

    def rng_for(self, index: int) -> np.random.Generator:
        """The generator of item ``index`` in the current epoch."""
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def _crop(self, image: np.ndarray, center, scale, rotation: float) -> Tuple[np.ndarray, np.ndarray]:
        matrix = geometry.crop_matrix(np.asarray(center, np.float64)[None],
                                      np.asarray(scale, np.float64)[None], np.array([rotation], np.float64),
                                      self.input_size, unbiased=self.unbiased)
        crop = geometry.warp_crop(image, matrix, self.input_size)[0]
        return crop, matrix

    def _read_image(self, path: str) -> np.ndarray:
        """The RGB image at ``path``; the last one is kept, since consecutive samples (all persons or
        detections of one image, in file order) usually share it and a JPEG decode costs milliseconds.
        Each DataLoader worker holds its own copy; the image is never modified in place."""
        if self._last_image is None or self._last_image[0] != path:
            self._last_image = (path, read_image_rgb(path))
        return self._last_image[1]

    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
        image = self._read_image(sample.image_path)
        item = {"image_id": int(sample.image_id), "index": int(index),
                "box_score": np.float32(sample.box_score)}
        if not self.train:
            crop, _ = self._crop(image, sample.center, sample.scale, 0.0)
            item.update(image=crop, center=np.asarray(sample.center, np.float64),
                        scale=np.asarray(sample.scale, np.float64))
            return item

        rng = self.rng_for(index)
        joints = np.asarray(sample.joints, np.float64)
        visible = np.asarray(sample.joints_visible, np.float32)
        params = augment.sample_augmentation(
            rng, sample.center, sample.scale, joints, visible, image_width=image.shape[1],
            input_size=self.input_size, upper_ids=self.spec.upper_body_ids,
            lower_ids=self.spec.lower_body_ids, **self.aug)
        image, joints, visible = augment.apply_augmentation(image, joints, visible, params,
                                                            self.spec.flip_pairs)
        visible = np.asarray(visible, np.float32).reshape(-1)
        crop, matrix = self._crop(image, params.center, params.scale, params.rotation)
        joints_crop = geometry.apply_affine(np.asarray(joints, np.float64)[None, :, :2], matrix)[0]
        joints_crop = np.where(visible[:, None] > 0, joints_crop, 0.0).astype(np.float32)
        target, weight = self.codec.encode(joints_crop[None], visible[None], joint_weights=self.joint_weights)
        item.update(image=crop, center=np.asarray(params.center, np.float64),
                    scale=np.asarray(params.scale, np.float64), rotation=np.float32(params.rotation),
                    flipped=bool(params.flip), target=np.asarray(target[0], np.float32),
                    target_weight=np.asarray(weight[0], np.float32).reshape(-1),
                    joints=joints_crop, joints_visible=visible)
        return item
