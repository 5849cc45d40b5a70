"""COCO keypoint evaluation: rescoring, OKS-NMS and pycocotools, as the official HRNet code does it.

The path (official ``COCODataset.evaluate``):

1. group the per-person :class:`~pose.structures.PoseResult` records by ``image_id`` (images in
   order of first appearance);
2. :func:`rescore`: ``score = box_score * mean(keypoint scores > in_vis_thre)``;
3. per image :func:`oks_nms` (or :func:`soft_oks_nms`), using the crop areas ``prod(scale * 200)``;
4. write the results JSON (``image_id``, ``category_id`` 1, ``keypoints`` (3K floats), ``score``,
   ``center``, ``scale``), within an image in NMS keep order;
5. ``COCOeval(gt, gt.loadRes(results), 'keypoints')`` with default parameters.

Numbers reproduce the official code exactly on the golden data (``../shared/reference``), including
float32 accumulation in the rescoring and the tie order of ``argsort()[::-1]``.

The OKS formula is :mod:`pose.evaluation.oks`'s; MPII PCKh lives in :mod:`pose.evaluation.mpii`.

Why one module (a little over 400 lines): rescoring, OKS-NMS, the results file and the COCOeval call are the
official evaluation in its order; splitting them would separate steps whose float32 and tie-order details
must match the official code together.
"""
import contextlib
import io
import logging
import os
from collections import OrderedDict
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Union

import numpy as np

from pose.errors import DataError
from pose.evaluation.oks import oks_iou
from pose.fileio import ensure_output_dir, read_json, write_json
from pose.geometry import window_area
from pose.keypoints import COCO_17
from pose.structures import PoseResult

__all__ = ["STATS_NAMES", "oks_nms", "soft_oks_nms", "rescore", "coco_result", "load_coco_gt",
           "CocoKeypointEvaluator"]

logger = logging.getLogger(__name__)

#: COCOeval ``stats`` names in order (the official table, with its "Ap .5" spelled "AP .5").
STATS_NAMES = ("AP", "AP .5", "AP .75", "AP (M)", "AP (L)", "AR", "AR .5", "AR .75", "AR (M)", "AR (L)")

#: The official NMS cap for soft-OKS-NMS (detections kept per image).
SOFT_NMS_MAX_DETS = 20


def _default_sigmas() -> np.ndarray:
    return np.asarray(COCO_17.oks_sigmas, dtype=np.float64)


# --------------------------------------------------------------------------------------------------
# OKS, NMS, rescoring
# --------------------------------------------------------------------------------------------------

def _nms_inputs(keypoints, scores, areas):
    kpts = np.asarray(keypoints)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    areas = np.asarray(areas, dtype=np.float64).reshape(-1)
    if kpts.ndim != 3 or not (len(kpts) == len(scores) == len(areas)):
        raise ValueError(f"NMS: keypoints {kpts.shape}, scores {scores.shape}, areas {areas.shape} "
                         "must be (N,K,C), (N,), (N,)")
    return kpts, scores, areas


