"""MPII PCKh, as the official HRNet ``MPIIDataset.evaluate`` computes it.

Ground truth uses the layout of the official ``annot/gt_valid.mat`` (MATLAB, 1-based pixels):
``pos_gt_src`` (16, 2, N), ``headboxes_src`` (2, 2, N), ``jnt_missing`` (16, N) and
``dataset_joints`` (16 names). Predictions are 0-based image pixels (N, 16, 2) in MPII joint order
(:data:`pose.keypoints.MPII_16`); 1 is added inside, as the official code does.

``PCKh_j = 100 * #(||pred - gt|| / (0.6 * ||headbox diagonal||) <= thr) / #visible`` per joint.
"""
import logging
import os
from collections import OrderedDict
from pathlib import Path
from typing import Iterable, List, Optional, Union

import numpy as np

from pose.errors import DataError
from pose.structures import PoseResult

logger = logging.getLogger(__name__)

#: Official head-size factor: head size = 0.6 * head box diagonal.
SC_BIAS = 0.6
#: ``dataset_joints`` names of gt_valid.mat, in MPII order.
MPII_MAT_JOINTS = ("rank", "rkne", "rhip", "lhip", "lkne", "lank", "pelv", "thor",
                   "neck", "head", "rwri", "relb", "rsho", "lsho", "lelb", "lwri")
#: Table rows: name -> joint indices (left/right pairs are averaged).
_ROWS = (("Head", (9,)), ("Shoulder", (13, 12)), ("Elbow", (14, 11)), ("Wrist", (15, 10)),
         ("Hip", (3, 2)), ("Knee", (4, 1)), ("Ankle", (5, 0)))
#: Pelvis and thorax do not count in the official Mean.
_EXCLUDED = (6, 7)
#: Official ``Mean@0.1`` is ``pckAll[11]`` over ``arange(0, 0.51, 0.01)``, i.e. threshold 0.11, not
#: 0.10 (an off-by-one in the official code, kept so the numbers compare with published ones).
_MEAN_AT_01_THRESHOLD = np.arange(0, 0.5 + 0.01, 0.01)[11]


