"""Weight files: every accepted layout, strict-load diagnostics, unsafe/broken files, ImageNet init."""
import json
import pickle
from collections import OrderedDict

import numpy as np
import pytest
import torch

from pose import weights as wt
from pose.errors import CheckpointError
from pose.models import build_model_from_arch
from tests.conftest import DATA, REPO, reference_path

torch.set_num_threads(1)
TINY_CFG = REPO / "configs" / "tiny_hrnet_128x96.yaml"


def _tiny(num_keypoints=17, seed=0):
    torch.manual_seed(seed)
    return build_model_from_arch("hrnet_tiny", num_keypoints)


def _random_state(model, seed=1):
    """The model's state dict with every float tensor redrawn, so a load is visible."""
    g = torch.Generator().manual_seed(seed)
    return OrderedDict((k, torch.randn(v.shape, generator=g) if v.is_floating_point() else v.clone() + 3)
                       for k, v in model.state_dict().items())


def _assert_holds(model, state):
    sd = model.state_dict()
    assert sd.keys() == state.keys()
    for k, v in state.items():
        assert torch.equal(sd[k], v), k



# ------------------------------------------------------------------------------------------------
# Accepted layouts
# ------------------------------------------------------------------------------------------------
def _mmpose(state, head_prefix):
    out = OrderedDict()
    for k, v in state.items():
        out[(head_prefix if k.startswith("final_layer.") else "backbone.") + k] = v
    return out


