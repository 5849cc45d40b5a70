"""OKS protocols beyond plain COCO, on pycocotools: CrowdPose (AP easy/medium/hard) and COCO-WholeBody (six APs).

Both reuse :class:`~pose.evaluation.coco.CocoKeypointEvaluator`'s rescoring and OKS-NMS, then score the
results as the datasets' own tools do (xtcocotools does not import under numpy 2; see
:func:`pose.evaluation.coco.load_coco_gt`):

- **CrowdPose** (crowdposetools ``get_type_result(first=0.2, second=0.8)``): the usual AP/AR with the 14
  sigmas and ``area := 0.53 * w * h``, then AP over the images of each crowding level by
  ``images[].crowdIndex``: easy < 0.2 <= medium < 0.8 <= hard. Each is the mean of ``precision`` at area
  'all' over every IoU threshold, recall and class (-1 where no image has that level).
- **COCO-WholeBody** (xtcocotools' ``keypoints_{body,foot,face,lefthand,righthand,wholebody}``): one
  COCOeval per part with the part's sigma slice and the person's ``area``; a GT counts for a part only
  if the part has a labelled point (``num_keypoints`` recomputed per part; the file's own count is the
  body's, and keeping it drops face AP to 0.337 on GT fed back as predictions, see the tests). The
  per-part results reuse the whole-body prediction's score (the model predicts no per-part score; xtcocotools
  falls back to ``score`` too), and, as in xtcocotools, a result whose confidences on a part are all zero is
  left out of that part.
"""
import copy
import logging
from collections import OrderedDict
from typing import Dict, List, Optional

import numpy as np

from pose.errors import DataError
from pose.evaluation.coco import STATS_NAMES, CocoKeypointEvaluator, load_coco_gt, run_cocoeval
from pose.fileio import ensure_output_dir, read_json, write_json
from pose.keypoints import KeypointSpec

logger = logging.getLogger(__name__)

#: CrowdPose crowding levels: (label, lower bound, upper bound) on ``crowdIndex``.
CROWD_LEVELS = (("E", 0.0, 0.2), ("M", 0.2, 0.8), ("H", 0.8, float("inf")))
#: COCO-WholeBody rows: the declared parts, then the whole body.
WHOLE = "whole"
_PART_STATS = (("AP", 0), ("AP .5", 1), ("AP .75", 2), ("AR", 5))


def _mean_precision_all_areas(ev) -> float:
    precision = ev.eval["precision"][:, :, :, 0, -1]     # (T, R, K, area 'all', largest maxDets)
    valid = precision[precision > -1]
    return float(valid.mean()) if valid.size else -1.0


class CrowdPoseEvaluator(CocoKeypointEvaluator):
    """COCO keypoint AP/AR plus ``AP (E)``, ``AP (M)``, ``AP (H)`` and their image counts (CrowdPose).

    Takes the arguments of :class:`CocoKeypointEvaluator`; ``oks_area`` defaults to ``"bbox"``
    (CrowdPose's 0.53 * w * h) and ``sigmas`` should be the 14 of ``crowdpose.yaml``.
    """

    def __init__(self, coco_gt, **kwargs):
        kwargs.setdefault("oks_area", "bbox")
        super().__init__(coco_gt, **kwargs)
        images = self.coco_gt.dataset["images"]
        if not all(isinstance(img.get("crowdIndex"), (int, float)) for img in images):
            raise DataError("CrowdPose evaluation: ground-truth images lack a numeric 'crowdIndex'; expected "
                            "the CrowdPose annotation files (images[].crowdIndex)")
        self._crowd_index = {img["id"]: float(img["crowdIndex"]) for img in images}
        self._scored: List[dict] = []

    def _cocoeval(self, results: List[dict]) -> np.ndarray:
        self._scored = results
        return super()._cocoeval(results)

    def evaluate(self) -> "OrderedDict[str, float]":
        self._scored = []
        metrics = super().evaluate()
        scored_ids = {r["image_id"] for r in self._scored}
        universe = scored_ids if self.img_ids == "processed" else (
            set(self.img_ids) if self.img_ids is not None else set(self._crowd_index))
        for label, lo, hi in CROWD_LEVELS:
            ids = sorted(i for i in universe if lo <= self._crowd_index.get(i, -1.0) < hi)
            ap = -1.0
            if ids and self._scored:
                ap = _mean_precision_all_areas(run_cocoeval(self.coco_gt, self._scored, self.sigmas, ids,
                                                            summarize=False))
            metrics[f"AP ({label})"] = ap
            metrics[f"images ({label})"] = float(len(ids))
        return metrics


