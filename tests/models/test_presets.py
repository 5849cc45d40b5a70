"""pose.models.presets: torch-free, and its tables equal the official YAMLs and the published table."""
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pose.errors import ConfigError
from pose.models import presets
from pose.models.presets import (
    CLS_HRNET_ARCHS,
    HRNET_ARCHS,
    OFFICIAL_CLS_RESULTS,
    STAGE_KEYS,
    TRUNK_ARCHS,
    HRNetArch,
    StageSpec,
    get_arch,
)
from tests.conftest import reference_path

REPO = Path(__file__).resolve().parents[2]


def test_presets_module_imports_without_torch():
    """Loaded as a plain file with ``import torch`` made to fail: it must not need torch."""
    code = (
        "import importlib.util, sys\n"
        "sys.modules['torch'] = None  # any 'import torch' now raises ImportError\n"
        f"path = {str(REPO / 'pose/models/presets.py')!r}\n"
        "spec = importlib.util.spec_from_file_location('presets_alone', path)\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "assert 'pose.models' not in sys.modules, 'presets pulled in the torch-based package'\n"
        "print(sorted(module.CLS_HRNET_ARCHS))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, cwd=REPO, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": ""}, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "hrnet_w18_small_v1" in done.stdout


def _official_stage(node, key_for_branches="NUM_BRANCHES") -> StageSpec:
    return StageSpec(node["NUM_MODULES"], node[key_for_branches], node["BLOCK"], node["NUM_BLOCKS"],
                     node["NUM_CHANNELS"], node["FUSE_METHOD"])


@pytest.mark.parametrize("name", sorted(CLS_HRNET_ARCHS))
def test_classification_presets_equal_the_official_yamls(name):
    published = OFFICIAL_CLS_RESULTS[name]
    text = reference_path(f"official-cls-configs/{published.config}").read_text()
    extra = yaml.safe_load(text)["MODEL"]["EXTRA"]
    assert sorted(extra["STAGE1"]) == sorted(set(STAGE_KEYS) - {"NUM_BRANCHES"} | {"NUM_RANCHES"})  # the typo
    expected = HRNetArch(stages=tuple(_official_stage(extra[f"STAGE{k}"]) for k in (2, 3, 4)),
                         stage1=_official_stage(extra["STAGE1"], "NUM_RANCHES"))
    assert CLS_HRNET_ARCHS[name] == expected


def test_every_official_yaml_has_a_preset_and_a_published_row():
    folder = reference_path("official-cls-configs")
    configs = sorted(r.config for r in OFFICIAL_CLS_RESULTS.values())
    assert sorted(p.name for p in folder.glob("*.yaml")) == configs
    assert list(OFFICIAL_CLS_RESULTS) == list(CLS_HRNET_ARCHS)


def test_pose_presets_unchanged_and_shared_trunks_identical():
    assert sorted(HRNET_ARCHS) == ["hrnet_tiny", "hrnet_w32", "hrnet_w48"]
    assert CLS_HRNET_ARCHS["hrnet_w32"] == HRNET_ARCHS["hrnet_w32"]
    assert CLS_HRNET_ARCHS["hrnet_w48"] == HRNET_ARCHS["hrnet_w48"]
    assert HRNET_ARCHS["hrnet_w32"].stage1 == presets.OFFICIAL_STAGE1
    assert HRNET_ARCHS["hrnet_w32"].branch_channels == (32, 64, 128, 256)
    assert set(TRUNK_ARCHS) == set(HRNET_ARCHS) | set(CLS_HRNET_ARCHS)


def test_official_names_and_lists():
    assert presets.STAGE_KEYS == ("NUM_MODULES", "NUM_BRANCHES", "BLOCK", "NUM_BLOCKS", "NUM_CHANNELS",
                                  "FUSE_METHOD")
    assert presets.BLOCK_NAMES == ("BASIC", "BOTTLENECK") and presets.FUSE_METHODS == ("SUM",)
    assert presets.OFFICIAL_PRETRAINED_LAYERS == ("conv1", "bn1", "conv2", "bn2", "layer1", "transition1",
                                                  "stage2", "transition2", "stage3", "transition3", "stage4")
    from pose.models.hrnet import BLOCKS
    assert tuple(BLOCKS) == presets.BLOCK_NAMES
    assert {k: b.expansion for k, b in BLOCKS.items()} == dict(presets.BLOCK_EXPANSION)


def test_get_arch_and_stage1_validation():
    assert get_arch("hrnet_w64", CLS_HRNET_ARCHS).branch_channels == (64, 128, 256, 512)
    pose_presets = r"\['hrnet_tiny', 'hrnet_w32', 'hrnet_w48'\]"
    with pytest.raises(ConfigError, match=r"'hrnet_w64' is unknown; valid: " + pose_presets):
        get_arch("hrnet_w64")
    with pytest.raises(ConfigError, match="STAGE1 must have NUM_MODULES 1 and one branch"):
        HRNetArch(stages=HRNET_ARCHS["hrnet_w32"].stages, stage1=StageSpec(2, 1, "BOTTLENECK", (4,), (64,)))
