"""Reading images into the model input contract: RGB, uint8, (H, W, 3).

The official pipeline reads with ``cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION`` (BGR) and
converts to RGB before the crop (``DATASET.COLOR_RGB: true``). Everything that loads an image or a
video frame goes through here, so colour order cannot drift between evaluation, training and demo.
"""
import os
from pathlib import Path

import cv2
import numpy as np

from pose.errors import DataError

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
