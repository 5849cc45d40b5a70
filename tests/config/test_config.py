"""pose.config: the schema, loading every shipped YAML, official/DarkPose compatibility, errors, helpers."""
import re
from pathlib import Path

import pytest
import yaml

from pose.config import (
    config_from_yaml_text,
    config_to_yaml,
    decoder_name,
    get_default_config,
    load_config,
    resolve_data_path,
)
from pose.data.layout import resolve_dataset_paths
from pose.errors import ConfigError
from tests.conftest import REPO

CONFIGS = sorted((REPO / "configs").glob("*.yaml"))
TINY = REPO / "configs" / "tiny_hrnet_128x96.yaml"

# Every key of the official tree (lib/config/default.py; research doc 4.5) with its official code default.
OFFICIAL_DEFAULTS = {
    "OUTPUT_DIR": "", "LOG_DIR": "", "DATA_DIR": "", "GPUS": (0,), "WORKERS": 4, "PRINT_FREQ": 20,
    "AUTO_RESUME": False, "PIN_MEMORY": True, "RANK": 0,
    "CUDNN.BENCHMARK": True, "CUDNN.DETERMINISTIC": False, "CUDNN.ENABLED": True,
    "MODEL.NAME": "pose_hrnet", "MODEL.INIT_WEIGHTS": True, "MODEL.PRETRAINED": "", "MODEL.NUM_JOINTS": 17,
    "MODEL.TAG_PER_JOINT": True, "MODEL.TARGET_TYPE": "gaussian", "MODEL.IMAGE_SIZE": [256, 256],
    "MODEL.HEATMAP_SIZE": [64, 64], "MODEL.SIGMA": 2,
    "LOSS.USE_OHKM": False, "LOSS.TOPK": 8, "LOSS.USE_TARGET_WEIGHT": True,
    "LOSS.USE_DIFFERENT_JOINTS_WEIGHT": False,
    "DATASET.ROOT": "", "DATASET.DATASET": "mpii", "DATASET.TRAIN_SET": "train", "DATASET.TEST_SET": "valid",
    "DATASET.DATA_FORMAT": "jpg", "DATASET.HYBRID_JOINTS_TYPE": "", "DATASET.SELECT_DATA": False,
    "DATASET.FLIP": True, "DATASET.SCALE_FACTOR": 0.25, "DATASET.ROT_FACTOR": 30,
    "DATASET.PROB_HALF_BODY": 0.0,
    "DATASET.NUM_JOINTS_HALF_BODY": 8, "DATASET.COLOR_RGB": False,
    "TRAIN.LR_FACTOR": 0.1, "TRAIN.LR_STEP": [90, 110], "TRAIN.LR": 0.001, "TRAIN.OPTIMIZER": "adam",
    "TRAIN.MOMENTUM": 0.9, "TRAIN.WD": 0.0001, "TRAIN.NESTEROV": False, "TRAIN.GAMMA1": 0.99,
    "TRAIN.GAMMA2": 0.0,
    "TRAIN.BEGIN_EPOCH": 0, "TRAIN.END_EPOCH": 140, "TRAIN.RESUME": False, "TRAIN.CHECKPOINT": "",
    "TRAIN.BATCH_SIZE_PER_GPU": 32, "TRAIN.SHUFFLE": True,
    "TEST.BATCH_SIZE_PER_GPU": 32, "TEST.FLIP_TEST": False, "TEST.POST_PROCESS": False,
    "TEST.SHIFT_HEATMAP": False,
    "TEST.USE_GT_BBOX": False, "TEST.IMAGE_THRE": 0.1, "TEST.NMS_THRE": 0.6, "TEST.SOFT_NMS": False,
    "TEST.OKS_THRE": 0.5, "TEST.IN_VIS_THRE": 0.0, "TEST.COCO_BBOX_FILE": "", "TEST.BBOX_THRE": 1.0,
    "TEST.MODEL_FILE": "",
    "DEBUG.DEBUG": False, "DEBUG.SAVE_BATCH_IMAGES_GT": False, "DEBUG.SAVE_BATCH_IMAGES_PRED": False,
    "DEBUG.SAVE_HEATMAPS_GT": False, "DEBUG.SAVE_HEATMAPS_PRED": False,
}
# DarkPose's addition plus the documented project additions, with their defaults.
ADDED_DEFAULTS = {
    "TEST.BLUR_KERNEL": 11, "MODEL.ARCH": "", "TEST.DECODER": "", "TEST.BACKEND": "torch",
    "MODEL.HEAD": "", "MODEL.NUM_CLASSES": 1000,
    "DATASET.HALF_BODY_DRAW": "official", "TRAIN.LR_SCHEDULE_STEP": "official",
    "DATASET.TRAIN_ANN_FILE": "", "DATASET.TEST_ANN_FILE": "",
    "DATASET.TRAIN_IMAGE_DIR": "", "DATASET.TEST_IMAGE_DIR": "", "DATASET.GT_VALID_FILE": "",
    "DATASET.KEYPOINTS": "", "DATASET.OKS_SIGMA_FALLBACK": 0.0,
    "TRAIN.AMP": False, "TRAIN.AMP_DTYPE": "bf16", "TRAIN.CHANNELS_LAST": False, "TRAIN.SYNC_BN": False,
    "TRAIN.WARMUP_ITERS": 0, "TRAIN.WARMUP_FACTOR": 0.001, "TRAIN.CHECKPOINT_INTERVAL_ITERS": 0,
    "TRAIN.VAL_INTERVAL": 1, "TRAIN.SEED": 0, "TRAIN.DETERMINISTIC": False, "TRAIN.MAX_ITERS_PER_EPOCH": 0,
    "MODEL.EXTRA.PRETRAINED_LAYERS": ["conv1", "bn1", "conv2", "bn2", "layer1", "transition1", "stage2",
                                      "transition2", "stage3", "transition3", "stage4"],
    "MODEL.EXTRA.FINAL_CONV_KERNEL": 1,
}
PROJECT_DEFAULT_CHANGES = {"AUTO_RESUME": True}  # the only official key whose default we change (issue)