def part_ground_truth(data: dict, spec: KeypointSpec, part: slice, *, count_per_part: bool = True) -> dict:
    """A COCO-WholeBody GT dict restricted to one part: ``keypoints`` = the part's points (from the set's
    ``annotation_fields``), ``num_keypoints`` = its labelled count (or, ``count_per_part=False``, the
    file's own body count, the mistake pycocotools users make)."""
    out = dict(data)
    anns = []
    for i, ann in enumerate(data["annotations"]):
        try:
            flat = np.asarray(spec.annotation_keypoints(ann), dtype=np.float64)
        except KeyError as e:
            raise DataError(f"COCO-WholeBody ground truth: annotations[{i}] lacks {e}; expected the fields "
                            f"{list(spec.annotation_fields)}") from None
        if flat.shape != (3 * spec.num_keypoints,):
            raise DataError(f"COCO-WholeBody ground truth: annotations[{i}] has {flat.size} keypoint values over "
                            f"{list(spec.annotation_fields)}; expected {3 * spec.num_keypoints}")
        kp = flat.reshape(-1, 3)[part]
        new = dict(ann, keypoints=[float(v) for v in kp.reshape(-1)])
        if count_per_part or "num_keypoints" not in ann:
            new["num_keypoints"] = int(np.count_nonzero(kp[:, 2] > 0))
        anns.append(new)
    out["annotations"] = anns
    cats = copy.deepcopy(data.get("categories", []))
    for cat in cats:
        cat["keypoints"] = list(spec.keypoint_names[part])
        cat["skeleton"] = []
    out["categories"] = cats
    return out


class WholeBodyEvaluator:
    """COCO-WholeBody's six OKS APs: one row per declared part plus ``whole`` (all K points).

    Protocol: ``reset / process / evaluate`` as :class:`CocoKeypointEvaluator` (which does the rescoring,
    OKS-NMS over all K points and the results file). ``evaluate`` returns ``"<part>/<stat>"`` keys
    (``body/AP``, ``face/AR``, ``whole/AP``, ... and ``<part>/GT``, the number of GT people the part counts).

    Args:
        gt_path: the COCO-WholeBody annotation file (or its dict).
        spec: the 133-point set with ``parts`` and ``annotation_fields``.
        count_per_part: recompute ``num_keypoints`` per part (the protocol); False keeps the file's body
            count for every part (only to show why it matters).
        **kwargs: :class:`CocoKeypointEvaluator` options (``in_vis_thre``, ``output_dir``, ...).
    """

    def __init__(self, gt_path, spec: KeypointSpec, *, count_per_part: bool = True, **kwargs):
        if not spec.parts:
            raise DataError(f"WholeBodyEvaluator: keypoint set '{spec.name}' declares no parts")
        data = read_json(gt_path, "COCO-WholeBody annotation file") if not isinstance(gt_path, dict) else gt_path
        if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
            raise DataError(f"COCO-WholeBody ground truth '{gt_path}': expected an object with 'annotations'")
        self.spec = spec
        sigmas = kwargs.pop("sigmas", None)
        self.sigmas = np.asarray(spec.oks_sigmas if sigmas is None else sigmas, dtype=np.float64)
        rows = [(name, sl) for name, sl in spec.part_slices()] + [(WHOLE, slice(0, spec.num_keypoints))]
        self._rows = [(name, sl, load_coco_gt(part_ground_truth(data, spec, sl, count_per_part=count_per_part)))
                      for name, sl in rows]
        self._whole = CocoKeypointEvaluator(self._rows[-1][2], sigmas=self.sigmas, **kwargs)

    def reset(self) -> None:
        self._whole.reset()

    def process(self, results) -> None:
        self._whole.process(results)

    def get_results(self):
        return self._whole.get_results()

    def evaluate(self) -> "OrderedDict[str, float]":
        results = self._whole.results_json()
        if self._whole.output_dir is not None:
            ensure_output_dir(self._whole.output_dir)
            write_json(self._whole.output_dir / self._whole.results_file, results)
        metrics: Dict[str, float] = OrderedDict()
        img_ids: Optional[list] = None
        if self._whole.img_ids == "processed":
            img_ids = sorted({r["image_id"] for r in results})
        elif self._whole.img_ids is not None:
            img_ids = sorted(self._whole.img_ids)
        for name, sl, gt in self._rows:
            counted = sum(1 for a in gt.dataset["annotations"] if a["num_keypoints"] > 0 and not a.get("iscrowd"))
            stats = [0.0] * len(STATS_NAMES)
            if results:
                part_results = []
                for r in results:
                    kp = np.asarray(r["keypoints"], np.float64).reshape(-1, 3)[sl]
                    if np.any(kp[:, 2] > 0):   # xtcocotools drops a result whose part confidences are all 0
                        part_results.append(dict(r, keypoints=[float(v) for v in kp.reshape(-1)]))
                if part_results:
                    stats = run_cocoeval(gt, part_results, self.sigmas[sl], img_ids).stats
            for stat, index in _PART_STATS:
                metrics[f"{name}/{stat}"] = float(stats[index])
            metrics[f"{name}/GT"] = float(counted)
        return metrics
