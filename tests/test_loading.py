"""pose.loading: one rule for what a checkpoint fixes, untrained weights, zoo configs, runtimes."""
import pytest
import torch

from pose.checkpoint import save_checkpoint
from pose.codec import build_codec
from pose.config import load_config, with_overrides
from pose.errors import ConfigError
from pose.keypoints import COCO_17
from pose.loading import check_fits_checkpoint, config_for_zoo_model, load_model, load_predictor
from pose.models import build_model
from tests.conftest import REPO

TINY = REPO / "configs" / "tiny_hrnet_128x96.yaml"


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    cfg = load_config(TINY)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    save_checkpoint(path, model=build_model(cfg.MODEL), cfg=cfg, codec=build_codec(cfg), spec=COCO_17)
    return path, cfg


def test_config_beside_checkpoint_follows_the_same_rule_as_overrides(tiny_checkpoint):
    path, cfg = tiny_checkpoint
    # The same network spelled as a preset name instead of stages: allowed (same architecture).
    preset = with_overrides(cfg, ["MODEL.ARCH", "hrnet_tiny"])
    model, run_cfg, codec, spec = load_model(path, preset, overrides=["TEST.DECODER", "dark"])
    assert codec.decoder == "dark" and spec.num_keypoints == 17 and run_cfg.MODEL.ARCH == "hrnet_tiny"
    # A bound value changed in the config (not an override) is refused, naming the key.
    other_sigma = with_overrides(cfg, ["MODEL.SIGMA", "3.0"])
    with pytest.raises(ConfigError, match=r"config value MODEL.SIGMA=3.0 conflicts with checkpoint .*tiny\.pth"):
        load_model(path, other_sigma)
    with pytest.raises(ConfigError, match=r"override MODEL.SIGMA=.*conflicts with checkpoint"):
        load_model(path, overrides=["MODEL.SIGMA", "3.0"])


def test_check_fits_checkpoint_compares_architectures_not_spellings():
    cfg = load_config(TINY)
    check_fits_checkpoint(with_overrides(cfg, ["MODEL.ARCH", "hrnet_tiny"]), cfg, "x.pth", "config value")
    wider = with_overrides(cfg, ["MODEL.EXTRA.STAGE4.NUM_CHANNELS", "[32, 64, 128, 256]"])
    with pytest.raises(ConfigError, match="MODEL.EXTRA.STAGE4.NUM_CHANNELS"):
        check_fits_checkpoint(wider, cfg, "x.pth", "config value")


def test_untrained_weights_need_no_file_and_no_network(monkeypatch, tmp_path):
    monkeypatch.setenv("POSE_CACHE", str(tmp_path))  # an empty cache: nothing to find, nothing downloaded
    predictor, cfg = load_predictor("hrnet_w32_coco_256x192", pretrained=False, backend="torch", offline=True)
    assert predictor.input_size == (192, 256) and cfg.MODEL.ARCH == "hrnet_w32"
    assert list(tmp_path.iterdir()) == []
    a, *_ = load_model("hrnet_w32_coco_256x192", pretrained=False)
    b, *_ = load_model("hrnet_w32_coco_256x192", pretrained=False)
    assert torch.equal(a.final_layer.weight, b.final_layer.weight)  # seeded: the same random net each time


def test_zoo_entry_carries_its_inference_settings():
    cfg = config_for_zoo_model("hrnet_w32_coco_384x288")
    assert cfg.MODEL.SIGMA == 3.0 and list(cfg.MODEL.IMAGE_SIZE) == [288, 384]
    assert cfg.TEST.FLIP_TEST and cfg.TEST.SHIFT_HEATMAP and build_codec(cfg).decoder == "quarter"
    assert config_for_zoo_model("hrnet_w32_coco_256x192").MODEL.SIGMA == 2.0


def test_no_weights_is_a_one_line_error():
    with pytest.raises(ConfigError, match="no weights"):
        load_model(None)