# The official W32 256x192 stage spec (research doc 1.3), as the official YAMLs write it.
W32_EXTRA = """\
  EXTRA:
    PRETRAINED_LAYERS: ['conv1', 'bn1', 'conv2', 'bn2', 'layer1', 'transition1', 'stage2',
                        'transition2', 'stage3', 'transition3', 'stage4']
    FINAL_CONV_KERNEL: 1
    STAGE2: {NUM_MODULES: 1, NUM_BRANCHES: 2, BLOCK: BASIC, NUM_BLOCKS: [4, 4], NUM_CHANNELS: [32, 64],
             FUSE_METHOD: SUM}
    STAGE3: {NUM_MODULES: 4, NUM_BRANCHES: 3, BLOCK: BASIC, NUM_BLOCKS: [4, 4, 4],
             NUM_CHANNELS: [32, 64, 128], FUSE_METHOD: SUM}
    STAGE4: {NUM_MODULES: 3, NUM_BRANCHES: 4, BLOCK: BASIC, NUM_BLOCKS: [4, 4, 4, 4],
             NUM_CHANNELS: [32, 64, 128, 256], FUSE_METHOD: SUM}
"""


def flatten(node, prefix=""):
    out = {}
    for key, value in node.items():
        if isinstance(value, dict) and prefix + key != "MODEL.EXTRA":  # EXTRA is compared as one value
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def write(tmp_path, text, name="exp.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def tiny(*overrides):
    return load_config(TINY, list(overrides))


# ------------------------------------------------------------------------------------------------
# Defaults
# ------------------------------------------------------------------------------------------------
def test_schema_is_official_tree_plus_documented_additions():
    flat = flatten(get_default_config())
    flat.pop("MODEL.EXTRA")  # the EXTRA node's own entries are listed in ADDED_DEFAULTS
    flat.update({f"MODEL.EXTRA.{k}": v for k, v in get_default_config().MODEL.EXTRA.items()})
    assert set(flat) == set(OFFICIAL_DEFAULTS) | set(ADDED_DEFAULTS)
    for key, official in OFFICIAL_DEFAULTS.items():
        assert flat[key] == PROJECT_DEFAULT_CHANGES.get(key, official), key
    for key, value in ADDED_DEFAULTS.items():
        assert flat[key] == value, key


def test_defaults_are_fresh_mutable_copies():
    a, b = get_default_config(), get_default_config()
    assert not a.is_frozen()
    a.TRAIN.LR_STEP.append(999)
    a.MODEL.IMAGE_SIZE[0] = 1
    a.MODEL.EXTRA.FINAL_CONV_KERNEL = 3
    a.MODEL.EXTRA.STAGE2 = 1
    a.TRAIN.LR = 5.0
    assert b.TRAIN.LR_STEP == [90, 110] and b.MODEL.IMAGE_SIZE == [256, 256] and b.TRAIN.LR == 0.001
    assert b.MODEL.EXTRA.FINAL_CONV_KERNEL == 1
    assert "STAGE2" not in b.MODEL.EXTRA and "STAGE2" not in get_default_config().MODEL.EXTRA
    assert get_default_config().MODEL.EXTRA.is_new_allowed()
    assert not get_default_config().MODEL.is_new_allowed()


def test_every_default_key_is_commented():
    """Each `_C.X = ...` line sits in a block that starts with a comment (meaning and unit)."""
    commented = False
    for line in (REPO / "pose" / "config" / "defaults.py").read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            commented = True
        elif re.match(r"_C(\.\w+)+ = ", stripped):
            assert commented or stripped.endswith("CN()"), f"uncommented default: {stripped}"
        else:
            commented = False


def test_no_module_imports_a_global_config():
    offenders = [str(p) for p in (REPO / "pose").rglob("*.py")
                 if re.search(r"from pose\.config import .*\b_C\b|config\._C\b", p.read_text())]
    assert offenders == []


# ------------------------------------------------------------------------------------------------
# Shipped configs
# ------------------------------------------------------------------------------------------------
EXPECTED = {
    #                             dataset, width, image,      heatmap,  sigma, batch, joints
    "coco_hrnet_w32_256x192.yaml": ("coco", 32, [192, 256], [48, 64], 2.0, 32, 17),
    "coco_hrnet_w32_384x288.yaml": ("coco", 32, [288, 384], [72, 96], 3.0, 32, 17),
    "coco_hrnet_w48_256x192.yaml": ("coco", 48, [192, 256], [48, 64], 2.0, 32, 17),
    "coco_hrnet_w48_384x288.yaml": ("coco", 48, [288, 384], [72, 96], 3.0, 24, 17),
    "mpii_hrnet_w32_256x256.yaml": ("mpii", 32, [256, 256], [64, 64], 2.0, 32, 16),
    "mpii_hrnet_w48_256x256.yaml": ("mpii", 48, [256, 256], [64, 64], 2.0, 32, 16),
    "tiny_hrnet_128x96.yaml": ("coco", 16, [96, 128], [24, 32], 2.0, 4, 17),
    "crowdpose_hrnet_w32_256x192.yaml": ("crowdpose", 32, [192, 256], [48, 64], 2.0, 32, 14),
    "coco_wholebody_hrnet_w32_256x192.yaml": ("coco_wholebody", 32, [192, 256], [48, 64], 2.0, 32, 133),
    "ap10k_hrnet_w32_256x256.yaml": ("ap10k", 32, [256, 256], [64, 64], 2.0, 32, 17),
    "onehand10k_hrnet_w32_256x256.yaml": ("onehand10k", 32, [256, 256], [64, 64], 2.0, 32, 21),
}


def test_every_shipped_config_is_listed():
    assert sorted(p.name for p in CONFIGS) == sorted(EXPECTED)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_loads_with_expected_values(path):
    cfg = load_config(path)
    assert cfg.is_frozen()
    dataset, width, image, heatmap, sigma, batch, joints = EXPECTED[path.name]
    assert cfg.DATASET.DATASET == dataset
    assert cfg.MODEL.NUM_JOINTS == joints
    assert cfg.MODEL.IMAGE_SIZE == image and cfg.MODEL.HEATMAP_SIZE == heatmap
    assert cfg.MODEL.SIGMA == sigma and isinstance(cfg.MODEL.SIGMA, float)
    assert cfg.TRAIN.BATCH_SIZE_PER_GPU == batch
    extra = cfg.MODEL.EXTRA
    for n in (2, 3, 4):
        assert extra[f"STAGE{n}"].NUM_CHANNELS == [width * 2 ** b for b in range(n)]
        assert extra[f"STAGE{n}"].NUM_BRANCHES == n
        assert extra[f"STAGE{n}"].BLOCK == "BASIC" and extra[f"STAGE{n}"].FUSE_METHOD == "SUM"
    assert cfg.TEST.FLIP_TEST and cfg.TEST.POST_PROCESS and cfg.TEST.SHIFT_HEATMAP
    assert decoder_name(cfg) == "quarter"
    if path.name.startswith("tiny"):
        assert cfg.TRAIN.END_EPOCH == 2 and cfg.WORKERS == 0 and cfg.TRAIN.LR_STEP == [1]
        assert [extra[f"STAGE{n}"].NUM_MODULES for n in (2, 3, 4)] == [1, 1, 1]
        return
    # paper recipe (research doc 1.3, 4.4)
    assert [extra[f"STAGE{n}"].NUM_MODULES for n in (2, 3, 4)] == [1, 4, 3]
    assert all(b == 4 for n in (2, 3, 4) for b in extra[f"STAGE{n}"].NUM_BLOCKS)
    assert cfg.TRAIN.END_EPOCH == 210 and cfg.TRAIN.LR_STEP == [170, 200] and cfg.TRAIN.LR_FACTOR == 0.1
    assert cfg.TRAIN.OPTIMIZER == "adam" and cfg.TRAIN.LR == 0.001
    assert cfg.GPUS == (0, 1, 2, 3) and cfg.AUTO_RESUME
    imagenet = "hrnet_w32-36af842e.pth" if width == 32 else "hrnet_w48-8ef0771d.pth"
    assert cfg.MODEL.PRETRAINED == f"models/pytorch/imagenet/{imagenet}"
    augment = (cfg.DATASET.ROT_FACTOR, cfg.DATASET.SCALE_FACTOR, cfg.DATASET.PROB_HALF_BODY)
    if dataset == "coco":
        assert augment == (45, 0.35, 0.3)
        assert (cfg.TEST.OKS_THRE, cfg.TEST.IN_VIS_THRE, cfg.TEST.IMAGE_THRE) == (0.9, 0.2, 0.0)
        assert cfg.TEST.COCO_BBOX_FILE.endswith("COCO_val2017_detections_AP_H_56_person.json")
    elif dataset == "mpii":
        assert augment == (30, 0.25, -1.0)
        assert (cfg.DATASET.TRAIN_SET, cfg.DATASET.TEST_SET) == ("train", "valid")
    else:  # the other keypoint sets: COCO's augmentation (no half-body crop for one hand per crop)
        assert augment == (45, 0.35, -1.0 if dataset == "onehand10k" else 0.3)


def test_tiny_config_paths_point_at_the_fixture():
    cfg = tiny("DATA_DIR", str(REPO))
    for split in ("train", "test"):
        paths = resolve_dataset_paths(cfg, split)
        assert Path(paths["ann_file"]).is_file() and Path(paths["image_dir"]).is_dir()
        assert (Path(paths["image_dir"]) / "000000000785.jpg").is_file()
    assert (REPO / cfg.TEST.COCO_BBOX_FILE).is_file()


# ------------------------------------------------------------------------------------------------
# Official and DarkPose YAMLs load unchanged
# ------------------------------------------------------------------------------------------------
# Every key of the official tree, in the official layout (values: the official W32 256x192 yaml where it
# sets them, otherwise non-default values so the test sees that each one is merged).
OFFICIAL_ALL_KEYS = """\
AUTO_RESUME: true
CUDNN:
  BENCHMARK: true
  DETERMINISTIC: false
  ENABLED: true
DATA_DIR: ''
GPUS: (0,1,2,3)
OUTPUT_DIR: 'output'
LOG_DIR: 'log'
WORKERS: 24
PRINT_FREQ: 100
PIN_MEMORY: false
RANK: 0
DATASET:
  COLOR_RGB: true
  DATASET: 'coco'
  DATA_FORMAT: jpg
  FLIP: true
  HYBRID_JOINTS_TYPE: ''
  SELECT_DATA: false
  NUM_JOINTS_HALF_BODY: 8
  PROB_HALF_BODY: 0.3
  ROOT: 'data/coco/'
  ROT_FACTOR: 45
  SCALE_FACTOR: 0.35
  TEST_SET: 'val2017'
  TRAIN_SET: 'train2017'
MODEL:
  INIT_WEIGHTS: true
  NAME: pose_hrnet
  NUM_JOINTS: 17
  PRETRAINED: 'models/pytorch/imagenet/hrnet_w32-36af842e.pth'
  TAG_PER_JOINT: true
  TARGET_TYPE: gaussian
  IMAGE_SIZE:
  - 192
  - 256
  HEATMAP_SIZE:
  - 48
  - 64
  SIGMA: 2
""" + W32_EXTRA + """\
LOSS:
  USE_OHKM: true
  TOPK: 8
  USE_TARGET_WEIGHT: true
  USE_DIFFERENT_JOINTS_WEIGHT: true
TRAIN:
  BATCH_SIZE_PER_GPU: 32
  SHUFFLE: true
  BEGIN_EPOCH: 0
  END_EPOCH: 210
  OPTIMIZER: adam
  LR: 0.001
  LR_FACTOR: 0.1
  LR_STEP:
  - 170
  - 200
  WD: 0.0001
  GAMMA1: 0.99
  GAMMA2: 0.0
  MOMENTUM: 0.9
  NESTEROV: false
  RESUME: true
  CHECKPOINT: 'output/checkpoint.pth'
TEST:
  BATCH_SIZE_PER_GPU: 32
  COCO_BBOX_FILE: 'data/coco/person_detection_results/COCO_val2017_detections_AP_H_56_person.json'
  BBOX_THRE: 1.0
  IMAGE_THRE: 0.0
  IN_VIS_THRE: 0.2
  MODEL_FILE: ''
  NMS_THRE: 1.0
  OKS_THRE: 0.9
  SOFT_NMS: true
  USE_GT_BBOX: true
  FLIP_TEST: true
  POST_PROCESS: true
  SHIFT_HEATMAP: true
DEBUG:
  DEBUG: true
  SAVE_BATCH_IMAGES_GT: true
  SAVE_BATCH_IMAGES_PRED: true
  SAVE_HEATMAPS_GT: true
  SAVE_HEATMAPS_PRED: true
"""


def test_official_yaml_with_every_official_key_loads_unchanged(tmp_path):
    path = write(tmp_path, OFFICIAL_ALL_KEYS, "w32_256x192_adam_lr1e-3.yaml")
    cfg = load_config(path)
    expected = flatten(yaml.safe_load(OFFICIAL_ALL_KEYS))
    expected.pop("MODEL.EXTRA")
    assert set(expected) == set(OFFICIAL_DEFAULTS)  # the text really holds every official key
    flat = flatten(cfg)
    for key, value in expected.items():
        if key == "GPUS":
            assert flat[key] == (0, 1, 2, 3)
        else:
            assert flat[key] == value, key
    assert cfg.MODEL.EXTRA.STAGE4.NUM_CHANNELS == [32, 64, 128, 256]
    assert cfg.MODEL.EXTRA.STAGE3.NUM_MODULES == 4
    assert cfg.LOSS.USE_OHKM and cfg.TEST.SOFT_NMS and cfg.TRAIN.RESUME and not cfg.PIN_MEMORY


def test_shipped_w32_config_is_the_official_file(tmp_path):
    """configs/coco_hrnet_w32_256x192.yaml and the official file give the same config."""
    official = load_config(write(tmp_path, OFFICIAL_ALL_KEYS))
    shipped = load_config(REPO / "configs" / "coco_hrnet_w32_256x192.yaml")
    differ = {k for k, v in flatten(official).items() if flatten(shipped)[k] != v}
    # the all-keys text sets these five to non-default values on purpose
    assert differ == {"PIN_MEMORY", "LOSS.USE_OHKM", "LOSS.USE_DIFFERENT_JOINTS_WEIGHT", "TRAIN.RESUME",
                      "TRAIN.CHECKPOINT", "TEST.SOFT_NMS"}


DARKPOSE_128x96 = OFFICIAL_ALL_KEYS.replace("GPUS: (0,1,2,3)", "GPUS: (0,1)") \
    .replace("  - 192\n  - 256\n", "  - 96\n  - 128\n").replace("  - 48\n  - 64\n", "  - 24\n  - 32\n") \
    .replace("SIGMA: 2", "SIGMA: 1").replace("  SHIFT_HEATMAP: true\n", "  BLUR_KERNEL: 3\n")


def test_darkpose_yaml_with_blur_kernel_and_without_shift_heatmap_loads(tmp_path):
    assert "SHIFT_HEATMAP" not in DARKPOSE_128x96 and "BLUR_KERNEL: 3" in DARKPOSE_128x96
    cfg = load_config(write(tmp_path, DARKPOSE_128x96, "w32_128x96_adam_lr1e-3.yaml"))
    assert cfg.TEST.BLUR_KERNEL == 3
    assert cfg.TEST.SHIFT_HEATMAP is False  # DarkPose behaviour: no one-pixel shift
    assert cfg.MODEL.SIGMA == 1.0 and cfg.GPUS == (0, 1)
    assert cfg.MODEL.IMAGE_SIZE == [96, 128] and cfg.MODEL.HEATMAP_SIZE == [24, 32]


def test_arch_preset_replaces_stages(tmp_path):
    text = "MODEL:\n  ARCH: hrnet_w48\n  NUM_JOINTS: 16\n"
    cfg = load_config(write(tmp_path, text))
    assert cfg.MODEL.ARCH == "hrnet_w48" and "STAGE2" not in cfg.MODEL.EXTRA
    with pytest.raises(ConfigError, match=r"MODEL\.EXTRA: no STAGE2.*MODEL\.ARCH"):
        load_config(write(tmp_path, "MODEL:\n  NUM_JOINTS: 16\n"))
    partial = "MODEL:\n  NUM_JOINTS: 16\n  EXTRA:\n    STAGE2: {NUM_MODULES: 1}\n"
    with pytest.raises(ConfigError, match=r"MODEL\.EXTRA: missing STAGE3, STAGE4"):
        load_config(write(tmp_path, partial))
    with pytest.raises(ConfigError, match=r"MODEL\.ARCH: got int"):
        load_config(write(tmp_path, text.replace("hrnet_w48", "48")))


# ------------------------------------------------------------------------------------------------
# Overrides
# ------------------------------------------------------------------------------------------------
def test_overrides_merge_with_yacs_literal_rules():
    cfg = tiny("TRAIN.LR", "0.0005", "TEST.USE_GT_BBOX", "False", "GPUS", "(0,1)", "MODEL.SIGMA", "3",
               "TRAIN.LR_STEP", "[1]", "MODEL.EXTRA.STAGE2.NUM_CHANNELS", "[16, 32]",
               "DATASET.TEST_SET", "2017", "TEST.DECODER", "dark")
    assert cfg.TRAIN.LR == 0.0005 and cfg.TEST.USE_GT_BBOX is False and cfg.GPUS == (0, 1)
    assert cfg.MODEL.SIGMA == 3.0 and isinstance(cfg.MODEL.SIGMA, float)  # int widened to float
    assert cfg.MODEL.EXTRA.STAGE2.NUM_CHANNELS == [16, 32]
    assert cfg.DATASET.TEST_SET == "2017"  # a string key keeps the string
    assert decoder_name(cfg) == "dark"
    assert tiny("TRAIN.LR", 0.01).TRAIN.LR == 0.01  # python values pass through


def test_override_unknown_key_names_the_override():
    with pytest.raises(ConfigError, match=r"^override TRAIN\.LRR: unknown config key TRAIN\.LRR.*mean LR"):
        tiny("TRAIN.LRR", "0.1")
    with pytest.raises(ConfigError, match=r"override FOO\.BAR: unknown config key"):
        tiny("FOO.BAR", "1")
    with pytest.raises(ConfigError, match=r"override MODEL\.EXTRA\.STAGE9\.X: unknown config key"):
        tiny("MODEL.EXTRA.STAGE9.X", "1")
    with pytest.raises(ConfigError, match=r"override TRAIN: TRAIN is a section"):
        tiny("TRAIN", "1")


def test_override_wrong_type_and_odd_length():
    with pytest.raises(ConfigError, match=r"override TRAIN\.END_EPOCH: got str 'many'; expected an integer"):
        tiny("TRAIN.END_EPOCH", "many")
    with pytest.raises(ConfigError, match=r"override TEST\.FLIP_TEST: got int 1; expected true or false"):
        tiny("TEST.FLIP_TEST", "1")
    with pytest.raises(ConfigError, match=r"override MODEL\.IMAGE_SIZE\[1\]: got float 128\.5"):
        tiny("MODEL.IMAGE_SIZE", "[96, 128.5]")
    with pytest.raises(ConfigError, match=r"overrides: 3 items .*expected KEY VALUE pairs"):
        tiny("TRAIN.LR", "0.1", "TRAIN.WD")


# ------------------------------------------------------------------------------------------------
# File errors
# ------------------------------------------------------------------------------------------------
def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: config file not found"):
        load_config(path)


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, "TRAIN:\n  LR: 0.1\n   WD: [1, 2\n", "broken.yaml")
    with pytest.raises(ConfigError, match=r"broken\.yaml: YAML syntax error at line \d+, column \d+") as e:
        load_config(path)
    assert "\n" not in str(e.value)


