"""The project checkpoint: self-describing format (round trip, atomic write, RNG state) and rebuilding from it."""
import os
import random
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from pose import checkpoint as ck
from pose import loading
from pose.codec import build_codec
from pose.config import load_config
from pose.errors import CheckpointError, ConfigError
from pose.keypoints import COCO_17, MPII_16
from pose.models import build_model, build_model_from_arch
from pose.weights import load_weights
from tests.conftest import REPO

torch.set_num_threads(1)


class _NotPlain:
    """An object ``weights_only`` loading could not rebuild."""
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
# The project checkpoint
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_setup():
    cfg = load_config(TINY_CFG)
    torch.manual_seed(0)
    return cfg, build_model(cfg.MODEL), build_codec(cfg)


def _train_state(model):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [1, 3], 0.1)
    scaler = torch.amp.GradScaler("cpu")
    model(torch.rand(1, 3, 128, 96) * 255).mean().backward()
    opt.step()
    sched.step()
    opt.zero_grad()
    return opt, sched, scaler


def test_project_checkpoint_round_trip(tmp_path, tiny_setup):
    cfg, model, codec = tiny_setup
    opt, sched, scaler = _train_state(model)
    path = tmp_path / "ckpt.pth"
    ck.save_checkpoint(path, model=model, cfg=cfg, codec=codec, spec=COCO_17, optimizer=opt, scheduler=sched,
                       scaler=scaler, epoch=4, step=321, rng_state=ck.collect_rng_state(), best_metric=0.5,
                       extra={"note": "x", "hist": np.arange(3)})
    raw = torch.load(path, map_location="cpu", weights_only=True)  # plain weights_only, no allowlist
    assert raw["format"] == "pose-checkpoint" and raw["format_version"] == 1
    obj = ck.load_checkpoint(path)
    assert obj["epoch"] == 4 and obj["step"] == 321 and obj["best_metric"] == 0.5
    assert obj["input_size"] == [96, 128] and obj["num_keypoints"] == 17
    assert obj["codec"] == codec.to_dict() and obj["keypoint_spec"] == COCO_17.to_dict()
    assert torch.equal(obj["extra"]["hist"], torch.arange(3))

    # Training state restores into fresh objects.
    model2 = build_model(cfg.MODEL)
    load_weights(model2, path)
    _assert_holds(model2, model.state_dict())
    opt2, sched2, scaler2 = _train_state(build_model(cfg.MODEL))
    opt2.load_state_dict(obj["optimizer"])
    sched2.load_state_dict(obj["scheduler"])
    scaler2.load_state_dict(obj["scaler"])
    assert sched2.milestones == sched.milestones and sched2.last_epoch == sched.last_epoch
    assert opt2.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]

    # Everything rebuilds from the file alone.
    model3, cfg3, codec3, spec3 = loading.build_from_checkpoint(path)
    assert cfg3 == cfg and codec3 == codec and spec3 == COCO_17 and not model3.training
    x = torch.rand(2, 3, 128, 96) * 255
    model.eval()
    with torch.no_grad():
        assert torch.equal(model3(x), model(x))


def test_rng_state_round_trip(tmp_path, tiny_setup):
    cfg, model, codec = tiny_setup
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    path = tmp_path / "rng.pth"
    ck.save_checkpoint(path, model=model, cfg=cfg, codec=codec, spec=COCO_17,
                       rng_state=ck.collect_rng_state())
    expected = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)], np.random.randn())
    torch.rand(5), np.random.rand(7), random.random()
    ck.restore_rng_state(ck.load_checkpoint(path)["rng_state"])
    got = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)], np.random.randn())
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
    assert got[2] == expected[2] and got[3] == expected[3]


def test_non_plain_values_are_rejected_before_writing(tmp_path, tiny_setup):
    cfg, model, codec = tiny_setup
    path = tmp_path / "x.pth"
    with pytest.raises(TypeError, match=r"checkpoint\.extra\.obj is a _NotPlain"):
        ck.save_checkpoint(path, model=model, cfg=cfg, codec=codec, spec=COCO_17,
                           extra={"obj": _NotPlain()})
    assert list(tmp_path.iterdir()) == []


