"""The Python API: :class:`PoseEstimator`, one object from weights to tracked, plotted, exportable poses.

    import pose
    est = pose.PoseEstimator()                    # zoo HRNet-W32 + the bundled YOLOX-Nano detector
    poses = est("photo.jpg")                      # -> pose.Poses (keypoints in image pixels, (x, y))
    poses.save("photo_pose.jpg"); poses.to_record()
    for p in est.stream("clip.mp4"):              # video, webcam index, URL, folder or glob
        print(p.frame_index, p.track_ids, p.keypoints.shape)

It adds no inference of its own: weights, config and runtime come from :func:`pose.loading.load_predictor`
(once, on construction), detectors from :func:`pose.video.detection.build_detector`, the per-frame loop
(detector, box checks, batched predictor, tracker, One-Euro smoother) from
:func:`pose.video.pipeline.pose_frames`, which is also what ``pose-demo`` runs. Several images are
batched *across* images through the predictor's own stages (windows, crops, one forward per batch,
decode), so a list of small group photos fills whole forward batches.
"""
import logging
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from pose.config import load_config
from pose.errors import ConfigError, DataError
from pose.imageio import as_rgb_image, check_color_order
from pose.loading import DEFAULT_MODEL, load_predictor
from pose.poses import Poses
from pose.predictor import WINDOW_CHUNK_BATCHES, TopDownPredictor
from pose.structures import PersonBox, PoseResult
from pose.video.detection import build_detector
from pose.video.pipeline import UNTRAINED_WARNING, BoxFilter, coco_image_id, pose_frames, record_meta
from pose.video.sources import IMAGE_EXTENSIONS, Frame, FrameSource, open_source
from pose.zoo import resolve_weights

logger = logging.getLogger(__name__)

BOX_FORMATS = ("xywh", "xyxy")
_FASTERRCNN_NAMES = ("fasterrcnn", "faster-rcnn", "fasterrcnn_resnet50_fpn_v2")


def predict_images(predictor: TopDownPredictor, images_rgb: Sequence[np.ndarray],
                   boxes_per_image: Sequence[Sequence[PersonBox]]) -> List[List[PoseResult]]:
    """Poses of several images, their person crops batched across images.

    The windows of all images are taken in order and run ``WINDOW_CHUNK_BATCHES * batch_size`` at a
    time (bounded memory, as :meth:`TopDownPredictor.predict_windows`), each chunk through one
    :meth:`TopDownPredictor.predict_crops` call, i.e. full forward batches. One image gives exactly
    what ``predictor(image, boxes)`` gives.
    """
    owners, centers, scales, flat_boxes = [], [], [], []
    for i, boxes in enumerate(boxes_per_image):
        if not boxes:
            continue
        c, s = predictor.make_windows(np.array([b.bbox_xywh for b in boxes], dtype=np.float64))
        owners += [i] * len(boxes)
        centers.append(c)
        scales.append(s)
        flat_boxes += list(boxes)
    out: List[List[PoseResult]] = [[] for _ in boxes_per_image]
    if not flat_boxes:
        return out
    owners = np.asarray(owners)
    centers = np.concatenate(centers).astype(np.float32)
    scales = np.concatenate(scales).astype(np.float32)
    chunk = predictor.batch_size * WINDOW_CHUNK_BATCHES
    keypoints = []
    for start in range(0, len(owners), chunk):
        part = slice(start, start + chunk)
        crops = [predictor.crop(images_rgb[i], centers[part][owners[part] == i], scales[part][owners[part] == i])
                 for i in dict.fromkeys(owners[part].tolist())]  # owners are sorted: image order kept
        keypoints.append(predictor.predict_crops(np.concatenate(crops), centers[part], scales[part]))
    keypoints = np.concatenate(keypoints)
    for kp, c, s, b, i in zip(keypoints, centers, scales, flat_boxes, owners):
        out[i].append(PoseResult(keypoints_img=kp, center_img=c, scale=s, box_score=float(b.score),
                                 image_id=b.image_id, bbox_xywh=tuple(b.bbox_xywh), track_id=b.track_id))
    return out


