"""Cross-field invariants of a merged config (sizes, stages, ranges, choices).

:func:`validate_config` runs every check in order; the first failure raises a one-line
:class:`~pose.errors.ConfigError` ``SOURCE: KEY: got ...; expected ...``. The choice lists come from the
code that interprets each key (decoders from :mod:`pose.codec`, backends from :mod:`pose.backends`,
keypoint layouts from :mod:`pose.keypoints`), so a new value is declared once, where it is implemented.
"""
from pathlib import Path
from typing import Any, Iterable

from yacs.config import CfgNode as CN

from pose.backends import BACKENDS
from pose.codec import DECODERS
from pose.config.defaults import AMP_DTYPES, HALF_BODY_DRAWS, LR_SCHEDULE_STEPS, OPTIMIZERS
from pose.errors import ConfigError
from pose.keypoints import COCO_FORMAT, KeypointSpec, get_keypoint_spec, load_keypoint_set
from pose.models.presets import (
    BLOCK_NAMES,
    CLS_HRNET,
    FUSE_METHODS,
    HEAD_NAMES,
    HEADS_BY_MODEL_NAME,
    MODEL_NAMES,
    PYRAMID_LEVEL_CHOICES,
    STAGE1_BRANCHES_TYPO,
    STAGE_KEYS,
)

HEATMAP_STRIDE = 4  # input pixels per heatmap pixel: the HRNet head runs at 1/4 resolution
SIZE_DIVISOR = 32   # input W and H must be multiples of this (lowest branch runs at 1/32)


def keypoint_spec_for_config(cfg: CN) -> KeypointSpec:
    """The keypoint set a config trains and evaluates: ``DATASET.KEYPOINTS`` (a shipped name or a declaration
    path), else the shipped set ``DATASET.DATASET`` names. ConfigError names the key."""
    ds = cfg.DATASET
    if ds.KEYPOINTS:
        return load_keypoint_set(ds.KEYPOINTS)
    if ds.DATASET.lower() == COCO_FORMAT:
        raise ConfigError(f"DATASET.KEYPOINTS: empty with DATASET.DATASET '{COCO_FORMAT}'; expected a shipped "
                          "keypoint set name or the path of a declaration YAML (pose-keypoints init ann.json)")
    return get_keypoint_spec(ds.DATASET)


def _deferred_declaration(path: str) -> bool:
    """A declaration path that does not exist here (e.g. in a checkpoint's config from another machine): its
    spec travels in the checkpoint, and any use that needs the file raises then."""
    return (path.endswith((".yaml", ".yml")) or "/" in path) and not Path(path).is_file()


