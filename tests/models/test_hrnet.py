"""pose.models: official state-dict layout, parity with the official forward (golden), size and cost,
the forward contract (one tensor, normalisation inside), config building and its errors."""
import json
import warnings
from dataclasses import FrozenInstanceError

import numpy as np
import pytest
import torch
from yacs.config import CfgNode

from pose.errors import ConfigError
from pose.models import (
    HRNET_ARCHS,
    PoseHRNet,
    StageSpec,
    build_model,
    build_model_from_arch,
    check_input_size,
    count_macs,
    count_parameters,
    macs_by_module,
    model_summary,
    normalize_crops,
)
from pose.models.hrnet import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB
from tests.conftest import REPO, reference_path

OFFICIAL_W32_MODEL_YAML = """
NAME: pose_hrnet
NUM_JOINTS: 17
INIT_WEIGHTS: true
PRETRAINED: models/pytorch/imagenet/hrnet_w32-36af842e.pth
TARGET_TYPE: gaussian
IMAGE_SIZE: [192, 256]
HEATMAP_SIZE: [48, 64]
SIGMA: 2
EXTRA:
  PRETRAINED_LAYERS: [conv1, bn1, conv2, bn2, layer1, transition1, stage2, transition2, stage3,
                      transition3, stage4]
  FINAL_CONV_KERNEL: 1
  STAGE2: {NUM_MODULES: 1, NUM_BRANCHES: 2, BLOCK: BASIC, NUM_BLOCKS: [4, 4], NUM_CHANNELS: [32, 64],
           FUSE_METHOD: SUM}
  STAGE3: {NUM_MODULES: 4, NUM_BRANCHES: 3, BLOCK: BASIC, NUM_BLOCKS: [4, 4, 4],
           NUM_CHANNELS: [32, 64, 128], FUSE_METHOD: SUM}
  STAGE4: {NUM_MODULES: 3, NUM_BRANCHES: 4, BLOCK: BASIC, NUM_BLOCKS: [4, 4, 4, 4],
           NUM_CHANNELS: [32, 64, 128, 256], FUSE_METHOD: SUM}
"""


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def official_model_cfg(**changes) -> CfgNode:
    cfg = CfgNode.load_cfg(OFFICIAL_W32_MODEL_YAML)
    cfg.ARCH = ""
    for key, value in changes.items():
        node = cfg
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return cfg


def meta_model(name: str, num_keypoints: int = 17) -> PoseHRNet:
    """Build on the meta device: shapes and MAC counts without allocating weights."""
    with torch.device("meta"):
        return build_model_from_arch(name, num_keypoints)


def names_and_shapes(model: torch.nn.Module):
    return [[name, list(t.shape)] for name, t in model.state_dict().items()]


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return build_model_from_arch("hrnet_tiny", 17)


# ---- state dict layout ---------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["hrnet_w32", "hrnet_w48"])
def test_state_dict_names_shapes_and_order_equal_official(arch):
    expected = json.loads(reference_path(f"{arch}_state_dict_keys.json").read_text())
    assert len(expected) == 1754
    assert names_and_shapes(meta_model(arch)) == expected


def test_official_yaml_model_section_builds_official_layout():
    expected = json.loads(reference_path("hrnet_w32_state_dict_keys.json").read_text())
    with torch.device("meta"):
        model = build_model(official_model_cfg())
    assert names_and_shapes(model) == expected
    assert "pixel_mean" not in model.state_dict() and model.pixel_mean.shape == (1, 3, 1, 1)
    last = model.stage4[-1]
    assert not last.multi_scale_output and len(last.fuse_layers) == 1
    others = list(model.stage2) + list(model.stage3) + list(model.stage4)[:-1]
    assert all(m.multi_scale_output for m in others)


def test_mpii_layout_differs_only_in_final_layer():
    w32, mpii = names_and_shapes(meta_model("hrnet_w32")), names_and_shapes(meta_model("hrnet_w32", 16))
    assert [n for n, _ in w32] == [n for n, _ in mpii]
    diff = [(a, b) for a, b in zip(w32, mpii) if a != b]
    assert diff == [(["final_layer.weight", [17, 32, 1, 1]], ["final_layer.weight", [16, 32, 1, 1]]),
                    (["final_layer.bias", [17]], ["final_layer.bias", [16]])]