def test_unknown_key_names_file_and_key(tmp_path):
    path = write(tmp_path, "TRAIN:\n  LR_STEPS: [1, 2]\n", "typo.yaml")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    message = str(e.value)
    assert str(path) in message and "TRAIN.LR_STEPS" in message and "did you mean LR_STEP" in message
    assert "\n" not in message
    with pytest.raises(ConfigError, match=r"unknown config key NOT_A_SECTION"):
        load_config(write(tmp_path, "NOT_A_SECTION:\n  A: 1\n"))


def test_wrong_type_names_file_key_and_types(tmp_path):
    path = write(tmp_path, "TRAIN:\n  LR: fast\n", "types.yaml")
    with pytest.raises(ConfigError, match=r"types\.yaml: TRAIN\.LR: got str 'fast'; expected a number"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"exp\.yaml: TRAIN is a str \('fast'\); expected a section"):
        load_config(write(tmp_path, "TRAIN: fast\n"))
    with pytest.raises(ConfigError, match=r"TEST\.MODEL_FILE: got NoneType None; expected a string"):
        load_config(write(tmp_path, "TEST:\n  MODEL_FILE:\n"))
    with pytest.raises(ConfigError, match=r"top level is a list"):
        load_config(write(tmp_path, "- 1\n- 2\n"))


