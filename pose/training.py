"""Training: ``train(cfg, output_dir)`` with ``train_one_epoch`` and ``validate`` as named steps.

One explicit loop, no framework::

    build data, model, codec, optimiser, scheduler
    resume from OUTPUT/checkpoint_last.pth if it exists (TRAIN.AUTO_RESUME, default True)
    for epoch in range(begin, END_EPOCH):
        train_one_epoch(...)          # mid-epoch checkpoints every TRAIN.CHECKPOINT_INTERVAL_ITERS
        scheduler.step()              # after the epoch; TRAIN.LR_SCHEDULE_STEP sets the timing (below)
        validate(...) every TRAIN.VAL_INTERVAL epochs -> model_best.pth on a new best
        checkpoint_last.pth
    final.pth

Recipe (research doc section 4): Adam (lr ``TRAIN.LR``, no weight decay, as the official code) or
SGD (``MOMENTUM``, ``WD``, ``NESTEROV``); MultiStepLR(``LR_STEP``, ``LR_FACTOR``); optional linear
warm-up over ``TRAIN.WARMUP_ITERS`` iterations from ``LR * WARMUP_FACTOR``. Defaults are the official
behaviour (the audit table in ``docs/design.md`` lists every key and the options that differ).

- **Schedule** (:func:`build_scheduler`). ``TRAIN.LR_SCHEDULE_STEP official`` (default) reproduces the
  official loop, which calls ``lr_scheduler.step()`` at the *start* of each epoch: with ``LR_STEP
  [170, 200]`` the lr drops at 0-based epochs 169 and 199. ``paper`` drops it after epochs 170 and 200.
- **Best model.** ``model_best.pth`` follows the official rule ``perf >= best`` (a tie goes to the
  later epoch), validated every ``TRAIN.VAL_INTERVAL`` epochs (1, as official).

Decisions that differ from the official ``tools/train.py`` (documented on purpose):

- **Loss.** ``LOSS.USE_OHKM`` is honoured (``joints_ohkm_mse_loss`` with ``LOSS.TOPK``). The
  official trainer never reads it and always builds JointsMSELoss; every official YAML sets it
  false, so the official recipes train identically.
- **Batch.** The global batch is ``TRAIN.BATCH_SIZE_PER_GPU * world size`` (one process per GPU
  under ``torchrun``); ``GPUS`` is not used to split a batch (the official code used DataParallel
  over ``GPUS``). A warning says so when ``GPUS`` lists more devices than there are processes.

Scale-out: under ``torchrun --nproc_per_node N`` (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` in the
environment) the process group is initialised (NCCL on GPU, gloo on CPU), the model is wrapped in
``DistributedDataParallel`` (``TRAIN.SYNC_BN`` converts BatchNorm), every rank reads its interleaved
shard of the same per-epoch permutation, every rank takes part in validation (which gathers the
predictions by sample index), and only rank 0 logs, writes metrics and checkpoints.
``TRAIN.AMP`` runs the forward under ``torch.autocast`` (``AMP_DTYPE`` bf16, or fp16 with a
``GradScaler``); ``TRAIN.CHANNELS_LAST`` uses NHWC memory format.

Nothing lost: ``checkpoint_last.pth`` (model, optimiser, scheduler, scaler, epoch, step, RNG states,
the full config) is written atomically at the end of every epoch and every
``TRAIN.CHECKPOINT_INTERVAL_ITERS`` iterations; a crash (even SIGKILL during a write) leaves the
previous good file. Resuming mid-epoch skips the first ``step`` iterations of that epoch: the
epoch's sample order comes from ``DistributedSampler`` seeded with ``TRAIN.SEED + epoch`` and the
dataset's augmentation draws from ``(TRAIN.SEED, epoch, index)``, so the remaining batches are the
same as in an uninterrupted run. With ``TRAIN.DETERMINISTIC`` on the CPU (same thread count), a
resumed run ends with bit-identical weights.

Watching it: a tqdm bar per epoch (loss, samples/s, ETA) on rank 0, ``metrics.jsonl`` (one JSON
record per logged step, epoch, validation, checkpoint and resume; flushed at once), TensorBoard
scalars under ``OUTPUT/LOG_DIR`` (official YAMLs: ``log``; ``''`` = off) when ``tensorboard`` is
installed, and
``pose-plot`` to draw the curves (:mod:`pose.run_log`).

Why one long module: the loop and its named steps are meant to be read top to bottom in one place
(house style P9); the run log lives in :mod:`pose.run_log`, data and evaluation in their own packages.
"""
import contextlib
import logging
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional

import numpy as np
import torch
from tqdm import tqdm

from pose.backends import TorchBackend, crops_to_tensor
from pose.checkpoint import collect_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from pose.codec import build_codec
from pose.config import config_to_yaml, decoder_name, keypoint_spec_for_config, resolve_data_path
from pose.data import build_dataset
from pose.data.layout import resolve_dataset_paths
from pose.distributed import Dist, setup_distributed
from pose.errors import CheckpointError, DataError, PoseError
from pose.evaluation.runner import check_evaluable, decoder_codecs, evaluate_dataset, make_evaluator_factory
from pose.fileio import atomic_write, ensure_output_dir
from pose.loading import is_imagenet_zoo_name, load_imagenet_init
from pose.losses import heatmap_accuracy, joints_mse_loss, joints_ohkm_mse_loss
from pose.models import build_model, require_heatmap_head
from pose.predictor import TopDownPredictor
from pose.run_log import RunLog
from pose.weights import load_imagenet_pretrained, load_weights, unwrap_model

logger = logging.getLogger(__name__)

LAST, BEST, FINAL = "checkpoint_last.pth", "model_best.pth", "final.pth"
CONFIG_FILE = "config.yaml"


# ------------------------------------------------------------------------------------------------
# Building blocks
# ------------------------------------------------------------------------------------------------
def build_optimizer(cfg, params) -> torch.optim.Optimizer:
    """Adam (``TRAIN.LR``, no weight decay, as official) or SGD (``MOMENTUM``, ``WD``, ``NESTEROV``)."""
    t = cfg.TRAIN
    if t.OPTIMIZER == "adam":
        return torch.optim.Adam(params, lr=t.LR)
    return torch.optim.SGD(params, lr=t.LR, momentum=t.MOMENTUM, weight_decay=t.WD, nesterov=t.NESTEROV)


def build_scheduler(cfg, optimizer) -> torch.optim.lr_scheduler.MultiStepLR:
    """MultiStepLR(``LR_STEP``, ``LR_FACTOR``); the loop steps it once after each epoch.

    ``TRAIN.LR_SCHEDULE_STEP official``: the official loop steps at the start of each epoch, so the lr of
    0-based epoch ``e`` is the schedule at ``e + 1``; stepping after each epoch with every milestone one
    epoch earlier gives exactly that (``[170, 200]`` -> drops at epochs 169 and 199; a milestone 1 drops
    the lr from epoch 0, as the official call at the start of epoch 0 does). ``paper``: the milestones
    as written (drops at epochs 170 and 200).
    """
    t = cfg.TRAIN
    shift = 1 if t.LR_SCHEDULE_STEP == "official" else 0
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, [int(m) - shift for m in t.LR_STEP], t.LR_FACTOR)


def is_new_best(value: float, best: Optional[float]) -> bool:
    """The official ``model_best`` rule: ``perf_indicator >= best_perf`` (a tie goes to the later epoch)."""
    return best is None or value >= best


def warmup_factor(global_step: int, warmup_iters: int, start_factor: float) -> float:
    """Linear warm-up multiplier: ``start_factor`` at step 0 rising to 1 at ``warmup_iters``."""
    if global_step >= warmup_iters:
        return 1.0
    alpha = global_step / warmup_iters
    return start_factor * (1.0 - alpha) + alpha


