"""Score the predictions stored in a ``gt_valid.mat``-style file (``pos_pred_src``) with the official PCKh.

    python scripts/mpii_pckh.py ../shared/data/mpii/annot/detections_our_format.mat

``detections_our_format.mat`` (bearpaw/pytorch-pose ``evaluation/data/``; a data file from a GPL-3.0
repository, so it is not shipped in this repository) holds the MPII validation ground truth of the
2,958-person Tompson split and Tompson et al.'s (CVPR 2015) predictions: a real regression number for the
PCKh code that needs no images.
"""
import argparse
import sys

import numpy as np

from pose.cli.common import add_common_args, run_cli


def _body(args) -> int:
    from pose.errors import DataError
    from pose.evaluation.mpii import load_gt_valid, mpii_pckh_table
    from pose.evaluation.runner import format_table

    gt = load_gt_valid(args.mat)
    if "pos_pred_src" not in gt:
        raise DataError(f"'{args.mat}' has no pos_pred_src field; expected stored predictions to score")
    preds = np.transpose(gt["pos_pred_src"], (2, 0, 1)) - 1.0  # 1-based in the .mat; the table adds 1 back
    table = mpii_pckh_table(preds, gt["pos_gt_src"], gt["headboxes_src"], gt["jnt_missing"], args.threshold)
    print(f"{preds.shape[0]} persons, {int((1 - np.asarray(gt['jnt_missing'])).sum())} visible joints")
    print(format_table(table, name=f"PCKh@{args.threshold}", digits=2))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="mpii_pckh.py", description=__doc__.split("\n")[0])
    p.add_argument("mat", help="gt_valid.mat-style file with pos_pred_src")
    p.add_argument("--threshold", type=float, default=0.5)
    add_common_args(p)
    return run_cli("mpii_pckh.py", _body, p, argv)


if __name__ == "__main__":
    sys.exit(main())