def _pck(scaled_err: np.ndarray, visible: np.ndarray, count: np.ndarray, threshold: float) -> np.ndarray:
    hits = np.sum((scaled_err <= threshold) & visible, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 100.0 * hits / count


def mpii_pckh_table(preds: np.ndarray, pos_gt_src: np.ndarray, headboxes_src: np.ndarray,
                    jnt_missing: np.ndarray, threshold: float = 0.5) -> "OrderedDict[str, float]":
    """The official PCKh table (percent).

    Args:
        preds: (N, 16, 2|3) 0-based image pixels (a score column is ignored).
        pos_gt_src: (16, 2, N) 1-based GT joints.
        headboxes_src: (2, 2, N) head box corners ``[[x1, y1], [x2, y2]]`` per person.
        jnt_missing: (16, N) 1 where the joint is not annotated.
        threshold: PCKh threshold (official 0.5).

    Returns:
        Ordered ``Head, Shoulder, Elbow, Wrist, Hip, Knee, Ankle, Mean, Mean@0.1``. Mean is weighted by
        the visible-joint counts over all joints except pelvis and thorax (upper neck included).
        A joint with no visible instance gives NaN, as officially.
    """
    preds = np.asarray(preds)
    gt = np.asarray(pos_gt_src, dtype=np.float64)
    heads = np.asarray(headboxes_src, dtype=np.float64)
    missing = np.asarray(jnt_missing)
    n = gt.shape[-1] if gt.ndim == 3 else -1
    if (preds.ndim != 3 or preds.shape[1:2] != (16,) or preds.shape[2] < 2 or gt.shape != (16, 2, len(preds))
            or heads.shape != (2, 2, n) or missing.shape != (16, n)):
        raise ValueError(f"mpii_pckh_table: shapes preds {preds.shape}, pos_gt_src {gt.shape}, headboxes_src "
                         f"{heads.shape}, jnt_missing {missing.shape}; "
                         "expected (N,16,2), (16,2,N), (2,2,N), (16,N)")
    # official: 0-based -> 1-based, in the preds' own dtype (float32 officially)
    pred = np.transpose(preds[:, :, 0:2] + 1.0, (1, 2, 0))
    err = np.linalg.norm(pred - gt, axis=1)  # (16, N)
    headsize = np.linalg.norm(heads[1] - heads[0], axis=0) * SC_BIAS  # (N,)
    visible = (1 - missing).astype(bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = np.where(visible, err / headsize[None, :], 0.0)
    count = visible.sum(axis=1)

    pckh = _pck(scaled, visible, count, threshold)
    pck_01 = _pck(scaled, visible, count, _MEAN_AT_01_THRESHOLD)
    used = np.ones(16, dtype=bool)
    used[list(_EXCLUDED)] = False
    ratio = np.where(used, count, 0) / float(np.sum(count[used]))

    table = OrderedDict()
    for name, idx in _ROWS:
        table[name] = float(pckh[idx[0]]) if len(idx) == 1 else float(0.5 * (pckh[idx[0]] + pckh[idx[1]]))
    table["Mean"] = float(np.sum(np.where(used, pckh * ratio, 0.0)))
    table["Mean@0.1"] = float(np.sum(np.where(used, pck_01 * ratio, 0.0)))
    return table


def _as_names(arr) -> List[str]:
    """``dataset_joints`` as loaded by scipy (nested object arrays) or numpy (strings) -> names."""
    out = []
    for item in np.asarray(arr, dtype=object).reshape(-1):
        while isinstance(item, np.ndarray):
            item = item.reshape(-1)[0] if item.size else ""
        out.append(str(item))
    return out


def load_gt_valid(path: Union[str, os.PathLike]) -> dict:
    """Read a ``gt_valid.mat``-style file (official HRNet / Tompson ``detections_our_format.mat``).

    Returns:
        dict with ``pos_gt_src`` (16, 2, N) f64, ``headboxes_src`` (2, 2, N) f64, ``jnt_missing``
        (16, N) uint8, and ``pos_pred_src`` (16, 2, N, 1-based) when the file has it.

    Raises:
        DataError: the file is missing or unreadable, a field is missing or has the wrong shape, or
            ``dataset_joints`` is not in MPII order.
    """
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise DataError(f"MPII ground truth '{path}' does not exist")
    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as e:  # scipy raises several types for corrupt files
        raise DataError(f"MPII ground truth '{path}' is not a readable .mat file ({e})") from None
    shapes = {"pos_gt_src": (16, 2, None), "headboxes_src": (2, 2, None), "jnt_missing": (16, None)}
    out = {}
    n = None
    for key in ("pos_gt_src", "headboxes_src", "jnt_missing", "pos_pred_src"):
        if key not in mat:
            if key == "pos_pred_src":
                continue
            raise DataError(f"MPII ground truth '{path}': missing field '{key}'")
        arr = np.asarray(mat[key])
        want = shapes.get(key, (16, 2, None))
        n = arr.shape[-1] if n is None and arr.ndim else n
        if arr.ndim != len(want) or any(w is not None and a != w for a, w in zip(arr.shape, want)) \
                or arr.shape[-1] != n:
            expected = "x".join("N" if w is None else str(w) for w in want)
            raise DataError(f"MPII ground truth '{path}': field '{key}' has shape {arr.shape}, "
                            f"expected {expected} (N = {n})")
        out[key] = arr.astype(np.uint8) if key == "jnt_missing" else arr.astype(np.float64)
    if "dataset_joints" in mat:
        names = _as_names(mat["dataset_joints"])
        if tuple(names) != MPII_MAT_JOINTS:
            raise DataError(f"MPII ground truth '{path}': dataset_joints {names} is not the MPII order "
                            f"{list(MPII_MAT_JOINTS)}")
    return out


class MpiiPCKhEvaluator:
    """PCKh over :class:`PoseResult` records given in ground-truth order.

    Protocol: ``reset()``; ``process(results)`` (appends, in dataset order); ``evaluate() -> dict``
    (the :func:`mpii_pckh_table` table). For distributed use gather ``get_results()`` in dataset
    order before ``evaluate``.

    Args:
        gt: path to a ``gt_valid.mat``-style file, or a dict with ``pos_gt_src``, ``headboxes_src``,
            ``jnt_missing`` (slice the arrays' last axis to evaluate a subset).
        threshold: PCKh threshold (official 0.5).
    """

    def __init__(self, gt: Union[str, os.PathLike, dict], *, threshold: float = 0.5):
        if isinstance(gt, dict):
            missing = [k for k in ("pos_gt_src", "headboxes_src", "jnt_missing") if k not in gt]
            if missing:
                raise DataError(f"MpiiPCKhEvaluator: ground-truth dict lacks {missing}")
            self.gt = gt
        else:
            self.gt = load_gt_valid(gt)
        self.threshold = float(threshold)
        self._results: List[PoseResult] = []

    def reset(self) -> None:
        self._results = []

    def process(self, results: Iterable[PoseResult]) -> None:
        self._results.extend(results)

    def get_results(self) -> List[PoseResult]:
        return list(self._results)

    def evaluate(self, preds: Optional[np.ndarray] = None) -> "OrderedDict[str, float]":
        """PCKh table of the accumulated results (or of ``preds`` (N, 16, 2), 0-based, if given)."""
        n = np.asarray(self.gt["pos_gt_src"]).shape[-1]
        if preds is None:
            if len(self._results) != n:
                raise DataError(f"MpiiPCKhEvaluator: {len(self._results)} results for {n} ground-truth "
                                "persons; expected one result per person, in ground-truth order")
            preds = np.stack([np.asarray(r.keypoints_img)[:, :2] for r in self._results]) if n \
                else np.zeros((0, 16, 2))
        return mpii_pckh_table(preds, self.gt["pos_gt_src"], self.gt["headboxes_src"], self.gt["jnt_missing"],
                               self.threshold)