def person_boxes(boxes, box_format: Optional[str], image_id: Optional[int] = None,
                 what: str = "boxes") -> List[PersonBox]:
    """User boxes -> PersonBox list: (N, 4) in ``box_format`` (``"xywh"`` or ``"xyxy"``), or (N, 5) with
    a score column; PersonBox items are taken as they are."""
    if box_format not in BOX_FORMATS:
        raise ConfigError(f"box_format: got {box_format!r}; say how {what} are written: 'xywh' "
                          "([x, y, w, h], COCO) or 'xyxy' ([x1, y1, x2, y2])")
    items = list(boxes) if not isinstance(boxes, np.ndarray) else None
    if items is not None and items and all(isinstance(b, PersonBox) for b in items):
        return items
    try:
        array = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{what}: expected an (N, 4) or (N, 5) array of numbers") from None
    if array.size == 0:
        return []
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2 or array.shape[1] not in (4, 5):
        raise DataError(f"{what}: shape {array.shape}; expected (N, 4) boxes or (N, 5) with a score column")
    xywh = array[:, :4].copy()
    if box_format == "xyxy":
        xywh[:, 2:] -= xywh[:, :2]
    scores = array[:, 4] if array.shape[1] == 5 else np.ones(len(array))
    return [PersonBox(bbox_xywh=tuple(float(v) for v in b), score=float(s), image_id=image_id)
            for b, s in zip(xywh, scores)]


