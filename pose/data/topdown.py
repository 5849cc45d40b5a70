"""The top-down dataset: person samples (one window each) -> crops (evaluation) or crops + targets (training).

Every reader (:mod:`pose.data.coco` for any COCO-format file, :mod:`pose.data.mpii`) produces a list of
:class:`PersonSample`; :class:`TopDownDataset` turns a sample into a crop, made with the same
:mod:`pose.geometry` matrices as the predictor, or into an augmented crop plus heatmap targets from
the codec. Nothing here depends on which dataset the samples came from.
"""
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from pose import geometry
from pose.config import HALF_BODY_DRAWS
from pose.data.augment import apply_augmentation, sample_augmentation
from pose.errors import DataError
from pose.imageio import read_image_rgb
from pose.keypoints import KeypointSpec

logger = logging.getLogger(__name__)


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


def warn_skipped_boxes(codes: np.ndarray, path, what: str) -> None:
    """One warning for a file: ``skipped N annotations of 'FILE': M zero-size boxes, K boxes outside ...``.

    Args:
        codes: (N,) :func:`pose.geometry.box_problems` / ``gt_box_problems`` codes of the file's boxes.
        path: the file (or ``"detections"`` for an in-memory list).
        what: what the boxes are, plural (``"annotations"``, ``"detections"``).
    """
    bad = int((np.asarray(codes) != geometry.BOX_OK).sum())
    if bad:
        logger.warning("skipped %d %s of '%s': %s", bad, what if bad != 1 else what[:-1], path,
                       geometry.count_box_problems(codes))


def _check_windows(samples: Sequence[PersonSample]) -> None:
    """Refuse samples whose window cannot be cropped: a reader must skip (and count) them, never train on
    or score a point window (:func:`pose.geometry.window_problems`)."""
    if not samples:
        return
    codes = geometry.window_problems(np.array([s.center for s in samples], dtype=np.float64).reshape(-1, 2),
                                     np.array([s.scale for s in samples], dtype=np.float64).reshape(-1, 2))
    if codes.any():
        first = samples[int(np.flatnonzero(codes)[0])]
        raise DataError(f"{int((codes != 0).sum())} of {len(samples)} person samples have unusable crop windows "
                        f"({geometry.count_box_problems(codes)}; first: image '{first.image_path}', scale "
                        f"{np.asarray(first.scale).tolist()}); expected finite centres and scales > 0")


def check_image_dir(image_dir) -> Path:
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise DataError(f"image folder '{image_dir}' does not exist; expected the folder holding the images")
    return image_dir


class TopDownDataset(torch.utils.data.Dataset):
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
                 half_body_prob: float = 0.0, num_joints_half_body: int = 8, half_body_draw: str = "official",
                 use_joint_weights: bool = False):
        if train and codec is None:
            raise ValueError("TopDownDataset: train=True needs a codec to encode targets")
        if half_body_draw not in HALF_BODY_DRAWS:
            raise ValueError(f"half_body_draw='{half_body_draw}', expected one of {HALF_BODY_DRAWS}")
        self.samples = list(samples)
        _check_windows(self.samples)
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
        params = sample_augmentation(
            rng, sample.center, sample.scale, joints, visible, image_width=image.shape[1],
            input_size=self.input_size, upper_ids=self.spec.upper_body_ids,
            lower_ids=self.spec.lower_body_ids, **self.aug)
        image, joints, visible = apply_augmentation(image, joints, visible, params,
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
