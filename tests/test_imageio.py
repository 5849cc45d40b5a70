"""pose.imageio.as_rgb_image: every image a user holds becomes RGB uint8 (H, W, 3), or a one-line error."""
import numpy as np
import pytest

from pose.errors import ConfigError, DataError
from pose.imageio import as_rgb_image, read_image_rgb
from tests.conftest import DATA

IMAGE = DATA / "coco" / "000000000785.jpg"


def test_rgb_array_is_copied_unchanged(rng):
    image = rng.integers(0, 256, (5, 4, 3), dtype=np.uint8)
    out = as_rgb_image(image)
    np.testing.assert_array_equal(out, image)
    assert out is not image and out.flags.c_contiguous


def test_bgr_array_is_reversed_and_the_input_left_alone(rng):
    image = rng.integers(0, 256, (5, 4, 3), dtype=np.uint8)
    before = image.copy()
    np.testing.assert_array_equal(as_rgb_image(image, "bgr"), image[:, :, ::-1])
    np.testing.assert_array_equal(as_rgb_image(image, "BGR"), image[:, :, ::-1])
    np.testing.assert_array_equal(image, before)


def test_grayscale_and_alpha(rng):
    gray = rng.integers(0, 256, (5, 4), dtype=np.uint8)
    for g in (gray, gray[:, :, None]):
        out = as_rgb_image(g)
        assert out.shape == (5, 4, 3) and all(np.array_equal(out[:, :, c], gray) for c in range(3))
    rgba = rng.integers(0, 256, (5, 4, 4), dtype=np.uint8)
    np.testing.assert_array_equal(as_rgb_image(rgba), rgba[:, :, :3])
    np.testing.assert_array_equal(as_rgb_image(rgba, "bgr"), rgba[:, :, 2::-1])


def test_paths_and_pil_images():
    from PIL import Image

    want = read_image_rgb(IMAGE)
    np.testing.assert_array_equal(as_rgb_image(IMAGE), want)
    np.testing.assert_array_equal(as_rgb_image(str(IMAGE), "bgr"), want)  # a file's order is its own
    with Image.open(IMAGE) as pil:
        out = as_rgb_image(pil)
    assert out.shape == want.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - want.astype(int)).mean() < 2.0  # PIL's and OpenCV's JPEG decoders
    np.testing.assert_array_equal(as_rgb_image(Image.fromarray(want).convert("L")).shape, want.shape)


@pytest.mark.parametrize("image,fragment", [
    (np.zeros((4, 4, 3), np.float64), "dtype float64; expected uint8"),
    (np.zeros((4, 4, 3), np.uint16), "dtype uint16; expected uint8"),
    (np.zeros((4, 4, 2), np.uint8), "shape (4, 4, 2)"),
    (np.zeros((4, 4, 5), np.uint8), "shape (4, 4, 5)"),
    (np.zeros((1, 4, 4, 3), np.uint8), "shape (1, 4, 4, 3)"),
    (np.zeros((0, 4, 3), np.uint8), "expected a non-empty"),
    (np.zeros(7, np.uint8), "shape (7,)"),
    ([[1, 2], [3, 4]], "got a list; expected a file path, a numpy array or a PIL.Image"),
])
def test_bad_arrays_raise_one_line_data_errors(image, fragment):
    with pytest.raises(DataError) as info:
        as_rgb_image(image, what="image 3")
    message = str(info.value)
    assert fragment in message and message.startswith("image 3: ") and "\n" not in message


def test_unknown_colour_order():
    with pytest.raises(ConfigError, match="color: got 'hsv'"):
        as_rgb_image(np.zeros((2, 2, 3), np.uint8), "hsv")