# ---- size and cost (official-hrnet.md section 1.10) ----------------------------------------------

@pytest.mark.parametrize("arch,joints,expected", [
    ("hrnet_w32", 17, 28_536_113), ("hrnet_w48", 17, 63_595_745), ("hrnet_w32", 16, 28_536_080)])
def test_parameter_counts(arch, joints, expected):
    assert count_parameters(meta_model(arch, joints)) == expected


def test_macs_w32_256x192_total_and_per_module():
    model = meta_model("hrnet_w32")
    per_module = macs_by_module(model, (192, 256))
    total = sum(per_module.values())
    assert total == 7_645_003_776
    assert total == pytest.approx(7.645e9, rel=5e-4)
    published_1e6 = {"conv1": 21.2, "conv2": 113.2, "layer1": 868.2, "transition1": 339.7, "stage2": 468.7,
                     "transition2": 14.2, "stage3": 2903.5, "transition3": 14.2, "stage4": 2900.4,
                     "final_layer": 1.7}
    assert {k: round(v / 1e6, 1) for k, v in per_module.items() if v} == published_1e6


@pytest.mark.parametrize("arch,joints,input_size,expected_1e9", [
    ("hrnet_w32", 17, (288, 384), 17.201), ("hrnet_w48", 17, (192, 256), 15.692),
    ("hrnet_w48", 17, (288, 384), 35.307), ("hrnet_w32", 16, (256, 256), 10.193)])
def test_macs_other_models(arch, joints, input_size, expected_1e9):
    assert round(count_macs(meta_model(arch, joints), input_size) / 1e9, 3) == expected_1e9


def test_counting_on_real_weights_matches_meta_and_leaves_model_untouched(tiny):
    tiny.train()
    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    macs = count_macs(tiny, (64, 96))
    assert macs == count_macs(meta_model("hrnet_tiny"), (64, 96)) > 0
    assert count_macs(tiny, (64, 96), batch=3) == 3 * macs
    assert tiny.training
    assert all(torch.equal(before[k], v) for k, v in tiny.state_dict().items())


def test_model_summary_lists_modules_and_totals():
    text = model_summary(meta_model("hrnet_w32"), (192, 256))
    rows = {line.split()[0]: line.split() for line in text.splitlines()[2:-1]}
    assert rows["stage3"][1:3] == ["6,821,632", "2903.5"]
    assert rows["total"][1:3] == ["28,536,113", "7645.0"]
    assert "7.645 GMACs = 7.120" in text


# ---- parity with the official forward ------------------------------------------------------------

@pytest.fixture(scope="module")
def golden_w32():
    data = dict(np.load(reference_path("golden_w32_seed0.npz"), allow_pickle=False))
    model = build_model_from_arch("hrnet_w32", 17)
    state = {name: torch.from_numpy(np.asarray(data[f"state_dict/{name}"]))
             for name in data["state_dict_keys"]}
    model.load_state_dict(state, strict=True)
    return model.eval(), data


def test_golden_parity_output_features_and_flipped_input(golden_w32):
    model, data = golden_w32
    x = torch.from_numpy(data["input"])  # (2, 3, 256, 192), normalised
    with torch.inference_mode():
        feats = model.extract_features(torch.cat([x, x.flip(3)]))  # one batch of 4 = input + flipped
        direct = model.forward_normalized(x)
    feat_keys = sorted(k for k in data if k.startswith("feat/"))
    assert len(feat_keys) == 8
    for key in feat_keys:
        ours = feats[key[len("feat/"):]][:2].numpy()
        np.testing.assert_allclose(ours, data[key], atol=1e-3, rtol=0, err_msg=key)
    np.testing.assert_allclose(feats["output"][:2].numpy(), data["output"], atol=1e-3, rtol=0)
    np.testing.assert_allclose(feats["output"][2:].numpy(), data["output_flipped_input_raw"],
                               atol=1e-3, rtol=0)
    np.testing.assert_allclose(direct.numpy(), data["output"], atol=1e-3, rtol=0)
    assert direct.shape == (2, 17, 64, 48)


