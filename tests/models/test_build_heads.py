"""build_model: the official classification YAMLs build unchanged, and MODEL.HEAD selects the head."""
import pytest
import torch
import yaml
from yacs.config import CfgNode

from pose.errors import ConfigError
from pose.models import (
    CLS_HRNET_ARCHS,
    OFFICIAL_CLS_RESULTS,
    ClsHRNet,
    HRNetV2p,
    PoseHRNet,
    PoseHRNetV2,
    build_model,
    build_model_from_arch,
    count_parameters,
    head_from_model_cfg,
)
from tests.conftest import reference_path


def official_cls_model_section(name: str) -> dict:
    text = reference_path(f"official-cls-configs/{OFFICIAL_CLS_RESULTS[name].config}").read_text()
    return yaml.safe_load(text)["MODEL"]


def meta_build(model_cfg):
    with torch.device("meta"):
        return build_model(model_cfg)


@pytest.mark.parametrize("name", sorted(CLS_HRNET_ARCHS))
def test_official_cls_yaml_builds_the_preset_network(name):
    section = official_cls_model_section(name)  # NAME cls_hrnet, STAGE1 with NUM_RANCHES, maybe WITH_HEAD
    from_yaml = meta_build(CfgNode(section))
    from_preset = meta_build({"NAME": "cls_hrnet", "ARCH": name})
    assert isinstance(from_yaml, ClsHRNet) and from_yaml.num_classes == 1000
    assert [(k, v.shape) for k, v in from_yaml.state_dict().items()] == \
        [(k, v.shape) for k, v in from_preset.state_dict().items()]
    assert round(count_parameters(from_yaml) / 1e6, 1) == OFFICIAL_CLS_RESULTS[name].params_millions
    both = dict(section, ARCH=name)  # stages and preset together must agree
    assert count_parameters(meta_build(both)) == count_parameters(from_yaml)


def test_stage1_of_the_small_classifier_reaches_layer1():
    model = meta_build(official_cls_model_section("hrnet_w18_small_v1"))
    assert len(model.layer1) == 1 and model.layer1[0].conv1.out_channels == 32
    assert model.transition1[0][0].in_channels == 128  # 32 x Bottleneck expansion 4


def test_head_selection_keys_and_defaults():
    pose_cfg = {"NAME": "pose_hrnet", "NUM_JOINTS": 17, "ARCH": "hrnet_w32"}
    assert isinstance(meta_build(pose_cfg), PoseHRNet)  # no HEAD key: V1, as before
    assert isinstance(meta_build(dict(pose_cfg, HEAD="v2")), PoseHRNetV2)
    assert isinstance(meta_build(dict(pose_cfg, EXTRA={"HEAD": "V2"})), PoseHRNetV2)  # today's schema
    v2p = meta_build(dict(pose_cfg, HEAD="v2p", EXTRA={"PYRAMID_LEVELS": 4, "PYRAMID_CONV_KERNEL": 1}))
    assert isinstance(v2p, HRNetV2p) and v2p.num_levels == 4 and v2p.fpn_conv[0].kernel_size == (1, 1)
    assert head_from_model_cfg({}) == "v1" and head_from_model_cfg({"NAME": "cls_hrnet"}) == "classification"
    # V2 accepts every trunk preset (HRNetV2-W18 is the facial-landmark net), NUM_JOINTS 68 for 300W.
    face = meta_build(CfgNode({"NAME": "pose_hrnet", "HEAD": "v2", "ARCH": "hrnet_w18", "NUM_JOINTS": 68,
                               "IMAGE_SIZE": [256, 256], "EXTRA": CfgNode()}))
    assert face.head[3].out_channels == 68 and face.head[0].in_channels == 270
    cls = meta_build({"NAME": "cls_hrnet", "ARCH": "hrnet_tiny", "NUM_CLASSES": 10})
    assert cls.classifier.out_features == 10


