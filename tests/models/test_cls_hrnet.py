"""The official ImageNet classifier: state-dict names, golden parity (logits and every feature), and
parameter / multiply-add counts of every official width against the HRNet-Image-Classification table."""
import json
import warnings

import numpy as np
import pytest
import torch

from pose.models import (
    CLS_HRNET_ARCHS,
    OFFICIAL_CLS_RESULTS,
    ClsHRNet,
    build_model_from_arch,
    count_macs,
    count_parameters,
    macs_by_module,
    macs_to_readme_gflops,
)
from tests.conftest import reference_path

GOLDENS = {"hrnet_w18_small_v1": "golden_cls_hrnet_w18_small_v1_seed0.npz",
           "hrnet_w32": "golden_cls_hrnet_w32_seed0.npz"}
KEY_LISTS = {"hrnet_w18_small_v1": "hrnet_cls_w18_small_v1_state_dict_keys.json",
             "hrnet_w32": "hrnet_cls_w32_state_dict_keys.json"}


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def meta_classifier(name: str) -> ClsHRNet:
    with torch.device("meta"):
        return build_model_from_arch(name, head="classification")


def names_and_shapes(model: torch.nn.Module):
    return [[name, list(t.shape)] for name, t in model.state_dict().items()]


@pytest.mark.parametrize("name", sorted(KEY_LISTS))
def test_state_dict_names_shapes_and_order_equal_official(name):
    expected = json.loads(reference_path(KEY_LISTS[name]).read_text())
    assert names_and_shapes(meta_classifier(name)) == expected


def test_w32_classifier_trunk_is_the_pose_backbone():
    """The 1752 shared names with identical shapes, plus the 78 multi-scale fuse entries of stage4.2."""
    pose = dict((n, s) for n, s in json.loads(reference_path("hrnet_w32_state_dict_keys.json").read_text()))
    cls = names_and_shapes(meta_classifier("hrnet_w32"))
    shared = [n for n, s in cls if pose.get(n) == s]
    assert len(shared) == 1752
    extra_fuse = [n for n, _ in cls if n.startswith("stage4.2.fuse_layers.") and n not in pose]
    assert len(extra_fuse) == 78


# ---- golden parity ---------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=sorted(GOLDENS))
def golden_classifier(request):
    data = dict(np.load(reference_path(GOLDENS[request.param]), allow_pickle=False))
    model = build_model_from_arch(request.param, head="classification")
    state = {name: torch.from_numpy(np.asarray(data[f"state_dict/{name}"]))
             for name in data["state_dict_keys"]}
    model.load_state_dict(state, strict=True)
    return model.eval(), data