def validate_config(cfg: CN, source: str = "config") -> None:
    """Check the cross-field invariants of a merged config; ConfigError names ``source`` and the key."""
    _Validator(cfg, source).run()


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
        self.one_of("MODEL.NAME", MODEL_NAMES)
        self.check_head()
        self.int_at_least("MODEL.NUM_CLASSES", 1)
        self.one_of("MODEL.TARGET_TYPE", ("gaussian",))
        image_w, image_h = self.size("MODEL.IMAGE_SIZE")
        hm_w, hm_h = self.size("MODEL.HEATMAP_SIZE")
        if image_w % SIZE_DIVISOR or image_h % SIZE_DIVISOR:
            self.fail("MODEL.IMAGE_SIZE", f"[{image_w}, {image_h}]; expected W and H divisible by "
                      f"{SIZE_DIVISOR} (HRNet's lowest branch runs at 1/32 and is upsampled by exact "
                      "factors of 2)")
        # A classifier has no heatmaps (official cls YAMLs leave HEATMAP_SIZE at its default).
        if m.NAME != CLS_HRNET and (hm_w * HEATMAP_STRIDE, hm_h * HEATMAP_STRIDE) != (image_w, image_h):
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

    def check_head(self) -> None:
        """MODEL.HEAD ('' = the NAME's default) and the older MODEL.EXTRA.HEAD must name a head of NAME."""
        name = self.cfg.MODEL.NAME
        allowed = HEADS_BY_MODEL_NAME[name]
        given = {key: str(value).lower() for key, value in (("MODEL.HEAD", self.cfg.MODEL.HEAD),
                                                              ("MODEL.EXTRA.HEAD",
                                                               self.cfg.MODEL.EXTRA.get("HEAD", "")))
                 if value not in (None, "")}
        for key, head in given.items():
            if head not in HEAD_NAMES:
                self.fail(key, f"got {head!r}; expected one of {list(HEAD_NAMES)} ('' = {allowed[0]!r})")
            if head not in allowed:
                owner = next(n for n, heads in HEADS_BY_MODEL_NAME.items() if head in heads)
                self.fail(key, f"got {head!r} with MODEL.NAME {name!r}; expected one of {list(allowed)} "
                          f"(head {head!r} belongs to MODEL.NAME {owner!r})")
        if len(set(given.values())) > 1:
            self.fail("MODEL.HEAD", f"got {given['MODEL.HEAD']!r} but MODEL.EXTRA.HEAD is "
                      f"{given['MODEL.EXTRA.HEAD']!r}; expected one of them, or both equal")
        levels = self.cfg.MODEL.EXTRA.get("PYRAMID_LEVELS", PYRAMID_LEVEL_CHOICES[-1])
        if levels not in PYRAMID_LEVEL_CHOICES or type(levels) is not int:
            self.fail("MODEL.EXTRA.PYRAMID_LEVELS", f"got {levels!r}; expected one of "
                      f"{list(PYRAMID_LEVEL_CHOICES)}")

    def check_stage1(self) -> None:
        """The official cls_hrnet STAGE1 (layer1): one module, one branch (NUM_BRANCHES or NUM_RANCHES)."""
        key = "MODEL.EXTRA.STAGE1"
        stage = self.cfg.MODEL.EXTRA.STAGE1
        if not isinstance(stage, CN):
            self.fail(key, f"got {stage!r}; expected a section with keys {list(STAGE_KEYS)}")
        allowed = set(STAGE_KEYS) | {STAGE1_BRANCHES_TYPO}
        unknown = sorted(set(stage) - allowed)
        if unknown:
            self.fail(f"{key}.{unknown[0]}", f"unknown key; expected only {sorted(allowed)}")
        for one in ("NUM_MODULES", "NUM_BRANCHES", STAGE1_BRANCHES_TYPO):
            if one in stage and (stage[one] != 1 or type(stage[one]) is not int):
                self.fail(f"{key}.{one}", f"got {stage[one]!r}; expected 1 (stage 1 is one residual layer)")
        for list_key in ("NUM_BLOCKS", "NUM_CHANNELS"):
            values = stage.get(list_key)
            if (not isinstance(values, (list, tuple)) or len(values) != 1
                    or not all(type(v) is int and v > 0 for v in values)):
                self.fail(f"{key}.{list_key}", f"got {values!r}; expected one positive integer in a list")
        if "BLOCK" not in stage:
            self.fail(f"{key}.BLOCK", f"missing; expected one of {list(BLOCK_NAMES)}")
        self.one_of(f"{key}.BLOCK", BLOCK_NAMES)
        if "FUSE_METHOD" in stage:
            self.one_of(f"{key}.FUSE_METHOD", FUSE_METHODS)

    def check_stages(self) -> None:
        extra = self.cfg.MODEL.EXTRA
        if "STAGE1" in extra:
            self.check_stage1()
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
        self.one_of(f"{key}.BLOCK", BLOCK_NAMES)
        self.one_of(f"{key}.FUSE_METHOD", FUSE_METHODS)

    def check_dataset(self) -> None:
        ds = self.cfg.DATASET
        spec = None
        # A classification config (cls_hrnet, DATASET 'imagenet') has no keypoint set.
        if self.cfg.MODEL.NAME != CLS_HRNET and not _deferred_declaration(str(ds.KEYPOINTS)):
            try:
                spec = keypoint_spec_for_config(self.cfg)
            except ConfigError as e:
                self.fail("DATASET.KEYPOINTS" if ds.KEYPOINTS else "DATASET.DATASET", str(e))
        if spec is not None and self.cfg.MODEL.NUM_JOINTS != spec.num_keypoints:
            key = f"DATASET.KEYPOINTS '{ds.KEYPOINTS}'" if ds.KEYPOINTS else f"DATASET.DATASET '{ds.DATASET}'"
            self.fail("MODEL.NUM_JOINTS", f"got {self.cfg.MODEL.NUM_JOINTS} for {key}; expected "
                      f"{spec.num_keypoints} (the '{spec.name}' keypoint set has {spec.num_keypoints} keypoints)")
        if not ds.OKS_SIGMA_FALLBACK >= 0:
            self.fail("DATASET.OKS_SIGMA_FALLBACK", f"got {ds.OKS_SIGMA_FALLBACK!r}; expected 0 (off) or a "
                      "positive uniform sigma")
        if not 0 <= ds.SCALE_FACTOR < 1:  # the jitter is clipped to [1 - SF, 1 + SF]: SF >= 1 allows a 0 scale
            self.fail("DATASET.SCALE_FACTOR", f"got {ds.SCALE_FACTOR!r}; expected 0 <= SCALE_FACTOR < 1")
        if not ds.ROT_FACTOR >= 0:
            self.fail("DATASET.ROT_FACTOR", f"got {ds.ROT_FACTOR!r}; expected >= 0 degrees")
        if not ds.PROB_HALF_BODY <= 1:
            self.fail("DATASET.PROB_HALF_BODY", f"got {ds.PROB_HALF_BODY!r}; expected a probability <= 1 "
                      "(<= 0 disables the half-body crop)")
        self.int_at_least("DATASET.NUM_JOINTS_HALF_BODY", 0)
        self.one_of("DATASET.HALF_BODY_DRAW", HALF_BODY_DRAWS)

    def check_loss(self) -> None:
        topk = self.int_at_least("LOSS.TOPK", 1)
        # Only OHKM reads TOPK; its default 8 must not block a set with fewer keypoints (a 5-point hand).
        if self.cfg.LOSS.USE_OHKM and topk > self.cfg.MODEL.NUM_JOINTS:
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
        self.one_of("TRAIN.LR_SCHEDULE_STEP", LR_SCHEDULE_STEPS)
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