def test_stage_keys_are_checked_although_extra_is_open(tmp_path):
    text = OFFICIAL_ALL_KEYS.replace("NUM_CHANNELS: [32, 64],", "NUM_CHANELS: [32, 64],")
    with pytest.raises(ConfigError, match=r"MODEL\.EXTRA\.STAGE2\.NUM_CHANELS: unknown key"):
        load_config(write(tmp_path, text))


# ------------------------------------------------------------------------------------------------
# Invariants
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("overrides, key", [
    (["MODEL.HEATMAP_SIZE", "[24, 24]"], "MODEL.HEATMAP_SIZE"),               # stride differs for W and H
    (["MODEL.HEATMAP_SIZE", "[48, 64]"], "MODEL.HEATMAP_SIZE"),               # stride 2, not 4
    (["MODEL.IMAGE_SIZE", "[48, 64]", "MODEL.HEATMAP_SIZE", "[12, 16]"], "MODEL.IMAGE_SIZE"),  # 48 % 32
    (["MODEL.IMAGE_SIZE", "[96]"], "MODEL.IMAGE_SIZE"),
    (["MODEL.HEATMAP_SIZE", "[0, 32]"], "MODEL.HEATMAP_SIZE"),
    (["MODEL.SIGMA", "0"], "MODEL.SIGMA"),
    (["MODEL.NUM_JOINTS", "16"], "MODEL.NUM_JOINTS"),                         # coco has 17
    (["DATASET.DATASET", "mpii"], "MODEL.NUM_JOINTS"),                        # mpii has 16
    (["MODEL.NAME", "pose_resnet"], "MODEL.NAME"),
    (["MODEL.EXTRA.FINAL_CONV_KERNEL", "2"], "MODEL.EXTRA.FINAL_CONV_KERNEL"),
    (["MODEL.EXTRA.STAGE3.NUM_BRANCHES", "2"], "MODEL.EXTRA.STAGE3.NUM_BRANCHES"),
    (["MODEL.EXTRA.STAGE3.NUM_CHANNELS", "[8, 16]"], "MODEL.EXTRA.STAGE3.NUM_CHANNELS"),
    (["MODEL.EXTRA.STAGE4.NUM_BLOCKS", "[1, 1, 1]"], "MODEL.EXTRA.STAGE4.NUM_BLOCKS"),
    (["MODEL.EXTRA.STAGE2.BLOCK", "RESNEXT"], "MODEL.EXTRA.STAGE2.BLOCK"),
    (["MODEL.EXTRA.STAGE2.FUSE_METHOD", "CAT"], "MODEL.EXTRA.STAGE2.FUSE_METHOD"),
    (["MODEL.EXTRA.STAGE2.NUM_MODULES", "0"], "MODEL.EXTRA.STAGE2.NUM_MODULES"),
    (["TRAIN.LR_STEP", "[2, 1]"], "TRAIN.LR_STEP"),
    (["TRAIN.LR_STEP", "[1, 1]"], "TRAIN.LR_STEP"),
    (["TRAIN.BATCH_SIZE_PER_GPU", "0"], "TRAIN.BATCH_SIZE_PER_GPU"),
    (["TEST.BATCH_SIZE_PER_GPU", "-1"], "TEST.BATCH_SIZE_PER_GPU"),
    (["TRAIN.END_EPOCH", "0"], "TRAIN.END_EPOCH"),
    (["TRAIN.OPTIMIZER", "rmsprop"], "TRAIN.OPTIMIZER"),
    (["TRAIN.AMP_DTYPE", "fp8"], "TRAIN.AMP_DTYPE"),
    (["TRAIN.WARMUP_FACTOR", "0.0"], "TRAIN.WARMUP_FACTOR"),
    (["TEST.DECODER", "argmax"], "TEST.DECODER"),
    (["TEST.BACKEND", "tensorrt"], "TEST.BACKEND"),
    (["TEST.BLUR_KERNEL", "4"], "TEST.BLUR_KERNEL"),
    (["DATASET.HALF_BODY_DRAW", "randn"], "DATASET.HALF_BODY_DRAW"),
    (["TRAIN.LR_SCHEDULE_STEP", "before"], "TRAIN.LR_SCHEDULE_STEP"),
    (["DATASET.SCALE_FACTOR", "1.0"], "DATASET.SCALE_FACTOR"),                # jitter could reach scale 0
    (["TEST.OKS_THRE", "1.5"], "TEST.OKS_THRE"),
    (["TEST.IN_VIS_THRE", "-0.1"], "TEST.IN_VIS_THRE"),
    (["LOSS.USE_OHKM", "True", "LOSS.TOPK", "18"], "LOSS.TOPK"),
    (["WORKERS", "-1"], "WORKERS"),
])
def test_invariant_violations_name_the_key(overrides, key):
    with pytest.raises(ConfigError) as e:
        tiny(*overrides)
    message = str(e.value)
    assert message.startswith(f"{TINY} + overrides: {key}: "), message
    assert "expected" in message and "\n" not in message


