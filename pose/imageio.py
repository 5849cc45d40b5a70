"""Reading images (files, arrays, PIL images) into the model input contract: RGB, uint8, (H, W, 3).

The official pipeline reads with ``cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION`` (BGR) and
converts to RGB before the crop (``DATASET.COLOR_RGB: true``). Everything that loads an image or a
video frame goes through here, so colour order cannot drift between evaluation, training and demo.
"""
import os
from pathlib import Path

import cv2
import numpy as np

from pose.errors import ConfigError, DataError

IMREAD_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION


def bgr_to_rgb(image_bgr: np.ndarray) -> np.ndarray:
    """(H, W, 3) BGR uint8 -> RGB uint8 (a new array)."""
    return cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)


def read_image_rgb(path: os.PathLike) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3).

    Raises:
        DataError: the file is missing, empty, truncated or not an image.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image '{path}' does not exist")
    data = np.fromfile(str(path), dtype=np.uint8)
    if data.size == 0:
        raise DataError(f"image '{path}' is empty (0 bytes)")
    image = cv2.imdecode(data, IMREAD_FLAGS)
    if image is None:
        raise DataError(f"image '{path}' cannot be decoded; expected a JPEG/PNG/BMP/... file")
    return bgr_to_rgb(image)


#: Channel orders an in-memory image may be given in (:func:`as_rgb_image`).
COLOR_ORDERS = ("rgb", "bgr")


def check_color_order(color: str) -> str:
    """``color`` lower-cased if it is one of :data:`COLOR_ORDERS`; else ConfigError naming the choices."""
    order = str(color).lower()
    if order not in COLOR_ORDERS:
        raise ConfigError(f"color: got {color!r}, expected 'rgb' (numpy/PIL images) or 'bgr' (OpenCV frames)")
    return order


def as_rgb_image(image, color: str = "rgb", *, what: str = "image") -> np.ndarray:
    """Any image a user holds -> RGB uint8 (H, W, 3), the model input contract.

    Args:
        image: a file path (read with :func:`read_image_rgb`; ``color`` is ignored), a ``PIL.Image``
            (converted to RGB), or a numpy array: (H, W) or (H, W, 1) grayscale, (H, W, 3) in
            ``color`` order, or (H, W, 4) with alpha (dropped), dtype uint8.
        color: channel order of a 3/4-channel array: ``"rgb"`` or ``"bgr"`` (OpenCV frames).
        what: how messages name the image (``"image 2"``).

    Returns:
        A new C-contiguous (H, W, 3) uint8 RGB array (the input is never modified).

    Raises:
        DataError: an empty array, another dtype (a float image must be scaled to 0-255 and cast to
            uint8 by the caller: its range is ambiguous), or another shape; a missing/undecodable file.
    """
    order = check_color_order(color)
    if isinstance(image, (str, os.PathLike)):
        return read_image_rgb(image)
    if type(image).__module__.startswith("PIL.") and hasattr(image, "convert"):
        return np.array(image.convert("RGB"), dtype=np.uint8)
    if not isinstance(image, np.ndarray):
        raise DataError(f"{what}: got a {type(image).__name__}; expected a file path, a numpy array or a "
                        "PIL.Image")
    if image.dtype != np.uint8:
        raise DataError(f"{what}: dtype {image.dtype}; expected uint8 pixels 0-255 (convert a float image "
                        "with (img * 255).round().astype(np.uint8) if it is in [0, 1])")
    if image.size == 0 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise DataError(f"{what}: shape {tuple(image.shape)}; expected a non-empty (H, W), (H, W, 1), "
                        "(H, W, 3) or (H, W, 4) uint8 array")
    if image.ndim == 2 or image.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=2))
    if image.shape[2] == 4:
        image = image[:, :, :3]
    return np.array(image[:, :, ::-1] if order == "bgr" else image, dtype=np.uint8, order="C", copy=True)
