"""COCO-format keypoint files -> person samples (ground-truth or detected boxes); COCO detection results.

Readers turn annotation files into a list of :class:`pose.data.topdown.PersonSample` (one person
window each, image pixels), which :class:`pose.data.topdown.TopDownDataset` crops. The detection
results reader (:func:`read_coco_detections`) is the one place a COCO detection JSON is parsed: the
evaluation samples and the demo's ``json:PATH`` detector both use it.

Official conventions reproduced (``lib/dataset/coco.py``):

- **GT boxes** (training and ``TEST.USE_GT_BBOX``): images in the order of the GT ``images`` list,
  each image's annotations in file order; crowd annotations, non-person categories, annotations
  with ``area <= 0`` or an empty cleaned box (:func:`pose.geometry.clean_gt_boxes`) and
  annotations whose keypoints are all zero are skipped. The window comes from the *cleaned* box.
  Box score 1. Beyond the official filter, the annotated box itself decides
  (:func:`pose.geometry.gt_box_problems`): zero or negative width or height, no overlap with the
  image, a cleaned box of 0 x 0 pixels (a point window) are skipped too, whatever ``area`` says.
- **Detected boxes** (``TEST.COCO_BBOX_FILE``): the detection list in its order, ``category_id``
  1 only, ``score >= IMAGE_THRE``, boxes used as given (not clipped), box score kept. The image is
  found through the detection's ``image_id`` in the GT ``images`` list (the official code parsed
  ``'%012d.jpg' % image_id``).
- Visibility: ``v > 0`` is a labelled joint (visible 1), ``v <= 0`` unlabelled (0). This covers COCO's
  {0, 1, 2}, files that use only {0, 1} or {1, 2} (OneHand10K, COFW) and float confidences
  (COCO-WholeBody hands: "v > 0 means reliable"); mmpose's ``min(1, v)`` is the same rule.

Decisions where the official code had none (it crashed or silently misbehaved):

- Structural problems raise a one-line :class:`~pose.errors.DataError` naming the file: not JSON,
  no ``images`` (or, for GT boxes, no ``annotations``), keypoints not of length 3K, a bbox that is
  not 4 finite numbers, duplicate image or annotation ids, images without ``width``/``height``,
  a detection file with no person boxes (or none on an image of the ``images`` list), a missing image
  folder, missing image files.
- Skipped boxes are counted: one warning per file, ``skipped N annotations of 'FILE': M zero-size
  boxes, K boxes outside the image, ...`` (GT) or ``skipped N detections of 'FILE': ...`` (detections:
  zero-size, outside their image when its size is listed, too large; :func:`pose.geometry.box_problems`).
  A file whose every person box is unusable is an error (it names the counts).
- A labelled joint (v > 0) with a non-finite or negative coordinate is set invisible (v = 0);
  one warning per file gives the count.
- A missing ``area`` (PoseTrack, CrowdPose, AI Challenger files) is :func:`default_area` (``0.53 * w * h``
  of the box, the convention of the field); one warning per file.
- Any keypoint set: the K points come from the set's ``annotation_fields``; the categories whose
  annotations are read and the file's own keypoint names are checked by :func:`keypoint_categories`
  (AP-10K has 54 species categories sharing one keypoint list).
- Annotations or detections whose ``image_id`` is not in the ``images`` list are skipped with one
  warning per file (count and first id): a GT subset with a full detection file is common.
- Images are checked up front, only those that samples use (an image listed without usable people
  need not exist). By default a missing file is an error naming the first missing file and how
  many others are missing; ``skip_missing_images=True`` drops their samples with a warning.

About 480 lines, over the house's ~400: the checks of a file against the declared keypoint set
(:func:`keypoint_categories`) sit with the reader they guard.
"""

import logging
import math
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from pose import geometry
from pose.data.topdown import PersonSample, check_image_dir, check_image_files, warn_skipped_boxes
from pose.errors import DataError
from pose.fileio import read_json
from pose.keypoints import COCO_17, KeypointSpec

logger = logging.getLogger(__name__)

PERSON_CATEGORY = 1


@dataclass(frozen=True)
class CocoDetection:
    """One person box of a COCO detection-results file.

    Attributes:
        index: position in the file's list.
        image_id: the detection's ``image_id``.
        bbox_xywh: (4,) float64 ``[x, y, w, h]`` in image pixels, as given (detections are never clipped).
        score: detector confidence.
    """

    index: int
    image_id: object
    bbox_xywh: np.ndarray
    score: float