#: The validation number that picks ``model_best``, per evaluation protocol (higher is better for all).
PRIMARY_METRICS = {"mpii": "Mean", "nme": "1 - NME", "pck": "PCK@0.2"}


def primary_metric(dataset_or_protocol: str) -> str:
    """The validation number that picks ``model_best``: OKS ``AP``, MPII ``Mean`` (PCKh@0.5), ``PCK@0.2`` for
    hands, ``1 - NME`` for faces (so that higher is better everywhere)."""
    return PRIMARY_METRICS.get(dataset_or_protocol.lower(), "AP")


def epoch_indices(sampler, epoch: int, skip_batches: int, batch_size: int) -> list:
    """This rank's sample order for ``epoch``, minus the batches a resumed run has already done."""
    sampler.set_epoch(epoch)
    return list(sampler)[skip_batches * batch_size:]


def _amp_dtype(cfg) -> Optional[torch.dtype]:
    if not cfg.TRAIN.AMP:
        return None
    return torch.bfloat16 if cfg.TRAIN.AMP_DTYPE == "bf16" else torch.float16


@contextlib.contextmanager
def _torch_settings(cfg):
    """Determinism / cuDNN switches for the run, restored afterwards (tests share the process)."""
    saved = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark,
             torch.backends.cudnn.deterministic, torch.backends.cudnn.enabled)
    det = bool(cfg.TRAIN.DETERMINISTIC)
    torch.backends.cudnn.benchmark = bool(cfg.CUDNN.BENCHMARK) and not det
    torch.backends.cudnn.deterministic = bool(cfg.CUDNN.DETERMINISTIC) or det
    torch.backends.cudnn.enabled = bool(cfg.CUDNN.ENABLED)
    # Only touch the switch when it changes: (un)setting it imports torch._dynamo (seconds).
    if det and not saved[0]:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
        torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        if det and not saved[0]:
            torch.use_deterministic_algorithms(False)
        (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
         torch.backends.cudnn.enabled) = saved[1:]


def build_training_model(cfg, dist: Dist) -> torch.nn.Module:
    """The bare pose net: official init (``MODEL.INIT_WEIGHTS``), then ImageNet ``MODEL.PRETRAINED``."""
    require_heatmap_head(cfg.MODEL, "pose training")
    torch.manual_seed(int(cfg.TRAIN.SEED))  # the same init on every rank (DDP broadcasts rank 0's anyway)
    model = build_model(cfg.MODEL)
    if cfg.MODEL.INIT_WEIGHTS:
        model.init_weights()
    if cfg.MODEL.PRETRAINED and is_imagenet_zoo_name(cfg.MODEL.PRETRAINED):  # e.g. hrnet_w32_imagenet
        report = load_imagenet_init(model, cfg.MODEL.PRETRAINED, list(cfg.MODEL.EXTRA.PRETRAINED_LAYERS))
        if dist.is_main:
            logger.info(report.summary())
    elif cfg.MODEL.PRETRAINED:
        path = resolve_data_path(cfg, cfg.MODEL.PRETRAINED)
        if not os.path.isfile(path):
            raise CheckpointError(f"MODEL.PRETRAINED: '{path}' does not exist; expected an ImageNet HRNet "
                                  "checkpoint (e.g. hrnet_w32-36af842e.pth) or '' for random init")
        report = load_imagenet_pretrained(model, path, list(cfg.MODEL.EXTRA.PRETRAINED_LAYERS))
        if dist.is_main:
            logger.info(report.summary())
    return model


