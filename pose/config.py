"""The configuration schema (yacs) and the only code that reads a whole config file.

The tree is the official HRNet one (``lib/config/default.py`` of leoxiaobin/deep-high-resolution-net
.pytorch) plus the keys DarkPose adds and a few project keys, so the official and DarkPose experiment
YAMLs load unchanged. Official keys keep the official meaning *and the official code default*: an
official YAML therefore produces the same values here as in the official code. The one deliberate
exception is ``AUTO_RESUME`` (True here, False in the official tree; every official YAML sets it true
anyway). Project keys are marked "Project key" in their comment.

Usage::

    cfg = load_config("configs/coco_hrnet_w32_256x192.yaml", ["TRAIN.LR", "0.0005"])   # frozen
    cfg = get_default_config()                                                        # fresh, mutable

There is no global config: ``_C`` below is private and only ever cloned. Entry points hold the whole
tree and hand components their own sub-node or plain values. Derived values (dataset paths, the
decoder) are computed by the pure helpers at the end of this module, never written back into the
config (the official ``update_config`` joined ``DATA_DIR`` onto three keys in place).

Sizes are ``(W, H)`` lists, as in the official YAMLs (``IMAGE_SIZE: [192, 256]`` = width 192, height
256). Paths are relative to the working directory unless ``DATA_DIR`` is set (see
:func:`resolve_data_path`).
"""
import ast
import difflib
import os
from typing import Any, Dict, Iterable, Optional, Sequence

import yaml
from yacs.config import CfgNode as CN

from pose.errors import ConfigError
from pose.keypoints import KEYPOINT_SPECS

# ImageNet-checkpoint key prefixes the official YAMLs copy into the pose net (MODEL.EXTRA.PRETRAINED_LAYERS).
_OFFICIAL_PRETRAINED_LAYERS = ["conv1", "bn1", "conv2", "bn2", "layer1", "transition1", "stage2",
                               "transition2", "stage3", "transition3", "stage4"]

_C = CN()

# ------------------------------------------------------------------------------------------------
# Top level: run bookkeeping
# ------------------------------------------------------------------------------------------------
# Folder for checkpoints, logs of metrics, predictions and the config dump of a run ('' = the trainer's
# own default). Official layout: OUTPUT_DIR/<dataset>/<model>/<yaml name>/.
_C.OUTPUT_DIR = ""
# Folder for TensorBoard event files ('' = none / trainer default).
_C.LOG_DIR = ""
# Prefix joined onto relative data paths: DATASET.ROOT, the DATASET.*_FILE/*_DIR keys, MODEL.PRETRAINED
# and TEST.MODEL_FILE (official update_config joined it onto ROOT, PRETRAINED and MODEL_FILE). Resolved
# by resolve_data_path / resolve_dataset_paths; never written back into the config.
_C.DATA_DIR = ""
# GPU ids. The official code wraps the model in DataParallel over these ids, so the global batch is
# TRAIN.BATCH_SIZE_PER_GPU * len(GPUS). A YAML may write the tuple as the string "(0,1,2,3)".
_C.GPUS = (0,)
# DataLoader worker processes (0 = load in the main process).
_C.WORKERS = 4
# Log training/validation progress every PRINT_FREQ iterations.
_C.PRINT_FREQ = 20
# Resume from OUTPUT_DIR's latest checkpoint when one exists. Project default True (the issue asks for
# resuming on by default); the official default is False, but every official YAML sets it true.
_C.AUTO_RESUME = True
# DataLoader pin_memory (page-locked host memory for faster host->GPU copies).
_C.PIN_MEMORY = True
# Process rank for distributed runs (official: declared, only used by the distributed launcher).
_C.RANK = 0

# ------------------------------------------------------------------------------------------------
# CUDNN: torch.backends.cudnn switches (ignored on CPU)
# ------------------------------------------------------------------------------------------------
_C.CUDNN = CN()
# torch.backends.cudnn.benchmark: autotune conv algorithms for fixed input sizes (faster, not deterministic).
_C.CUDNN.BENCHMARK = True
# torch.backends.cudnn.deterministic: force deterministic conv algorithms.
_C.CUDNN.DETERMINISTIC = False
# torch.backends.cudnn.enabled.
_C.CUDNN.ENABLED = True

