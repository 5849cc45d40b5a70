"""Datasets: folder layouts, readers (any COCO-format file, MPII), the top-down dataset, augmentation.

- :mod:`pose.data.layout`: where a split's files are (explicit paths or the official layouts);
- :mod:`pose.data.coco` / :mod:`pose.data.mpii`: annotation files -> :class:`PersonSample` lists;
- :mod:`pose.data.topdown`: samples -> crops (+ targets), the dataset every reader feeds;
- :mod:`pose.data.augment`: training augmentation (pure numpy, ``rng`` passed in).

:func:`build_dataset` / :func:`build_samples` are the only places in ``pose.data`` that read a config;
everything else takes plain values.
"""
import logging

from pose.config import keypoint_spec_for_config
from pose.data.coco import load_coco_det_samples, load_coco_gt_samples
from pose.data.layout import resolve_dataset_paths
from pose.data.mpii import load_mpii_samples
from pose.data.topdown import PersonSample, TopDownDataset
from pose.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["PersonSample", "TopDownDataset", "build_dataset", "build_samples"]


def build_samples(cfg, split: str, *, skip_missing_images: bool = False) -> list:
    """The :class:`PersonSample` list of a split as the config describes it.

    ``train`` always uses GT boxes; ``test`` uses GT boxes if ``TEST.USE_GT_BBOX`` else the
    detections of ``TEST.COCO_BBOX_FILE`` with ``score >= TEST.IMAGE_THRE`` (COCO only; MPII uses its
    annotated windows). Paths come from :func:`pose.data.layout.resolve_dataset_paths`.
    """
    spec = keypoint_spec_for_config(cfg)
    paths = resolve_dataset_paths(cfg, split)
    input_size = tuple(cfg.MODEL.IMAGE_SIZE)
    if spec.protocol == "mpii":
        return load_mpii_samples(paths["ann_file"], paths["image_dir"], spec=spec,
                                 skip_missing_images=skip_missing_images)
    if split == "train" or cfg.TEST.USE_GT_BBOX:
        return load_coco_gt_samples(paths["ann_file"], paths["image_dir"], input_size=input_size, spec=spec,
                                    skip_missing_images=skip_missing_images)
    if not cfg.TEST.COCO_BBOX_FILE:
        raise ConfigError("TEST.COCO_BBOX_FILE: empty while TEST.USE_GT_BBOX is false; expected a COCO "
                          "person detection JSON (or set TEST.USE_GT_BBOX true)")
    return load_coco_det_samples(cfg.TEST.COCO_BBOX_FILE, paths["ann_file"], paths["image_dir"],
                                 input_size=input_size, spec=spec, image_thre=float(cfg.TEST.IMAGE_THRE),
                                 skip_missing_images=skip_missing_images)


def build_dataset(cfg, split: str, codec=None, *, skip_missing_images: bool = False) -> TopDownDataset:
    """A :class:`TopDownDataset` for ``split`` ('train' = augmented crops + targets, 'test' = crops).

    Reads ``DATASET.*`` (family, paths, augmentation), ``MODEL.IMAGE_SIZE``, ``TEST.USE_GT_BBOX``,
    ``TEST.COCO_BBOX_FILE``, ``TEST.IMAGE_THRE``, ``LOSS.USE_DIFFERENT_JOINTS_WEIGHT`` and
    ``TRAIN.SEED``.

    Args:
        cfg: the whole config.
        split: 'train' or 'test'.
        codec: :class:`pose.codec.HeatmapCodec` (required for 'train').
        skip_missing_images: drop samples whose image file is missing (warning) instead of raising.
    """
    if split not in ("train", "test"):
        raise ConfigError(f"build_dataset: split '{split}'; expected 'train' or 'test'")
    ds = cfg.DATASET
    if split == "train" and ds.SELECT_DATA:
        logger.warning("DATASET.SELECT_DATA is true but not implemented; all training samples are used")
    samples = build_samples(cfg, split, skip_missing_images=skip_missing_images)
    return TopDownDataset(
        samples, input_size=tuple(cfg.MODEL.IMAGE_SIZE), spec=keypoint_spec_for_config(cfg), codec=codec,
        train=split == "train", seed=int(cfg.TRAIN.SEED), scale_factor=float(ds.SCALE_FACTOR),
        rot_factor=float(ds.ROT_FACTOR), flip=bool(ds.FLIP), half_body_prob=float(ds.PROB_HALF_BODY),
        num_joints_half_body=int(ds.NUM_JOINTS_HALF_BODY), half_body_draw=ds.HALF_BODY_DRAW,
        use_joint_weights=bool(cfg.LOSS.USE_DIFFERENT_JOINTS_WEIGHT))
