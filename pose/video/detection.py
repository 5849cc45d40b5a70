"""Person detectors: image (RGB uint8, H x W x 3) -> person boxes for the top-down pose predictor.

Every detector follows :class:`PersonDetector`: ``detect(image_rgb, image_id=None)`` (also callable
directly) returns :class:`pose.structures.PersonBox` items in image pixels (``[x, y, w, h]``), sorted
by decreasing score, at most ``max_persons`` of them, each with ``score >= score_threshold``.
Nobody found gives an empty list.

Implementations:

- :class:`YoloxPersonDetector` (``"yolox-nano"``, the default): YOLOX-Nano (Ge et al. 2021) as ONNX,
  bundled in ``pose/assets``, run on the fastest runtime installed (OpenVINO, else ONNX Runtime, else
  ``cv2.dnn``, which needs no extra dependency); works offline.
- :class:`TorchvisionPersonDetector` (``"fasterrcnn"``): a torchvision detection model with its
  published COCO weights (downloaded once into the torch hub cache; the model is built lazily).
- :class:`PrecomputedDetections` (``"json:PATH"``): a COCO detection-results JSON, looked up by image id.
- :class:`WholeImageDetector` (``"whole-image"``): the whole image as one box (single-person input).

:func:`build_detector` picks one by name. (About 420 lines: four small detectors and the YOLOX
letterbox / decoding / runtime choice they share; splitting it would scatter one concern.)
"""
import logging
import os
import socket
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Protocol, Sequence, runtime_checkable

import cv2
import numpy as np

from pose.data.coco import read_coco_detections
from pose.errors import ConfigError, DataError, DownloadError
from pose.fileio import ASSETS_DIR
from pose.geometry import nms_xyxy, xywh_to_xyxy
from pose.structures import PersonBox

logger = logging.getLogger(__name__)

YOLOX_NANO_PATH = ASSETS_DIR / "yolox_nano.onnx"
DETECTOR_NAMES = ("yolox-nano", "fasterrcnn", "json:PATH", "whole-image")
#: Runtimes for the YOLOX ONNX file; ``auto`` = the first installed of openvino, onnxruntime, cv2.
YOLOX_RUNTIMES = ("auto", "openvino", "onnxruntime", "cv2")


