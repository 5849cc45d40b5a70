"""The configuration schema: every key, its official default and what it means.

The tree is the official HRNet one (``lib/config/default.py`` of leoxiaobin/deep-high-resolution-net
.pytorch) plus the keys DarkPose adds and a few project keys, so the official and DarkPose experiment
YAMLs load unchanged. Official keys keep the official meaning *and the official code default*: an
official YAML therefore produces the same values here as in the official code. The one deliberate
exception is ``AUTO_RESUME`` (True here, False in the official tree; every official YAML sets it true
anyway). Project keys are marked "Project key" in their comment; where one chooses between the official
behaviour and a variant (``DATASET.HALF_BODY_DRAW``, ``TRAIN.LR_SCHEDULE_STEP``), the default is the
official behaviour, so an unchanged official YAML trains as the official code (audit: docs/design.md).

There is no global config: ``_C`` below is private and only ever cloned by
:func:`get_default_config`. Sizes are ``(W, H)`` lists, as in the official YAMLs (``IMAGE_SIZE: [192,
256]`` = width 192, height 256).
"""
from yacs.config import CfgNode as CN

from pose.models.presets import OFFICIAL_PRETRAINED_LAYERS

# Values of the keys whose meaning is defined by the config-reading builders themselves (training,
# augmentation); the other choice lists live with the code that interprets them (pose.codec.DECODERS,
# pose.backends.BACKENDS, pose.models for architectures) and are imported by pose.config.validate.
HALF_BODY_DRAWS = ("fair", "official")
LR_SCHEDULE_STEPS = ("official", "paper")
AMP_DTYPES = ("bf16", "fp16")
OPTIMIZERS = ("adam", "sgd")

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
# by pose.config.resolve_data_path / pose.data.layout; never written back into the config.
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
# Network family: 'pose_hrnet' (official pose repo) or 'cls_hrnet' (the official ImageNet classifier of
# HRNet/HRNet-Image-Classification, whose YAMLs in configs/imagenet/ load unchanged). The official
# 'pose_resnet' is not implemented.
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
# Project key. How the trunk's branches are read out (arXiv 1908.07919, Fig. 4): '' = the default head of
# MODEL.NAME ('v1' for pose_hrnet, 'classification' for cls_hrnet); 'v1' (top branch, the official pose
# net), 'v2' (all branches upsampled + concatenated, then conv-BN-ReLU and the heatmap conv), 'v2p' (the
# v2 concatenation pooled to a feature pyramid, a detection backbone) or 'classification' (cls_hrnet only).
_C.MODEL.HEAD = ""
# Classifier outputs for MODEL.NAME cls_hrnet (official default 1000, ImageNet-1k); unused by pose heads.
_C.MODEL.NUM_CLASSES = 1000
# Architecture details, free-form like the official tree (new keys allowed). For pose_hrnet the official
# YAMLs set, for n in 2, 3, 4:
#   STAGEn.NUM_MODULES   int        number of HighResolutionModules (exchange units) in the stage
#   STAGEn.NUM_BRANCHES  int        parallel resolutions; must be n
#   STAGEn.BLOCK         str        residual block of every branch: BASIC or BOTTLENECK
#   STAGEn.NUM_BLOCKS    [int] * n  blocks per branch
#   STAGEn.NUM_CHANNELS  [int] * n  block width per branch, highest resolution first (W32: 32, 64, 128, 256)
#   STAGEn.FUSE_METHOD   str        'SUM' (the only method; the official code always sums)
# Either all three stages are given or none (then MODEL.ARCH must name a preset).
# cls_hrnet YAMLs also set STAGE1 (layer1: NUM_MODULES 1, one branch, spelled NUM_RANCHES there, BLOCK,
# NUM_BLOCKS [n], NUM_CHANNELS [c]) and WITH_HEAD (ignored, as the official code ignores it); v2p reads
# PYRAMID_LEVELS (4 or 5), PYRAMID_CHANNELS (256) and PYRAMID_CONV_KERNEL (1 or 3) when given.
_C.MODEL.EXTRA = CN(new_allowed=True)
# Prefixes of ImageNet-checkpoint keys copied into the pose net ('*' as first entry = all keys).
_C.MODEL.EXTRA.PRETRAINED_LAYERS = list(OFFICIAL_PRETRAINED_LAYERS)
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
# Dataset: 'coco' or 'mpii' (official folder layouts), another shipped keypoint set read from a
# COCO-format file ('crowdpose', 'ochuman', 'aic', 'coco_wholebody', 'ap10k', 'onehand10k', '300w', 'wflw',
# 'cofw'; explicit DATASET.*_ANN_FILE/_IMAGE_DIR paths), or 'coco_format' for any COCO-format keypoint file
# whose keypoints DATASET.KEYPOINTS declares. Picks the keypoint spec and the evaluation protocol.
_C.DATASET.DATASET = "mpii"
# Project key. The keypoint set: '' = the set DATASET.DATASET names; else a shipped set name
# (configs/keypoints/<name>.yaml) or the path of a declaration YAML (see pose.keypoints). MODEL.NUM_JOINTS
# must equal its number of keypoints.
_C.DATASET.KEYPOINTS = ""
# Project key. A uniform OKS sigma used ONLY when the keypoint set declares 'sigmas: TODO' (0 = refuse to
# compute OKS AP without real sigmas). AP with a made-up sigma is not comparable with anything; set it
# explicitly and say so (Ultralytics' silent 1/K default makes AP meaningless for small K).
_C.DATASET.OKS_SIGMA_FALLBACK = 0.0
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
#   'official' - the official `np.random.randn() < 0.5` draw, which picks the upper body with
#                P = Phi(0.5) ~ 0.69 (default: what the published weights were trained with);
#   'fair'     - a 50/50 choice (what the paper describes).
_C.DATASET.HALF_BODY_DRAW = "official"
# Project keys. Explicit paths (joined onto DATA_DIR when relative); '' = the official layout under ROOT:
#   COCO: ROOT/annotations/person_keypoints_{SET}.json (image_info_{SET}.json for test sets) and
#         ROOT/images/{SET}/ (ROOT/images/test2017/ for test sets);
#   MPII: ROOT/annot/{SET}.json and ROOT/images/.
# See pose.data.layout.resolve_dataset_paths().
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
# each epoch, so the lr actually drops at 0-based epochs 169 and 199 for [170, 200] (TRAIN.LR_SCHEDULE_STEP).
_C.TRAIN.LR_STEP = [90, 110]
# Project key. When the LR_STEP drops happen:
#   'official' - as tools/train.py, which steps the scheduler at the start of each epoch: the lr of
#                0-based epoch e is the schedule at e + 1, so it drops at epochs m - 1 (default);
#   'paper'    - the scheduler steps after each epoch: the first m epochs run at the previous lr and
#                the drop comes after epoch m ("after 170 epochs", as the paper says).
_C.TRAIN.LR_SCHEDULE_STEP = "official"
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
#   'udp' (unbiased data processing, (size - 1) pixel convention). See pose.codec.default_decoder().
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


def get_default_config() -> CN:
    """A fresh, mutable copy of the defaults (mutating it never affects another copy)."""
    return _C.clone()