def test_valid_variants_pass():
    cfg = tiny("MODEL.IMAGE_SIZE", "[192, 256]", "MODEL.HEATMAP_SIZE", "[48, 64]", "MODEL.SIGMA", "1.5",
               "MODEL.EXTRA.STAGE2.BLOCK", "BOTTLENECK", "DATASET.DATASET", "coco_format", "MODEL.NUM_JOINTS", "5",
               "DATASET.KEYPOINTS", "tests/data/keypoints/hand5.yaml",
               "LOSS.TOPK", "5", "DATASET.HALF_BODY_DRAW", "official", "TEST.BACKEND", "onnxruntime",
               "TRAIN.AMP", "True", "TRAIN.AMP_DTYPE", "fp16")
    assert cfg.MODEL.SIGMA == 1.5 and cfg.DATASET.HALF_BODY_DRAW == "official"


def test_loaded_config_is_frozen():
    cfg = tiny()
    with pytest.raises(AttributeError):
        cfg.TRAIN.LR = 1.0
    with pytest.raises(AttributeError):
        cfg.MODEL.EXTRA.STAGE2.NUM_MODULES = 2
    with pytest.raises(AttributeError):
        cfg.NEW_KEY = 1


# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------
def test_resolve_dataset_paths_official_layouts_without_mutating_cfg():
    coco = load_config(REPO / "configs" / "coco_hrnet_w32_256x192.yaml")
    before = config_to_yaml(coco)
    assert resolve_dataset_paths(coco, "train") == {
        "ann_file": "data/coco/annotations/person_keypoints_train2017.json",
        "image_dir": "data/coco/images/train2017", "gt_valid_file": ""}
    test_ann = resolve_dataset_paths(coco, "test")["ann_file"]
    assert test_ann == "data/coco/annotations/person_keypoints_val2017.json"
    testdev = load_config(REPO / "configs" / "coco_hrnet_w32_256x192.yaml",
                          ["DATASET.TEST_SET", "test-dev2017", "DATA_DIR", "/datasets"])
    assert resolve_dataset_paths(testdev, "test") == {
        "ann_file": "/datasets/data/coco/annotations/image_info_test-dev2017.json",
        "image_dir": "/datasets/data/coco/images/test2017", "gt_valid_file": ""}
    assert config_to_yaml(coco) == before and coco.DATASET.ROOT == "data/coco/"

    mpii = load_config(REPO / "configs" / "mpii_hrnet_w32_256x256.yaml")
    assert resolve_dataset_paths(mpii, "train") == {
        "ann_file": "data/mpii/annot/train.json", "image_dir": "data/mpii/images",
        "gt_valid_file": "data/mpii/annot/gt_valid.mat"}
    assert resolve_dataset_paths(mpii, "test")["ann_file"] == "data/mpii/annot/valid.json"


