"""Landmark protocols on GT crops: NME for faces (300W, WFLW, COFW) and PCK / AUC / EPE for hands (OneHand10K).

Both evaluate one prediction per ground-truth instance (the protocols crop the GT box). A result is paired
with the GT annotation of its image whose box overlaps its own most (IoU of ``bbox_xywh``; the readers'
cleaned GT box is the annotation's box clipped to the image). Only labelled points (``v > 0``) count.

- **NME** (HRNet-face ``lib/core/evaluation.py::compute_nme``, mmpose ``NME(norm_mode='keypoint_distance')``):
  per instance, the mean over labelled points of ``||p - g||`` divided by the GT distance between the
  declared ``nme_pair`` (inter-ocular: 300W (36, 45), WFLW (60, 72), COFW (8, 9)); reported as a fraction
  (the papers' tables print it x100) with ``FR@0.1``, the share of instances above 0.1.
- **PCK@0.2** (mmpose ``PCKAccuracy(thr=0.2, norm_item='bbox')``): a point is correct if its error is below
  0.2 x the GT box's longer side; **AUC** (``AUC(norm_factor=30, num_thrs=20)``): the mean PCK at the pixel
  thresholds ``30 * i / 20``, i = 0..19, each a strict ``<`` (so error-free predictions give 0.95, as in
  mmpose); **EPE**: mean pixel error. All over the labelled points of all
  instances.
"""
from collections import OrderedDict
from typing import Dict, List

import numpy as np

from pose.errors import DataError
from pose.fileio import read_json
from pose.geometry import box_iou_xyxy, xywh_to_xyxy
from pose.keypoints import KeypointSpec
from pose.structures import PoseResult

#: AUC thresholds (pixels): mmpose's ``norm_factor=30, num_thrs=20``.
AUC_NORM_PX, AUC_STEPS = 30.0, 20
PCK_THRESHOLD = 0.2
FAILURE_NME = 0.1


class _GtCropEvaluator:
    """Shared part: GT instances from a COCO-format file and the pairing of results with them."""

    def __init__(self, gt, spec: KeypointSpec):
        data = gt if isinstance(gt, dict) else read_json(gt, "annotation file")
        source = "<dict>" if isinstance(gt, dict) else str(gt)
        if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
            raise DataError(f"ground truth '{source}': expected a COCO-format object with 'annotations'")
        self.spec = spec
        self._gt: Dict[object, List[tuple]] = {}
        for i, ann in enumerate(data["annotations"]):
            try:
                kp = np.asarray(spec.annotation_keypoints(ann), dtype=np.float64)
                box = np.asarray(ann["bbox"], dtype=np.float64)
            except (KeyError, TypeError, ValueError) as e:
                raise DataError(f"ground truth '{source}': annotations[{i}] lacks or has a bad {e}") from None
            if kp.shape != (3 * spec.num_keypoints,) or box.shape != (4,):
                raise DataError(f"ground truth '{source}': annotations[{i}] has {kp.size} keypoint values and bbox "
                                f"{list(box)}; expected {3 * spec.num_keypoints} and [x, y, w, h]")
            kp = kp.reshape(-1, 3)
            if ann.get("iscrowd") or not np.any(kp[:, 2] > 0):
                continue
            self._gt.setdefault(ann["image_id"], []).append((box, kp[:, :2], kp[:, 2] > 0))
        self._results: List[PoseResult] = []

    def reset(self) -> None:
        self._results = []

    def process(self, results) -> None:
        self._results.extend(results)

    def get_results(self) -> List[PoseResult]:
        return list(self._results)

    def pairs(self):
        """(pred (K, 2), gt (K, 2), labelled (K,), gt box (4,)) per result, each GT used once."""
        used = set()
        out = []
        for r in self._results:
            candidates = self._gt.get(r.image_id, [])
            if not candidates:
                raise DataError(f"{type(self).__name__}: a result for image {r.image_id} has no ground truth "
                                "instance; expected predictions on the GT crops of the annotation file")
            if r.bbox_xywh is None:
                best = 0
            else:
                ious = box_iou_xyxy(xywh_to_xyxy(np.asarray([r.bbox_xywh], np.float64)),
                                    xywh_to_xyxy(np.stack([c[0] for c in candidates])))[0]
                best = int(np.argmax(ious))
            if (r.image_id, best) in used:
                continue
            used.add((r.image_id, best))
            box, gt_xy, labelled = candidates[best]
            out.append((np.asarray(r.keypoints_img, np.float64)[:, :2], gt_xy, labelled, box))
        return out


class NmeEvaluator(_GtCropEvaluator):
    """Normalised mean error (``reset / process / evaluate``); the set must declare ``nme_pair``."""

    def __init__(self, gt, spec: KeypointSpec):
        if len(spec.nme_pair) != 2:
            raise DataError(f"NME: keypoint set '{spec.name}' declares no nme_pair; expected the two keypoint "
                            "names whose distance normalises the error")
        super().__init__(gt, spec)

    def evaluate(self) -> "OrderedDict[str, float]":
        a, b = self.spec.nme_pair
        nmes = []
        for pred, gt, labelled, _ in self.pairs():
            norm = float(np.linalg.norm(gt[a] - gt[b]))
            if norm <= 0 or not labelled.any():
                continue
            nmes.append(float(np.linalg.norm(pred - gt, axis=1)[labelled].mean()) / norm)
        nmes = np.asarray(nmes)
        if nmes.size == 0:
            return OrderedDict([("NME", float("nan")), ("1 - NME", float("nan")), ("FR@0.1", float("nan")),
                                ("instances", 0.0)])
        nme = float(nmes.mean())
        return OrderedDict([("NME", nme), ("1 - NME", 1.0 - nme), ("FR@0.1", float((nmes > FAILURE_NME).mean())),
                            ("instances", float(nmes.size))])


class PckEvaluator(_GtCropEvaluator):
    """PCK@0.2 (box-normalised), AUC (0..28.5 px) and EPE (px) over labelled points (``reset / process / evaluate``)."""

    def evaluate(self) -> "OrderedDict[str, float]":
        errors, norms = [], []
        for pred, gt, labelled, box in self.pairs():
            errors.append(np.linalg.norm(pred - gt, axis=1)[labelled])
            norms.append(np.full(int(labelled.sum()), max(float(box[2]), float(box[3]))))
        if not errors:
            return OrderedDict([("PCK@0.2", float("nan")), ("AUC", float("nan")), ("EPE", float("nan")),
                                ("points", 0.0)])
        err, norm = np.concatenate(errors), np.concatenate(norms)
        thresholds = AUC_NORM_PX * np.arange(AUC_STEPS) / AUC_STEPS
        # strict "<" at every threshold, as mmpose's _distance_acc: a perfect prediction scores 19/20 = 0.95
        auc = float(np.mean([(err < t).mean() for t in thresholds]))
        return OrderedDict([("PCK@0.2", float((err / np.maximum(norm, 1e-12) < PCK_THRESHOLD).mean())),
                            ("AUC", auc), ("EPE", float(err.mean())), ("points", float(err.size))])
