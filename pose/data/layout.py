"""Where a dataset's files are: explicit ``DATASET.*`` paths, else the official folder layouts.

COCO: ``ROOT/annotations/person_keypoints_{SET}.json`` (``image_info_{SET}.json`` for test sets) and
``ROOT/images/{SET}/`` (``ROOT/images/test2017/`` for test sets); MPII: ``ROOT/annot/{SET}.json``,
``ROOT/images/`` and ``ROOT/annot/gt_valid.mat``. Every relative path is joined onto ``DATA_DIR``.
"""
import os
from typing import Dict

from pose.config import resolve_data_path
from pose.errors import ConfigError

SPLITS = ("train", "test")


def resolve_dataset_paths(cfg, split: str) -> Dict[str, str]:
    """Annotation file, image folder and (MPII) PCKh ground truth of a split; ``cfg`` is not modified.

    Explicit ``DATASET.{TRAIN,TEST}_ANN_FILE`` / ``_IMAGE_DIR`` / ``GT_VALID_FILE`` win; empty ones follow the
    official layout under ``DATASET.ROOT`` (see the DATASET comments). Every relative result is joined onto
    ``DATA_DIR``.

    Args:
        cfg: a config (frozen or not).
        split: 'train' (uses DATASET.TRAIN_SET) or 'test' (uses DATASET.TEST_SET).

    Returns:
        ``{"ann_file": str, "image_dir": str, "gt_valid_file": str}``; ``gt_valid_file`` is '' for COCO
        unless set explicitly.
    """
    if split not in SPLITS:
        raise ConfigError(f"resolve_dataset_paths: split '{split}'; expected 'train' or 'test'")
    ds = cfg.DATASET
    prefix = split.upper()
    image_set = ds.TRAIN_SET if split == "train" else ds.TEST_SET
    ann_file = ds[f"{prefix}_ANN_FILE"]
    image_dir = ds[f"{prefix}_IMAGE_DIR"]
    gt_valid = ds.GT_VALID_FILE
    family = ds.DATASET.lower()
    if family == "coco":
        is_test = "test" in image_set  # official: test sets ship image_info_*.json and images/test2017
        if not ann_file:
            ann_prefix = "image_info" if is_test else "person_keypoints"
            ann_file = os.path.join(ds.ROOT, "annotations", f"{ann_prefix}_{image_set}.json")
        if not image_dir:
            image_dir = os.path.join(ds.ROOT, "images", "test2017" if is_test else image_set)
    elif family == "mpii":
        if not ann_file:
            ann_file = os.path.join(ds.ROOT, "annot", f"{image_set}.json")
        if not image_dir:
            image_dir = os.path.join(ds.ROOT, "images")
        if not gt_valid:
            gt_valid = os.path.join(ds.ROOT, "annot", "gt_valid.mat")
    elif not (ann_file and image_dir):
        raise ConfigError(f"DATASET.{prefix}_ANN_FILE / DATASET.{prefix}_IMAGE_DIR: empty, and dataset "
                          f"'{ds.DATASET}' has no official layout; expected explicit paths")
    return {
        "ann_file": resolve_data_path(cfg, ann_file),
        "image_dir": resolve_data_path(cfg, image_dir),
        "gt_valid_file": resolve_data_path(cfg, gt_valid),
    }