def _read_annotation_file(ann_file, expected: str) -> dict:
    data = read_json(ann_file, "annotation file")
    if not isinstance(data, dict):
        raise DataError(f"annotation file '{ann_file}': top level is a {type(data).__name__}; expected {expected}")
    return data


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


def _image_size_if_known(img: dict) -> Optional[Tuple[float, float]]:
    """``(W, H)`` of an ``images`` entry, or None when it has no numeric size (detections need none)."""
    try:
        return float(img["width"]), float(img["height"])
    except (KeyError, TypeError, ValueError):
        return None


def _bbox(entry: dict, path, what: str) -> np.ndarray:
    box = entry.get("bbox")
    try:
        arr = np.asarray(box, dtype=np.float64)
    except (TypeError, ValueError):
        arr = np.zeros(0)
    if arr.shape != (4,) or not np.isfinite(arr).all():
        raise DataError(f"'{path}': {what} has bbox {box!r}; expected 4 finite numbers [x, y, w, h]")
    return arr


def _keypoints(ann: dict, spec: KeypointSpec, path) -> Tuple[np.ndarray, np.ndarray]:
    """(K, 2) coordinates and (K,) raw visibility of an annotation (unchecked values)."""
    num_joints = spec.num_keypoints
    try:
        kps = spec.annotation_keypoints(ann)
    except KeyError as e:
        raise DataError(f"annotation file '{path}': annotation id {ann.get('id')} has no {e}; keypoint set "
                        f"'{spec.name}' reads {list(spec.annotation_fields)}") from None
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


def default_area(bbox_xywh) -> float:
    """The area of an annotation without one: ``0.53 * w * h`` of its box (xtcocotools ``use_area=False``,
    mmpose and Ultralytics; 0.53 is the mean ratio of segment area to box area on COCO persons)."""
    return 0.53 * float(bbox_xywh[2]) * float(bbox_xywh[3])


def _normalized_name(name) -> str:
    return "".join(c if c.isalnum() else "_" for c in str(name).strip().lower())


def keypoint_categories(data: dict, spec: KeypointSpec, path, *, check_names: bool = True) -> set:
    """Category ids whose annotations carry ``spec``'s keypoints, after checking the file against the set.

    A category's ``keypoints`` names must match the declared names (compared lower-case, non-alphanumerics as
    ``_``, so "Right Shoulder" is ``right_shoulder``); with several :attr:`~KeypointSpec.annotation_fields` they
    match the first field's names (COCO-WholeBody's category lists the 17 body points). A category with an
    empty list (the face sets) is taken as is. Its ``skeleton`` is never used; one that does not fit (the
    CrowdPose files' 17-point COCO skeleton for K = 14) is ignored with a warning. Without any category
    that has a ``keypoints`` list, category 1 is used (the official reader's person category).

    ``check_names=False`` accepts other names with the right count (e.g. PoseTrack's 17 points read with the
    COCO-17 layout, whose head_bottom / head_top then sit where COCO has the eyes: know what you do).

    Raises:
        DataError: a name or count mismatch, naming the file, the category and the first differing name.
    """
    cats = data.get("categories")
    if not isinstance(cats, list):
        return {PERSON_CATEGORY}
    ids = set()
    names = [_normalized_name(n) for n in spec.keypoint_names]
    for i, cat in enumerate(cats):
        if not isinstance(cat, dict) or not isinstance(cat.get("keypoints"), list):
            continue
        listed = cat["keypoints"]
        if listed:
            prefix = len(spec.annotation_fields) > 1
            if len(listed) != len(names) and not (prefix and len(listed) < len(names)):
                raise DataError(f"annotation file '{path}': categories[{i}].keypoints has {len(listed)} names; "
                                f"the declared keypoint set '{spec.name}' has {len(names)}")
            for j, (got, want) in enumerate(zip(listed, names)):
                if check_names and _normalized_name(got) != want:
                    raise DataError(f"annotation file '{path}': categories[{i}].keypoints[{j}] is '{got}'; the "
                                    f"declared keypoint set '{spec.name}' has '{spec.keypoint_names[j]}' there")
            skeleton = cat.get("skeleton") or []
            bad = [e for e in skeleton if not (isinstance(e, list) and len(e) == 2
                                               and all(isinstance(v, int) and 1 <= v <= len(listed) for v in e))]
            if bad:
                logger.warning("annotation file '%s': categories[%d].skeleton has %d link(s) outside 1..%d "
                               "(first %s); ignored (the declared skeleton of '%s' is used for drawing)",
                               path, i, len(bad), len(listed), bad[0], spec.name)
        if "id" in cat:
            ids.add(cat["id"])
    return ids or {PERSON_CATEGORY}