def test_golden_parity_through_pixel_forward(golden_w32):
    """forward() on [0, 255] crops (the golden input un-normalised) gives the official output."""
    model, data = golden_w32
    mean = torch.tensor([255 * m for m in IMAGENET_MEAN_RGB], dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor([255 * s for s in IMAGENET_STD_RGB], dtype=torch.float64).view(1, 3, 1, 1)
    images = (torch.from_numpy(data["input"]).double() * std + mean).float()
    with torch.inference_mode():
        heatmaps = model(images)
    np.testing.assert_allclose(heatmaps.numpy(), data["output"], atol=1e-3, rtol=0)


def test_normalize_crops_matches_official_totensor_normalize(golden):
    data = golden("golden_transforms_seed0.npz")
    crops = torch.from_numpy(data["crop_rgb"]).permute(0, 3, 1, 2)  # (3, 3, 256, 192) uint8
    expected = data["crop_normalized"]
    ours = normalize_crops(crops.float())
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(normalize_crops(crops).numpy(), expected, atol=1e-5, rtol=0)  # uint8 input
    mean = torch.tensor(IMAGENET_MEAN_RGB).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD_RGB).view(1, 3, 1, 1)
    official_order = (crops.float() / 255 - mean) / std
    np.testing.assert_allclose(official_order.numpy(), expected, atol=1e-5, rtol=0)
    model = build_model_from_arch("hrnet_tiny")
    np.testing.assert_allclose(normalize_crops(crops.float(), model.pixel_mean, model.pixel_std).numpy(),
                               expected, atol=1e-5, rtol=0)


# ---- forward contract ----------------------------------------------------------------------------

@pytest.mark.parametrize("train", [True, False])
def test_forward_returns_one_heatmap_tensor_in_train_and_eval(tiny, train, rng):
    tiny.train(train)
    images = torch.from_numpy(rng.uniform(0, 255, (2, 3, 96, 64)).astype(np.float32))
    out = tiny(images)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 17, 24, 16)
    assert torch.isfinite(out).all()


def test_tiny_preset_is_small_and_accepts_uint8(tiny, rng):
    assert count_parameters(tiny) < 2_000_000
    assert [s.num_channels[-1] for s in HRNET_ARCHS["hrnet_tiny"].stages] == [32, 64, 128]
    images = rng.integers(0, 256, (3, 3, 64, 64), dtype=np.uint8)
    tiny.eval()
    with torch.inference_mode():
        from_uint8 = tiny(torch.from_numpy(images))
        from_float = tiny(torch.from_numpy(images).float())
    assert from_uint8.shape == (3, 17, 16, 16)
    torch.testing.assert_close(from_uint8, from_float, rtol=0, atol=0)


def test_forward_features_is_the_head_input(tiny, rng):
    tiny.eval()
    x = torch.from_numpy(rng.standard_normal((1, 3, 64, 64)).astype(np.float32))
    with torch.inference_mode():
        feats = tiny.forward_features(x)
        taps = tiny.extract_features(x)
        torch.testing.assert_close(tiny.final_layer(feats[0]), tiny.forward_normalized(x))
    assert len(feats) == 1 and feats[0].shape == (1, 16, 16, 16)
    assert sorted(taps) == sorted(["stem_out", "layer1_out", "stage2_out0", "stage2_out1", "stage3_out0",
                                   "stage3_out1", "stage3_out2", "stage4_out0", "output"])
    assert taps["stage3_out2"].shape == (1, 64, 4, 4)


