"""The official ImageNet classification YAMLs (configs/imagenet/) load unchanged; MODEL.HEAD is checked."""
import filecmp

import pytest
import torch

from pose.config import load_config
from pose.errors import ConfigError
from pose.models import CLS_HRNET_ARCHS, OFFICIAL_CLS_RESULTS, ClsHRNet, PoseHRNetV2, build_model
from tests.conftest import REPO, reference_path

IMAGENET = REPO / "configs" / "imagenet"
TINY = REPO / "configs" / "tiny_hrnet_128x96.yaml"
SMALL_V1 = IMAGENET / OFFICIAL_CLS_RESULTS["hrnet_w18_small_v1"].config


def shapes(model):
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


def test_every_official_yaml_is_shipped_and_attributed():
    shipped = sorted(p.name for p in IMAGENET.glob("*.yaml"))
    assert shipped == sorted(r.config for r in OFFICIAL_CLS_RESULTS.values())
    assert "MIT" in (IMAGENET / "ATTRIBUTION.md").read_text()


@pytest.mark.parametrize("name", sorted(CLS_HRNET_ARCHS))
def test_official_yaml_loads_and_builds_the_preset_classifier(name):
    path = IMAGENET / OFFICIAL_CLS_RESULTS[name].config
    official = reference_path(f"official-cls-configs/{path.name}")
    assert filecmp.cmp(path, official, shallow=False), "the shipped file must be the official one, unchanged"
    cfg = load_config(path)
    assert cfg.MODEL.NAME == "cls_hrnet" and cfg.MODEL.IMAGE_SIZE == [224, 224]
    assert cfg.MODEL.EXTRA.STAGE1.NUM_RANCHES == 1 and cfg.DATASET.DATASET == "imagenet"
    with torch.device("meta"):
        from_yaml = build_model(cfg.MODEL)
        from_preset = build_model({"NAME": "cls_hrnet", "ARCH": name})
    assert isinstance(from_yaml, ClsHRNet) and from_yaml.num_classes == 1000
    assert shapes(from_yaml) == shapes(from_preset)


def test_num_classes_and_head_keys_reach_the_model():
    cfg = load_config(SMALL_V1, ["MODEL.NUM_CLASSES", "10", "MODEL.HEAD", "classification"])
    with torch.device("meta"):
        assert build_model(cfg.MODEL).classifier.out_features == 10
    v2 = load_config(TINY, ["MODEL.HEAD", "v2"])
    assert isinstance(build_model(v2.MODEL), PoseHRNetV2)


@pytest.mark.parametrize("path,overrides,message", [
    (TINY, ["MODEL.HEAD", "v3"], "MODEL.HEAD: got 'v3'; expected one of ['v1', 'v2', 'v2p', 'classification']"),
    (TINY, ["MODEL.HEAD", "classification"], "head 'classification' belongs to MODEL.NAME 'cls_hrnet'"),
    (SMALL_V1, ["MODEL.HEAD", "v2"], "MODEL.HEAD: got 'v2' with MODEL.NAME 'cls_hrnet'; expected one of "
                                     "['classification']"),
    (TINY, ["MODEL.NAME", "cls_resnet"], "MODEL.NAME: got 'cls_resnet'; expected one of ['pose_hrnet', "
                                         "'cls_hrnet']"),
    (SMALL_V1, ["MODEL.NUM_CLASSES", "0"], "MODEL.NUM_CLASSES: got 0; expected an integer >= 1"),
    (SMALL_V1, ["MODEL.EXTRA.STAGE1.NUM_RANCHES", "2"], "MODEL.EXTRA.STAGE1.NUM_RANCHES: got 2; expected 1"),
    (SMALL_V1, ["MODEL.EXTRA.STAGE1.NUM_BLOCKS", "[1, 1]"], "MODEL.EXTRA.STAGE1.NUM_BLOCKS: got [1, 1]"),
    (SMALL_V1, ["MODEL.EXTRA.STAGE1.BLOCK", "WIDE"], "MODEL.EXTRA.STAGE1.BLOCK: got 'WIDE'"),
])
def test_bad_head_keys_are_one_line_errors(path, overrides, message):
    with pytest.raises(ConfigError) as err:
        load_config(path, overrides)
    text = str(err.value)
    assert message in text and "\n" not in text and text.startswith(str(path))


def test_extra_head_and_head_must_agree(tmp_path):
    text = TINY.read_text() + "\n"
    path = tmp_path / "both.yaml"
    path.write_text(text.replace("MODEL:\n", "MODEL:\n  HEAD: v2\n", 1))
    assert load_config(path).MODEL.HEAD == "v2"
    path.write_text(text.replace("MODEL:\n", "MODEL:\n  HEAD: v2\n", 1)
                    .replace("  EXTRA:\n", "  EXTRA:\n    HEAD: v1\n", 1))
    with pytest.raises(ConfigError, match="MODEL.HEAD: got 'v2' but MODEL.EXTRA.HEAD is 'v1'"):
        load_config(path)


def test_pyramid_levels_are_checked(tmp_path):
    path = tmp_path / "v2p.yaml"
    path.write_text(TINY.read_text().replace("MODEL:\n", "MODEL:\n  HEAD: v2p\n", 1)
                    .replace("  EXTRA:\n", "  EXTRA:\n    PYRAMID_LEVELS: 3\n", 1))
    with pytest.raises(ConfigError, match=r"MODEL.EXTRA.PYRAMID_LEVELS: got 3; expected one of \[4, 5\]"):
        load_config(path)