def _area(ann: dict, raw_box: np.ndarray, path) -> float:
    """The annotation's ``area`` (official filter ``area > 0``), or :func:`default_area` when it has none."""
    if "area" not in ann:
        return default_area(raw_box)
    try:
        area = float(ann["area"])
    except (TypeError, ValueError):
        area = math.nan
    if not math.isfinite(area) or isinstance(ann["area"], bool):
        raise DataError(f"annotation file '{path}': annotation id {ann.get('id')} has area {ann['area']!r}; "
                        "expected a finite number")
    return area


def _windows(boxes: np.ndarray, input_size, padding: float) -> Tuple[np.ndarray, np.ndarray]:
    if len(boxes) == 0:
        return np.zeros((0, 2)), np.zeros((0, 2))
    centers, scales = geometry.boxes_to_center_scale(boxes, tuple(input_size), padding=padding)
    return np.asarray(centers, dtype=np.float64), np.asarray(scales, dtype=np.float64)


def load_coco_gt_samples(ann_file, image_dir, *, input_size: Sequence[int], spec: KeypointSpec = COCO_17,
                         padding: float = geometry.BOX_PADDING, skip_missing_images: bool = False,
                         check_images: bool = True, check_names: bool = True) -> List[PersonSample]:
    """Person samples from the GT boxes of a COCO keypoint file (official filtering and order).

    Args:
        ann_file: COCO keypoint annotation JSON.
        image_dir: folder that ``file_name`` is relative to.
        input_size: model input (W, H), for the window aspect ratio.
        spec: keypoint layout (K joints per annotation).
        padding: window enlargement (official 1.25).
        skip_missing_images: see :func:`check_image_files`.
        check_images: check image files up front.
        check_names: check the file's category keypoint names against ``spec`` (:func:`keypoint_categories`).

    Returns:
        samples in official order; ``bbox_xywh`` is the cleaned box.
    """
    image_dir = check_image_dir(image_dir)
    data = _read_annotation_file(ann_file, "an object with 'images' and 'annotations'")
    images = _load_images(data, ann_file)
    anns_by_image = _annotations_by_image(data, images, ann_file)
    categories = keypoint_categories(data, spec, ann_file, check_names=check_names)
    no_area = 0

    rows = []   # (image dict, ann, clean box (4,), joints (K,2), vis (K,))
    bad_joints = 0
    box_codes = []  # gt_box_problems of every person annotation, for the one warning below
    for image_id, img in images.items():
        anns = [a for a in anns_by_image[image_id]
                if not a.get("iscrowd", 0) and a.get("category_id", PERSON_CATEGORY) in categories]
        if not anns:
            continue
        width, height = _image_size(img, ann_file)
        boxes = np.stack([_bbox(a, ann_file, f"annotation id {a.get('id')}") for a in anns])
        areas = []
        for ann, raw_box in zip(anns, boxes):
            no_area += "area" not in ann
            areas.append(_area(ann, raw_box, ann_file))
        codes = geometry.gt_box_problems(boxes, width, height, areas=np.array(areas))
        box_codes.append(codes)
        clean, _ = geometry.clean_gt_boxes(boxes, width, height)
        for ann, box, code in zip(anns, np.asarray(clean, dtype=np.float64), codes):
            if code != geometry.BOX_OK:
                continue
            joints, v = _keypoints(ann, spec, ann_file)
            raw = np.concatenate([joints, v[:, None]], axis=1)
            if np.where(np.isfinite(raw), raw, 0).max() == 0:    # official: max(keypoints) == 0
                continue
            bad = (v > 0) & ~(np.isfinite(joints).all(axis=1) & (joints >= 0).all(axis=1))
            bad_joints += int(bad.sum())
            vis = ((v > 0) & ~bad).astype(np.float32)
            joints = np.nan_to_num(joints, nan=0.0, posinf=0.0, neginf=0.0)
            joints[bad] = 0.0
            rows.append((img, ann, box, joints, vis))
    box_codes = np.concatenate(box_codes) if box_codes else np.zeros(0, np.int64)
    if not rows and box_codes.any():
        skipped = int(box_codes.astype(bool).sum())
        raise DataError(f"annotation file '{ann_file}': no usable person annotation; {skipped} "
                        f"of {len(box_codes)} skipped ({geometry.count_box_problems(box_codes)}); expected boxes "
                        "with w, h > 0 inside their image and area > 0")
    warn_skipped_boxes(box_codes, ann_file, "annotations")
    if no_area:
        logger.warning("annotation file '%s': %d annotation(s) have no 'area'; used 0.53 * bbox w * h "
                       "(the convention for files without segments)", ann_file, no_area)
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
                          padding: float = geometry.BOX_PADDING, skip_missing_images: bool = False,
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
    persons = read_coco_detections(detections)
    images = _load_images(_read_annotation_file(ann_file, "an object with an 'images' list"), ann_file)

    rows = []   # (det index, image dict, box, score)
    unknown, first_unknown = 0, None
    box_codes = []
    for det in persons:
        if det.score < image_thre:
            continue
        if det.image_id not in images:
            unknown += 1
            first_unknown = det.image_id if first_unknown is None else first_unknown
            continue
        img = images[det.image_id]
        code = int(geometry.box_problems(det.bbox_xywh, _image_size_if_known(img))[0])
        box_codes.append(code)
        if code == geometry.BOX_OK:
            rows.append((det.index, img, det.bbox_xywh, det.score))
    if box_codes and not rows:
        raise DataError(f"detection file '{source}': all {len(box_codes)} person boxes on images of '{ann_file}' "
                        f"are unusable ({geometry.count_box_problems(box_codes)}); expected boxes with "
                        "w, h > 0 that overlap their image")
    warn_skipped_boxes(np.array(box_codes, dtype=np.int64), source, "detections")
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


