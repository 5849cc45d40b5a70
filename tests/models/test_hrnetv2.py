"""HRNetV2 (every branch, concatenated) and HRNetV2p (pyramid): names, documented shapes, the maths of the
concatenation, and a torchvision FasterRCNN built on the V2p backbone running on a real image."""
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pose.errors import ConfigError
from pose.imageio import read_image_rgb
from pose.models import TRUNK_ARCHS, HRNetV2p, PoseHRNetV2, build_model_from_arch, upsample_concat
from pose.models.hrnet import trunk_kwargs


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def meta_model(name: str, head: str, num_keypoints: int = 17):
    with torch.device("meta"):
        return build_model_from_arch(name, num_keypoints, head=head).eval()


# Documented shapes (batch 1): (concatenation or 1x1 reduction, output) for input H x W.
V2_SHAPES = {
    ("hrnet_w18", (256, 192)): ((1, 270, 64, 48), (1, 17, 64, 48)),
    ("hrnet_w18", (800, 800)): ((1, 270, 200, 200), (1, 17, 200, 200)),
    ("hrnet_w32", (256, 192)): ((1, 480, 64, 48), (1, 17, 64, 48)),
    ("hrnet_w32", (800, 800)): ((1, 480, 200, 200), (1, 17, 200, 200)),
}
V2P_LEVELS = {
    (256, 192): [(64, 48), (32, 24), (16, 12), (8, 6), (4, 3)],
    (800, 800): [(200, 200), (100, 100), (50, 50), (25, 25), (12, 12)],  # avg-pool floors 12.5
}


@pytest.mark.parametrize("name,size", sorted(V2_SHAPES))
def test_v2_documented_shapes(name, size):
    model = meta_model(name, "v2")
    taps = model.extract_features(torch.zeros(1, 3, *size, device="meta"))
    concat, output = V2_SHAPES[(name, size)]
    assert tuple(taps["concat"].shape) == concat and tuple(taps["output"].shape) == output
    assert concat[1] == 15 * TRUNK_ARCHS[name].stages[0].num_channels[0]  # C + 2C + 4C + 8C


@pytest.mark.parametrize("name", ["hrnet_w18", "hrnet_w32"])
@pytest.mark.parametrize("size", sorted(V2P_LEVELS))
def test_v2p_documented_shapes_and_strides(name, size):
    model = meta_model(name, "v2p")
    features = model(torch.zeros(1, 3, *size, device="meta"))
    assert isinstance(features, OrderedDict) and list(features) == ["0", "1", "2", "3", "4"]
    assert [tuple(f.shape) for f in features.values()] == [(1, 256, h, w) for h, w in V2P_LEVELS[size]]
    assert model.out_channels == 256 and model.strides == (4, 8, 16, 32, 64)


def test_state_dict_names_of_the_heads():
    v2 = meta_model("hrnet_w18", "v2", num_keypoints=68)  # 300W landmarks
    head = [(n, tuple(t.shape)) for n, t in v2.state_dict().items() if n.startswith("head.")]
    assert [n for n, _ in head] == ["head.0.weight", "head.0.bias", "head.1.weight", "head.1.bias",
                                    "head.1.running_mean", "head.1.running_var", "head.1.num_batches_tracked",
                                    "head.3.weight", "head.3.bias"]
    assert dict(head)["head.0.weight"] == (270, 270, 1, 1) and dict(head)["head.3.weight"] == (68, 270, 1, 1)
    pyramid = meta_model("hrnet_w18", "v2p").state_dict()
    trunk_prefixes = ("conv", "bn", "layer", "transition", "stage")
    neck = [n for n in pyramid if not n.split(".")[0].startswith(trunk_prefixes)]
    assert neck == ["reduction_conv.0.weight", "reduction_conv.0.bias"] + [
        f"fpn_conv.{i}.{p}" for i in range(5) for p in ("weight", "bias")]
    # The trunk keeps every branch: the last stage-4 module fuses into all four (pose V1 fuses into one).
    assert len(v2.stage4[-1].fuse_layers) == 4
    trunk_names = [n for n in v2.state_dict() if not n.startswith("head.")]
    assert trunk_names == [n for n in meta_model("hrnet_w18", "classification").state_dict()
                           if n.split(".")[0] in {n.split(".")[0] for n in trunk_names}]