def _clean_stale_temp_files(output_dir: Path) -> None:
    """Remove temp files a killed save left behind (``.checkpoint_last.pth.XXXX.tmp``)."""
    for name in (LAST, BEST, FINAL, CONFIG_FILE):
        for tmp in output_dir.glob(f".{name}.*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()
                logger.info("removed %s (left by an interrupted save)", tmp)


# ------------------------------------------------------------------------------------------------
# The named steps
# ------------------------------------------------------------------------------------------------
def train_one_epoch(model, loader, optimizer, scaler, scheduler, *, cfg, dist: Dist, epoch: int,
                    start_step: int, num_iters: int, run_log: RunLog,
                    after_step: Optional[Callable[[int], None]] = None, progress: bool = True) -> dict:
    """Iterations ``start_step .. num_iters - 1`` of ``epoch``.

    Args:
        loader: yields training items (``image`` (B, H, W, 3) uint8, ``target`` (B, K, h, w),
            ``target_weight`` (B, K)) in this epoch's order, already past ``start_step``.
        scheduler: the epoch scheduler; its lr, times the warm-up factor, is set before each step.
        after_step: called with the number of iterations done in this epoch after each one
            (mid-epoch checkpoints).

    Returns:
        ``{"loss", "acc", "lr", "samples_per_s", "seconds", "iters"}``; ``loss`` is the mean over the
        iterations run here and over all ranks.
    """
    t = cfg.TRAIN
    amp_dtype = _amp_dtype(cfg)
    model.train()
    loss_sum = torch.zeros(2, dtype=torch.float64, device=dist.device)  # (sum of losses, iterations)
    acc = float("nan")
    samples, start = 0, time.perf_counter()
    with tqdm(total=num_iters, initial=start_step, desc=f"epoch {epoch}", unit="it", dynamic_ncols=True,
              disable=not (progress and dist.is_main)) as bar:  # closed on errors and Ctrl-C too
        step = start_step
        for batch in loader:
            if step >= num_iters:
                break
            global_step = epoch * num_iters + step
            lr_scale = warmup_factor(global_step, t.WARMUP_ITERS, t.WARMUP_FACTOR)
            for group, base_lr in zip(optimizer.param_groups, scheduler.get_last_lr()):
                group["lr"] = base_lr * lr_scale

            images = crops_to_tensor(batch["image"].to(dist.device, non_blocking=True))
            if t.CHANNELS_LAST:
                images = images.contiguous(memory_format=torch.channels_last)
            target = batch["target"].to(dist.device, non_blocking=True)
            weight = batch["target_weight"].to(dist.device, non_blocking=True)
            with torch.autocast(dist.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                output = model(images)
            output = output.float()
            if cfg.LOSS.USE_OHKM:
                loss = joints_ohkm_mse_loss(output, target, weight, cfg.LOSS.USE_TARGET_WEIGHT, cfg.LOSS.TOPK)
            else:
                loss = joints_mse_loss(output, target, weight, cfg.LOSS.USE_TARGET_WEIGHT)

            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()

            step += 1
            samples += len(images) * dist.world_size
            loss_value = float(loss.detach())
            loss_sum += torch.tensor([loss_value, 1.0], dtype=torch.float64, device=dist.device)
            speed = samples / max(time.perf_counter() - start, 1e-9)
            bar.set_postfix(loss=f"{loss_value:.3g}", samples_per_s=f"{speed:.1f}", refresh=False)
            bar.update(1)
            if dist.is_main and (step % cfg.PRINT_FREQ == 0 or step == num_iters):
                acc = heatmap_accuracy(output.detach(), target)[1]
                run_log.write("train", epoch=epoch, step=step, global_step=epoch * num_iters + step,
                              loss=loss_value, acc=acc, lr=optimizer.param_groups[0]["lr"], samples_per_s=speed)
            if not math.isfinite(loss_value):
                raise PoseError(f"training loss is {loss_value} at epoch {epoch}, iteration {step}; "
                                "lower TRAIN.LR or check the data")
            if after_step is not None:
                after_step(step)
    if dist.world_size > 1:
        torch.distributed.all_reduce(loss_sum)
    seconds = time.perf_counter() - start
    iters = int(loss_sum[1].item()) // max(dist.world_size, 1)
    return {"loss": float(loss_sum[0] / loss_sum[1]) if loss_sum[1] > 0 else float("nan"), "acc": acc,
            "lr": optimizer.param_groups[0]["lr"], "samples_per_s": samples / max(seconds, 1e-9),
            "seconds": seconds, "iters": iters}


def validate(model, dataset, cfg, *, codec, spec, dist: Dist, output_dir: Optional[Path] = None,
             progress: bool = True) -> Dict[str, float]:
    """Score ``model`` on the validation set through :mod:`pose.evaluation.runner` (every rank must call it).

    Each rank predicts its shard; predictions are gathered by sample index, so the metrics equal a
    single-process evaluation of the same weights. The model is left in train mode.

    Returns:
        the evaluator's metrics for the config's decoder (COCO ``AP``, ``AP .5``... or MPII ``Mean``...).
    """
    bare = unwrap_model(model)
    if dist.world_size > 1:
        # Each rank's last forward updated its own BatchNorm running statistics; validate every shard
        # with rank 0's, the ones its checkpoint holds.
        for buffer in bare.buffers():
            torch.distributed.broadcast(buffer, src=0)
    amp = _amp_dtype(cfg) if dist.device.type == "cuda" else None
    backend = TorchBackend(bare, dist.device, channels_last=bool(cfg.TRAIN.CHANNELS_LAST), autocast_dtype=amp)
    predictor = TopDownPredictor(backend, codec, spec, flip_test=bool(cfg.TEST.FLIP_TEST),
                                 batch_size=int(cfg.TEST.BATCH_SIZE_PER_GPU))
    name = decoder_name(cfg)
    try:
        metrics = evaluate_dataset(predictor, dataset,
                                   make_evaluator_factory(cfg, spec, output_dir if dist.is_main else None),
                                   decoders=decoder_codecs(codec, [name]), workers=int(cfg.WORKERS),
                                   progress=progress and dist.is_main)
    finally:
        model.train()
    return dict(metrics[name])


# ------------------------------------------------------------------------------------------------
# The whole run
# ------------------------------------------------------------------------------------------------
def train(cfg, output_dir, *, device: Optional[str] = None, progress: bool = True) -> dict:
    """Train a pose net as ``cfg`` describes; write checkpoints and logs into ``output_dir``.

    Files written (rank 0): ``config.yaml``, ``metrics.jsonl``, ``checkpoint_last.pth``,
    ``model_best.pth`` (best validation metric so far), ``final.pth``, validation results JSON and
    TensorBoard events. All checkpoints are project checkpoints (``pose.loading.load_predictor``).

    Args:
        cfg: the full config (``load_config``).
        output_dir: run folder; an existing ``checkpoint_last.pth`` there is resumed from when
            ``TRAIN.AUTO_RESUME`` is true.
        device: see :func:`setup_distributed`.
        progress: show tqdm bars (rank 0).

    Returns:
        ``{"model" (the trained bare network, on its device), "output_dir", "final_checkpoint",
        "best_checkpoint", "best_metric", "best_epoch", "metric", "epochs_run", "last_train", "last_val"}``.

    Raises:
        ConfigError / DataError / CheckpointError: bad config, data or checkpoints (one-line messages).
        KeyboardInterrupt: passed through; the last good checkpoint stays, nothing partial is written.
    """
    dist = setup_distributed(device)
    try:
        with _torch_settings(cfg):
            return _train(cfg, Path(output_dir), dist, progress)
    finally:
        if dist.initialized_here:
            torch.distributed.destroy_process_group()


@dataclass
class _Data:
    train_set: object
    val_set: object
    sampler: object
    num_iters: int


@dataclass
class _Progress:
    """Where the run stands: the next epoch/iteration to run and the best validation so far."""

    epoch: int
    step: int = 0
    best_metric: Optional[float] = None
    best_epoch: Optional[int] = None


def prepare_output_dir(cfg, output_dir: Path, dist: Dist) -> None:
    """Create the run folder (checked writable before any work) and remove temp files of an interrupted
    save (rank 0). Nothing is written yet: a refused input leaves the folder as it was."""
    if dist.is_main:
        ensure_output_dir(output_dir)
        _clean_stale_temp_files(output_dir)
    dist.barrier()


def write_run_config(cfg, output_dir: Path, dist: Dist) -> None:
    """``config.yaml`` (rank 0), once data, model, pretrained weights and resume state have been accepted."""
    if dist.is_main:
        with atomic_write(output_dir / CONFIG_FILE) as f:
            f.write(config_to_yaml(cfg))


def build_training_data(cfg, codec, dist: Dist) -> _Data:
    """The training and validation datasets, this rank's sampler and the iterations per epoch."""
    t = cfg.TRAIN
    train_set = build_dataset(cfg, "train", codec)
    if len(train_set) == 0:
        ann_file = resolve_dataset_paths(cfg, "train")["ann_file"]
        raise DataError(f"annotation file '{ann_file}': no usable training sample (every person is a crowd, "
                        "unlabelled or skipped); expected persons with labelled keypoints")
    val_set = build_dataset(cfg, "test", codec) if t.VAL_INTERVAL > 0 else None
    sampler = torch.utils.data.DistributedSampler(train_set, num_replicas=dist.world_size, rank=dist.rank,
                                                  shuffle=bool(t.SHUFFLE), seed=int(t.SEED), drop_last=False)
    batches_per_epoch = math.ceil(len(sampler) / t.BATCH_SIZE_PER_GPU)
    num_iters = min(batches_per_epoch, t.MAX_ITERS_PER_EPOCH) if t.MAX_ITERS_PER_EPOCH else batches_per_epoch
    return _Data(train_set, val_set, sampler, num_iters)


def log_training_plan(cfg, data: "_Data", dist: Dist) -> None:
    """The one INFO line that says what training does; logged once everything was accepted, so a refusal
    before it prints its one error line only."""
    t = cfg.TRAIN
    if dist.is_main:
        logger.info("training on %d samples, %d process(es) x batch %d, %d iterations per epoch, "
                    "epochs %d..%d", len(data.train_set), dist.world_size, t.BATCH_SIZE_PER_GPU,
                    data.num_iters, t.BEGIN_EPOCH, t.END_EPOCH - 1)


def place_model(cfg, model: torch.nn.Module, dist: Dist) -> torch.nn.Module:
    """SyncBN (distributed CUDA runs with ``TRAIN.SYNC_BN``), device and memory format."""
    if dist.world_size > 1 and cfg.TRAIN.SYNC_BN:
        if dist.device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        elif dist.is_main:
            logger.warning("TRAIN.SYNC_BN ignored: SyncBatchNorm needs CUDA; each CPU process keeps its own "
                           "BatchNorm statistics")
    model = model.to(dist.device)
    if cfg.TRAIN.CHANNELS_LAST:
        model = model.to(memory_format=torch.channels_last)
    return model


def resume_if_possible(cfg, last_path: Path, model, optimizer, scheduler, scaler, dist: Dist) -> _Progress:
    """Restore weights, optimiser, scheduler, scaler and RNG states from ``last_path`` (``AUTO_RESUME``)."""
    progress = _Progress(epoch=int(cfg.TRAIN.BEGIN_EPOCH))
    if not (cfg.AUTO_RESUME and last_path.exists()):
        return progress
    ckpt = load_checkpoint(last_path)
    load_weights(model, ckpt["state_dict"], strict=True)
    for name, obj in (("optimizer", optimizer), ("scheduler", scheduler), ("scaler", scaler)):
        if name in ckpt:
            obj.load_state_dict(ckpt[name])
    if "rng_state" in ckpt:
        restore_rng_state(ckpt["rng_state"])
    progress = _Progress(epoch=int(ckpt["epoch"]), step=int(ckpt["step"]), best_metric=ckpt.get("best_metric"),
                         best_epoch=(ckpt.get("extra") or {}).get("best_epoch"))
    if dist.is_main:
        if ckpt["config_yaml"] != config_to_yaml(cfg):
            logger.warning("resuming from %s, which was written with a different config", last_path)
        logger.info("resumed from %s at epoch %d, iteration %d", last_path, progress.epoch, progress.step)
    return progress


def _warn_about_gpus(cfg, dist: Dist) -> None:
    t = cfg.TRAIN
    if len(cfg.GPUS) > 1 and len(cfg.GPUS) != dist.world_size and dist.is_main:
        logger.warning("GPUS lists %d devices but this run has %d process(es): the global batch is %d, not "
                       "%d; launch with torchrun --nproc_per_node %d for the official batch", len(cfg.GPUS),
                       dist.world_size, t.BATCH_SIZE_PER_GPU * dist.world_size,
                       t.BATCH_SIZE_PER_GPU * len(cfg.GPUS), len(cfg.GPUS))


def _train(cfg, output_dir: Path, dist: Dist, show_progress: bool) -> dict:
    t = cfg.TRAIN
    seed = int(t.SEED)
    prepare_output_dir(cfg, output_dir, dist)
    random.seed(seed + dist.rank)
    np.random.seed(seed + dist.rank)
    _warn_about_gpus(cfg, dist)

    codec = build_codec(cfg)
    spec = keypoint_spec_for_config(cfg)
    check_evaluable(cfg, spec)
    data = build_training_data(cfg, codec, dist)
    model = place_model(cfg, build_training_model(cfg, dist), dist)
    optimizer = build_optimizer(cfg, model.parameters())
    scheduler = build_scheduler(cfg, optimizer)
    scaler = torch.amp.GradScaler(dist.device.type, enabled=bool(t.AMP) and t.AMP_DTYPE == "fp16")
    metric_name = primary_metric(spec.protocol)

    last_path = output_dir / LAST
    state = resume_if_possible(cfg, last_path, model, optimizer, scheduler, scaler, dist)
    write_run_config(cfg, output_dir, dist)
    log_training_plan(cfg, data, dist)
    dist.barrier()
    if dist.world_size > 1:
        ddp_ids = [dist.device.index] if dist.device.type == "cuda" else None
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=ddp_ids)

    run_log = RunLog(output_dir, _tensorboard_dir(cfg, output_dir) if dist.is_main else None,
                     enabled=dist.is_main)
    if state.epoch != t.BEGIN_EPOCH or state.step:
        run_log.write("resume", epoch=state.epoch, step=state.step, path=str(last_path))

    def save(path: Path, epoch: int, step: int) -> None:
        """Checkpoint everything needed to resume at (``epoch``, ``step``) (rank 0 calls it)."""
        save_checkpoint(path, model=model, cfg=cfg, codec=codec, spec=spec, optimizer=optimizer,
                        scheduler=scheduler, scaler=scaler, epoch=epoch, step=step,
                        rng_state=collect_rng_state(), best_metric=state.best_metric,
                        extra={"best_epoch": state.best_epoch, "metric": metric_name,
                               "world_size": dist.world_size})
        run_log.write("checkpoint", epoch=epoch, step=step, path=str(path))

    interval = int(t.CHECKPOINT_INTERVAL_ITERS)
    last_train, last_val = None, None
    epochs_run = 0
    run_start = time.perf_counter()
    final_path = output_dir / FINAL
    try:
        for epoch in range(state.epoch, t.END_EPOCH):
            # -- train one epoch (mid-epoch checkpoints every CHECKPOINT_INTERVAL_ITERS) --------------
            data.train_set.set_epoch(epoch)
            indices = epoch_indices(data.sampler, epoch, state.step, t.BATCH_SIZE_PER_GPU)
            loader = torch.utils.data.DataLoader(
                data.train_set, batch_size=t.BATCH_SIZE_PER_GPU, sampler=indices, num_workers=int(cfg.WORKERS),
                pin_memory=bool(cfg.PIN_MEMORY) and dist.device.type == "cuda", drop_last=False)

            def after_step(step: int, epoch=epoch) -> None:
                if dist.is_main and interval and step % interval == 0 and step < data.num_iters:
                    save(last_path, epoch, step)

            last_train = train_one_epoch(model, loader, optimizer, scaler, scheduler, cfg=cfg, dist=dist,
                                         epoch=epoch, start_step=state.step, num_iters=data.num_iters,
                                         run_log=run_log, after_step=after_step, progress=show_progress)
            state.step = 0
            epochs_run += 1
            # -- schedule -------------------------------------------------------------------------------
            for group, lr in zip(optimizer.param_groups, scheduler.get_last_lr()):
                group["lr"] = lr  # drop the warm-up scaling before the scheduler reads the lr
            scheduler.step()
            global_step = (epoch + 1) * data.num_iters
            run_log.write("epoch", epoch=epoch, global_step=global_step, **last_train)
            if dist.is_main:
                eta = (time.perf_counter() - run_start) / epochs_run * (t.END_EPOCH - epoch - 1)
                logger.info("epoch %d: loss %.6f, %.1f samples/s, lr %.3g, ETA %s", epoch, last_train["loss"],
                            last_train["samples_per_s"], last_train["lr"], _format_seconds(eta))

            # -- validate, keep the best ----------------------------------------------------------------
            if t.VAL_INTERVAL and ((epoch + 1) % t.VAL_INTERVAL == 0 or epoch + 1 == t.END_EPOCH):
                last_val = validate(model, data.val_set, cfg, codec=codec, spec=spec, dist=dist,
                                    output_dir=output_dir, progress=show_progress)
                value = float(last_val[metric_name])
                is_best = is_new_best(value, state.best_metric)
                if is_best:
                    state.best_metric, state.best_epoch = value, epoch
                run_log.write("val", epoch=epoch, global_step=global_step, metric=metric_name, value=value,
                              best=state.best_metric, is_best=is_best, metrics=last_val)
                if dist.is_main:
                    logger.info("epoch %d: %s %.4f (best %.4f at epoch %d)", epoch, metric_name, value,
                                state.best_metric, state.best_epoch)
                    if is_best:
                        save(output_dir / BEST, epoch + 1, 0)
            # -- checkpoint -------------------------------------------------------------------------------
            if dist.is_main:
                save(last_path, epoch + 1, 0)
            dist.barrier()

        if dist.is_main:
            save(final_path, int(t.END_EPOCH), 0)
        dist.barrier()
    finally:
        run_log.close()
    return {"model": unwrap_model(model),
            "output_dir": str(output_dir), "final_checkpoint": str(final_path),
            "best_checkpoint": str(output_dir / BEST) if state.best_metric is not None else None,
            "best_metric": state.best_metric, "best_epoch": state.best_epoch, "metric": metric_name,
            "epochs_run": epochs_run, "last_train": last_train, "last_val": last_val}


def _tensorboard_dir(cfg, output_dir: Path) -> Optional[Path]:
    """TensorBoard folder: ``LOG_DIR`` if absolute, else ``output_dir / LOG_DIR``; None (off) if ''."""
    if not cfg.LOG_DIR:
        logger.info("TensorBoard logging off: LOG_DIR is ''; metrics.jsonl is still written")
        return None
    log_dir = Path(cfg.LOG_DIR)
    return log_dir if log_dir.is_absolute() else output_dir / log_dir


def _format_seconds(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
