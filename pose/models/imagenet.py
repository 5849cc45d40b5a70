"""Classifying one image with an HRNet classifier: the official ImageNet eval preprocessing and top-k.

The official validation transform (``tools/valid.py`` of HRNet/HRNet-Image-Classification) is torchvision's
``Resize(int(224 / 0.875))`` = ``Resize(256)`` (shorter side to 256, bilinear with PIL's antialiasing)
+ ``CenterCrop(224)`` + ``ToTensor()`` + ``Normalize(ImageNet mean, std)`` on a PIL image. Here the crop
is made with those same torchvision classes on a PIL image, so it equals the official one bit for bit
(``shared/reference`` golden ``input_crop_uint8``); the normalisation happens inside the model
(``normalize_crops``, within 5e-7 of ToTensor + Normalize).

Without Pillow (and so without torchvision, which requires it) the crop falls back to plain torch:
``interpolate(mode='bilinear', antialias=True)`` with torchvision's size and centre-crop rules. It follows
PIL's filter but rounds differently: on the two golden images at most 1 grey level per pixel (mean 0.15),
logits within 0.034, the same top-1 and the same five top-5 classes, two close ones swapping places
(``tests/models/test_imagenet_classify.py``). ImageNet class names are then None (they come from
torchvision).

Images are (H, W, 3) RGB uint8, the project's image contract (``pose.imageio.read_image_rgb``). The
official pipeline decodes JPEGs with PIL; on the golden images OpenCV's decode is identical, but other
files may differ by a grey level.
"""
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import torch
from torch import nn

from pose.errors import DataError
from pose.models.presets import IMAGENET_NUM_CLASSES

EVAL_RESIZE = 256  # int(224 / 0.875): the shorter side before the centre crop
EVAL_CROP = 224


def _check_image(image_rgb: np.ndarray) -> np.ndarray:
    image = np.asarray(image_rgb)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
        raise DataError(f"expected an (H, W, 3) uint8 RGB image, got {image.dtype} {image.shape}")
    return image


def _pil_eval_crop(image: np.ndarray, resize: int, crop: int) -> np.ndarray:
    from PIL import Image
    from torchvision import transforms

    pil = Image.fromarray(image)  # (H, W, 3) uint8 -> mode RGB
    cropped = transforms.CenterCrop(crop)(transforms.Resize(resize)(pil))
    return np.asarray(cropped, dtype=np.uint8).copy()


def resized_size(height: int, width: int, shorter_side: int) -> Tuple[int, int]:
    """(H, W) after torchvision's ``Resize(int)``: the shorter side becomes ``shorter_side``, the longer
    one ``int(shorter_side * long / short)`` (truncated)."""
    if height <= width:
        return shorter_side, int(shorter_side * width / height)
    return int(shorter_side * height / width), shorter_side


def _tensor_eval_crop(image: np.ndarray, resize: int, crop: int) -> np.ndarray:
    """Pillow-free approximation in plain torch (torchvision needs Pillow): bilinear with antialias,
    torchvision's output-size and centre-crop rules, rounded back to uint8."""
    height, width = resized_size(image.shape[0], image.shape[1], resize)
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()  # (1, 3, H, W)
    resized = torch.nn.functional.interpolate(tensor, size=(height, width), mode="bilinear",
                                              align_corners=False, antialias=True)
    top, left = int(round((height - crop) / 2.0)), int(round((width - crop) / 2.0))  # as CenterCrop
    cropped = resized[0, :, top:top + crop, left:left + crop].round().clamp(0, 255).to(torch.uint8)
    return cropped.permute(1, 2, 0).contiguous().numpy()


def imagenet_eval_crop(image_rgb: np.ndarray, *, resize: int = EVAL_RESIZE, crop: int = EVAL_CROP,
                       use_pil: Optional[bool] = None) -> np.ndarray:
    """The official eval crop: shorter side to ``resize``, centre ``crop`` x ``crop``.

    Args:
        image_rgb: (H, W, 3) uint8 RGB.
        resize, crop: 256 and 224 officially.
        use_pil: None = PIL when Pillow is importable, else the tensor fallback; True/False forces one.

    Returns:
        (crop, crop, 3) uint8 RGB, the image before ``ToTensor``.
    """
    image = _check_image(image_rgb)
    if use_pil is None:
        try:
            import PIL  # noqa: F401
            use_pil = True
        except ImportError:
            use_pil = False
    return _pil_eval_crop(image, resize, crop) if use_pil else _tensor_eval_crop(image, resize, crop)


def imagenet_categories() -> Optional[Tuple[str, ...]]:
    """The 1000 ImageNet-1k class names in index order, or None.

    Taken from torchvision's weights metadata (shipped with the package, no download); None when
    torchvision is missing or no longer carries them.
    """
    try:
        from torchvision.models import ResNet50_Weights

        names = tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
    except (ImportError, AttributeError, KeyError):
        return None
    return names if len(names) == IMAGENET_NUM_CLASSES else None


@dataclass(frozen=True)
class TopKClasses:
    """The top-k classes of one image, best first.

    Attributes:
        indices: class indices (ImageNet-1k order for a 1000-way classifier).
        probabilities: softmax probabilities over all classes.
        names: ImageNet class names when the classifier has 1000 outputs and torchvision ships the
            names, else None.
    """

    indices: Tuple[int, ...]
    probabilities: Tuple[float, ...]
    names: Optional[Tuple[str, ...]]


def classify(image_rgb: np.ndarray, model: nn.Module, topk: int = 5) -> TopKClasses:
    """Classify one image end to end: official eval crop -> ``model`` (RGB [0, 255] in) -> top-k.

    Args:
        image_rgb: (H, W, 3) uint8 RGB, any size.
        model: a classifier whose ``forward`` takes (B, 3, H, W) RGB in [0, 255] and returns (B, N)
            logits, e.g. ``ClsHRNet``. It is run in eval mode under ``torch.inference_mode`` and put
            back in its previous mode.
        topk: number of classes returned (at most N).
    """
    crop = imagenet_eval_crop(image_rgb)
    param = next(model.parameters())
    batch = torch.from_numpy(crop).permute(2, 0, 1).unsqueeze(0).to(device=param.device, dtype=param.dtype)
    was_training = model.training
    try:
        model.eval()
        with torch.inference_mode():
            logits = model(batch)[0].float()  # (N,)
    finally:
        model.train(was_training)
    k = min(int(topk), logits.numel())
    probabilities, indices = torch.topk(torch.softmax(logits, dim=0), k)
    index_list = tuple(int(i) for i in indices)
    categories = imagenet_categories() if logits.numel() == IMAGENET_NUM_CLASSES else None
    names = tuple(categories[i] for i in index_list) if categories is not None else None
    return TopKClasses(indices=index_list, probabilities=tuple(float(p) for p in probabilities), names=names)