def test_resolve_dataset_paths_explicit_keys_win():
    cfg = tiny("DATA_DIR", "/repo", "DATASET.TEST_IMAGE_DIR", "/abs/images",
               "DATASET.GT_VALID_FILE", "gt.mat")
    assert resolve_dataset_paths(cfg, "test") == {
        "ann_file": "/repo/tests/data/coco/test_coco.json", "image_dir": "/abs/images",
        "gt_valid_file": "/repo/gt.mat"}
    custom = tiny("DATASET.DATASET", "crowdpose", "DATASET.TRAIN_ANN_FILE", "", "MODEL.NUM_JOINTS", "14")
    assert resolve_dataset_paths(custom, "test")["ann_file"] == "tests/data/coco/test_coco.json"
    with pytest.raises(ConfigError, match=r"DATASET\.TRAIN_ANN_FILE.*no official layout"):
        resolve_dataset_paths(custom, "train")
    with pytest.raises(ConfigError, match=r"split 'val'"):
        resolve_dataset_paths(cfg, "val")


def test_resolve_data_path():
    cfg = tiny("DATA_DIR", "/data")
    assert resolve_data_path(cfg, "models/w32.pth") == "/data/models/w32.pth"
    assert resolve_data_path(cfg, "/abs/w32.pth") == "/abs/w32.pth"
    assert resolve_data_path(cfg, "") == ""
    assert resolve_data_path(tiny(), "models/w32.pth") == "models/w32.pth"