def test_save_is_atomic(tmp_path, tiny_setup, monkeypatch):
    cfg, model, codec = tiny_setup
    path = tmp_path / "last.pth"
    ck.save_checkpoint(path, model=model, cfg=cfg, codec=codec, spec=COCO_17, epoch=1)
    good = path.read_bytes()
    real_save = torch.save

    def failing_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="No space left"):
        ck.save_checkpoint(path, model=model, cfg=cfg, codec=codec, spec=COCO_17, epoch=2)
    monkeypatch.setattr(torch, "save", real_save)
    assert path.read_bytes() == good and ck.load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pth"]


def test_load_checkpoint_validates_format(tmp_path):
    plain = tmp_path / "plain.pth"
    torch.save(_tiny().state_dict(), plain)
    with pytest.raises(CheckpointError, match="not a pose checkpoint.*load_weights"):
        ck.load_checkpoint(plain)
    newer = tmp_path / "newer.pth"
    torch.save({"format": "pose-checkpoint", "format_version": 99}, newer)
    with pytest.raises(CheckpointError, match="format_version 99"):
        ck.load_checkpoint(newer)
    partial = tmp_path / "partial.pth"
    torch.save({"format": "pose-checkpoint", "format_version": 1, "state_dict": {}}, partial)
    with pytest.raises(CheckpointError, match="missing fields.*config_yaml"):
        ck.load_checkpoint(partial)


@pytest.fixture
def saved(tmp_path, tiny_setup):
    cfg, model, codec = tiny_setup
    path = tmp_path / "model.pth"
    ck.save_checkpoint(path, model=model, cfg=cfg, codec=codec, spec=COCO_17)
    return path


@pytest.mark.parametrize("overrides,key", [
    ({"MODEL.NUM_JOINTS": 16}, "MODEL.NUM_JOINTS"),
    ({"num_keypoints": 16}, "MODEL.NUM_JOINTS"),
    (["MODEL.IMAGE_SIZE", "[192, 256]"], "MODEL.IMAGE_SIZE"),
    ({"input_size": (192, 256)}, "MODEL.IMAGE_SIZE"),
    ({"DATASET.DATASET": "mpii"}, "DATASET.DATASET"),
    ({"MODEL.EXTRA.STAGE4.NUM_CHANNELS": [32, 64, 128, 256]}, "MODEL.EXTRA.STAGE4.NUM_CHANNELS"),
])
def test_conflicting_override_names_the_parameter(saved, overrides, key):
    with pytest.raises(ConfigError, match=rf"{key}.*conflicts with checkpoint .*model\.pth"):
        loading.build_from_checkpoint(saved, overrides=overrides)


def test_inference_overrides_are_allowed(saved):
    model, cfg, codec, spec = loading.build_from_checkpoint(saved, overrides={
        "TEST.FLIP_TEST": False, "decoder": "dark", "MODEL.NUM_JOINTS": 17, "input_size": [96, 128]})
    assert cfg.TEST.FLIP_TEST is False and codec.decoder == "dark"
    assert codec.input_size == (96, 128) or list(codec.input_size) == [96, 128]
    _, _, codec_flat, _ = loading.build_from_checkpoint(saved, overrides=["TEST.SHIFT_HEATMAP", "False"])
    assert codec_flat.flip_shift is False


def test_inconsistent_spec_in_checkpoint(tmp_path, tiny_setup):
    cfg, model, codec = tiny_setup
    path = tmp_path / "bad.pth"
    ck.save_checkpoint(path, model=model, cfg=cfg, codec=codec, spec=MPII_16)
    with pytest.raises(CheckpointError, match="keypoint_spec has 16 keypoints but MODEL.NUM_JOINTS is 17"):
        loading.build_from_checkpoint(path)


def test_state_dict_of_wrapped_model_is_saved_without_prefix(tmp_path, tiny_setup):
    cfg, model, codec = tiny_setup
    path = tmp_path / "dp.pth"
    ck.save_checkpoint(path, model=torch.nn.DataParallel(model), cfg=cfg, codec=codec, spec=COCO_17)
    assert not any(k.startswith("module.") for k in ck.load_checkpoint(path)["state_dict"])
    assert os.path.getsize(path) > 0 and Path(path).is_file()