# ------------------------------------------------------------------------------------------------
# MODEL
# ------------------------------------------------------------------------------------------------
_C.MODEL = CN()
# Network family. Only 'pose_hrnet' is implemented (official also had 'pose_resnet').
_C.MODEL.NAME = "pose_hrnet"
# Official: run init_weights (normal(0, 0.001) convs, BN 1/0) and then load MODEL.PRETRAINED if it exists.
_C.MODEL.INIT_WEIGHTS = True
# ImageNet classification checkpoint to initialise the backbone from ('' = random init). Relative paths
# are joined onto DATA_DIR. Official file names: models/pytorch/imagenet/hrnet_w32-36af842e.pth and
# hrnet_w48-8ef0771d.pth.
_C.MODEL.PRETRAINED = ""
# Number of keypoints K = output heatmap channels. Must match the dataset's keypoint spec (coco 17, mpii 16).
_C.MODEL.NUM_JOINTS = 17
# Legacy associative-embedding flag of the official tree; unused by pose_hrnet.
_C.MODEL.TAG_PER_JOINT = True
# Training target: 'gaussian' heatmaps (the only type the official code implements).
_C.MODEL.TARGET_TYPE = "gaussian"
# Network input (crop) size [W, H] in pixels. HRNet needs W and H divisible by 32: branch b runs at
# 1/(4*2^b) of the input and the fuse layers upsample by exact factors of 2 (nearest), so 1/32 must be whole.
_C.MODEL.IMAGE_SIZE = [256, 256]
# Output heatmap size [W, H] in heatmap pixels; must equal IMAGE_SIZE / 4 (the head runs at 1/4 resolution).
_C.MODEL.HEATMAP_SIZE = [64, 64]
# Standard deviation of the target Gaussian, in heatmap pixels (official: 2 at 64x48 and 64x64, 3 at 96x72).
# Float here so 1.5 is allowed; integer YAML values such as `SIGMA: 2` are widened to float on load.
_C.MODEL.SIGMA = 2.0
# Project key. Architecture preset name (e.g. 'hrnet_w32', 'hrnet_w48'; the table lives in pose.models).
# '' = take the stages from MODEL.EXTRA. If set and MODEL.EXTRA has no STAGE2, the model builder fills
# STAGE2..4 from the preset; if MODEL.EXTRA has stages, they win.
_C.MODEL.ARCH = ""
# Architecture details, free-form like the official tree (new keys allowed). For pose_hrnet the official
# YAMLs set, for n in 2, 3, 4:
#   STAGEn.NUM_MODULES   int        number of HighResolutionModules (exchange units) in the stage
#   STAGEn.NUM_BRANCHES  int        parallel resolutions; must be n
#   STAGEn.BLOCK         str        residual block of every branch: BASIC or BOTTLENECK
#   STAGEn.NUM_BLOCKS    [int] * n  blocks per branch
#   STAGEn.NUM_CHANNELS  [int] * n  block width per branch, highest resolution first (W32: 32, 64, 128, 256)
#   STAGEn.FUSE_METHOD   str        'SUM' (the only method; the official code always sums)
# Either all three stages are given or none (then MODEL.ARCH must name a preset).
_C.MODEL.EXTRA = CN(new_allowed=True)
# Prefixes of ImageNet-checkpoint keys copied into the pose net ('*' as first entry = all keys).
_C.MODEL.EXTRA.PRETRAINED_LAYERS = list(_OFFICIAL_PRETRAINED_LAYERS)
# Kernel of the final 1x1 (or 3x3, padding 1) conv producing the heatmaps: 1 or 3.
_C.MODEL.EXTRA.FINAL_CONV_KERNEL = 1

# ------------------------------------------------------------------------------------------------
# LOSS
# ------------------------------------------------------------------------------------------------
_C.LOSS = CN()
# Online hard keypoint mining: per sample, average only the TOPK largest per-joint losses.
# Note: the official tools/train.py never reads this key (it always builds JointsMSELoss).
_C.LOSS.USE_OHKM = False
# Number of joints kept per sample by OHKM.
_C.LOSS.TOPK = 8
# Multiply predictions and targets by the per-joint target weight (visibility) before the MSE.
_C.LOSS.USE_TARGET_WEIGHT = True
# Multiply the target weight by the spec's joint weights (COCO: 1.2 elbows/knees, 1.5 wrists/ankles).
_C.LOSS.USE_DIFFERENT_JOINTS_WEIGHT = False

# ------------------------------------------------------------------------------------------------
# DATASET
# ------------------------------------------------------------------------------------------------
_C.DATASET = CN()
# Dataset root folder (joined onto DATA_DIR). The official layouts below are derived from it.
_C.DATASET.ROOT = ""
# Dataset family: 'coco' or 'mpii' (picks the keypoint spec and the official folder layout).
_C.DATASET.DATASET = "mpii"
# Training split name (COCO 'train2017', MPII 'train').
_C.DATASET.TRAIN_SET = "train"
# Evaluation split name (COCO 'val2017' or 'test-dev2017', MPII 'valid').
_C.DATASET.TEST_SET = "valid"
# Image container of the official loader: 'jpg' (files) or 'zip' (one archive per split).
_C.DATASET.DATA_FORMAT = "jpg"
# Legacy key of the official tree (unused by its COCO/MPII loaders).
_C.DATASET.HYBRID_JOINTS_TYPE = ""
# Official: drop training samples whose visible-joint centroid lies far from the box centre
# (JointsDataset.select_data). False in every official YAML.
_C.DATASET.SELECT_DATA = False
# Training augmentation: horizontal flip with probability 0.5 (swaps left/right joints).
_C.DATASET.FLIP = True
# Training augmentation: scale factor s = clip(N(0,1) * SCALE_FACTOR + 1, 1 - SF, 1 + SF) (unitless).
_C.DATASET.SCALE_FACTOR = 0.25
# Training augmentation: rotation r = clip(N(0,1) * ROT_FACTOR, -2RF, 2RF) in degrees, applied with
# probability 0.6 (COCO YAMLs 45, MPII 30).
_C.DATASET.ROT_FACTOR = 30
# Training augmentation: probability of the half-body crop (<= 0 disables it; COCO 0.3, MPII -1.0).
_C.DATASET.PROB_HALF_BODY = 0.0
# Half-body crop is tried only when MORE than this many joints are visible.
_C.DATASET.NUM_JOINTS_HALF_BODY = 8
# Convert images to RGB before cropping (official loader reads BGR; every official YAML sets true).
_C.DATASET.COLOR_RGB = False
# Project key. How the half-body crop picks the upper or the lower body:
#   'fair'     - a 50/50 choice (what the paper describes);
#   'official' - reproduce the official `np.random.randn() < 0.5` draw, which picks the upper body
#                with P = Phi(0.5) ~ 0.69.
_C.DATASET.HALF_BODY_DRAW = "fair"
# Project keys. Explicit paths (joined onto DATA_DIR when relative); '' = the official layout under ROOT:
#   COCO: ROOT/annotations/person_keypoints_{SET}.json (image_info_{SET}.json for test sets) and
#         ROOT/images/{SET}/ (ROOT/images/test2017/ for test sets);
#   MPII: ROOT/annot/{SET}.json and ROOT/images/.
# See resolve_dataset_paths().
_C.DATASET.TRAIN_ANN_FILE = ""
_C.DATASET.TEST_ANN_FILE = ""
_C.DATASET.TRAIN_IMAGE_DIR = ""
_C.DATASET.TEST_IMAGE_DIR = ""
# Project key. MPII PCKh ground truth (.mat with pos_gt_src, jnt_missing, headboxes_src);
# '' = ROOT/annot/gt_valid.mat for MPII (unused for COCO).
_C.DATASET.GT_VALID_FILE = ""