def test_upsample_concat_is_bilinear_to_the_top_branch(rng):
    branches = [torch.from_numpy(rng.standard_normal((1, c, 16 // 2 ** b, 24 // 2 ** b)).astype(np.float32))
                for b, c in enumerate((2, 4, 8, 16))]
    out = upsample_concat(branches)
    assert out.shape == (1, 30, 16, 24)
    torch.testing.assert_close(out[:, :2], branches[0], rtol=0, atol=0)
    expected = F.interpolate(branches[3], scale_factor=8, mode="bilinear", align_corners=False)
    torch.testing.assert_close(out[:, 14:], expected, rtol=0, atol=1e-6)
    # A 2x2 map upsampled by 2 (bilinear, half-pixel centres): the corner pixel equals the corner value,
    # the next one is 3/4 of it plus 1/4 of its neighbour.
    small = torch.tensor([[[[0.0, 4.0], [8.0, 12.0]]]])
    up = upsample_concat([torch.zeros(1, 1, 4, 4), small])[0, 1]
    assert up[0, 0].item() == 0.0 and up[0, 1].item() == pytest.approx(1.0)


def test_v2_pixel_forward_matches_normalized_forward_and_head_is_conv_bn_relu(rng):
    torch.manual_seed(0)
    model = build_model_from_arch("hrnet_tiny", 5, head="v2").eval()
    images = torch.from_numpy(rng.uniform(0, 255, (2, 3, 64, 96)).astype(np.float32))
    with torch.inference_mode():
        heatmaps = model(images)
        taps = model.extract_features((images - model.pixel_mean) / model.pixel_std)
        manual = model.head[3](torch.relu(model.head[1](model.head[0](taps["concat"]))))
    assert heatmaps.shape == (2, 5, 16, 24)
    torch.testing.assert_close(taps["output"], heatmaps, atol=1e-5, rtol=0)
    torch.testing.assert_close(manual, heatmaps, atol=1e-5, rtol=0)
    assert isinstance(model.head, torch.nn.Sequential) and isinstance(model.head[1], torch.nn.BatchNorm2d)


def test_v2p_options_and_errors():
    stages = TRUNK_ARCHS["hrnet_tiny"].stages
    kwargs = trunk_kwargs(TRUNK_ARCHS["hrnet_tiny"])
    with torch.device("meta"):
        four = HRNetV2p(stages, num_levels=4, out_channels=64, level_conv_kernel=1, **kwargs)
    features = four(torch.zeros(1, 3, 64, 64, device="meta"))
    assert [tuple(f.shape) for f in features.values()] == [(1, 64, 16, 16), (1, 64, 8, 8), (1, 64, 4, 4),
                                                          (1, 64, 2, 2)]
    assert four.fpn_conv[0].kernel_size == (1, 1)
    for bad, message in [({"num_levels": 6}, "pyramid levels"), ({"level_conv_kernel": 5}, "kernel")]:
        with pytest.raises(ConfigError, match=message):
            HRNetV2p(stages, **bad, **kwargs)
    with pytest.raises(ConfigError, match="FINAL_CONV_KERNEL must be 1 or 3"):
        PoseHRNetV2(17, stages, final_conv_kernel=5, **kwargs)


def _run_faster_rcnn(name: str, num_classes: int, **detector_options):
    from torchvision.models.detection import FasterRCNN

    torch.manual_seed(0)
    backbone = build_model_from_arch(name, head="v2p")
    detector = FasterRCNN(backbone, num_classes=num_classes, box_score_thresh=0.0, **detector_options).eval()
    image = read_image_rgb("tests/data/coco/000000196141.jpg")  # (429, 640, 3)
    seen = {}

    def record(module, inputs, output):
        seen["input"] = tuple(inputs[0].shape)
        seen["levels"] = {k: tuple(v.shape) for k, v in output.items()}

    handle = backbone.register_forward_hook(record)
    with torch.inference_mode():
        detections = detector([torch.from_numpy(image).permute(2, 0, 1).float() / 255])
    handle.remove()
    return image, seen, detections[0], detector


def _check_detector_output(image, seen, result, num_classes):
    n, _, h, w = seen["input"]
    assert n == 1 and h % 32 == 0 and w % 32 == 0  # GeneralizedRCNNTransform pads to the size divisor
    assert list(seen["levels"]) == ["0", "1", "2", "3", "4"]
    for level, (key, shape) in enumerate(seen["levels"].items()):
        stride = 4 * 2 ** level
        assert shape == (1, 256, h // stride, w // stride), key
    boxes = result["boxes"]
    assert boxes.ndim == 2 and boxes.shape[1] == 4 and len(boxes) == len(result["scores"]) > 0
    assert boxes[:, 0].min() >= 0 and boxes[:, 2].max() <= image.shape[1]  # back in image pixels
    assert boxes[:, 1].min() >= 0 and boxes[:, 3].max() <= image.shape[0]
    assert result["labels"].min() >= 1 and result["labels"].max() < num_classes


def test_faster_rcnn_on_v2p_backbone_runs_on_a_real_image():
    image, seen, result, _ = _run_faster_rcnn("hrnet_w18_small_v1", 91, min_size=320, max_size=512)
    assert seen["input"] == (1, 3, 320, 480)  # 429x640 resized to 320x477, padded to 480
    _check_detector_output(image, seen, result, 91)


@pytest.mark.slow
def test_faster_rcnn_w18_v2p_at_the_default_800_size():
    image, seen, result, detector = _run_faster_rcnn("hrnet_w18", 2)
    assert seen["input"] == (1, 3, 800, 1216)  # min_size 800: 429x640 -> 800x1193, padded to 1216
    _check_detector_output(image, seen, result, 2)
