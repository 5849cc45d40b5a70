"""Keypoint metadata: the only place where names, flip pairs, skeletons and OKS sigmas are written.

A :class:`KeypointSpec` travels with a model's checkpoint (``to_dict`` / ``from_dict``) so a
predictor is always rebuilt with the joints it was trained on. Indices are 0-based.
"""
from dataclasses import asdict, dataclass, field
from typing import Sequence, Tuple

import numpy as np

from pose.errors import ConfigError


def flip_permutation(num_keypoints: int, flip_pairs: Sequence[Sequence[int]]) -> np.ndarray:
    """Index array ``perm`` with ``flipped[..., k] = original[..., perm[k]]`` (left/right swap)."""
    perm = np.arange(num_keypoints)
    for a, b in flip_pairs:
        perm[a], perm[b] = b, a
    return perm


@dataclass(frozen=True)
class KeypointSpec:
    """Facts about one keypoint layout.

    Attributes:
        name: dataset family, e.g. ``"coco"`` or ``"mpii"``.
        keypoint_names: K names in channel order.
        flip_pairs: (left, right) index pairs swapped by a horizontal flip.
        skeleton: index pairs drawn as limbs.
        oks_sigmas: K per-keypoint OKS sigmas (COCO convention, already divided by 10); empty if unused.
        joint_weights: K loss weights used when ``LOSS.USE_DIFFERENT_JOINTS_WEIGHT`` is on.
        upper_body_ids: joints forming the upper half for half-body augmentation.
        lower_body_ids: joints forming the lower half.
    """

    name: str
    keypoint_names: Tuple[str, ...]
    flip_pairs: Tuple[Tuple[int, int], ...]
    skeleton: Tuple[Tuple[int, int], ...]
    oks_sigmas: Tuple[float, ...] = ()
    joint_weights: Tuple[float, ...] = ()
    upper_body_ids: Tuple[int, ...] = ()
    lower_body_ids: Tuple[int, ...] = field(default=())

    def __post_init__(self):
        k = len(self.keypoint_names)
        for a, b in self.flip_pairs:
            if not (0 <= a < k and 0 <= b < k) or a == b:
                raise ConfigError(f"keypoint spec '{self.name}': flip pair ({a}, {b}) out of range for {k} keypoints")
        for a, b in self.skeleton:
            if not (0 <= a < k and 0 <= b < k):
                raise ConfigError(f"keypoint spec '{self.name}': skeleton edge ({a}, {b}) out of range for "
                                  f"{k} keypoints")
        for attr in ("oks_sigmas", "joint_weights"):
            n = len(getattr(self, attr))
            if n not in (0, k):
                raise ConfigError(f"keypoint spec '{self.name}': {attr} has {n} values, expected {k}")

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoint_names)

    def flip_permutation(self) -> np.ndarray:
        """:func:`flip_permutation` of this layout."""
        return flip_permutation(self.num_keypoints, self.flip_pairs)

    def to_dict(self) -> dict:
        """Plain lists/strings/floats only, so it can live inside a ``weights_only`` checkpoint."""
        d = asdict(self)
        return {key: [list(v) if isinstance(v, tuple) else v for v in val] if isinstance(val, tuple) else val
                for key, val in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "KeypointSpec":
        def pairs(v):
            return tuple(tuple(int(i) for i in p) for p in v)
        try:
            return cls(
                name=str(d["name"]),
                keypoint_names=tuple(str(n) for n in d["keypoint_names"]),
                flip_pairs=pairs(d["flip_pairs"]),
                skeleton=pairs(d["skeleton"]),
                oks_sigmas=tuple(float(s) for s in d.get("oks_sigmas", ())),
                joint_weights=tuple(float(w) for w in d.get("joint_weights", ())),
                upper_body_ids=tuple(int(i) for i in d.get("upper_body_ids", ())),
                lower_body_ids=tuple(int(i) for i in d.get("lower_body_ids", ())),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"keypoint spec: malformed entry ({e}); expected the fields of KeypointSpec") from None


COCO_17 = KeypointSpec(
    name="coco",
    keypoint_names=(
        "nose", "left_eye", "right_eye", "left_ear", "right_ear",
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
        "left_wrist", "right_wrist", "left_hip", "right_hip",
        "left_knee", "right_knee", "left_ankle", "right_ankle",
    ),
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    # COCO's own skeleton (1-based in the annotation file), written 0-based.
    skeleton=((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
              (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6)),
    # pycocotools' keypoint sigmas (cocoeval.py), also used by the official oks_nms.
    oks_sigmas=(.026, .025, .025, .035, .035, .079, .079, .072, .072, .062, .062,
                .107, .107, .087, .087, .089, .089),
    # Official HRNet COCO joint weights: 1.2 elbows/knees, 1.5 wrists/ankles.
    joint_weights=(1., 1., 1., 1., 1., 1., 1., 1.2, 1.2, 1.5, 1.5, 1., 1., 1.2, 1.2, 1.5, 1.5),
    upper_body_ids=tuple(range(11)),
    lower_body_ids=tuple(range(11, 17)),
)

MPII_16 = KeypointSpec(
    name="mpii",
    keypoint_names=(
        "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax",
        "upper_neck", "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
    ),
    flip_pairs=((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
    # Official parent ids [1,2,6,6,3,4,6,6,7,8,11,12,7,7,13,14] as limbs (root 6 excluded).
    skeleton=((0, 1), (1, 2), (2, 6), (3, 6), (4, 3), (5, 4), (7, 6), (8, 7), (9, 8),
              (10, 11), (11, 12), (12, 7), (13, 7), (14, 13), (15, 14)),
    oks_sigmas=(),
    joint_weights=(1.5, 1.2, 1., 1., 1.2, 1.5, 1., 1., 1., 1., 1.5, 1.2, 1., 1., 1.2, 1.5),
    upper_body_ids=(7, 8, 9, 10, 11, 12, 13, 14, 15),
    lower_body_ids=(0, 1, 2, 3, 4, 5, 6),
)

KEYPOINT_SPECS = {"coco": COCO_17, "mpii": MPII_16}


def get_keypoint_spec(dataset_name: str) -> KeypointSpec:
    """Spec for a dataset name as used in ``DATASET.DATASET`` (``coco``, ``mpii``)."""
    try:
        return KEYPOINT_SPECS[dataset_name.lower()]
    except KeyError:
        raise ConfigError(f"DATASET.DATASET: unknown dataset '{dataset_name}'; expected one of "
                          f"{sorted(KEYPOINT_SPECS)}") from None