# ------------------------------------------------------------------------------------------------
# TRAIN
# ------------------------------------------------------------------------------------------------
_C.TRAIN = CN()
# Multiplicative learning-rate decay at each LR_STEP milestone (MultiStepLR gamma).
_C.TRAIN.LR_FACTOR = 0.1
# Milestones in epochs (strictly increasing). The official loop calls scheduler.step() at the start of
# each epoch, so the lr actually drops at 0-based epochs 169 and 199 for [170, 200].
_C.TRAIN.LR_STEP = [90, 110]
# Base learning rate (per optimiser step, for the global batch).
_C.TRAIN.LR = 0.001
# 'adam' (official YAMLs; no weight decay) or 'sgd' (uses MOMENTUM, WD, NESTEROV).
_C.TRAIN.OPTIMIZER = "adam"
# SGD momentum.
_C.TRAIN.MOMENTUM = 0.9
# SGD weight decay (the official code ignores it for Adam).
_C.TRAIN.WD = 0.0001
# SGD Nesterov momentum.
_C.TRAIN.NESTEROV = False
# Declared by the official tree, read by no official code.
_C.TRAIN.GAMMA1 = 0.99
_C.TRAIN.GAMMA2 = 0.0
# First epoch index (0-based) and the epoch count to stop at (exclusive).
_C.TRAIN.BEGIN_EPOCH = 0
_C.TRAIN.END_EPOCH = 140
# Declared by the official tree; official train.py resumes through AUTO_RESUME instead and never
# reads these.
_C.TRAIN.RESUME = False
_C.TRAIN.CHECKPOINT = ""
# Training samples per GPU per iteration (global batch = this * len(GPUS)).
_C.TRAIN.BATCH_SIZE_PER_GPU = 32
# Shuffle the training set every epoch.
_C.TRAIN.SHUFFLE = True
# Project key. Mixed precision (torch.autocast) for training.
_C.TRAIN.AMP = False
# Project key. Autocast dtype when AMP is on: 'bf16' or 'fp16' (fp16 also needs a GradScaler).
_C.TRAIN.AMP_DTYPE = "bf16"
# Project key. Use torch.channels_last memory format for the model and inputs.
_C.TRAIN.CHANNELS_LAST = False
# Project key. Convert BatchNorm to SyncBatchNorm (distributed training only).
_C.TRAIN.SYNC_BN = False
# Project key. Linear lr warm-up length in iterations (0 = none) ...
_C.TRAIN.WARMUP_ITERS = 0
# ... starting from LR * WARMUP_FACTOR (unitless, in (0, 1]).
_C.TRAIN.WARMUP_FACTOR = 0.001
# Project key. Also save a checkpoint every N iterations (0 = only at the end of each epoch).
_C.TRAIN.CHECKPOINT_INTERVAL_ITERS = 0
# Project key. Validate every N epochs (0 = never during training).
_C.TRAIN.VAL_INTERVAL = 1
# Project key. Seed for python, numpy and torch generators (and the data-loader workers).
_C.TRAIN.SEED = 0
# Project key. torch.use_deterministic_algorithms(True) and deterministic data order (slower).
_C.TRAIN.DETERMINISTIC = False
# Project key. Stop each epoch after this many iterations (0 = the full epoch); for smoke runs.
_C.TRAIN.MAX_ITERS_PER_EPOCH = 0

