"""One frame's poses as the Python API returns them: :class:`Poses` and its per-person view :class:`Person`.

A :class:`Poses` is a small frozen record of numpy arrays (no torch tensors) over the
:class:`pose.structures.PoseResult` items the pipeline produced for one image or video frame. Every
view and export is computed by the module that owns the format, so the API cannot drift from the
demo's files: the JSON-lines record is :func:`pose.video.records.frame_record`, the COCO entries
:func:`pose.video.records.coco_results_json`, the rescored person score
:func:`pose.video.records.pose_scores`, the picture :func:`pose.video.render.render`.

Symbols: N persons, K keypoints. Coordinates are ``(x, y)`` in image pixels (never ``(y, x)``).
"""
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Tuple, Union

import cv2
import numpy as np

from pose.errors import ConfigError, PoseError
from pose.imageio import as_rgb_image, check_color_order
from pose.keypoints import KeypointSpec
from pose.structures import PoseResult
from pose.video.pipeline import write_image
from pose.video.records import coco_results_json, frame_record, pose_scores
from pose.video.render import render
from pose.video.sources import Frame

#: ``Poses.track_ids`` value of a person the tracker left without an id, in a tracked frame.
NO_TRACK_ID = -1


class KeypointNameError(PoseError, KeyError):
    """A keypoint name that is not in the model's keypoint set (the message lists the valid names)."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class Person:
    """One person of a :class:`Poses`: ``person["left_wrist"]`` is that joint's ``[x, y, score]``.

    Attributes:
        index: position in the frame's :class:`Poses`.
        keypoints: (K, 3) float32 ``[x, y, score]`` in image pixels.
        names: the K keypoint names.
        box_xywh: (4,) the person box ``[x, y, w, h]`` (NaN when the pose came without a box).
        box_score: detector score of the box (1.0 for given boxes).
        score: the rescored person score of the COCO results (box score x mean joint score above 0.2).
        track_id: tracker id, or None.
    """

    index: int
    keypoints: np.ndarray
    names: Tuple[str, ...]
    box_xywh: np.ndarray
    box_score: float
    score: float
    track_id: Optional[int]

    def __getitem__(self, name: Union[str, int]) -> np.ndarray:
        if isinstance(name, (int, np.integer)) and not isinstance(name, bool):
            return self.keypoints[int(name)]
        try:
            return self.keypoints[self.names.index(name)]
        except ValueError:
            raise KeypointNameError(f"keypoint {name!r} is unknown; expected one of {', '.join(self.names)}") from None

    def __len__(self) -> int:
        return len(self.names)

    def to_dict(self) -> dict:
        """``{name: [x, y, score]}`` plus ``track_id``, ``score`` and ``bbox_xywh`` (plain Python numbers)."""
        out = {name: [float(v) for v in kp] for name, kp in zip(self.names, self.keypoints)}
        box = None if np.isnan(self.box_xywh).any() else [float(v) for v in self.box_xywh]
        out.update(track_id=self.track_id, score=float(self.score), bbox_xywh=box)
        return out


@dataclass(frozen=True, eq=False)
class Poses:
    """The poses found in one image or video frame.

    Built by :class:`pose.api.PoseEstimator`; the arrays below are read-only views computed once.

    Attributes:
        frame: the :class:`pose.video.sources.Frame` the poses belong to (its RGB image, index,
            timestamp and source name).
        results: the N :class:`pose.structures.PoseResult` items, in detector-score order.
        spec: the model's :class:`pose.keypoints.KeypointSpec` (names, skeleton).
        meta: what made them (model, detector, decoder, ...), stored in :meth:`to_record`.
        keypoints: (N, K, 3) float32 ``[x, y, score]`` in image pixels; ``xy`` (N, K, 2) and
            ``scores`` (N, K) are views of it.
        boxes_xywh: (N, 4) float32 person boxes (NaN rows for poses without a box).
        box_scores: (N,) float32 detector scores; person_scores: (N,) the COCO rescored scores.
        track_ids: (N,) int64 ids (``NO_TRACK_ID`` where the tracker gave none), or None when the
            frame was not tracked.
    """

    frame: Frame
    results: Tuple[PoseResult, ...]
    spec: KeypointSpec
    meta: dict = field(default_factory=dict)
    keypoints: np.ndarray = field(init=False, repr=False)
    boxes_xywh: np.ndarray = field(init=False, repr=False)
    box_scores: np.ndarray = field(init=False, repr=False)
    person_scores: np.ndarray = field(init=False, repr=False)
    track_ids: Optional[np.ndarray] = field(init=False, repr=False)

    def __post_init__(self):
        results = tuple(self.results)
        k = self.spec.num_keypoints
        keypoints = (np.stack([np.asarray(r.keypoints_img, dtype=np.float32) for r in results])
                     if results else np.zeros((0, k, 3), np.float32))
        boxes = np.array([r.bbox_xywh if r.bbox_xywh is not None else (np.nan,) * 4 for r in results],
                         dtype=np.float32).reshape(-1, 4)
        ids = [r.track_id for r in results]
        tracked = any(i is not None for i in ids)
        track_ids = np.array([NO_TRACK_ID if i is None else int(i) for i in ids], dtype=np.int64)
        values = dict(results=results, keypoints=keypoints, boxes_xywh=boxes,
                      box_scores=np.array([r.box_score for r in results], dtype=np.float32),
                      person_scores=np.asarray(pose_scores(results), dtype=np.float32).reshape(-1),
                      track_ids=track_ids if tracked else None, meta=dict(self.meta))
        for name, value in values.items():
            if isinstance(value, np.ndarray):
                value = _read_only(value)
            object.__setattr__(self, name, value)

    # -- views ---------------------------------------------------------------------------------
    @property
    def xy(self) -> np.ndarray:
        """(N, K, 2) keypoint ``(x, y)`` in image pixels."""
        return self.keypoints[..., :2]

    @property
    def scores(self) -> np.ndarray:
        """(N, K) keypoint scores (heatmap maxima)."""
        return self.keypoints[..., 2]

    @property
    def names(self) -> Tuple[str, ...]:
        return tuple(self.spec.keypoint_names)

    @property
    def skeleton(self) -> Tuple[Tuple[int, int], ...]:
        return tuple(self.spec.skeleton)

    @property
    def image(self) -> np.ndarray:
        """The frame's (H, W, 3) uint8 RGB image."""
        return self.frame.image_rgb

    @property
    def image_size(self) -> Tuple[int, int]:
        """(W, H) of the image."""
        h, w = self.frame.image_rgb.shape[:2]
        return int(w), int(h)

    @property
    def frame_index(self) -> int:
        return int(self.frame.index)

    @property
    def timestamp_s(self) -> Optional[float]:
        return self.frame.timestamp_s

    @property
    def untrained(self) -> bool:
        """The model had untrained (random) weights: the keypoints are meaningless."""
        return bool(self.meta.get("untrained_weights", False))

    def __len__(self) -> int:
        return len(self.results)

    def person(self, i: int) -> Person:
        """Person ``i`` (negative indices count from the end)."""
        n = len(self.results)
        if not -n <= int(i) < n:
            raise IndexError(f"person {i}: this frame has {n} person(s)")
        i = int(i) % n
        return Person(index=i, keypoints=self.keypoints[i], names=self.names, box_xywh=self.boxes_xywh[i],
                      box_score=float(self.box_scores[i]), score=float(self.person_scores[i]),
                      track_id=None if self.track_ids is None or self.track_ids[i] == NO_TRACK_ID
                      else int(self.track_ids[i]))

    def __iter__(self) -> Iterator[Person]:
        return (self.person(i) for i in range(len(self.results)))

    def __repr__(self) -> str:
        w, h = self.image_size
        ids = "" if self.track_ids is None else f", track_ids={self.track_ids.tolist()}"
        flag = ", UNTRAINED weights" if self.untrained else ""
        return (f"Poses({len(self)} person(s), {self.spec.num_keypoints} keypoints, frame {self.frame_index} "
                f"of '{self.frame.source_name}', {w}x{h}{ids}{flag})")

    # -- pictures ------------------------------------------------------------------------------
    def plot(self, image=None, *, kpt_thr: float = 0.3, color: str = "rgb") -> np.ndarray:
        """The annotated picture (the demo's drawing: skeletons, track colours, boxes, banner if untrained).

        Args:
            image: draw on this image instead of the frame (anything :func:`pose.imageio.as_rgb_image`
                takes, in ``color`` order); default: the frame's image.
            kpt_thr: joints below this score are not drawn.
            color: channel order of the returned picture (and of a given array): ``"rgb"`` or
                ``"bgr"`` (for ``cv2.imshow`` / ``cv2.imwrite``).

        Returns:
            (H, W, 3) uint8, a new array.
        """
        order = check_color_order(color)
        base = self.image if image is None else as_rgb_image(image, order)
        picture_bgr = render(base, list(self.results), self.spec, kpt_thr=kpt_thr, fps=None,
                             untrained=self.untrained)
        return picture_bgr if order == "bgr" else np.ascontiguousarray(picture_bgr[:, :, ::-1])

    def save(self, path, *, kpt_thr: float = 0.3) -> Path:
        """Write :meth:`plot` to ``path`` (format from the suffix: .jpg, .png, ...), atomically."""
        return write_image(Path(path), self.plot(kpt_thr=kpt_thr, color="bgr"))

    def _repr_png_(self) -> bytes:
        """Notebooks show a Poses as its plotted picture."""
        ok, data = cv2.imencode(".png", self.plot(color="bgr"))
        return data.tobytes() if ok else b""

    # -- exports -------------------------------------------------------------------------------
    def to_record(self, *, digits: Optional[int] = 3) -> dict:
        """The JSON-lines frame record, schema version 1 (:mod:`pose.video.records`), as ``pose-demo`` writes it."""
        return frame_record(self.frame.index, self.frame.timestamp_s, self.frame.source_name,
                            list(self.results), meta=self.meta or None, digits=digits)

    def to_coco(self, image_id: int) -> list:
        """COCO keypoint results entries (``loadRes`` format) of this image, rescored like the evaluation."""
        if isinstance(image_id, bool) or not isinstance(image_id, (int, np.integer)):
            raise ConfigError(f"to_coco: image_id {image_id!r}; expected the image's integer COCO id")
        return coco_results_json([dataclasses.replace(r, image_id=int(image_id)) for r in self.results])

    def to_dataframe(self):
        """A pandas DataFrame, one row per person x keypoint: frame_index, timestamp_s, person, track_id,
        person_score, keypoint, x, y, score (needs pandas)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("Poses.to_dataframe needs pandas: pip install pandas") from None
        n, k = len(self), self.spec.num_keypoints
        ids = self.track_ids if self.track_ids is not None else np.full(n, NO_TRACK_ID)
        return pd.DataFrame({
            "frame_index": np.full(n * k, self.frame_index), "timestamp_s": self.timestamp_s,
            "person": np.repeat(np.arange(n), k), "track_id": np.repeat(ids, k),
            "person_score": np.repeat(self.person_scores, k), "keypoint": np.tile(np.array(self.names), n),
            "x": self.keypoints[..., 0].reshape(-1), "y": self.keypoints[..., 1].reshape(-1),
            "score": self.keypoints[..., 2].reshape(-1)})
