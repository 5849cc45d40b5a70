"""TopDownPredictor: THE inference path (evaluation, training validation, demo, export checks).

image (RGB uint8) + person boxes
    -> centre/scale windows (:func:`pose.geometry.boxes_to_center_scale`)
    -> crops (:func:`pose.geometry.warp_crop`, the same matrices the dataset uses)
    -> batched forward (normalisation lives inside the model) [+ the horizontally flipped crops]
    -> flip-test average and decoding (:class:`pose.codec.HeatmapCodec`)
    -> keypoints in image pixels via the inverse of the crop matrix.

No other module crops, normalises or decodes. The network is reached through a *backend*: any
callable mapping a float32 (B, 3, H, W) batch of RGB crops in [0, 255] to (B, K, h, w) heatmaps
(:class:`TorchBackend` here; the ONNX Runtime backend lives in :mod:`pose.backends`).

Symbols: N persons, K keypoints, (H, W) model input, (h, w) heatmap.
"""
import logging
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch

from pose import geometry
from pose.codec import HeatmapCodec
from pose.keypoints import KeypointSpec
from pose.structures import PersonBox, PoseResult

logger = logging.getLogger(__name__)


class TorchBackend:
    """Runs a ``torch.nn.Module`` in eval mode under ``torch.inference_mode``.

    Args:
        model: maps float RGB crops in [0, 255], (B, 3, H, W), to heatmaps (B, K, h, w).
        device: where to run (``"cpu"``, ``"cuda"``, ``"cuda:1"``...).
        channels_last: feed NHWC-strided tensors (faster convolutions on CPU and GPU).
        autocast_dtype: ``torch.float16`` / ``torch.bfloat16`` for mixed precision on GPU, or None.
    """

    name = "torch"

    def __init__(self, model: torch.nn.Module, device="cpu", *, channels_last: bool = False,
                 autocast_dtype: Optional[torch.dtype] = None):
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        self.channels_last = channels_last
        self.autocast_dtype = autocast_dtype
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    def __call__(self, crops_nchw: torch.Tensor) -> np.ndarray:
        x = crops_nchw.to(self.device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            if self.autocast_dtype is not None:
                with torch.autocast(self.device.type, dtype=self.autocast_dtype):
                    out = self.model(x)
            else:
                out = self.model(x)
        return out.float().contiguous().cpu().numpy()


# predict_windows holds at most this many batches of crops / heatmaps at once.
WINDOW_CHUNK_BATCHES = 8


class TopDownPredictor:
    """Image + boxes -> keypoints in image pixels.

    Args:
        model: a ``torch.nn.Module`` (wrapped in :class:`TorchBackend`) or any backend callable.
        codec: the heatmap codec the model was trained with (decoder choice included).
        spec: keypoint metadata (flip pairs for the flip test).
        flip_test: average with the prediction on the mirrored crop (official ``TEST.FLIP_TEST``).
        batch_size: crops per forward pass.
        device: used when ``model`` is a module.
    """

    def __init__(self, model, codec: HeatmapCodec, spec: KeypointSpec, *, flip_test: bool = True,
                 batch_size: int = 32, device="cpu"):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.backend: Callable[[torch.Tensor], np.ndarray] = (
            TorchBackend(model, device) if isinstance(model, torch.nn.Module) else model)
        self.codec = codec
        self.spec = spec
        self.flip_test = flip_test
        self.batch_size = batch_size

    @property
    def input_size(self) -> Tuple[int, int]:
        """Model input (W, H)."""
        return tuple(self.codec.input_size)

    # -- stages ------------------------------------------------------------------------------
    def make_windows(self, boxes_xywh: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(N, 4) boxes -> centres (N, 2), scales (N, 2), official aspect fix and x1.25 padding."""
        return geometry.boxes_to_center_scale(np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4),
                                              self.input_size)

    def crop(self, image_rgb: np.ndarray, centers: np.ndarray, scales: np.ndarray) -> np.ndarray:
        """Crops (N, H, W, 3) uint8 of the windows, exactly as the dataset makes them."""
        matrices = geometry.crop_matrix(centers, scales, np.zeros(len(centers)), self.input_size,
                                        unbiased=self.codec.unbiased)
        return geometry.warp_crop(image_rgb, matrices, self.input_size)

    def forward_heatmaps(self, crops: np.ndarray) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """Raw network outputs for crops (N, H, W, 3) uint8.

        Returns:
            heatmaps (N, K, h, w) float32, and the outputs for the mirrored crops *before* any
            un-flipping (N, K, h, w), or None without flip test. Keeping them raw lets several
            decoders share one forward pass (``pose-eval --decoders``).
        """
        crops = np.asarray(crops)
        n = len(crops)
        if n == 0:
            k = self.spec.num_keypoints
            w, h = self.codec.heatmap_size
            empty = np.zeros((0, k, h, w), np.float32)
            return empty, (empty.copy() if self.flip_test else None)
        outs, outs_flipped = [], []
        for start in range(0, n, self.batch_size):
            x = torch.from_numpy(np.ascontiguousarray(crops[start:start + self.batch_size]))
            x = x.permute(0, 3, 1, 2).float()  # (B, 3, H, W), RGB in [0, 255]
            outs.append(self.backend(x))
            if self.flip_test:
                outs_flipped.append(self.backend(x.flip(3)))
        heatmaps = np.concatenate(outs)
        return heatmaps, (np.concatenate(outs_flipped) if self.flip_test else None)

    def decode(self, heatmaps: np.ndarray, heatmaps_flipped_raw: Optional[np.ndarray],
               centers: np.ndarray, scales: np.ndarray,
               codec: Optional[HeatmapCodec] = None) -> np.ndarray:
        """Flip-average (if flipped maps are given), decode and map to the image.

        Args:
            codec: decode with another codec (another refinement) on the same heatmaps.

        Returns:
            (N, K, 3) ``[x_img, y_img, score]``.
        """
        codec = codec or self.codec
        if heatmaps_flipped_raw is not None:
            heatmaps = codec.flip_average(heatmaps, heatmaps_flipped_raw, self.spec.flip_pairs)
        keypoints_crop, scores = codec.decode(heatmaps)
        keypoints_img = geometry.crop_to_image(keypoints_crop, centers, scales, codec.input_size,
                                               unbiased=codec.unbiased)
        return np.concatenate([keypoints_img, scores[..., None]], axis=-1).astype(np.float32)

    # -- entry points ------------------------------------------------------------------------
    def predict_crops(self, crops: np.ndarray, centers: np.ndarray, scales: np.ndarray) -> np.ndarray:
        """Crops made by :meth:`crop` (or the dataset) -> (N, K, 3) image-space keypoints."""
        heatmaps, flipped = self.forward_heatmaps(crops)
        return self.decode(heatmaps, flipped, np.asarray(centers), np.asarray(scales))

    def predict_windows(self, image_rgb: np.ndarray, centers: np.ndarray, scales: np.ndarray) -> np.ndarray:
        """Centre/scale windows of one image -> (N, K, 3) image-space keypoints.

        Windows are cropped, run and decoded ``WINDOW_CHUNK_BATCHES * batch_size`` at a time, so memory
        stays bounded however many boxes a detector returns (persons are independent: same result).
        """
        centers = np.asarray(centers, dtype=np.float32).reshape(-1, 2)
        scales = np.asarray(scales, dtype=np.float32).reshape(-1, 2)
        chunk = self.batch_size * WINDOW_CHUNK_BATCHES
        if len(centers) <= chunk:
            return self.predict_crops(self.crop(image_rgb, centers, scales), centers, scales)
        return np.concatenate([
            self.predict_crops(self.crop(image_rgb, centers[i:i + chunk], scales[i:i + chunk]),
                               centers[i:i + chunk], scales[i:i + chunk])
            for i in range(0, len(centers), chunk)])

    def __call__(self, image_rgb: np.ndarray, boxes: Sequence[PersonBox]) -> List[PoseResult]:
        """All person boxes of one image go through the model as one batch (per ``batch_size``)."""
        if len(boxes) == 0:
            return []
        boxes_xywh = np.array([b.bbox_xywh for b in boxes], dtype=np.float64)
        centers, scales = self.make_windows(boxes_xywh)
        keypoints = self.predict_windows(image_rgb, centers, scales)
        return [PoseResult(keypoints_img=kp, center_img=c, scale=s, box_score=float(b.score),
                           image_id=b.image_id, bbox_xywh=tuple(b.bbox_xywh), track_id=b.track_id)
                for kp, c, s, b in zip(keypoints, centers, scales, boxes)]


# ------------------------------------------------------------------------------------------------
# Building a predictor from weights (+ config)
# ------------------------------------------------------------------------------------------------
def config_for_zoo_model(name: str):
    """The config of a zoo model, built from its preset (works without the repo's ``configs/``)."""
    from pose.config import get_default_config
    from pose.zoo import get_model_info

    info = get_model_info(name)
    w, h = info.input_size
    cfg = get_default_config()
    cfg.MODEL.ARCH = info.arch
    cfg.MODEL.NUM_JOINTS = info.num_keypoints
    cfg.MODEL.IMAGE_SIZE = [w, h]
    cfg.MODEL.HEATMAP_SIZE = [w // 4, h // 4]
    cfg.MODEL.SIGMA = 3.0 if h >= 384 else 2.0  # the official recipes: sigma 3 at 384x288
    cfg.DATASET.DATASET = info.dataset
    cfg.DATASET.COLOR_RGB = True
    cfg.TEST.FLIP_TEST = cfg.TEST.POST_PROCESS = cfg.TEST.SHIFT_HEATMAP = True
    cfg.freeze()
    return cfg


def load_model(weights, cfg=None, *, overrides=(), offline: bool = False):
    """Model, config, codec and keypoint spec for ``weights``.

    Args:
        weights: a project checkpoint (self-describing), an official / mmpose state-dict file (needs
            ``cfg``, or a zoo name which brings its own), or a zoo name (downloaded and cached).
        cfg: the experiment config (dataset, test settings); for a project checkpoint, its model-bound
            values must agree with the checkpoint's.
        overrides: ``KEY VALUE`` pairs for inference settings (decoder, flip test...).

    Returns:
        ``(model, cfg, codec, spec)``; the model is on the CPU in eval mode with strictly loaded weights.
    """
    from pose.checkpoint import build_from_checkpoint, load_weights, read_checkpoint
    from pose.codec import build_codec
    from pose.config import config_from_yaml_text, config_to_yaml
    from pose.errors import ConfigError
    from pose.keypoints import get_keypoint_spec
    from pose.models import build_model
    from pose.zoo import ZOO, resolve_weights

    is_zoo_name = str(weights) in ZOO
    path = resolve_weights(weights, offline=offline)
    obj = read_checkpoint(path)
    if isinstance(obj, dict) and obj.get("format") == "pose-checkpoint":
        model, ckpt_cfg, codec, spec = build_from_checkpoint(path, overrides=list(overrides), checkpoint=obj)
        if cfg is None:
            return model, ckpt_cfg, codec, spec
        # A config given beside a self-describing checkpoint supplies the dataset and test settings;
        # the values the weights were trained with must agree.
        for key in ("NUM_JOINTS", "IMAGE_SIZE", "HEATMAP_SIZE"):
            mine, theirs = cfg.MODEL[key], ckpt_cfg.MODEL[key]
            if (list(mine) if isinstance(mine, (list, tuple)) else mine) != \
                    (list(theirs) if isinstance(theirs, (list, tuple)) else theirs):
                raise ConfigError(f"MODEL.{key}: the config says {mine} but checkpoint '{path}' was trained "
                                  f"with {theirs}; use a matching config or another checkpoint")
        if overrides:
            cfg = config_from_yaml_text(config_to_yaml(cfg), "config", list(overrides))
        return model, cfg, _codec_with_decoding_of(codec, build_codec(cfg)), spec
    if cfg is None:
        if not is_zoo_name:
            raise ConfigError(f"weights '{path}' are plain/official/mmpose weights without a config; "
                              "pass --cfg FILE (e.g. configs/coco_hrnet_w32_256x192.yaml)")
        cfg = config_for_zoo_model(str(weights))
    if overrides:
        cfg = config_from_yaml_text(config_to_yaml(cfg), "config", list(overrides))
    model = build_model(cfg.MODEL)
    load_weights(model, obj, strict=True, name=path)
    return model.eval(), cfg, build_codec(cfg), get_keypoint_spec(cfg.DATASET.DATASET)


def _codec_with_decoding_of(trained: HeatmapCodec, chosen: HeatmapCodec) -> HeatmapCodec:
    """The trained codec's geometry (sizes, sigma, encoding) with another codec's decoding choices."""
    params = trained.to_dict()
    for key, value in chosen.to_dict().items():
        if key not in ("input_size", "heatmap_size", "sigma", "encoding"):
            params[key] = value
    return HeatmapCodec.from_dict(params)


def load_predictor(weights, cfg=None, *, overrides=(), device="cpu", batch_size=None, flip_test=None,
                   offline: bool = False, backend=None):
    """A ready :class:`TopDownPredictor` and its config (see :func:`load_model` for the arguments).

    ``flip_test``, ``batch_size`` and ``backend`` default to ``TEST.FLIP_TEST``,
    ``TEST.BATCH_SIZE_PER_GPU`` and ``TEST.BACKEND`` (``torch`` = the plain module, bit-for-bit the
    official numerics; ``torch-fast`` = BatchNorm folded + channels_last; ``onnxruntime`` = exported
    once, cached next to the weights; ``auto`` = the fastest available; see :mod:`pose.backends`).
    """
    from pose.backends import build_backend
    from pose.zoo import resolve_weights

    model, cfg, codec, spec = load_model(weights, cfg, overrides=overrides, offline=offline)
    backend = backend or str(cfg.TEST.BACKEND)
    network = model if backend == "torch" else build_backend(
        model, backend, device=device, input_size=codec.input_size,
        weights_path=resolve_weights(weights, offline=True))
    predictor = TopDownPredictor(
        network, codec, spec, device=device,
        flip_test=bool(cfg.TEST.FLIP_TEST if flip_test is None else flip_test),
        batch_size=int(batch_size or cfg.TEST.BATCH_SIZE_PER_GPU))
    return predictor, cfg