def test_golden_parity_logits_and_every_feature(golden_classifier):
    model, data = golden_classifier
    with torch.inference_mode():
        taps = model.extract_features(torch.from_numpy(data["input"]))
        direct = model.forward_normalized(torch.from_numpy(data["input"]))
    feat_keys = sorted(k for k in data if k.startswith("feat/"))
    assert len(feat_keys) == 20  # stem, layer1, 2+3+4 stage branches, 4 incre, 3 downsamp, final, pooled
    for key in feat_keys:
        ours = taps[key[len("feat/"):]].numpy()
        np.testing.assert_allclose(ours, data[key], atol=5e-3, rtol=0, err_msg=key)
    np.testing.assert_allclose(taps["output"].numpy(), data["logits"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(direct.numpy(), data["logits"], atol=1e-4, rtol=0)
    assert torch.equal(torch.topk(direct, 5).indices, torch.from_numpy(data["top5"]))


def test_golden_counts_match_model_summary(golden_classifier):
    model, data = golden_classifier
    assert count_parameters(model) == int(data["num_params"])
    assert count_macs(model, (224, 224)) == int(data["macs"])


def test_pixel_forward_of_the_golden_crops(golden_classifier):
    """forward() on the uint8 crops (normalisation inside the model) gives the official logits."""
    model, data = golden_classifier
    crops = torch.from_numpy(data["input_crop_uint8"]).permute(0, 3, 1, 2)  # (2, 3, 224, 224) uint8
    with torch.inference_mode():
        logits = model(crops)
    np.testing.assert_allclose(logits.numpy(), data["logits"], atol=1e-4, rtol=0)


# ---- size and cost of every official width ---------------------------------------------------------

# Measured here (conv + linear multiply-adds at 224x224, batch 1; see pose.models.complexity).
MEASURED = {
    "hrnet_w18_small_v1": (13_187_464, 1_601_508_352),
    "hrnet_w18_small_v2": (15_597_464, 2_595_712_864),
    "hrnet_w18": (21_299_004, 4_283_537_072),
    "hrnet_w30": (37_712_220, 8_105_781_680),
    "hrnet_w32": (41_232_680, 8_921_133_056),
    "hrnet_w40": (57_557_160, 12_691_997_440),
    "hrnet_w44": (67_064_984, 14_883_104_960),
    "hrnet_w48": (77_469_864, 17_277_996_032),
    "hrnet_w64": (128_059_944, 28_895_395_840),
}


def _printed_decimals(value: float) -> int:
    text = repr(value)
    return len(text.split(".")[1]) if "." in text else 0


@pytest.mark.parametrize("name", sorted(CLS_HRNET_ARCHS))
def test_params_and_gflops_reproduce_the_official_table(name):
    model = meta_classifier(name)
    params, macs = count_parameters(model), count_macs(model, (224, 224))
    assert (params, macs) == MEASURED[name]
    published = OFFICIAL_CLS_RESULTS[name]
    assert round(params / 1e6, 1) == published.params_millions
    gflops = macs_to_readme_gflops(macs)  # the README's "GFLOPs" are MACs / 2**30, at its printed precision
    assert round(gflops, _printed_decimals(published.gflops)) == published.gflops
    assert round(macs / 1e9, 2) != published.gflops  # not 1e9 MACs (nor FLOPs = 2 x MACs)


def test_head_costs_are_separate_top_level_modules():
    per_module = macs_by_module(meta_classifier("hrnet_w18_small_v1"), (224, 224))
    assert list(per_module)[-4:] == ["incre_modules", "downsamp_modules", "final_layer", "classifier"]
    assert per_module["classifier"] == 2048 * 1000
    assert per_module["final_layer"] == 7 * 7 * 1024 * 2048


# ---- contract --------------------------------------------------------------------------------------

def test_tiny_classifier_forward_train_and_eval_and_trace(rng):
    torch.manual_seed(0)
    model = build_model_from_arch("hrnet_tiny", head="classification", num_classes=7)
    images = torch.from_numpy(rng.uniform(0, 255, (2, 3, 64, 96)).astype(np.float32))
    assert model.train()(images).shape == (2, 7)
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.trace's deprecation notice
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(model, images[:1])
    # Traced, the head pools by mean, as the official code does for export: no pooling kernel sized to
    # the example input in the graph, and the trace serves another input size.
    graph = str(traced.inlined_graph)
    assert "aten::mean" in graph and "avg_pool2d" not in graph
    other = torch.from_numpy(rng.uniform(0, 255, (2, 3, 128, 96)).astype(np.float32))
    with torch.inference_mode():
        for x in (images, other):
            torch.testing.assert_close(traced(x), model(x), atol=1e-5, rtol=0)


def test_official_classification_init():
    torch.manual_seed(0)
    model = build_model_from_arch("hrnet_tiny", head="classification")
    model.init_weights()
    conv = model.final_layer[0]  # 1x1, fan_out = 2048: kaiming std sqrt(2 / 2048)
    assert abs(conv.weight.std().item() - (2 / 2048) ** 0.5) < 2e-3
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(torch.equal(m.weight, torch.ones_like(m.weight)) and not m.bias.any() for m in bns)
