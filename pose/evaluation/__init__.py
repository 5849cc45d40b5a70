"""Evaluation: one OKS, COCO keypoint AP (official rescoring + OKS-NMS + pycocotools), MPII PCKh, and the
runner that predicts a dataset once and scores several decoders (``pose-eval``, training validation).

- :mod:`pose.evaluation.oks`: the OKS formula, used by OKS-NMS, COCOeval's sigmas and the tracker;
- :mod:`pose.evaluation.coco`: :class:`CocoKeypointEvaluator` (``reset / process / evaluate``);
- :mod:`pose.evaluation.mpii`: :class:`MpiiPCKhEvaluator` and the official PCKh table;
- :mod:`pose.evaluation.runner`: :func:`predict_dataset`, :func:`evaluate_dataset`, :func:`run_evaluation`.
"""
from pose.evaluation.coco import (
           STATS_NAMES,
           CocoKeypointEvaluator,
           coco_result,
           load_coco_gt,
           oks_nms,
           rescore,
           soft_oks_nms,
)
from pose.evaluation.mpii import MpiiPCKhEvaluator, load_gt_valid, mpii_pckh_table
from pose.evaluation.oks import oks_iou, oks_matrix
from pose.evaluation.runner import decoder_codecs, evaluate_dataset, format_table, predict_dataset, run_evaluation

__all__ = ["STATS_NAMES", "CocoKeypointEvaluator", "MpiiPCKhEvaluator", "coco_result", "decoder_codecs",
           "evaluate_dataset", "format_table", "load_coco_gt", "load_gt_valid", "mpii_pckh_table", "oks_iou",
           "oks_matrix", "oks_nms", "predict_dataset", "rescore", "run_evaluation", "soft_oks_nms"]