def oks_nms(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, thresh: float = 0.9,
            sigmas: Optional[Sequence[float]] = None) -> List[int]:
    """Greedy OKS non-maximum suppression (official ``oks_nms``).

    Candidates are visited in ``np.argsort(scores)[::-1]`` order (ties therefore come out in the
    official order); each kept one suppresses the remaining ones whose OKS with it is ``> thresh``.

    Args:
        keypoints: (N, K, 2|3) image pixels.
        scores: (N,) rescored scores.
        areas: (N,) areas (official: ``prod(scale * 200)``).
        thresh: OKS above which a candidate is suppressed.
        sigmas: (K,) OKS sigmas; default COCO's 17.

    Returns:
        Indices into the inputs, in keep order (highest score first).
    """
    kpts, scores, areas = _nms_inputs(keypoints, scores, areas)
    order = np.argsort(scores)[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        ovr = oks_iou(kpts[i], kpts[rest], areas[i], areas[rest], sigmas)
        order = rest[ovr <= thresh]
    return keep


def soft_oks_nms(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, thresh: float = 0.9,
                 sigmas: Optional[Sequence[float]] = None, max_dets: int = SOFT_NMS_MAX_DETS) -> List[int]:
    """Soft OKS-NMS with Gaussian decay (official ``soft_oks_nms``).

    After each pick, the remaining scores decay by ``exp(-oks^2 / thresh)`` and are re-sorted; this
    only changes the pick order. Nothing is suppressed, but at most ``max_dets`` (official 20) are
    returned. The decayed scores are not returned (the official results keep the rescored scores).

    Returns:
        Indices into the inputs, in pick order.
    """
    kpts, scores, areas = _nms_inputs(keypoints, scores, areas)
    order = np.argsort(scores)[::-1]
    remaining = scores[order]
    keep = []
    while order.size > 0 and len(keep) < max_dets:
        i = order[0]
        rest = order[1:]
        ovr = oks_iou(kpts[i], kpts[rest], areas[i], areas[rest], sigmas)
        remaining = remaining[1:] * np.exp(-ovr ** 2 / thresh)
        resort = np.argsort(remaining)[::-1]
        order, remaining = rest[resort], remaining[resort]
        keep.append(int(i))
    return keep


def rescore(keypoints: np.ndarray, box_scores: np.ndarray, in_vis_thre: float = 0.2) -> np.ndarray:
    """Official rescoring: ``box_score * mean(keypoint scores > in_vis_thre)``, 0 where none is.

    The mean accumulates joint by joint in the keypoints' dtype (float32 for the official pipeline,
    as the official Python loop does under numpy 2), then is multiplied by the float64 box score.

    Args:
        keypoints: (N, K, 3) with the heatmap maxima in ``[..., 2]``.
        box_scores: (N,) detector scores (1 for GT boxes).

    Returns:
        (N,) float64 scores.
    """
    kpts = np.asarray(keypoints)
    if kpts.ndim != 3 or kpts.shape[2] < 3:
        raise ValueError(f"rescore: keypoints must be (N, K, 3), got {kpts.shape}")
    vals = kpts[:, :, 2]
    if not np.issubdtype(vals.dtype, np.floating):
        vals = vals.astype(np.float64)
    valid = vals > in_vis_thre
    total = np.zeros(len(vals), dtype=vals.dtype)
    for k in range(vals.shape[1]):  # sequential sum, as the official loop (adding 0 is exact)
        total = total + np.where(valid[:, k], vals[:, k], vals.dtype.type(0))
    count = valid.sum(axis=1)
    mean = np.zeros_like(total)
    np.divide(total, count.astype(vals.dtype), out=mean, where=count > 0)
    return mean.astype(np.float64) * np.asarray(box_scores, dtype=np.float64).reshape(-1)


def coco_result(image_id: int, keypoints_img: np.ndarray, score: float, *, center=None, scale=None,
                category_id: int = 1) -> dict:
    """One COCO keypoint result (``loadRes`` format): ``image_id``, ``category_id``, ``keypoints`` (3K
    floats ``x1, y1, s1, ...``), ``score``; plus the crop ``center`` and ``scale`` when given (the
    official results file carries them)."""
    entry = {"image_id": int(image_id), "category_id": int(category_id),
             "keypoints": [float(v) for v in np.asarray(keypoints_img).reshape(-1)], "score": float(score)}
    if center is not None:
        entry["center"] = [float(v) for v in np.asarray(center).reshape(-1)]
    if scale is not None:
        entry["scale"] = [float(v) for v in np.asarray(scale).reshape(-1)]
    return entry


# --------------------------------------------------------------------------------------------------
# Ground truth
# --------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _quiet():
    """Capture pycocotools' prints and log them at debug level."""
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            yield
    finally:
        text = buf.getvalue().strip()
        if text:
            logger.debug("pycocotools: %s", text)


def load_coco_gt(gt: Union[str, os.PathLike, dict, "COCO"], *, oks_area: str = "area"):  # noqa: F821
    """Build a pycocotools ``COCO`` object from a path, a dict or an existing object, silently.

    The structure is checked (``images``, ``annotations``, ``categories`` lists; each annotation has
    ``id``, ``image_id``, ``bbox`` and ``keypoints`` of length 3K, K from its category's
    ``keypoints`` names when given). Annotations lacking ``area`` (PoseTrack, CrowdPose, AIC files) or
    with ``area <= 0`` get ``0.53 * w * h`` of their box (the convention of the field; a zero area would
    make every OKS 0), with one warning; lacking ``num_keypoints`` get the count of ``v > 0`` (a file's own
    count is kept: CrowdPose counts only its 12 limb joints, and that decides who is evaluated); lacking
    ``iscrowd`` get 0. ``oks_area="bbox"`` uses ``0.53 * w * h`` for every annotation (xtcocotools
    ``use_area=False``: CrowdPose, AIC). The caller's dict is not modified.

    pycocotools, not xtcocotools: the extended xtcocotools wheel is built against numpy 1 and does not
    import under numpy 2; what it adds (use_area=False, per-part counts) is done here and in
    :mod:`pose.evaluation.coco_protocols` on plain pycocotools.

    Raises:
        DataError: naming the file (or "<dict>") and the offending field.
    """
    from pycocotools.coco import COCO

    if isinstance(gt, COCO):
        return gt
    if isinstance(gt, (str, os.PathLike)):
        source = str(gt)
        data = read_json(gt, what="COCO keypoint annotation file")
    elif isinstance(gt, dict):
        source, data = "<dict>", gt
    else:
        raise DataError(f"COCO ground truth: expected a path, dict or COCO object, got {type(gt).__name__}")

    if not isinstance(data, dict):
        raise DataError(f"COCO ground truth '{source}': expected a JSON object at the top level")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(f"COCO ground truth '{source}': missing or non-list field '{key}'")
    num_kpts = {}
    for cat in data["categories"]:
        if not isinstance(cat, dict) or "id" not in cat:
            raise DataError(f"COCO ground truth '{source}': a 'categories' entry lacks 'id'")
        if "keypoints" in cat:
            num_kpts[cat["id"]] = len(cat["keypoints"])
    for img in data["images"]:
        if not isinstance(img, dict) or "id" not in img:
            raise DataError(f"COCO ground truth '{source}': an 'images' entry lacks 'id'")

    annotations, no_area = [], 0
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            raise DataError(f"COCO ground truth '{source}': annotations[{i}] is not an object")
        for key in ("id", "image_id", "bbox", "keypoints"):
            if key not in ann:
                raise DataError(f"COCO ground truth '{source}': annotations[{i}] lacks '{key}'")
        kp, bbox = ann["keypoints"], ann["bbox"]
        k = num_kpts.get(ann.get("category_id"))
        if not isinstance(kp, list) or len(kp) % 3 or (k is not None and len(kp) != 3 * k):
            expected = f"{3 * k}" if k is not None else "a multiple of 3"
            got = len(kp) if isinstance(kp, list) else type(kp).__name__
            raise DataError(f"COCO ground truth '{source}': annotations[{i}].keypoints has {got} values, "
                            f"expected {expected}")
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise DataError(f"COCO ground truth '{source}': annotations[{i}].bbox must be [x, y, w, h]")
        has_area = isinstance(ann.get("area"), (int, float)) and ann["area"] > 0
        if has_area and oks_area == "area" and "num_keypoints" in ann and "iscrowd" in ann:
            annotations.append(ann)
            continue
        ann = dict(ann)
        if oks_area == "bbox" or not has_area:
            ann["area"] = 0.53 * float(bbox[2]) * float(bbox[3])
            no_area += oks_area != "bbox"
        if "num_keypoints" not in ann:
            ann["num_keypoints"] = int(np.count_nonzero(np.asarray(kp[2::3], dtype=np.float64) > 0))
        ann.setdefault("iscrowd", 0)
        annotations.append(ann)
    if no_area:
        logger.warning("COCO ground truth '%s': %d annotations lack a positive 'area'; using 0.53 * bbox w * h "
                       "(OKS scales with it)", source, no_area)

    categories = data["categories"]
    if len(categories) > 1 and all(isinstance(c.get("keypoints"), list) for c in categories):
        # Several categories share one keypoint set (AP-10K: 54 species). A pose model is given the box and does
        # not classify it, so the GT is scored class-agnostically: every annotation becomes category 1, the id
        # of its results (pycocotools' computeOks ignores useCats=0, hence the merge here).
        annotations = [dict(a, category_id=1) for a in annotations]
        categories = [dict(categories[0], id=1, name="any")]
    coco = COCO()
    coco.dataset = dict(data, annotations=annotations, categories=categories)
    with _quiet():
        coco.createIndex()
    return coco


# --------------------------------------------------------------------------------------------------
# Evaluator
# --------------------------------------------------------------------------------------------------

class CocoKeypointEvaluator:
    """Official COCO keypoint evaluation over accumulated :class:`PoseResult` records.

    Protocol: ``reset()``; ``process(results)`` any number of times; ``evaluate() -> dict``.

    Distributed use: results are plain picklable dataclasses. Each rank calls ``process``; then
    gather ``get_results()`` from every rank (``torch.distributed.all_gather_object``) and, on the
    main rank, ``reset()`` and ``process(...)`` each gathered list before ``evaluate()``. Duplicated
    records (e.g. from a padded sampler) must be dropped by the caller. Arrival order matters only
    for equal scores (NMS and COCOeval keep ties in input order, as the official code does).

    Args:
        coco_gt: pycocotools ``COCO`` object, GT dict, or path to the GT JSON (see :func:`load_coco_gt`).
        sigmas: (K,) OKS sigmas for NMS and COCOeval; default COCO's 17.
        in_vis_thre: keypoint score above which a joint counts in the rescoring (official 0.2).
        oks_thre: OKS-NMS threshold (official 0.9).
        soft_nms: use :func:`soft_oks_nms` (official ``TEST.SOFT_NMS``).
        output_dir: if set, the results JSON is written there (atomically) as ``results_file``.
        img_ids: images COCOeval scores. ``None`` (official): every GT image, so an image without
            results counts its persons as missed. ``"processed"``: only images seen by ``process``
            (for evaluating a subset, e.g. a GT file listing images that are absent). Or a list of ids.
        results_file: file name of the results JSON inside ``output_dir``.
        oks_area: OKS scale of the GT: the file's ``area`` or ``"bbox"`` (0.53 * w * h, see :func:`load_coco_gt`).
    """

    def __init__(self, coco_gt, *, sigmas: Optional[Sequence[float]] = None, in_vis_thre: float = 0.2,
                 oks_thre: float = 0.9, soft_nms: bool = False, output_dir=None,
                 img_ids: Union[None, str, Iterable[int]] = None,
                 results_file: str = "keypoints_results.json", oks_area: str = "area"):
        self.coco_gt = load_coco_gt(coco_gt, oks_area=oks_area)
        self.sigmas = _default_sigmas() if sigmas is None else np.asarray(sigmas, dtype=np.float64)
        self.in_vis_thre = float(in_vis_thre)
        self.oks_thre = float(oks_thre)
        self.soft_nms = bool(soft_nms)
        self.output_dir = None if output_dir is None else Path(output_dir)
        if isinstance(img_ids, str) and img_ids != "processed":
            raise DataError(f"CocoKeypointEvaluator: img_ids must be None, 'processed' or a list of ids, "
                            f"got '{img_ids}'")
        self.img_ids = img_ids if img_ids is None or isinstance(img_ids, str) else [int(i) for i in img_ids]
        self.results_file = results_file
        self._gt_img_ids = set(self.coco_gt.getImgIds())
        self._results: List[PoseResult] = []

    def reset(self) -> None:
        self._results = []

    def process(self, results: Iterable[PoseResult]) -> None:
        """Accumulate per-person results (any images, any order)."""
        for r in results:
            if r.image_id is None:
                raise DataError("CocoKeypointEvaluator.process: a PoseResult has image_id None; "
                                "COCO evaluation needs the image id of every result")
            self._results.append(r)

    def get_results(self) -> List[PoseResult]:
        """The accumulated records (a copy of the list), e.g. to gather across processes."""
        return list(self._results)

    def results_json(self) -> List[dict]:
        """Rescore, NMS per image and return the official results list (what ``evaluate`` scores)."""
        groups = OrderedDict()
        for r in self._results:
            groups.setdefault(int(r.image_id), []).append(r)
        out = []
        nms = soft_oks_nms if self.soft_nms else oks_nms
        for image_id, rs in groups.items():
            kpts = np.stack([np.asarray(r.keypoints_img) for r in rs])
            if kpts.ndim != 3 or kpts.shape[1:] != (len(self.sigmas), 3):
                raise DataError(f"CocoKeypointEvaluator: image {image_id}: keypoints_img must be "
                                f"({len(self.sigmas)}, 3), got {kpts.shape[1:]}")
            scores = rescore(kpts, np.array([r.box_score for r in rs], dtype=np.float64), self.in_vis_thre)
            areas = np.array([window_area(r.scale) for r in rs], dtype=np.float64)
            keep = nms(kpts, scores, areas, self.oks_thre, self.sigmas)
            if not keep:  # official: keep everything when NMS returns nothing
                keep = list(range(len(rs)))
            out += [coco_result(image_id, kpts[i], scores[i], center=rs[i].center_img, scale=rs[i].scale)
                    for i in keep]
        return out

    def evaluate(self) -> "OrderedDict[str, float]":
        """Run the official evaluation; returns the 10 COCOeval numbers keyed by :data:`STATS_NAMES`."""
        results = self.results_json()
        if self.output_dir is not None:
            ensure_output_dir(self.output_dir)
            path = self.output_dir / self.results_file
            write_json(path, results)
            logger.info("wrote %d keypoint results to %s", len(results), path)
        if not results:
            logger.warning("CocoKeypointEvaluator: no results to evaluate; reporting 0 for every metric")
            return OrderedDict((name, 0.0) for name in STATS_NAMES)
        unknown = sorted({r["image_id"] for r in results} - self._gt_img_ids)
        if unknown:
            raise DataError(f"CocoKeypointEvaluator: {len(unknown)} result image ids are not in the ground "
                            f"truth 'images' (first: {unknown[0]})")
        stats = self._cocoeval(results)
        return OrderedDict(zip(STATS_NAMES, (float(s) for s in stats)))

    def _cocoeval(self, results: List[dict]) -> np.ndarray:
        img_ids = None
        if self.img_ids == "processed":
            img_ids = sorted({r["image_id"] for r in results})
        elif self.img_ids is not None:
            img_ids = sorted(self.img_ids)
        return run_cocoeval(self.coco_gt, results, self.sigmas, img_ids).stats


def run_cocoeval(coco_gt, results: List[dict], sigmas: np.ndarray, img_ids: Optional[Sequence[int]] = None,
                 *, summarize: bool = True):
    """``COCOeval(gt, gt.loadRes(results), 'keypoints')`` with ``sigmas`` (K,), evaluated and accumulated
    (and summarized) silently; ``img_ids`` restricts the images scored. Returns the COCOeval object."""
    from pycocotools.cocoeval import COCOeval

    sigmas = np.asarray(sigmas, dtype=np.float64)
    with _quiet():
        coco_dt = coco_gt.loadRes([dict(r) for r in results])  # loadRes adds keys in place
        ev = COCOeval(coco_gt, coco_dt, "keypoints")
        ev.params.useSegm = None
        default = np.asarray(ev.params.kpt_oks_sigmas)
        same = default.shape == sigmas.shape and np.allclose(default, sigmas, rtol=1e-12, atol=0)
        if not same:
            ev.params.kpt_oks_sigmas = sigmas
        if img_ids is not None:
            ev.params.imgIds = list(img_ids)
        ev.evaluate()
        ev.accumulate()
        if summarize:
            ev.summarize()
    return ev