def test_decoder_name_derivation():
    assert decoder_name(tiny()) == "quarter"
    assert decoder_name(tiny("TEST.POST_PROCESS", "False")) == "none"
    assert decoder_name(get_default_config()) == "none"  # official default POST_PROCESS False
    for name in ("none", "quarter", "dark", "udp"):
        assert decoder_name(tiny("TEST.DECODER", name, "TEST.POST_PROCESS", "False")) == name


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_yaml_round_trip(path):
    cfg = load_config(path, ["TEST.DECODER", "udp"])
    text = config_to_yaml(cfg)
    back = config_from_yaml_text(text, source="checkpoint")
    assert back == cfg and back.is_frozen()
    assert back.GPUS == cfg.GPUS and isinstance(back.GPUS, tuple)
    assert config_to_yaml(back) == text
    assert text.index("OUTPUT_DIR") < text.index("MODEL:") < text.index("DEBUG:")  # schema order kept


def test_config_from_yaml_text_reports_its_source():
    text = config_to_yaml(tiny()).replace("TRAIN:\n", "TRAIN:\n  OLD_KEY: 1\n")
    with pytest.raises(ConfigError, match=r"^checkpoint\.pth: unknown config key TRAIN\.OLD_KEY"):
        config_from_yaml_text(text, source="checkpoint.pth")