def test_build_model_from_arch_heads():
    with torch.device("meta"):
        assert isinstance(build_model_from_arch("hrnet_w32"), PoseHRNet)
        assert isinstance(build_model_from_arch("hrnet_w64", head="classification"), ClsHRNet)
        assert isinstance(build_model_from_arch("hrnet_w18", 98, head="v2"), PoseHRNetV2)
    with pytest.raises(ConfigError, match=r"'hrnet_w18' is unknown; valid: \['hrnet_tiny', 'hrnet_w32'"):
        build_model_from_arch("hrnet_w18")  # V1 presets are the published pose nets
    heads = r"\['v1', 'v2', 'v2p', 'classification'\]"
    with pytest.raises(ConfigError, match=r"head 'v3' is unknown; valid: " + heads):
        build_model_from_arch("hrnet_w32", head="v3")


@pytest.mark.parametrize("model_cfg,message", [
    ({"NAME": "pose_hrnet", "NUM_JOINTS": 17, "ARCH": "hrnet_w32", "HEAD": "v3"},
     r"MODEL.HEAD 'v3' is unknown; valid: \['v1', 'v2', 'v2p', 'classification'\]"),
    ({"NAME": "pose_hrnet", "NUM_JOINTS": 17, "ARCH": "hrnet_w32", "HEAD": "v2", "EXTRA": {"HEAD": "v1"}},
     "MODEL.HEAD and MODEL.EXTRA.HEAD disagree"),
    ({"NAME": "cls_hrnet", "ARCH": "hrnet_w32", "HEAD": "v2"},
     r"'v2' does not go with MODEL.NAME 'cls_hrnet'.*use MODEL.NAME 'pose_hrnet'"),
    ({"NAME": "pose_hrnet", "NUM_JOINTS": 17, "ARCH": "hrnet_w32", "HEAD": "classification"},
     "use MODEL.NAME 'cls_hrnet'"),
    ({"NAME": "seg_hrnet"},
     r"MODEL.NAME 'seg_hrnet' is not supported; valid: \['pose_hrnet'\].*\['cls_hrnet'\]"),
    ({"NAME": "cls_hrnet", "ARCH": "hrnet_w99"},
     r"'hrnet_w99' is unknown; valid: \['hrnet_tiny', 'hrnet_w18'"),
    ({"NAME": "pose_hrnet", "HEAD": "v2", "ARCH": "hrnet_w32"}, "MODEL.NUM_JOINTS is missing"),
    ({"NAME": "pose_hrnet", "HEAD": "v2p", "ARCH": "hrnet_w32", "EXTRA": {"PYRAMID_LEVELS": 3}},
     r"pyramid levels must be one of \[4, 5\]"),
    ({"NAME": "cls_hrnet", "ARCH": "hrnet_w32", "NUM_CLASSES": "many"},
     "MODEL.NUM_CLASSES must be an integer"),
])
def test_head_config_errors_name_the_field(model_cfg, message):
    with pytest.raises(ConfigError, match=message):
        meta_build(model_cfg)


def test_stage1_errors_and_the_official_typo():
    section = official_cls_model_section("hrnet_w18_small_v1")
    stage1 = section["EXTRA"]["STAGE1"]
    stage1["NUM_BRANCHES"] = 1  # both spellings, agreeing: fine
    meta_build(section)
    stage1["NUM_BRANCHES"] = 2
    with pytest.raises(ConfigError, match="NUM_BRANCHES and NUM_RANCHES disagree"):
        meta_build(section)
    del stage1["NUM_BRANCHES"], stage1["NUM_RANCHES"]
    stage1["NUM_MODULES"] = 2
    with pytest.raises(ConfigError, match="MODEL.EXTRA.STAGE1: NUM_MODULES and NUM_BRANCHES must be 1"):
        meta_build(section)
    stage1["NUM_MODULES"] = 1
    del stage1["NUM_CHANNELS"]
    with pytest.raises(ConfigError, match="MODEL.EXTRA.STAGE1.NUM_CHANNELS is missing"):
        meta_build(section)
    section = dict(official_cls_model_section("hrnet_w18_small_v1"), ARCH="hrnet_w18")
    with pytest.raises(ConfigError, match="disagrees with MODEL.ARCH 'hrnet_w18'"):
        meta_build(section)
    section = dict(official_cls_model_section("hrnet_w32"), ARCH="hrnet_w32")
    section["EXTRA"]["STAGE1"]["NUM_BLOCKS"] = [2]
    with pytest.raises(ConfigError, match="MODEL.EXTRA.STAGE1 .* disagrees with MODEL.ARCH 'hrnet_w32'"):
        meta_build(section)
