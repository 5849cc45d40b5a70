"""classify(): the official ImageNet eval crop reproduced from the real images, and end-to-end top-k."""
import builtins

import numpy as np
import pytest
import torch

from pose.errors import DataError
from pose.imageio import read_image_rgb
from pose.models import build_model_from_arch, classify, imagenet_categories, imagenet_eval_crop
from tests.conftest import DATA, reference_path

GOLDEN = "golden_cls_hrnet_w18_small_v1_seed0.npz"


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def golden_w18_small():
    data = dict(np.load(reference_path(GOLDEN), allow_pickle=False))
    torch.manual_seed(0)
    model = build_model_from_arch("hrnet_w18_small_v1", head="classification")
    model.load_state_dict({k: torch.from_numpy(data[f"state_dict/{k}"]) for k in data["state_dict_keys"]},
                          strict=True)
    return model.eval(), data


def _images(data):
    return [read_image_rgb(DATA / "coco" / str(name)) for name in data["image_files"]]


def test_eval_crop_reproduces_the_official_crop_and_input(golden_w18_small):
    _, data = golden_w18_small
    mean, std = np.float32([0.485, 0.456, 0.406]), np.float32([0.229, 0.224, 0.225])
    for i, image in enumerate(_images(data)):
        crop = imagenet_eval_crop(image, use_pil=True)
        assert crop.shape == (224, 224, 3) and crop.dtype == np.uint8
        np.testing.assert_array_equal(crop, data["input_crop_uint8"][i])
        official_input = ((crop / np.float32(255) - mean) / std).transpose(2, 0, 1)  # ToTensor + Normalize
        np.testing.assert_allclose(official_input, data["input"][i], atol=1e-6, rtol=0)


def test_without_pillow_the_tensor_fallback_is_within_one_grey_level(golden_w18_small, monkeypatch):
    """Pillow missing (and so torchvision, which requires it): plain-torch crop, indices without names."""
    model, data = golden_w18_small
    real_import = builtins.__import__

    def no_pillow(name, *args, **kwargs):
        if name.split(".")[0] in ("PIL", "torchvision"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pillow)
    for i, image in enumerate(_images(data)):
        crop = imagenet_eval_crop(image)
        diff = np.abs(crop.astype(int) - data["input_crop_uint8"][i])
        assert 0 < diff.max() <= 1 and diff.mean() < 0.25  # measured: max 1, mean 0.15 / 0.16
        with torch.inference_mode():
            logits = model(torch.from_numpy(crop).permute(2, 0, 1)[None])[0].numpy()
        assert np.abs(logits - data["logits"][i]).max() < 0.05  # measured 0.034 / 0.023 (max |logit| 1.09)
        result = classify(image, model)
        assert result.names is None and len(result.indices) == 5
        # Measured: the same top-1 and the same five classes; close ones (1e-3 apart) may swap places.
        assert result.indices[0] == int(data["top5"][i][0])
        assert set(result.indices) == {int(v) for v in data["top5"][i]}


def test_classify_a_real_image_end_to_end(golden_w18_small):
    model, data = golden_w18_small
    model.train()
    for i, image in enumerate(_images(data)):
        result = classify(image, model, topk=5)
        assert result.indices == tuple(int(v) for v in data["top5"][i])
        probabilities = torch.softmax(torch.from_numpy(data["logits"][i]), 0)
        expected = probabilities[list(result.indices)].numpy()
        np.testing.assert_allclose(result.probabilities, expected, atol=1e-5)
        assert list(result.probabilities) == sorted(result.probabilities, reverse=True)
        categories = imagenet_categories()
        if categories is not None:
            assert result.names == tuple(categories[k] for k in result.indices)
    assert model.training  # put back in its mode


def test_imagenet_names_come_from_torchvision_when_shipped():
    names = imagenet_categories()
    if names is None:
        pytest.skip("this torchvision ships no ImageNet category names")
    assert len(names) == 1000 and names[0] == "tench" and names[1] == "goldfish"


def test_classify_small_heads_and_bad_images():
    torch.manual_seed(0)
    model = build_model_from_arch("hrnet_tiny", head="classification", num_classes=3)
    image = np.zeros((50, 70, 3), np.uint8)
    result = classify(image, model, topk=5)
    assert len(result.indices) == 3 and result.names is None  # not a 1000-way ImageNet classifier
    with pytest.raises(DataError, match=r"\(H, W, 3\) uint8"):
        classify(np.zeros((50, 70), np.uint8), model)
    with pytest.raises(DataError, match="uint8"):
        classify(np.zeros((50, 70, 3), np.float32), model)