def read_coco_detections(detections: Union[str, os.PathLike, list], *, category_id: int = PERSON_CATEGORY,
                         require_boxes: bool = True) -> List[CocoDetection]:
    """The person boxes of a COCO detection-results JSON (``[{image_id, category_id, bbox, score}, ...]``).

    Args:
        detections: the JSON file, or its list already loaded.
        category_id: the category kept (1 = person).
        require_boxes: a file without any box of the category is an error (evaluation); False accepts it
            (the demo's ``json:PATH`` detector, where "nobody found" is a valid answer).

    Returns:
        The boxes of ``category_id`` in file order (other categories are skipped unchecked).

    Raises:
        DataError: not a JSON list, an entry without ``image_id``/``category_id``/``bbox``/``score``, a
            kept entry with a non-integer image id, a non-finite score or a bbox that is not 4 finite
            numbers, or (``require_boxes``) no box of the category at all.
    """
    source = "detections" if isinstance(detections, list) else detections
    dets = detections if isinstance(detections, list) else read_json(detections, "detection file")
    if not isinstance(dets, list):
        raise DataError(f"detection file '{source}': top level is a {type(dets).__name__}; "
                        "expected a list of COCO detection results {image_id, category_id, bbox, score}")
    out = []
    for i, det in enumerate(dets):
        if not isinstance(det, dict) or not {"image_id", "category_id", "bbox", "score"} <= set(det):
            raise DataError(f"detection file '{source}': entry {i} is {str(det)[:80]}; "
                            "expected an object with image_id, category_id, bbox, score")
        if det["category_id"] != category_id:
            continue
        score = det["score"]
        if (not isinstance(score, (int, float)) or isinstance(score, bool) or not math.isfinite(score)
                or not _is_id(det["image_id"])):
            raise DataError(f"detection file '{source}': entry {i} has image_id {det['image_id']!r} and score "
                            f"{score!r}; expected an integer image id and a finite number")
        out.append(CocoDetection(index=i, image_id=det["image_id"], bbox_xywh=_bbox(det, source, f"detection {i}"),
                                 score=float(score)))
    if not out and require_boxes:
        raise DataError(f"detection file '{source}': no person boxes (category_id {category_id}) among "
                        f"{len(dets)} entries; expected COCO person detections")
    return out