# ------------------------------------------------------------------------------------------------
# TEST
# ------------------------------------------------------------------------------------------------
_C.TEST = CN()
# Evaluation samples per GPU per forward.
_C.TEST.BATCH_SIZE_PER_GPU = 32
# Average the heatmaps of the image and of its horizontal mirror (flipped back, pairs swapped).
_C.TEST.FLIP_TEST = False
# Official quarter-pixel refinement of the argmax (x += 0.25 * sign of the neighbour difference).
# With TEST.DECODER '' this key picks the decoder: 'quarter' if True, else 'none'.
_C.TEST.POST_PROCESS = False
# Official flip-test quirk: shift the flipped-back heatmaps one pixel right (+x) before averaging.
# DarkPose removed this key; its YAMLs load with this default (False = no shift, DarkPose behaviour).
_C.TEST.SHIFT_HEATMAP = False
# Evaluate on ground-truth boxes (True) or on the detections in COCO_BBOX_FILE (False).
_C.TEST.USE_GT_BBOX = False
# Drop detected boxes with score < IMAGE_THRE (score in [0, 1]).
_C.TEST.IMAGE_THRE = 0.1
# Box NMS IoU threshold; declared but unused by the official pipeline (there is no box NMS).
_C.TEST.NMS_THRE = 0.6
# Use soft OKS-NMS (Gaussian decay, at most 20 poses per image) instead of greedy OKS-NMS.
_C.TEST.SOFT_NMS = False
# OKS-NMS: drop a pose whose OKS with a kept, higher-scoring pose is > OKS_THRE (in [0, 1]).
_C.TEST.OKS_THRE = 0.5
# Rescoring: pose score = box score * mean of keypoint scores > IN_VIS_THRE (in [0, 1]).
_C.TEST.IN_VIS_THRE = 0.0
# COCO-format person detection file used when USE_GT_BBOX is False (not joined onto DATA_DIR, as official).
_C.TEST.COCO_BBOX_FILE = ""
# Declared by the official tree; unused by its pipeline.
_C.TEST.BBOX_THRE = 1.0
# Pose-net weights to evaluate ('' = none). Relative paths are joined onto DATA_DIR.
_C.TEST.MODEL_FILE = ""
# DarkPose key: Gaussian kernel size (odd, heatmap pixels) of the DARK modulation (11; W32 128x96 uses 3).
_C.TEST.BLUR_KERNEL = 11
# Project key. Heatmap decoder: '' = derived from POST_PROCESS ('quarter' if True else 'none'), or one of
#   'none' (argmax), 'quarter' (official POST_PROCESS), 'dark' (DarkPose Taylor refinement),
#   'udp' (unbiased data processing, (size - 1) pixel convention). See decoder_name().
_C.TEST.DECODER = ""
# Project key. Inference backend of the predictor: 'torch' (plain module: the official numerics),
#   'torch-fast' (BatchNorm folded + channels_last), 'onnxruntime' (exported once, cached beside the
#   weights) or 'auto' (onnxruntime on CPU when installed, else torch-fast). See pose.backends.
_C.TEST.BACKEND = "torch"

# ------------------------------------------------------------------------------------------------
# DEBUG: image dumps written next to the outputs during training/validation
# ------------------------------------------------------------------------------------------------
_C.DEBUG = CN()
# Master switch for the dumps below.
_C.DEBUG.DEBUG = False
# Save batch images with ground-truth / predicted joints drawn.
_C.DEBUG.SAVE_BATCH_IMAGES_GT = False
_C.DEBUG.SAVE_BATCH_IMAGES_PRED = False
# Save target / predicted heatmaps as images.
_C.DEBUG.SAVE_HEATMAPS_GT = False
_C.DEBUG.SAVE_HEATMAPS_PRED = False


# ================================================================================================
# Public API
# ================================================================================================
DECODERS = ("none", "quarter", "dark", "udp")
BACKENDS = ("torch", "torch-fast", "onnxruntime", "auto")
HALF_BODY_DRAWS = ("fair", "official")
AMP_DTYPES = ("bf16", "fp16")
OPTIMIZERS = ("adam", "sgd")
BLOCKS = ("BASIC", "BOTTLENECK")
STAGE_KEYS = ("NUM_MODULES", "NUM_BRANCHES", "BLOCK", "NUM_BLOCKS", "NUM_CHANNELS", "FUSE_METHOD")
HEATMAP_STRIDE = 4  # input pixels per heatmap pixel: the HRNet head runs at 1/4 resolution
SIZE_DIVISOR = 32   # input W and H must be multiples of this (lowest branch runs at 1/32)


def get_default_config() -> CN:
    """A fresh, mutable copy of the defaults (mutating it never affects another copy)."""
    return _C.clone()


def load_config(path, overrides: Sequence = ()) -> CN:
    """Defaults <- YAML file <- ``KEY VALUE`` overrides, validated and frozen.

    Args:
        path: YAML file in the official HRNet layout (or a delta of it).
        overrides: flat list ``["TRAIN.LR", "0.0005", "TEST.FLIP_TEST", "False", ...]`` as given on a
            command line; string values are parsed as Python literals where possible (yacs rules).

    Raises:
        ConfigError: missing file, YAML syntax error, unknown key, wrong type, odd override list or a
            violated invariant; the one-line message names the file (or the override) and the key.
    """
    path = os.fspath(path)
    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found; expected a YAML file") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read config file ({type(e).__name__}); expected a readable "
                          "UTF-8 YAML file") from None
    return _build(text, path, overrides)


def config_from_yaml_text(text: str, source: str = "<yaml text>", overrides: Sequence = ()) -> CN:
    """Like :func:`load_config` for YAML text (e.g. the ``config_yaml`` stored in a checkpoint)."""
    return _build(text, source, overrides)