LAYOUTS = {
    "plain": lambda s: s,
    "state_dict": lambda s: {"state_dict": s},
    "module_prefix": lambda s: OrderedDict(("module." + k, v) for k, v in s.items()),
    "state_dict_module_prefix": lambda s: {"state_dict": LAYOUTS["module_prefix"](s)},
    "model_key": lambda s: {"model": s, "epoch": 3},
    # mmpose 0.x: meta with numpy values (allowlisted, they run no code).
    "mmpose_0x": lambda s: {"meta": {"epoch": 210, "config": "model = dict(...)", "best": np.float64(0.74),
                                     "sigmas": np.array([0.026, 0.025], np.float32)},
                            "state_dict": _mmpose(s, "keypoint_head.")},
    "mmpose_1x": lambda s: {"meta": {"dataset_meta": {"flip_indices": [0, 2, 1]}},
                            "state_dict": _mmpose(s, "head.")},
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_layout_loads_strictly(layout, tmp_path):
    model = _tiny()
    state = _random_state(model)
    path = tmp_path / f"{layout}.pth"
    torch.save(LAYOUTS[layout](state), path)
    load_weights_model = _tiny(seed=5)
    wt.load_weights(load_weights_model, path)
    _assert_holds(load_weights_model, state)


def test_official_training_checkpoint_takes_state_dict(tmp_path):
    """checkpoint.pth: epoch, model (name), perf, optimizer, state_dict (module.), best_state_dict."""
    model = _tiny()
    last, best = _random_state(model, 1), _random_state(model, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    path = tmp_path / "checkpoint.pth"
    torch.save({"epoch": 12, "model": "pose_hrnet", "perf": 0.71, "optimizer": opt.state_dict(),
                "state_dict": OrderedDict(("module." + k, v) for k, v in last.items()),
                "best_state_dict": best}, path)
    fresh = _tiny(seed=3)
    wt.load_weights(fresh, path)
    _assert_holds(fresh, last)


def test_old_checkpoint_without_num_batches_tracked_loads(tmp_path):
    model = _tiny()
    state = OrderedDict((k, v) for k, v in _random_state(model).items()
                        if not k.endswith("num_batches_tracked"))
    fresh = _tiny(seed=3)
    wt.load_weights(fresh, state)
    assert torch.equal(fresh.state_dict()["conv1.weight"], state["conv1.weight"])
    assert int(fresh.state_dict()["bn1.num_batches_tracked"]) == 0


def test_official_w32_names_and_shapes_load_strictly():
    """A state dict with exactly the official W32 names/shapes (golden key list) fits our W32."""
    entries = json.loads(reference_path("hrnet_w32_state_dict_keys.json").read_text())
    state = OrderedDict((name, torch.full(shape, 0.5) if shape else torch.tensor(7))
                        for name, shape in entries)
    model = build_model_from_arch("hrnet_w32", 17)
    wt.load_weights(model, {"state_dict": state})
    assert torch.all(model.final_layer.weight == 0.5)


def test_w48_weights_into_w32_say_architecture():
    entries = json.loads(reference_path("hrnet_w48_state_dict_keys.json").read_text())
    state = OrderedDict((name, torch.zeros(shape)) for name, shape in entries)
    with pytest.raises(CheckpointError, match="HRNet-W48 checkpoint but the model is HRNet-W32"):
        wt.load_weights(build_model_from_arch("hrnet_w32", 17), state)


# ------------------------------------------------------------------------------------------------
# Strict-load diagnostics
# ------------------------------------------------------------------------------------------------
def test_missing_keys_are_listed_and_truncated(tmp_path):
    model = _tiny()
    state = _random_state(model)
    dropped = [k for k in state if k.startswith("stage4.") and not k.endswith("num_batches_tracked")]
    assert len(dropped) > 10
    for k in dropped:
        del state[k]
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as err:
        wt.load_weights(_tiny(), path)
    msg = str(err.value)
    assert str(path) in msg and f"missing {len(dropped)} keys" in msg and dropped[0] in msg
    assert f"(+{len(dropped) - 10} more)" in msg and dropped[-1] not in msg and "\n" not in msg


def test_unexpected_keys_are_listed():
    state = _random_state(_tiny())
    state["extra_head.weight"] = torch.zeros(3)
    with pytest.raises(CheckpointError, match=r"unexpected 1 keys: extra_head\.weight"):
        wt.load_weights(_tiny(), state)


def test_shape_mismatch_is_listed():
    state = _random_state(_tiny())
    state["stage2.0.branches.0.0.conv1.weight"] = torch.zeros(8, 8, 1, 1)
    with pytest.raises(CheckpointError, match=r"stage2\.0\.branches\.0\.0\.conv1\.weight checkpoint "
                                              r"\[8, 8, 1, 1\] vs model \[16, 16, 3, 3\]"):
        wt.load_weights(_tiny(), state)


def test_wrong_keypoint_count_message():
    mpii_state = _random_state(_tiny(num_keypoints=16))
    with pytest.raises(CheckpointError, match="predicts 16 keypoints .* built for 17.*MODEL.NUM_JOINTS"):
        wt.load_weights(_tiny(num_keypoints=17), mpii_state)


def test_non_strict_keeps_going_but_never_on_shapes(caplog):
    model = _tiny()
    state = _random_state(model)
    del state["final_layer.bias"]
    result = wt.load_weights(model, state, strict=False)
    assert result.missing_keys == ["final_layer.bias"]
    state["final_layer.bias"] = torch.zeros(5)
    with pytest.raises(CheckpointError, match="final_layer.bias"):
        wt.load_weights(model, state, strict=False)


def test_classification_checkpoint_as_pose_weights_points_to_imagenet_loader():
    with pytest.raises(CheckpointError, match="ImageNet classification checkpoint.*load_imagenet_pretrained"):
        wt.load_weights(_tiny(), _classification_state(_tiny()))


def test_unrelated_state_dict_says_no_names_in_common():
    with pytest.raises(CheckpointError, match="no parameter names in common"):
        wt.load_weights(_tiny(), torch.nn.Linear(2, 2).state_dict())


# ------------------------------------------------------------------------------------------------
# Unsafe and broken files
# ------------------------------------------------------------------------------------------------
class _Payload:
    """Unpickling this would create ``marker`` (harmless, but proof that code ran)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("legacy", [False, True])
def test_malicious_pickle_is_refused_and_not_executed(tmp_path, legacy):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": _tiny().state_dict(), "meta": _Payload(marker)}, path,
               _use_new_zipfile_serialization=not legacy)
    assert not marker.exists()
    with pytest.raises(CheckpointError) as err:
        wt.read_checkpoint(path)
    msg = str(err.value)
    assert str(path) in msg and "non-tensor Python objects" in msg and "could run code" in msg
    assert "not loaded" in msg
    with pytest.raises(CheckpointError):
        wt.load_weights(_tiny(), path)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 4])
def test_raw_pickle_file_is_refused(tmp_path, protocol):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"a": _Payload(marker)}, protocol=protocol))
    with pytest.raises(CheckpointError, match="evil.pkl.*it was not loaded"):
        wt.read_checkpoint(path)
    assert not marker.exists()


def test_truncated_file(tmp_path):
    good = tmp_path / "good.pth"
    torch.save(_tiny().state_dict(), good)
    data = good.read_bytes()
    bad = tmp_path / "half.pth"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"half\.pth' is truncated or corrupt"):
        wt.read_checkpoint(bad)


@pytest.mark.parametrize("content,looks_like", [
    (None, "JPEG image"),
    (b"model: hrnet\nlr: 0.001\n", "text file"),
    (b"", "empty"),
])
def test_not_a_checkpoint(tmp_path, content, looks_like):
    path = tmp_path / "weights.pth"
    path.write_bytes((DATA / "coco" / "000000000785.jpg").read_bytes() if content is None else content)
    with pytest.raises(CheckpointError, match=looks_like) as err:
        wt.read_checkpoint(path)
    assert str(path) in str(err.value) and "torch.save" in str(err.value)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        wt.read_checkpoint(tmp_path / "nope.pth")
    with pytest.raises(CheckpointError, match="is a folder"):
        wt.read_checkpoint(tmp_path)


def test_non_dict_checkpoint(tmp_path):
    path = tmp_path / "t.pth"
    torch.save(torch.zeros(3), path)
    with pytest.raises(CheckpointError, match="holds a Tensor; expected a dict"):
        wt.read_checkpoint(path)


# ------------------------------------------------------------------------------------------------
# ImageNet initialisation
# ------------------------------------------------------------------------------------------------
_CLASSIFIER_EXTRAS = ("incre_modules.0.0.conv1.weight", "downsamp_modules.0.0.weight", "final_layer.0.weight",
                      "classifier.weight", "classifier.bias", "stage4.0.fuse_layers.1.0.0.0.weight",
                      "stage4.0.fuse_layers.2.1.0.1.running_mean")


def _classification_state(model, seed=1):
    """A synthetic HRNet-C state dict: the pose backbone's tensors plus classifier-only keys."""
    state = OrderedDict((k, v) for k, v in _random_state(model, seed).items()
                        if not k.startswith("final_layer."))
    for k in _CLASSIFIER_EXTRAS:
        state[k] = torch.ones(4, 4)
    return state


def test_imagenet_init_filters_and_reports(tmp_path, caplog):
    model = _tiny()
    init_head = model.final_layer.weight.detach().clone()
    state = _classification_state(model)
    path = tmp_path / "hrnet_tiny-00000000.pth"
    torch.save(state, path)
    with caplog.at_level("INFO", logger="pose.weights"):
        report = wt.load_imagenet_pretrained(model, path)
    backbone = [k for k in model.state_dict() if not k.startswith("final_layer.")]
    assert report.num_loaded == len(backbone) and set(report.loaded_keys) == set(backbone)
    # The classifier keeps multi-scale fusion in its last stage-4 module; the pose net does not.
    assert set(report.skipped["no counterpart in the model"]) == {
        "stage4.0.fuse_layers.1.0.0.0.weight", "stage4.0.fuse_layers.2.1.0.1.running_mean"}
    assert set(report.skipped["not in PRETRAINED_LAYERS"]) == {
        "incre_modules.0.0.conv1.weight", "downsamp_modules.0.0.weight", "final_layer.0.weight",
        "classifier.weight", "classifier.bias"}
    assert report.left_at_init == ("final_layer.weight", "final_layer.bias")
    assert torch.equal(model.final_layer.weight, init_head)
    for k in backbone:
        assert torch.equal(model.state_dict()[k], state[k]), k
    assert "loaded" in caplog.text and str(path) in caplog.text


def test_imagenet_prefix_filter_and_star(tmp_path):
    model = _tiny()
    state = _classification_state(model)
    report = wt.load_imagenet_pretrained(model, state, prefixes=("conv1", "bn1"))
    assert set(report.loaded_keys) == {k for k in state if k.split(".")[0] in ("conv1", "bn1")}
    everything = wt.load_imagenet_pretrained(_tiny(), {"state_dict": state}, prefixes=["*"])
    assert everything.skipped["not in PRETRAINED_LAYERS"] == ()
    assert "classifier.weight" in everything.skipped["no counterpart in the model"]


def test_imagenet_shape_mismatch_is_an_error():
    state = _classification_state(build_model_from_arch("hrnet_tiny", 17))
    state["stage3.0.branches.1.0.conv1.weight"] = torch.zeros(16, 16, 1, 1)
    with pytest.raises(CheckpointError, match=r"1 shape mismatches.*stage3\.0\.branches\.1\.0\.conv1"):
        wt.load_imagenet_pretrained(_tiny(), state)


def test_imagenet_nothing_matching_is_an_error():
    with pytest.raises(CheckpointError, match="no key matches the model"):
        wt.load_imagenet_pretrained(_tiny(), {"classifier.weight": torch.zeros(2, 2)})


def test_imagenet_init_from_the_official_classification_key_layout(tmp_path):
    """A W32 ImageNet checkpoint laid out as the official classifier's state dict (names and shapes of
    ../shared/reference/hrnet_cls_w32_state_dict_keys.json) initialises the W32 pose net: the 1752
    tensors both nets share load, the classification-only ones are reported as skipped, and only the
    pose head keeps its initialisation."""
    entries = json.loads(reference_path("hrnet_cls_w32_state_dict_keys.json").read_text())
    torch.manual_seed(0)
    model = build_model_from_arch("hrnet_w32", 17)
    g = torch.Generator().manual_seed(3)
    state = OrderedDict((name, torch.randn(shape, generator=g) if shape else torch.tensor(7))
                        for name, shape in entries)
    path = tmp_path / "hrnetv2_w32_imagenet_pretrained.pth"
    torch.save(state, path)
    report = wt.load_imagenet_pretrained(model, path)
    assert report.num_loaded == 1752
    classification_only = {n for n, _ in entries if n.split(".")[0] in
                           ("incre_modules", "downsamp_modules", "final_layer", "classifier")}
    assert classification_only and set(report.skipped["not in PRETRAINED_LAYERS"]) == classification_only
    fuse = set(report.skipped["no counterpart in the model"])
    assert len(fuse) == 78 and all(n.startswith("stage4.2.fuse_layers.") for n in fuse)
    assert len(report.loaded_keys) + len(classification_only) + len(fuse) == len(entries)
    assert report.left_at_init == ("final_layer.weight", "final_layer.bias")
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], state[k]) for k in report.loaded_keys)