def _installed(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def _open_yolox(path: Path, runtime: str, threads: Optional[int]):
    """(runtime name, callable (1,3,H,W) float32 -> raw output array) for the YOLOX file."""
    if runtime not in YOLOX_RUNTIMES:
        raise ConfigError(f"YOLOX runtime '{runtime}' is unknown; expected one of {', '.join(YOLOX_RUNTIMES)}")
    if runtime == "auto":
        runtime = next(r for r in ("openvino", "onnxruntime", "cv2") if r == "cv2" or _installed(r))
    try:
        if runtime == "openvino":
            import openvino
            # f32 explicitly: on CPUs with bf16 units OpenVINO would otherwise silently run bf16
            config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
            if threads:
                config["INFERENCE_NUM_THREADS"] = int(threads)
            core = openvino.Core()
            request = core.compile_model(core.read_model(str(path)), "CPU", config).create_infer_request()
            return runtime, lambda blob: next(iter(request.infer({0: blob}).values()))
        if runtime == "onnxruntime":
            import onnxruntime
            options = onnxruntime.SessionOptions()
            if threads:
                options.intra_op_num_threads = int(threads)
            session = onnxruntime.InferenceSession(str(path), sess_options=options,
                                                   providers=["CPUExecutionProvider"])
            name = session.get_inputs()[0].name
            return runtime, lambda blob: session.run(None, {name: blob})[0]
        net = cv2.dnn.readNetFromONNX(str(path))
    except ImportError:
        raise ConfigError(f"YOLOX runtime '{runtime}' is not installed: pip install {runtime}") from None
    except cv2.error as e:
        reason = str(e).strip().splitlines()[-1] if str(e).strip() else "cv2.error"
        raise DataError(f"YOLOX model '{path}' cannot be loaded by cv2.dnn ({reason})") from None
    except Exception as e:  # OpenVINO / ONNX Runtime raise their own types for unreadable files
        reason = " ".join(str(e).split())[:200]
        raise DataError(f"YOLOX model '{path}' cannot be loaded by {runtime} ({reason})") from None

    def run_cv2(blob):
        net.setInput(blob)
        return net.forward()
    return "cv2", run_cv2


@runtime_checkable
class PersonDetector(Protocol):
    """What the demo and the evaluation need from a person detector."""

    score_threshold: float
    max_persons: int

    def detect(self, image_rgb: np.ndarray, image_id: Optional[int] = None) -> List[PersonBox]:
        """Person boxes in image pixels, sorted by decreasing score."""

    def __call__(self, image_rgb: np.ndarray, image_id: Optional[int] = None) -> List[PersonBox]:
        """Same as :meth:`detect`."""


class _DetectorBase:
    """Shared option checking, sorting and ``__call__``."""

    def __init__(self, score_threshold: float, max_persons: int):
        if not 0.0 <= float(score_threshold) <= 1.0:
            raise ConfigError(f"detector score_threshold: got {score_threshold}, expected a value in [0, 1]")
        if int(max_persons) < 1:
            raise ConfigError(f"detector max_persons: got {max_persons}, expected an integer >= 1")
        self.score_threshold = float(score_threshold)
        self.max_persons = int(max_persons)

    def __call__(self, image_rgb: np.ndarray, image_id: Optional[int] = None) -> List[PersonBox]:
        return self.detect(image_rgb, image_id)

    def _to_boxes(self, boxes_xyxy: np.ndarray, scores: np.ndarray,
                  image_id: Optional[int]) -> List[PersonBox]:
        """(N,4) xyxy + (N,) scores -> thresholded, sorted, capped list of PersonBox (xywh)."""
        keep = scores >= self.score_threshold
        boxes_xyxy, scores = boxes_xyxy[keep], scores[keep]
        order = np.argsort(-scores, kind="stable")[: self.max_persons]
        out = []
        for i in order:
            x0, y0, x1, y1 = (float(v) for v in boxes_xyxy[i])
            out.append(PersonBox(bbox_xywh=(x0, y0, x1 - x0, y1 - y0), score=float(scores[i]),
                                 image_id=image_id))
        return out


def _check_image(image_rgb: np.ndarray) -> None:
    if not (isinstance(image_rgb, np.ndarray) and image_rgb.ndim == 3 and image_rgb.shape[2] == 3
            and image_rgb.dtype == np.uint8 and image_rgb.shape[0] > 0 and image_rgb.shape[1] > 0):
        raise DataError(f"detector input: got {getattr(image_rgb, 'shape', type(image_rgb))} "
                        f"{getattr(image_rgb, 'dtype', '')}; expected an RGB uint8 (H, W, 3) image")


# ---------------------------------------------------------------------------------------------
# YOLOX
# ---------------------------------------------------------------------------------------------

def letterbox(image: np.ndarray, input_size: Sequence[int], pad_value: int = 114):
    """YOLOX pre-processing: resize keeping aspect so the image fits ``input_size`` (W, H), place it at
    the top-left of a ``pad_value`` canvas.

    Returns:
        canvas (H_in, W_in, 3) uint8 and the ratio ``r`` (input pixels per image pixel), so that an
        image point ``p`` is at ``p * r`` in the canvas.
    """
    in_w, in_h = int(input_size[0]), int(input_size[1])
    h, w = image.shape[:2]
    r = min(in_w / w, in_h / h)
    new_w, new_h = max(1, int(round(w * r))), max(1, int(round(h * r)))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    canvas = np.full((in_h, in_w, 3), pad_value, dtype=np.uint8)
    canvas[:new_h, :new_w] = resized
    return canvas, r


def yolox_grids(input_size: Sequence[int], strides: Sequence[int] = (8, 16, 32)):
    """Anchor-point grid of the YOLOX head in output order.

    Returns:
        grid (A, 2) float32 cell ``(x, y)`` and stride (A, 1) float32, A = sum over strides of
        ``(W/s) * (H/s)``; within one stride the cells are in row-major order (y outer, x inner).
    """
    in_w, in_h = int(input_size[0]), int(input_size[1])
    grids, strides_out = [], []
    for s in strides:
        gw, gh = in_w // s, in_h // s
        ys, xs = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
        grids.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        strides_out.append(np.full((gw * gh, 1), s))
    return np.concatenate(grids).astype(np.float32), np.concatenate(strides_out).astype(np.float32)


def decode_yolox(raw: np.ndarray, input_size: Sequence[int], strides: Sequence[int] = (8, 16, 32)):
    """Raw head output (A, 5 + C) -> boxes (A, 4) xyxy in input pixels and class scores (A, C).

    ``xy = (out_xy + grid) * stride`` (box centre), ``wh = exp(out_wh) * stride``; the exported model
    already applies the sigmoid to objectness and class logits, so ``score = obj * cls``.
    """
    grid, stride = yolox_grids(input_size, strides)
    if raw.shape[0] != grid.shape[0]:
        raise DataError(f"YOLOX output has {raw.shape[0]} anchors, expected {grid.shape[0]} for input "
                        f"{tuple(input_size)} and strides {tuple(strides)}")
    raw = raw.astype(np.float32)
    cxy = (raw[:, :2] + grid) * stride
    wh = np.exp(np.clip(raw[:, 2:4], -20.0, 20.0)) * stride
    boxes = np.concatenate([cxy - wh / 2, cxy + wh / 2], axis=1)
    scores = raw[:, 4:5] * raw[:, 5:]
    return boxes, scores


class YoloxPersonDetector(_DetectorBase):
    """YOLOX-Nano (COCO-80, official Megvii weights exported to ONNX), person class only.

    Pre-processing follows the official release: letterbox to 416x416 (top-left, pad 114), BGR
    channel order, values 0-255 with no mean/std. Post-processing: grid/stride decoding, score =
    objectness x person probability, ``score_threshold``, NMS at ``nms_threshold``, boxes mapped back
    to image pixels and clipped to the image.

    Args:
        model_path: ONNX file; defaults to the bundled ``pose/assets/yolox_nano.onnx``.
        score_threshold: minimum box score kept (0.3 suits a demo; use ~0.01 for box AP evaluation).
        nms_threshold: IoU above which a lower-scored box is suppressed (official demo: 0.45).
        max_persons: at most this many boxes, highest scores first.
        input_size: network input (W, H); YOLOX-Nano is 416x416.
        channel_order: ``"bgr"`` (official) or ``"rgb"``.
        runtime: one of :data:`YOLOX_RUNTIMES` (``auto``: OpenVINO, else ONNX Runtime, else ``cv2.dnn``);
            the one used is ``self.runtime``.
        threads: intra-op threads for OpenVINO / ONNX Runtime (default: theirs).
    """

    def __init__(self, model_path: Optional[os.PathLike] = None, *, score_threshold: float = 0.3,
                 nms_threshold: float = 0.45, max_persons: int = 100, input_size: Sequence[int] = (416, 416),
                 channel_order: str = "bgr", class_id: int = 0, runtime: str = "auto",
                 threads: Optional[int] = None):
        super().__init__(score_threshold, max_persons)
        path = Path(model_path) if model_path is not None else YOLOX_NANO_PATH
        if not path.is_file():
            raise DataError(f"YOLOX model '{path}' does not exist; expected an ONNX file "
                            "(the default ships in pose/assets/yolox_nano.onnx)")
        if channel_order not in ("bgr", "rgb"):
            raise ConfigError(f"YOLOX channel_order: got '{channel_order}', expected 'bgr' or 'rgb'")
        self.runtime, self._run = _open_yolox(path, str(runtime).lower(), threads)
        self.model_path = path
        self.nms_threshold = float(nms_threshold)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.channel_order = channel_order
        self.class_id = int(class_id)

    def preprocess(self, image_rgb: np.ndarray):
        """RGB uint8 image -> (1, 3, H_in, W_in) float32 blob and the letterbox ratio."""
        canvas, r = letterbox(image_rgb, self.input_size)
        if self.channel_order == "bgr":
            canvas = canvas[:, :, ::-1]
        blob = np.ascontiguousarray(canvas.transpose(2, 0, 1)[None], dtype=np.float32)
        return blob, r

    def raw_output(self, blob: np.ndarray) -> np.ndarray:
        """Run the network: (1,3,H,W) float32 -> (A, 5 + C) float32."""
        out = np.asarray(self._run(blob), dtype=np.float32)
        return out.reshape(-1, out.shape[-1])

    def detect(self, image_rgb: np.ndarray, image_id: Optional[int] = None) -> List[PersonBox]:
        _check_image(image_rgb)
        h, w = image_rgb.shape[:2]
        blob, r = self.preprocess(image_rgb)
        boxes, class_scores = decode_yolox(self.raw_output(blob), self.input_size)
        scores = class_scores[:, self.class_id]
        cand = np.flatnonzero(scores >= self.score_threshold)
        if cand.size == 0:
            return []
        boxes, scores = boxes[cand] / r, scores[cand]
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        boxes, scores = boxes[ok], scores[ok]
        keep = nms_xyxy(boxes, scores, self.nms_threshold)
        return self._to_boxes(boxes[keep], scores[keep], image_id)


# ---------------------------------------------------------------------------------------------
# torchvision
# ---------------------------------------------------------------------------------------------

class TorchvisionPersonDetector(_DetectorBase):
    """A torchvision detection model (default Faster R-CNN R50-FPN v2) with its published COCO weights,
    person label (1) only.

    The model is built on the first :meth:`detect` call (or :meth:`load`). Weights come from
    ``weights_path`` if given, else the torch hub cache (``$TORCH_HOME/hub/checkpoints``), else are
    downloaded once; a failed download raises :class:`DownloadError` quickly (socket timeout
    ``download_timeout_s``) instead of hanging.

    Args:
        name: a ``torchvision.models.detection`` builder name.
        score_threshold: minimum box score (the official HRNet demo uses 0.9 with Faster R-CNN).
        max_persons: at most this many boxes.
        device: torch device string.
        weights_path: a local ``.pth`` state dict for ``name``; never touches the network.
    """

    PERSON_LABEL = 1

    def __init__(self, name: str = "fasterrcnn_resnet50_fpn_v2", *, score_threshold: float = 0.5,
                 max_persons: int = 100, device: str = "cpu", weights_path: Optional[os.PathLike] = None,
                 download_timeout_s: float = 20.0):
        super().__init__(score_threshold, max_persons)
        self.name = name
        self.device = device
        self.weights_path = Path(weights_path) if weights_path is not None else None
        self.download_timeout_s = float(download_timeout_s)
        self._model = None

    def _state_dict(self, weights):
        import torch

        if self.weights_path is not None:
            if not self.weights_path.is_file():
                raise DataError(f"detector weights '{self.weights_path}' do not exist")
            return torch.load(self.weights_path, map_location="cpu", weights_only=True)
        filename = weights.url.rsplit("/", 1)[-1]
        cached = Path(torch.hub.get_dir()) / "checkpoints" / filename
        if not cached.is_file():
            cached.parent.mkdir(parents=True, exist_ok=True)
            logger.info("downloading %s weights from %s", self.name, weights.url)
            old = socket.getdefaulttimeout()
            socket.setdefaulttimeout(self.download_timeout_s)
            try:
                torch.hub.download_url_to_file(weights.url, str(cached), progress=False)
            except Exception as e:  # noqa: BLE001 - any network failure becomes one clear line
                reason = str(getattr(e, "reason", e)).splitlines()[0] if str(e) else type(e).__name__
                raise DownloadError(
                    f"cannot download {self.name} weights from {weights.url} ({reason}); download the file "
                    f"into {cached.parent} or pass weights_path=..., or use the offline default detector "
                    "'yolox-nano'"
                ) from None
            finally:
                socket.setdefaulttimeout(old)
        return torch.load(cached, map_location="cpu", weights_only=True)

    def load(self):
        """Build the model and load its weights (idempotent); returns the model."""
        if self._model is not None:
            return self._model
        from torchvision.models import get_model, get_model_weights

        try:
            weights = get_model_weights(self.name).DEFAULT
        except (ValueError, KeyError):
            raise ConfigError(f"torchvision detector '{self.name}' is unknown; expected a torchvision.models."
                              "detection builder such as 'fasterrcnn_resnet50_fpn_v2'") from None
        state = self._state_dict(weights)
        model = get_model(self.name, weights=None, weights_backbone=None,
                          num_classes=len(weights.meta["categories"]))
        model.load_state_dict(state)
        self._model = model.eval().to(self.device)
        return self._model

    def detect(self, image_rgb: np.ndarray, image_id: Optional[int] = None) -> List[PersonBox]:
        import torch

        _check_image(image_rgb)
        model = self.load()
        x = torch.from_numpy(np.ascontiguousarray(image_rgb)).permute(2, 0, 1).float().div_(255.0)
        with torch.inference_mode():
            out = model([x.to(self.device)])[0]
        person = (out["labels"] == self.PERSON_LABEL).cpu().numpy()
        boxes = out["boxes"].cpu().numpy().astype(np.float64)[person]
        scores = out["scores"].cpu().numpy().astype(np.float64)[person]
        return self._to_boxes(boxes, scores, image_id)


# ---------------------------------------------------------------------------------------------
# Precomputed / whole image
# ---------------------------------------------------------------------------------------------

class PrecomputedDetections(_DetectorBase):
    """Boxes from a COCO detection-results JSON (``[{image_id, category_id, bbox, score}, ...]``),
    e.g. the official ``COCO_val2017_detections_AP_H_56_person.json``; person category (1) only.

    :meth:`detect` needs the ``image_id``; an image absent from the file gives no boxes.
    """

    def __init__(self, path: os.PathLike, *, score_threshold: float = 0.0, max_persons: int = 100,
                 category_id: int = 1):
        super().__init__(score_threshold, max_persons)
        self.path = Path(path)
        by_image: Dict[object, list] = defaultdict(list)
        for det in read_coco_detections(self.path, category_id=category_id, require_boxes=False):
            key = int(det.image_id) if str(det.image_id).lstrip("-").isdigit() else det.image_id
            by_image[key].append((det.bbox_xywh, det.score))
        self._by_image = dict(by_image)

    @property
    def image_ids(self) -> List[int]:
        return sorted(self._by_image)

    def detect(self, image_rgb: Optional[np.ndarray] = None,
               image_id: Optional[int] = None) -> List[PersonBox]:
        if image_id is None:
            raise DataError(f"detection results '{self.path}': an image_id is needed to look up boxes")
        dets = self._by_image.get(int(image_id), [])
        if not dets:
            return []
        xywh = np.array([d[0] for d in dets], dtype=np.float64)
        scores = np.array([d[1] for d in dets], dtype=np.float64)
        return self._to_boxes(xywh_to_xyxy(xywh), scores, int(image_id))


class WholeImageDetector(_DetectorBase):
    """One box covering the whole image, score 1 (for crops that already hold one person)."""

    def __init__(self, *, score_threshold: float = 0.0, max_persons: int = 1):
        super().__init__(score_threshold, max_persons)

    def detect(self, image_rgb: np.ndarray, image_id: Optional[int] = None) -> List[PersonBox]:
        _check_image(image_rgb)
        h, w = image_rgb.shape[:2]
        return [PersonBox(bbox_xywh=(0.0, 0.0, float(w), float(h)), score=1.0, image_id=image_id)]


def build_detector(name: str = "yolox-nano", **options) -> PersonDetector:
    """Detector by name: ``yolox-nano`` (default, offline), ``fasterrcnn`` (torchvision, downloads
    weights), ``json:PATH`` (precomputed COCO detection results), ``whole-image``.

    ``options`` go to the detector's constructor (``score_threshold``, ``max_persons``, ...).
    """
    key = str(name).strip()
    if key.lower().startswith("json:"):
        return PrecomputedDetections(key[5:], **options)
    key = key.lower()
    if key in ("yolox-nano", "yolox_nano", "yolox"):
        return YoloxPersonDetector(**options)
    if key in ("fasterrcnn", "faster-rcnn", "fasterrcnn_resnet50_fpn_v2"):
        return TorchvisionPersonDetector(**options)
    if key in ("whole-image", "whole_image", "none"):
        return WholeImageDetector(**options)
    raise ConfigError(f"detector '{name}' is unknown; expected one of {', '.join(DETECTOR_NAMES)}")