def config_to_yaml(cfg: CN) -> str:
    """The full config as YAML text in schema order; ``config_from_yaml_text`` reads it back equal."""
    return yaml.safe_dump(_to_plain(cfg), sort_keys=False, default_flow_style=None)


def validate_config(cfg: CN, source: str = "config") -> None:
    """Check the cross-field invariants of a merged config; ConfigError names ``source`` and the key."""
    _Validator(cfg, source).run()


def decoder_name(cfg: CN) -> str:
    """TEST.DECODER, or when it is '': 'quarter' if TEST.POST_PROCESS else 'none' (official behaviour)."""
    name = cfg.TEST.DECODER
    if name:
        return name
    return "quarter" if cfg.TEST.POST_PROCESS else "none"


def resolve_data_path(cfg: CN, path: str) -> str:
    """``path`` joined onto ``cfg.DATA_DIR`` when relative ('' stays '', absolute paths are unchanged)."""
    if not path:
        return ""
    return os.path.join(cfg.DATA_DIR, path) if cfg.DATA_DIR else path


def resolve_dataset_paths(cfg: CN, split: str) -> Dict[str, str]:
    """Annotation file, image folder and (MPII) PCKh ground truth of a split; ``cfg`` is not modified.

    Explicit ``DATASET.{TRAIN,TEST}_ANN_FILE`` / ``_IMAGE_DIR`` / ``GT_VALID_FILE`` win; empty ones follow the
    official layout under ``DATASET.ROOT`` (see the DATASET comments). Every relative result is joined onto
    ``DATA_DIR``.

    Args:
        cfg: a config (frozen or not).
        split: 'train' (uses DATASET.TRAIN_SET) or 'test' (uses DATASET.TEST_SET).

    Returns:
        ``{"ann_file": str, "image_dir": str, "gt_valid_file": str}``; ``gt_valid_file`` is '' for COCO
        unless set explicitly.
    """
    if split not in ("train", "test"):
        raise ConfigError(f"resolve_dataset_paths: split '{split}'; expected 'train' or 'test'")
    ds = cfg.DATASET
    prefix = split.upper()
    image_set = ds.TRAIN_SET if split == "train" else ds.TEST_SET
    ann_file = ds[f"{prefix}_ANN_FILE"]
    image_dir = ds[f"{prefix}_IMAGE_DIR"]
    gt_valid = ds.GT_VALID_FILE
    family = ds.DATASET.lower()
    if family == "coco":
        is_test = "test" in image_set  # official: test sets ship image_info_*.json and images/test2017
        if not ann_file:
            ann_prefix = "image_info" if is_test else "person_keypoints"
            ann_file = os.path.join(ds.ROOT, "annotations", f"{ann_prefix}_{image_set}.json")
        if not image_dir:
            image_dir = os.path.join(ds.ROOT, "images", "test2017" if is_test else image_set)
    elif family == "mpii":
        if not ann_file:
            ann_file = os.path.join(ds.ROOT, "annot", f"{image_set}.json")
        if not image_dir:
            image_dir = os.path.join(ds.ROOT, "images")
        if not gt_valid:
            gt_valid = os.path.join(ds.ROOT, "annot", "gt_valid.mat")
    elif not (ann_file and image_dir):
        raise ConfigError(f"DATASET.{prefix}_ANN_FILE / DATASET.{prefix}_IMAGE_DIR: empty, and dataset "
                          f"'{ds.DATASET}' has no official layout; expected explicit paths")
    return {
        "ann_file": resolve_data_path(cfg, ann_file),
        "image_dir": resolve_data_path(cfg, image_dir),
        "gt_valid_file": resolve_data_path(cfg, gt_valid),
    }


# ================================================================================================
# Merging: yacs semantics with file-and-key error messages
# ================================================================================================
def _build(text: str, source: str, overrides: Sequence) -> CN:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: YAML syntax error{_yaml_position(e)}: "
                          f"{_one_line(getattr(e, 'problem', None) or e)}; expected valid YAML") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: top level is a {type(data).__name__}; "
                          "expected a mapping of config keys")
    cfg = get_default_config()
    _merge_tree(cfg, data, source, "")
    overrides = list(overrides)
    if overrides:
        _merge_overrides(cfg, overrides)
        source = f"{source} + overrides"
    validate_config(cfg, source)
    cfg.freeze()
    return cfg


def _merge_tree(node: CN, data: dict, source: str, prefix: str) -> None:
    """Merge ``data`` into ``node`` in place with yacs semantics (unknown keys rejected except under a
    new_allowed node such as MODEL.EXTRA), type-checking and coercing every leaf (see :func:`_coerce`)."""
    for key, raw in data.items():
        full_key = f"{prefix}{key}"
        if not isinstance(key, str):
            raise ConfigError(f"{source}: key {full_key!r} is a {type(key).__name__}; expected a string key")
        value = _decode(raw)
        if key not in node:
            if not node.is_new_allowed():
                raise ConfigError(f"{source}: unknown config key {full_key}{_did_you_mean(key, node)}")
            # yacs: a new key takes the decoded value as is; a mapping becomes a plain (closed) node.
            node[key] = CN(_free_tree(value, source, full_key)) if isinstance(value, dict) else \
                _free_tree(value, source, full_key)
            continue
        current = node[key]
        if isinstance(current, CN):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {full_key} is a {type(value).__name__} ({value!r}); expected "
                                  f"a section with keys {sorted(current)}")
            _merge_tree(current, value, source, full_key + ".")
        else:
            node[key] = _coerce(value, current, raw, f"{source}: {full_key}")