def test_jit_trace_of_tiny_model(tiny, rng):
    tiny.eval()
    example = torch.from_numpy(rng.uniform(0, 255, (1, 3, 64, 64)).astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*deprecated.*")
        warnings.simplefilter("error", torch.jit.TracerWarning)
        traced = torch.jit.trace(tiny, example)
    other = torch.from_numpy(rng.uniform(0, 255, (2, 3, 64, 64)).astype(np.float32))
    with torch.inference_mode():
        torch.testing.assert_close(traced(other), tiny(other))


def test_final_conv_kernel_3(rng):
    cfg = official_model_cfg(**{"EXTRA.FINAL_CONV_KERNEL": 3, "ARCH": "", "NUM_JOINTS": 5})
    cfg.EXTRA.STAGE2.NUM_CHANNELS = [8, 16]
    cfg.EXTRA.STAGE3.NUM_CHANNELS = [8, 16, 32]
    cfg.EXTRA.STAGE4.NUM_CHANNELS = [8, 16, 32, 64]
    for k in (2, 3, 4):
        cfg.EXTRA[f"STAGE{k}"].NUM_MODULES = 1
    model = build_model(cfg).eval()
    assert model.final_layer.weight.shape == (5, 8, 3, 3) and model.final_layer.padding == (1, 1)
    with torch.inference_mode():
        assert model(torch.zeros(1, 3, 64, 32)).shape == (1, 5, 16, 8)


def test_init_weights_is_the_official_training_init(tiny):
    tiny.init_weights()
    conv = torch.cat([m.weight.flatten() for m in tiny.modules() if isinstance(m, torch.nn.Conv2d)])
    assert abs(conv.std().item() - 0.001) < 1e-4
    assert torch.equal(tiny.final_layer.bias, torch.zeros(17))
    bns = [m for m in tiny.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(torch.equal(m.weight, torch.ones_like(m.weight)) and not m.bias.any() for m in bns)
    assert all(m.momentum == 0.1 and m.eps == 1e-5 for m in bns)


# ---- input size --------------------------------------------------------------------------------

def test_input_size_must_be_multiple_of_32(tiny):
    check_input_size((192, 256))
    with pytest.raises(ConfigError, match=r"\(190, 256\).*multiples of 32"):
        check_input_size((190, 256))
    with pytest.raises(ConfigError, match=r"\(48, 64\)"):
        tiny(torch.zeros(1, 3, 64, 48))
    with pytest.raises(ConfigError, match="MODEL.IMAGE_SIZE"), torch.device("meta"):
        build_model(official_model_cfg(IMAGE_SIZE=[200, 256]))


# ---- building from config ----------------------------------------------------------------------

def test_arch_preset_alone_and_with_agreeing_extra():
    preset_cfg = CfgNode({"NAME": "pose_hrnet", "NUM_JOINTS": 17, "ARCH": "hrnet_w32", "EXTRA": CfgNode()})
    with torch.device("meta"):
        from_preset = build_model(preset_cfg)
        both = build_model(official_model_cfg(ARCH="hrnet_w32"))
        tiny = build_model(CfgNode({"NAME": "pose_hrnet", "NUM_JOINTS": 17, "ARCH": "hrnet_tiny",
                                    "EXTRA": CfgNode({"FINAL_CONV_KERNEL": 1})}))
    expected = names_and_shapes(meta_model("hrnet_w32"))
    assert names_and_shapes(from_preset) == names_and_shapes(both) == expected
    assert names_and_shapes(tiny) == names_and_shapes(meta_model("hrnet_tiny"))


def test_plain_tuples_and_dataclasses_build_the_same_model():
    spec = HRNET_ARCHS["hrnet_w32"].stages
    plain = [(s.num_modules, s.num_branches, s.block, list(s.num_blocks), list(s.num_channels)) for s in spec]
    with torch.device("meta"):
        a, b = PoseHRNet(17, spec), PoseHRNet(17, plain)
    assert names_and_shapes(a) == names_and_shapes(b)
    with pytest.raises(FrozenInstanceError):
        spec[0].num_modules = 2


@pytest.mark.parametrize("changes,message", [
    ({"ARCH": "hrnet_w64"},
     r"MODEL.ARCH 'hrnet_w64' is unknown; valid: \['hrnet_tiny', 'hrnet_w32', 'hrnet_w48'\]"),
    ({"ARCH": "hrnet_w48"}, r"MODEL.EXTRA.STAGE2 .* disagrees with MODEL.ARCH 'hrnet_w48'"),
    ({"ARCH": "hrnet_w32", "EXTRA.FINAL_CONV_KERNEL": 3}, "FINAL_CONV_KERNEL.*disagree"),
    ({"NAME": "pose_resnet"}, r"MODEL.NAME 'pose_resnet' is not supported; valid: \['pose_hrnet'\]"),
    ({"EXTRA.STAGE3.BLOCK": "FANCY"},
     r"MODEL.EXTRA.STAGE3: BLOCK 'FANCY' is unknown; valid: \['BASIC', 'BOTTLENECK'\]"),
    ({"EXTRA.STAGE4.NUM_BLOCKS": [4, 4, 4]}, r"MODEL.EXTRA.STAGE4: NUM_BLOCKS \[4, 4, 4\]"),
    ({"EXTRA.STAGE2.FUSE_METHOD": "CAT"}, "FUSE_METHOD 'CAT' is unknown"),
    ({"EXTRA.FINAL_CONV_KERNEL": 5}, "FINAL_CONV_KERNEL must be 1 or 3"),
])
def test_config_errors_name_the_field(changes, message):
    with pytest.raises(ConfigError, match=message), torch.device("meta"):
        build_model(official_model_cfg(**changes))


def test_missing_keys_raise_config_error():
    cfg = official_model_cfg()
    del cfg.EXTRA.STAGE3["NUM_CHANNELS"]
    with pytest.raises(ConfigError, match="MODEL.EXTRA.STAGE3.NUM_CHANNELS is missing"):
        build_model(cfg)
    with pytest.raises(ConfigError, match="MODEL.ARCH is empty and MODEL.EXTRA has no STAGE2"):
        build_model(CfgNode({"NAME": "pose_hrnet", "NUM_JOINTS": 17, "ARCH": "", "EXTRA": CfgNode()}))
    with pytest.raises(ConfigError, match="MODEL.NUM_JOINTS is missing"):
        build_model(CfgNode({"NAME": "pose_hrnet", "ARCH": "hrnet_tiny"}))


def test_stage_spec_validation():
    with pytest.raises(ConfigError, match="NUM_CHANNELS"):
        StageSpec(1, 2, "BASIC", (4, 4), (32,))
    assert StageSpec(1, 1, "bottleneck", [1], [8]).block == "BOTTLENECK"


def test_bottleneck_stages_build_and_run():
    stages = [(1, 2, "BOTTLENECK", (1, 1), (4, 8)), (1, 3, "BASIC", (1, 1, 1), (8, 16, 32)),
              (1, 4, "BASIC", (1,) * 4, (8, 16, 32, 64))]
    model = PoseHRNet(3, stages).eval()
    assert model.transition1[0][0].weight.shape == (16, 256, 3, 3)  # 4 * expansion 4
    assert model.transition2[0][0].weight.shape == (8, 16, 3, 3)  # existing branch narrows 16 -> 8
    with torch.inference_mode():
        assert model(torch.zeros(2, 3, 64, 32)).shape == (2, 3, 16, 8)


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_shipped_config_builds_its_model(path):
    from pose.config import load_config
    from pose.models.complexity import count_macs

    cfg = load_config(path)
    with torch.device("meta"):
        model = build_model(cfg.MODEL)
    # Parameters of the paper nets with 17 (COCO) and 16 (MPII) joints; any other K changes only the 1x1
    # head conv (C + 1 weights per joint, C = 32 / 48).
    published = {"w32": {17: 28_536_113, 16: 28_536_080}, "w48": {17: 63_595_745, 16: 63_595_696}}
    width = next((w for w in published if f"_{w}_" in path.name), None)
    if width is not None:
        per_joint = int(width[1:]) + 1
        k = cfg.MODEL.NUM_JOINTS
        expected = published[width].get(k, published[width][17] + per_joint * (k - 17))
        assert count_parameters(model) == expected
    assert model.final_layer.out_channels == cfg.MODEL.NUM_JOINTS
    w, h = cfg.MODEL.IMAGE_SIZE
    assert count_macs(model, (w, h)) > 0
