"""TopDownPredictor: THE inference path (evaluation, training validation, demo, export checks).

image (RGB uint8) + person boxes
    -> centre/scale windows (:func:`pose.geometry.boxes_to_center_scale`)
    -> crops (:func:`pose.geometry.warp_crop`, the same matrices the dataset uses)
    -> batched forward (normalisation lives inside the model) [+ the horizontally flipped crops]
    -> flip-test average and decoding (:class:`pose.codec.HeatmapCodec`)
    -> keypoints in image pixels via the inverse of the crop matrix.

No other module crops, normalises or decodes. The network is reached through a *backend*: any
callable mapping a float32 (B, 3, H, W) batch of RGB crops in [0, 255] to (B, K, h, w) heatmaps
(:mod:`pose.backends`; a plain module is wrapped in :class:`pose.backends.TorchBackend`). Building a
predictor from weights is :func:`pose.loading.load_predictor`'s job.

Boxes or windows that cannot be cropped (NaN/inf, a 0 x 0 window, beyond ``pose.geometry.MAX_BOX_EXTENT``)
raise a one-line :class:`pose.errors.DataError` before any work. Which usable boxes to keep is the
caller's policy: the readers, the demo and the API drop every box with a
:func:`pose.geometry.box_problems` code (zero-size, outside the image, ...) and say how many.

Symbols: N persons, K keypoints, (H, W) model input, (h, w) heatmap.
"""
import logging
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch

from pose import geometry
from pose.backends import TorchBackend, crops_to_tensor
from pose.codec import HeatmapCodec
from pose.errors import DataError
from pose.keypoints import KeypointSpec
from pose.structures import PersonBox, PoseResult

logger = logging.getLogger(__name__)


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
    def check_windows(self, centers: np.ndarray, scales: np.ndarray, codec: Optional[HeatmapCodec] = None) -> None:
        """Raise DataError (counts per problem) if a window cannot be cropped or mapped back."""
        codec = codec or self.codec
        codes = geometry.window_problems(centers, scales, codec.input_size, unbiased=codec.unbiased)
        if codes.any():
            raise DataError(f"{int((codes != 0).sum())} of {len(codes)} person windows cannot be cropped "
                            f"({geometry.count_box_problems(codes)}); expected finite centres and scales > 0 "
                            "(drop such boxes first: pose.geometry.box_problems)")

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
            x = crops_to_tensor(crops[start:start + self.batch_size])  # (B, 3, H, W), RGB in [0, 255]
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
        self.check_windows(centers, scales, codec)
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
        self.check_windows(centers, scales)  # before the float32 cast: a huge window would overflow it
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
        try:
            boxes_xywh = np.array([b.bbox_xywh for b in boxes], dtype=np.float64).reshape(len(boxes), 4)
        except (TypeError, ValueError):
            raise DataError(f"person boxes: {[b.bbox_xywh for b in boxes][:3]}...; expected 4 numbers "
                            "[x, y, w, h] per box") from None
        # Refuse only what cannot be cropped: a non-finite or too large box, or one whose window is a point
        # (0 x 0). A 0-wide box of some height still has a window; whether to use it is the caller's
        # policy (readers, demo and API drop every box with a box_problems code and count them).
        codes = geometry.box_problems(boxes_xywh)
        codes = np.where(np.isin(codes, (1, 4)), codes, 0)
        if not codes.any():
            centers, scales = self.make_windows(boxes_xywh)
            codes = geometry.window_problems(centers, scales, self.input_size, unbiased=self.codec.unbiased)
        if codes.any():
            raise DataError(f"{int((codes != 0).sum())} of {len(codes)} person boxes cannot be cropped "
                            f"({geometry.count_box_problems(codes)}); expected finite [x, y, w, h] with w, h > 0 "
                            f"and coordinates within +-{geometry.MAX_BOX_EXTENT:.0f} px (drop such boxes first: "
                            "pose.geometry.box_problems)")
        keypoints = self.predict_windows(image_rgb, centers, scales)
        return [PoseResult(keypoints_img=kp, center_img=c, scale=s, box_score=float(b.score),
                           image_id=b.image_id, bbox_xywh=tuple(b.bbox_xywh), track_id=b.track_id)
                for kp, c, s, b in zip(keypoints, centers, scales, boxes)]