def _free_tree(value: Any, source: str, full_key: str) -> Any:
    """A new value under a new_allowed node (MODEL.EXTRA): only yacs' valid leaf types are checked."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ConfigError(f"{source}: key {full_key}.{k!r} is a {type(k).__name__}; "
                                  "expected a string key")
            _free_tree(v, source, f"{full_key}.{k}")
        return value
    _check_leaf_type(value, f"{source}: {full_key}")
    return value


def _merge_overrides(cfg: CN, overrides: list) -> None:
    if len(overrides) % 2:
        raise ConfigError(f"overrides: {len(overrides)} items {overrides!r}; expected KEY VALUE pairs "
                          "(an even number of items)")
    for key, raw in zip(overrides[0::2], overrides[1::2]):
        where = f"override {key}"
        if not isinstance(key, str) or not key:
            raise ConfigError(f"{where}: key {key!r}; expected a dotted config key such as TRAIN.LR")
        node = cfg
        parts = key.split(".")
        for i, part in enumerate(parts):
            if not isinstance(node, CN) or part not in node:
                parent = ".".join(parts[:i]) or "top level"
                hint = _did_you_mean(part, node) if isinstance(node, CN) else ""
                raise ConfigError(f"{where}: unknown config key {key} (no '{part}' in {parent}){hint}")
            if i < len(parts) - 1:
                node = node[part]
        current = node[parts[-1]]
        if isinstance(current, CN):
            raise ConfigError(f"{where}: {key} is a section; expected a leaf key such as "
                              f"{key}.{next(iter(current), 'KEY')}")
        node[parts[-1]] = _coerce(_decode(raw), current, raw, where)


def _decode(raw: Any) -> Any:
    """yacs' rule: strings are parsed as Python literals when they are one ('(0,1)', '1e-3', 'True')."""
    if isinstance(raw, str):
        try:
            return ast.literal_eval(raw)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return raw
    return raw


def _coerce(value: Any, default: Any, raw: Any, where: str) -> Any:
    """``value`` converted to the type of ``default`` where that is lossless, else ConfigError.

    Beyond yacs (which allows only list <-> tuple and None): int -> float (``SIGMA: 2``), a string for a
    string key stays the raw string even if it parses as another literal, element types of lists follow
    the default's element type, and None is rejected (a None would only fail later, far from the file).
    """
    if isinstance(default, str) and isinstance(raw, str):
        return value if isinstance(value, str) else raw  # "'val2017'" -> val2017, but "2017" stays "2017"
    want = type(default)
    if isinstance(value, (list, tuple)) and isinstance(default, (list, tuple)):
        elem = _element_type(default)
        items = [_coerce_scalar(v, elem, f"{where}[{i}]") if elem else v for i, v in enumerate(value)]
        for i, v in enumerate(items):
            _check_leaf_type(v, f"{where}[{i}]")
        return want(items)
    return _coerce_scalar(value, want, where)


def _coerce_scalar(value: Any, want: type, where: str) -> Any:
    if type(value) is want:
        return value
    if want is float and type(value) is int:
        return float(value)
    raise ConfigError(f"{where}: got {type(value).__name__} {value!r}; expected {_type_name(want)}")


def _element_type(seq) -> Optional[type]:
    types = {type(v) for v in seq}
    return types.pop() if len(types) == 1 else None


def _check_leaf_type(value: Any, where: str) -> None:
    ok = (str, int, float, bool, list, tuple, type(None))
    if not isinstance(value, ok) or (isinstance(value, (list, tuple))
                                     and not all(isinstance(v, ok) for v in value)):
        raise ConfigError(f"{where}: value {value!r} of type {type(value).__name__}; expected a string, "
                          "number, boolean or list of them")


def _type_name(t: type) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string",
            list: "a list", tuple: "a list"}.get(t, t.__name__)


def _did_you_mean(key: str, node: CN) -> str:
    close = difflib.get_close_matches(str(key), [str(k) for k in node], n=1)
    return f"; did you mean {close[0]}?" if close else f"; expected one of {sorted(node)}"


def _yaml_position(e: Exception) -> str:
    mark = getattr(e, "problem_mark", None)
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def _one_line(msg: Any) -> str:
    return " ".join(str(msg).split())


def _to_plain(node: Any) -> Any:
    if isinstance(node, CN):
        return {k: _to_plain(v) for k, v in node.items()}
    if isinstance(node, tuple):
        return [_to_plain(v) for v in node]
    if isinstance(node, list):
        return [_to_plain(v) for v in node]
    return node