class PoseEstimator:
    """Weights to poses for images, batches, videos, webcams and streams (module docstring).

    Args:
        model: a zoo name (downloaded once into ``~/.cache/pose``); with ``pretrained=False`` it only
            picks the architecture.
        weights: a checkpoint file instead of ``model`` (project, official or mmpose weights).
        cfg: an experiment YAML path or a config, for official/mmpose weights (see :func:`pose.loading.load_model`).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
        backend: ``"auto"`` (the fastest available), ``"torch"``, ``"torch-fast"``, ``"onnxruntime"``.
        detector: ``"yolox-nano"`` (offline default), ``"fasterrcnn"``, ``"json:PATH"``, ``"whole-image"``,
            or any :class:`pose.video.detection.PersonDetector`.
        flip_test, decoder, batch_size: inference settings (default: the model's).
        offline: never download.
        pretrained: False = untrained weights (smoke runs and timing only); every result says so.
        precision: one of :data:`pose.loading.PRECISIONS`, passed to the loader as given.
        det_score, max_persons: detector threshold and cap for a detector given by name.

    Raises:
        DownloadError: zoo weights are not cached and cannot be downloaded (the message says how to
            get them); other :class:`pose.errors.PoseError` for bad files or settings.
    """

    def __init__(self, model: str = DEFAULT_MODEL, *, weights=None, cfg=None, device="cpu",
                 backend: str = "auto", detector: Any = "yolox-nano", flip_test: Optional[bool] = None,
                 decoder: Optional[str] = None, batch_size: Optional[int] = None, offline: bool = False,
                 pretrained: bool = True, precision: str = "fp32", det_score: float = 0.3,
                 max_persons: Optional[int] = None):
        if weights is not None and not pretrained:
            raise ConfigError("weights= and pretrained=False exclude each other; pick one")
        if batch_size is not None and int(batch_size) < 1:
            raise ConfigError(f"batch_size: got {batch_size}, expected an integer >= 1")
        # the detector first: its errors (a missing JSON file, an unknown name) are the cheap ones
        if isinstance(detector, str):
            options: Dict[str, Any] = {"score_threshold": det_score}
            if max_persons is not None:
                options["max_persons"] = max_persons
            if detector.strip().lower() in _FASTERRCNN_NAMES:
                options["device"] = device
            self.detector, self.detector_name = build_detector(detector, **options), detector
        elif callable(detector):
            self.detector, self.detector_name = detector, type(detector).__name__
        else:
            raise ConfigError(f"detector: got {type(detector).__name__}; expected a name "
                              "(yolox-nano, fasterrcnn, json:PATH, whole-image) or a PersonDetector")
        cfg_path = cfg if isinstance(cfg, (str, os.PathLike)) else None
        config = load_config(cfg_path) if cfg_path is not None else cfg
        source = weights if weights is not None else model
        self.predictor, self.cfg = load_predictor(
            source, config, overrides=["TEST.DECODER", decoder] if decoder else [], device=device,
            batch_size=batch_size, flip_test=flip_test, offline=offline, backend=backend,
            pretrained=pretrained, precision=precision)
        self.untrained = not pretrained
        self.model_label = str(source) if pretrained else f"random:{cfg_path or source}"
        self.weights_path = Path(resolve_weights(source, offline=True)) if pretrained else None
        self.device, self.precision = str(device), precision
        if self.untrained:
            logger.warning(UNTRAINED_WARNING)

    # -- facts ---------------------------------------------------------------------------------
    @property
    def spec(self):
        """The model's :class:`pose.keypoints.KeypointSpec`."""
        return self.predictor.spec

    def info(self) -> dict:
        """What runs: model, input size, keypoints, decoder, flip test, backend, device, detector, weights."""
        return {"model": self.model_label, "input_size": list(self.predictor.input_size),
                "keypoint_names": list(self.spec.keypoint_names), "decoder": self.predictor.codec.decoder,
                "flip_test": bool(self.predictor.flip_test),
                "backend": getattr(self.predictor.backend, "name", type(self.predictor.backend).__name__),
                "device": self.device, "precision": self.precision, "detector": self.detector_name,
                "weights": str(self.weights_path) if self.weights_path is not None else "untrained (random)",
                "untrained_weights": self.untrained}

    def record_meta(self, **extra) -> dict:
        """The ``meta`` of this estimator's frame records (``extra``: e.g. ``stride``, ``det_every``)."""
        return record_meta(self.predictor, model=self.model_label, detector=self.detector_name,
                           untrained=self.untrained, **extra)

    def __repr__(self) -> str:
        i = self.info()
        return (f"PoseEstimator(model={i['model']!r}, input={i['input_size'][0]}x{i['input_size'][1]}, "
                f"decoder={i['decoder']}, backend={i['backend']}, device={i['device']}, "
                f"detector={i['detector']!r}{', UNTRAINED' if self.untrained else ''})")

    # -- images --------------------------------------------------------------------------------
    def __call__(self, images, *, boxes=None, box_format: Optional[str] = None, color: str = "rgb"):
        """Poses of one image (-> :class:`Poses`) or of several (-> list of :class:`Poses`).

        Args:
            images: one image (a path, an (H, W[, C]) uint8 array, a ``PIL.Image``), a list of them, or
                a folder / glob pattern (a list, in file-name order; undecodable files are skipped). Each
                result keeps its image; for a large folder iterate :meth:`stream` instead.
            boxes: person boxes instead of the detector: (N, 4) or (N, 5) with scores for one image, a
                list of those for several. Boxes of zero size or outside the image are dropped (one
                counted warning).
            box_format: ``"xywh"`` or ``"xyxy"``; required with ``boxes``.
            color: channel order of array images: ``"rgb"`` (default) or ``"bgr"`` (OpenCV frames).
        """
        check_color_order(color)
        if isinstance(images, (list, tuple)):
            frames = [self._frame(image, i, color) for i, image in enumerate(images)]
            return self._predict(frames, boxes, box_format, many=True)
        if isinstance(images, (str, os.PathLike)) and _is_image_collection(images):
            with open_source(images, threaded=False) as source:
                frames = list(source)
            return self._predict(frames, boxes, box_format, many=True)
        return self._predict([self._frame(images, 0, color)], None if boxes is None else [boxes], box_format,
                             many=False)[0]

    @staticmethod
    def _frame(image, index: int, color: str) -> Frame:
        if isinstance(image, (str, os.PathLike)):
            path = Path(image)
            if path.is_file() and path.suffix.lower() not in IMAGE_EXTENSIONS:
                raise DataError(f"'{path}' is not an image file (expected {', '.join(IMAGE_EXTENSIONS)}); "
                                "for a video use PoseEstimator.stream(path)")
            return Frame(index=index, timestamp_s=None, image_rgb=as_rgb_image(image), source_name=Path(image).name)
        return Frame(index=index, timestamp_s=None, image_rgb=as_rgb_image(image, color, what=f"image {index}"),
                     source_name=f"<image {index}>")

    def _predict(self, frames: List[Frame], boxes, box_format, *, many: bool) -> List[Poses]:
        if boxes is not None and len(boxes) != len(frames):
            raise DataError(f"boxes: {len(boxes)} box lists for {len(frames)} images; expected one per image")
        box_filter = BoxFilter("given boxes" if boxes is not None else "detector boxes")
        per_image = []
        for n, frame in enumerate(frames):
            image = frame.image_rgb
            image_id = coco_image_id(frame.source_name, frame.index)  # file stem digits, else the position
            if boxes is None:
                found = self.detector(image, image_id)
            else:
                found = person_boxes(boxes[n], box_format, image_id,
                                     what=f"boxes of image {n}" if many else "boxes")
            per_image.append(box_filter(found, (image.shape[1], image.shape[0])))
        box_filter.warn()
        meta = self.record_meta() if boxes is None else dict(self.record_meta(), detector="given boxes")
        results = predict_images(self.predictor, [f.image_rgb for f in frames], per_image)
        return [Poses(frame, tuple(r), self.spec, meta) for frame, r in zip(frames, results)]

    # -- videos and live sources -----------------------------------------------------------------
    def stream(self, source: Union[str, int, os.PathLike, FrameSource], *, track: Union[bool, str] = True,
               smooth: Optional[bool] = None, det_every: int = 1, stride: int = 1, kpt_thr: float = 0.3,
               open_timeout_s: float = 10.0):
        """Yield one :class:`Poses` per frame of a video file, webcam index, URL, folder or glob.

        The defaults are ``pose-demo``'s: tracking on (``True`` = IoU matching; or ``"oks"``,
        ``"iou+oks"``; ``False`` = off) for videos and live sources, One-Euro smoothing on for webcams
        and streams (``smooth=None``), the detector on every frame (``det_every``), every frame
        (``stride``). The source is opened by this call, so a bad input raises here, and closed when the
        iteration ends (or the generator is closed).
        """
        metric = "iou" if track is True else (None if track in (False, None, "none") else str(track))
        if int(det_every) < 1:
            raise ConfigError(f"det_every: got {det_every}, expected an integer >= 1")
        frames = source if isinstance(source, FrameSource) else open_source(
            source, stride=stride, open_timeout_s=open_timeout_s)
        meta = self.record_meta(stride=frames.stride, det_every=int(det_every))
        return self._stream(frames, meta, metric, smooth, int(det_every), kpt_thr)

    def _stream(self, source: FrameSource, meta: dict, metric, smooth, det_every: int, kpt_thr: float):
        items = pose_frames(source, self.predictor, self.detector, det_every=det_every, track=metric,
                            smooth=smooth, kpt_thr=kpt_thr)
        try:
            for frame, results in items:
                yield Poses(frame, tuple(results), self.spec, meta)
        finally:
            items.close()
            source.close()


def _is_image_collection(spec) -> bool:
    text = os.fspath(spec)
    path = Path(text).expanduser()
    return path.is_dir() or (not path.exists() and any(c in text for c in "*?["))


__all__ = ["BOX_FORMATS", "PoseEstimator", "person_boxes", "predict_images"]
