"""A network with real peaks: HRNet-W32 256x192 fine-tuned to memorise the 4-image COCO sample.

Untrained weights give nearly flat heatmaps, on which a 2 % numeric error moves a quarter of the
argmaxes, so precision cannot be judged on them. This module trains (once, CPU, resumable) a W32 whose
heatmaps have trained-like peaks on the real images of ``tests/data/coco`` and caches it outside the
repository (three checkpoints of about 340 MB: weights plus Adam state):

    nice -n 10 python -m benchmarks.memorised          # prepare (or resume): ~20 min on 2 cores
    python -m benchmarks.memorised --check             # print the cached path + AP

The recipe is the tiny-net memorisation test's (``tests/test_training.py``, ``LEARN``): no augmentation,
all 12 persons in each batch, UDP targets and decoding, GT boxes; done when the loss fell 10x and AP on
GT boxes is >= 0.9. The file is ``$POSE_CACHE/fidelity/w32_memorised/model_best.pth`` (a project
checkpoint, so :func:`pose.loading.load_predictor` rebuilds it on its own).
"""
import argparse
import sys
from pathlib import Path

from benchmarks.harness import REPO
from pose.cli.common import add_common_args, run_cli

W32_CONFIG = REPO / "configs" / "coco_hrnet_w32_256x192.yaml"
COCO = REPO / "tests" / "data" / "coco"
MIN_AP, MIN_LOSS_DROP = 0.9, 10.0
EPOCHS, LR_DROP_EPOCH, VAL_INTERVAL = 240, 190, 20
DATA = ["DATA_DIR", "", "DATASET.TRAIN_ANN_FILE", str(COCO / "test_coco.json"),
        "DATASET.TRAIN_IMAGE_DIR", str(COCO), "DATASET.TEST_ANN_FILE", str(COCO / "test_coco.json"),
        "DATASET.TEST_IMAGE_DIR", str(COCO), "TEST.COCO_BBOX_FILE", str(COCO / "test_coco_det_AP_H_56.json")]
# Memorisation (tests/test_training.py LEARN) at W32 scale; checkpoint_last each epoch makes it resumable.
RECIPE = ["MODEL.PRETRAINED", "", "GPUS", "(0,)", "WORKERS", 0, "AUTO_RESUME", True, "LOG_DIR", "",
          "CUDNN.BENCHMARK", False, "DEBUG.DEBUG", False, "PRINT_FREQ", 1,
          "DATASET.FLIP", False, "DATASET.SCALE_FACTOR", 0.0, "DATASET.ROT_FACTOR", 0,
          "DATASET.PROB_HALF_BODY", -1.0, "TEST.FLIP_TEST", False, "TEST.USE_GT_BBOX", True,
          "TEST.DECODER", "udp", "TRAIN.BATCH_SIZE_PER_GPU", 12, "TRAIN.MAX_ITERS_PER_EPOCH", 0,
          "TRAIN.LR", 0.001, "TRAIN.WARMUP_ITERS", 20, "TRAIN.END_EPOCH", EPOCHS, "TRAIN.LR_STEP", f"[{LR_DROP_EPOCH}]",
          "TRAIN.VAL_INTERVAL", VAL_INTERVAL, "TEST.BATCH_SIZE_PER_GPU", 12]


def memorised_dir() -> Path:
    """``$POSE_CACHE/fidelity/w32_memorised`` (the training run folder)."""
    from pose.zoo import default_cache_dir
    return default_cache_dir() / "fidelity" / "w32_memorised"


def memorised_checkpoint() -> Path:
    """The cached memorised W32 (``model_best.pth``; may not exist yet)."""
    return memorised_dir() / "model_best.pth"


def memorised_config():
    from pose.config import load_config
    return load_config(W32_CONFIG, DATA + [str(v) for v in RECIPE])


def memorised_status() -> dict:
    """``{"path", "exists", "best_ap", "best_epoch", "loss_drop", "ready"}`` of the cached run."""
    from pose.run_log import read_run_log

    path = memorised_checkpoint()
    out = {"path": str(path), "exists": path.is_file(), "best_ap": None, "best_epoch": None, "loss_drop": None}
    log = memorised_dir() / "metrics.jsonl"
    if log.is_file():
        records = read_run_log(log)
        vals = [r for r in records if r.get("type") == "val"]
        losses = [r["loss"] for r in records if r.get("type") == "train" and "loss" in r]
        if vals:
            best = max(reversed(vals), key=lambda r: r["value"])  # the last of equals: model_best's `>=` rule
            out["best_ap"], out["best_epoch"] = float(best["value"]), int(best["epoch"])
        if len(losses) > 5:
            out["loss_drop"] = losses[0] / (sum(losses[-5:]) / 5)
    out["ready"] = bool(out["exists"] and out["best_ap"] is not None and out["best_ap"] >= MIN_AP)
    return out


def prepare() -> dict:
    """Train (or resume) the memorisation run; returns :func:`memorised_status`."""
    import logging

    from pose.training import train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    out_dir = memorised_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    train(memorised_config(), out_dir, device="cpu", progress=False)
    return memorised_status()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="benchmarks.memorised", description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="only report the cached run (no training)")
    add_common_args(p)
    return p


def _body(args) -> int:
    status = memorised_status() if args.check else prepare()
    print(f"memorised W32: {status['path']} (exists: {status['exists']}, best AP {status['best_ap']} at epoch "
          f"{status['best_epoch']}, loss drop {status['loss_drop']}, ready: {status['ready']})")
    return 0 if status["ready"] else 1


def main(argv=None) -> int:
    return run_cli("benchmarks.memorised", _body, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