# ================================================================================================
# Cross-field invariants
# ================================================================================================
class _Validator:
    """Runs every invariant check in order; the first failure raises ConfigError(source: KEY: ...)."""

    def __init__(self, cfg: CN, source: str):
        self.cfg = cfg
        self.source = source

    def fail(self, key: str, msg: str):
        raise ConfigError(f"{self.source}: {key}: {msg}")

    def run(self) -> None:
        self.check_model()
        self.check_stages()
        self.check_dataset()
        self.check_loss()
        self.check_train()
        self.check_test()
        self.check_misc()

    # -- helpers ---------------------------------------------------------------------------------
    def int_at_least(self, key: str, lo: int) -> int:
        value = self.get(key)
        if type(value) is not int or value < lo:
            self.fail(key, f"got {value!r}; expected an integer >= {lo}")
        return value

    def in_range(self, key: str, lo: float, hi: float) -> None:
        value = self.get(key)
        if not lo <= value <= hi:
            self.fail(key, f"got {value!r}; expected a value in [{lo}, {hi}]")

    def one_of(self, key: str, choices: Iterable[str]) -> None:
        value = self.get(key)
        if value not in choices:
            self.fail(key, f"got {value!r}; expected one of {list(choices)}")

    def get(self, key: str) -> Any:
        node = self.cfg
        for part in key.split("."):
            node = node[part]
        return node

    def size(self, key: str):
        value = self.get(key)
        if (not isinstance(value, (list, tuple)) or len(value) != 2
                or not all(type(v) is int and v > 0 for v in value)):
            self.fail(key, f"got {value!r}; expected [W, H], two positive integers")
        return value

    # -- checks ----------------------------------------------------------------------------------
    def check_model(self) -> None:
        m = self.cfg.MODEL
        self.one_of("MODEL.NAME", ("pose_hrnet",))
        self.one_of("MODEL.TARGET_TYPE", ("gaussian",))
        image_w, image_h = self.size("MODEL.IMAGE_SIZE")
        hm_w, hm_h = self.size("MODEL.HEATMAP_SIZE")
        if image_w % SIZE_DIVISOR or image_h % SIZE_DIVISOR:
            self.fail("MODEL.IMAGE_SIZE", f"[{image_w}, {image_h}]; expected W and H divisible by "
                      f"{SIZE_DIVISOR} (HRNet's lowest branch runs at 1/32 and is upsampled by exact "
                      "factors of 2)")
        if (hm_w * HEATMAP_STRIDE, hm_h * HEATMAP_STRIDE) != (image_w, image_h):
            want = [image_w // HEATMAP_STRIDE, image_h // HEATMAP_STRIDE]
            self.fail("MODEL.HEATMAP_SIZE", f"[{hm_w}, {hm_h}] with IMAGE_SIZE [{image_w}, {image_h}]; "
                      f"expected IMAGE_SIZE / {HEATMAP_STRIDE} = {want} "
                      "(same stride for W and H; the head runs at 1/4 resolution)")
        if not m.SIGMA > 0:
            self.fail("MODEL.SIGMA", f"got {m.SIGMA!r}; expected a positive number of heatmap pixels")
        self.int_at_least("MODEL.NUM_JOINTS", 1)
        kernel = m.EXTRA.get("FINAL_CONV_KERNEL")
        if kernel not in (1, 3) or type(kernel) is not int:
            self.fail("MODEL.EXTRA.FINAL_CONV_KERNEL", f"got {kernel!r}; expected 1 or 3")
        layers = m.EXTRA.get("PRETRAINED_LAYERS")
        if not isinstance(layers, (list, tuple)) or not all(isinstance(v, str) for v in layers):
            self.fail("MODEL.EXTRA.PRETRAINED_LAYERS", f"got {layers!r}; expected a list of key prefixes")

    def check_stages(self) -> None:
        extra = self.cfg.MODEL.EXTRA
        present = [n for n in (2, 3, 4) if f"STAGE{n}" in extra]
        if not present:
            if not self.cfg.MODEL.ARCH:
                self.fail("MODEL.EXTRA", "no STAGE2/STAGE3/STAGE4 and MODEL.ARCH is ''; expected the stages "
                          "(official layout) or a preset name in MODEL.ARCH such as 'hrnet_w32'")
            return
        if len(present) != 3:
            missing = [f"STAGE{n}" for n in (2, 3, 4) if n not in present]
            self.fail("MODEL.EXTRA", f"missing {', '.join(missing)}; "
                      "expected all of STAGE2, STAGE3, STAGE4 or none")
        for n in (2, 3, 4):
            self.check_stage(n)

    def check_stage(self, n: int) -> None:
        key = f"MODEL.EXTRA.STAGE{n}"
        stage = self.cfg.MODEL.EXTRA[f"STAGE{n}"]
        if not isinstance(stage, CN):
            self.fail(key, f"got {stage!r}; expected a section with keys {list(STAGE_KEYS)}")
        unknown = sorted(set(stage) - set(STAGE_KEYS))
        missing = [k for k in STAGE_KEYS if k not in stage]
        if unknown:
            self.fail(f"{key}.{unknown[0]}", f"unknown key; expected only {list(STAGE_KEYS)}")
        if missing:
            self.fail(f"{key}.{missing[0]}", "missing; expected every one of " + ", ".join(STAGE_KEYS))
        self.int_at_least(f"{key}.NUM_MODULES", 1)
        branches = stage.NUM_BRANCHES
        if branches != n or type(branches) is not int:
            self.fail(f"{key}.NUM_BRANCHES", f"got {branches!r}; expected {n} (stage n has n branches)")
        for list_key in ("NUM_BLOCKS", "NUM_CHANNELS"):
            values = stage[list_key]
            if (not isinstance(values, (list, tuple)) or len(values) != n
                    or not all(type(v) is int and v > 0 for v in values)):
                self.fail(f"{key}.{list_key}", f"got {values!r}; expected {n} positive integers "
                          "(one per branch, NUM_BRANCHES == len(NUM_BLOCKS) == len(NUM_CHANNELS))")
        self.one_of(f"{key}.BLOCK", BLOCKS)
        self.one_of(f"{key}.FUSE_METHOD", ("SUM",))

    def check_dataset(self) -> None:
        ds = self.cfg.DATASET
        spec = KEYPOINT_SPECS.get(ds.DATASET.lower())
        if spec is not None and self.cfg.MODEL.NUM_JOINTS != spec.num_keypoints:
            self.fail("MODEL.NUM_JOINTS", f"got {self.cfg.MODEL.NUM_JOINTS} for DATASET.DATASET "
                      f"'{ds.DATASET}'; expected {spec.num_keypoints} (the {spec.name} keypoint spec)")
        if not ds.SCALE_FACTOR >= 0:
            self.fail("DATASET.SCALE_FACTOR", f"got {ds.SCALE_FACTOR!r}; expected >= 0")
        if not ds.ROT_FACTOR >= 0:
            self.fail("DATASET.ROT_FACTOR", f"got {ds.ROT_FACTOR!r}; expected >= 0 degrees")
        if not ds.PROB_HALF_BODY <= 1:
            self.fail("DATASET.PROB_HALF_BODY", f"got {ds.PROB_HALF_BODY!r}; expected a probability <= 1 "
                      "(<= 0 disables the half-body crop)")
        self.int_at_least("DATASET.NUM_JOINTS_HALF_BODY", 0)
        self.one_of("DATASET.HALF_BODY_DRAW", HALF_BODY_DRAWS)

    def check_loss(self) -> None:
        topk = self.int_at_least("LOSS.TOPK", 1)
        if topk > self.cfg.MODEL.NUM_JOINTS:
            self.fail("LOSS.TOPK", f"got {topk}; expected at most MODEL.NUM_JOINTS = "
                      f"{self.cfg.MODEL.NUM_JOINTS}")

    def check_train(self) -> None:
        t = self.cfg.TRAIN
        self.int_at_least("TRAIN.BATCH_SIZE_PER_GPU", 1)
        begin = self.int_at_least("TRAIN.BEGIN_EPOCH", 0)
        end = self.int_at_least("TRAIN.END_EPOCH", 1)
        if end <= begin:
            self.fail("TRAIN.END_EPOCH", f"got {end} with BEGIN_EPOCH {begin}; "
                      "expected END_EPOCH > BEGIN_EPOCH")
        steps = list(t.LR_STEP)
        if (not all(type(s) is int and s > 0 for s in steps)
                or any(b <= a for a, b in zip(steps, steps[1:]))):
            self.fail("TRAIN.LR_STEP", f"got {steps!r}; expected strictly increasing positive epoch numbers")
        if not t.LR > 0:
            self.fail("TRAIN.LR", f"got {t.LR!r}; expected a positive learning rate")
        if not t.LR_FACTOR > 0:
            self.fail("TRAIN.LR_FACTOR", f"got {t.LR_FACTOR!r}; expected a positive factor")
        if not t.WD >= 0:
            self.fail("TRAIN.WD", f"got {t.WD!r}; expected >= 0")
        self.one_of("TRAIN.OPTIMIZER", OPTIMIZERS)
        self.one_of("TRAIN.AMP_DTYPE", AMP_DTYPES)
        self.int_at_least("TRAIN.WARMUP_ITERS", 0)
        if not 0 < t.WARMUP_FACTOR <= 1:
            self.fail("TRAIN.WARMUP_FACTOR", f"got {t.WARMUP_FACTOR!r}; expected a value in (0, 1]")
        self.int_at_least("TRAIN.CHECKPOINT_INTERVAL_ITERS", 0)
        self.int_at_least("TRAIN.VAL_INTERVAL", 0)
        self.int_at_least("TRAIN.SEED", 0)
        self.int_at_least("TRAIN.MAX_ITERS_PER_EPOCH", 0)

    def check_test(self) -> None:
        self.int_at_least("TEST.BATCH_SIZE_PER_GPU", 1)
        self.in_range("TEST.OKS_THRE", 0.0, 1.0)
        self.in_range("TEST.IN_VIS_THRE", 0.0, 1.0)
        self.in_range("TEST.IMAGE_THRE", 0.0, 1.0)
        kernel = self.int_at_least("TEST.BLUR_KERNEL", 1)
        if kernel % 2 == 0:
            self.fail("TEST.BLUR_KERNEL", f"got {kernel}; expected an odd kernel size (cv2.GaussianBlur)")
        self.one_of("TEST.DECODER", ("",) + DECODERS)
        self.one_of("TEST.BACKEND", BACKENDS)

    def check_misc(self) -> None:
        self.int_at_least("WORKERS", 0)
        self.int_at_least("PRINT_FREQ", 1)
        self.int_at_least("RANK", 0)
        gpus = self.cfg.GPUS
        if not all(type(g) is int and g >= 0 for g in gpus):
            self.fail("GPUS", f"got {gpus!r}; expected a list of GPU ids such as (0,1,2,3)")
