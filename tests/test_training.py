"""Training: a smoke run, checkpoint round trip, "it learns", DDP, crash safety, plotting, CLIs.

Everything runs on the CPU with the tiny config on the real 4-image COCO sample (12 GT persons).
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from pose.checkpoint import load_checkpoint, save_checkpoint
from pose.config import config_from_yaml_text, load_config
from pose.data import build_dataset
from pose.loading import load_predictor
from pose.predictor import TopDownPredictor
from pose.run_log import read_run_log, run_log_curves
from pose.training import (
    build_optimizer,
    build_scheduler,
    epoch_indices,
    is_new_best,
    primary_metric,
    train,
    warmup_factor,
)

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny_hrnet_128x96.yaml"
COCO = REPO / "tests" / "data" / "coco"
# Absolute data paths so the tests do not depend on the working directory.
DATA = ["DATA_DIR", "", "DATASET.TRAIN_ANN_FILE", str(COCO / "test_coco.json"),
        "DATASET.TRAIN_IMAGE_DIR", str(COCO), "DATASET.TEST_ANN_FILE", str(COCO / "test_coco.json"),
        "DATASET.TEST_IMAGE_DIR", str(COCO), "TEST.COCO_BBOX_FILE", str(COCO / "test_coco_det_AP_H_56.json")]
# One process, one thread: the same float results in every run of the subprocess tests.
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(REPO))


def tiny(*overrides):
    return load_config(TINY, DATA + [str(v) for v in overrides])


def records(run_dir, kind=None):
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    out = [json.loads(line) for line in lines if line.strip()]
    return [r for r in out if kind is None or r["type"] == kind]


def state_dict(path):
    return load_checkpoint(path)["state_dict"]


# ------------------------------------------------------------------------------------------------
# Fast
# ------------------------------------------------------------------------------------------------
def test_two_iterations_checkpoint_round_trip(tmp_path):
    torch.set_num_threads(1)
    cfg = tiny("TRAIN.END_EPOCH", 2, "TRAIN.MAX_ITERS_PER_EPOCH", 1, "TRAIN.BATCH_SIZE_PER_GPU", 2,
               "TRAIN.VAL_INTERVAL", 2, "TRAIN.LR_STEP", "[1]",
               "LOG_DIR", "")  # no TensorBoard here: its import takes seconds
    out = train(cfg, tmp_path, device="cpu", progress=False)

    for name in ("config.yaml", "metrics.jsonl", "checkpoint_last.pth", "model_best.pth", "final.pth"):
        assert (tmp_path / name).is_file(), name
    assert config_from_yaml_text((tmp_path / "config.yaml").read_text()) == cfg
    steps = records(tmp_path, "train")
    assert [r["global_step"] for r in steps] == [1, 2]
    assert all(np.isfinite(r["loss"]) and r["loss"] > 0 for r in steps)
    # Scheduler stepped after each epoch: LR_STEP [1] -> epoch 0 at LR, epoch 1 at LR * 0.1.
    assert [r["lr"] for r in steps] == pytest.approx([1e-3, 1e-4])
    val = records(tmp_path, "val")
    assert len(val) == 1 and val[0]["metric"] == "AP"
    # Validation inside training scores what pose-eval scores for the same weights (the last epoch's,
    # final.pth): the same numbers, not just "a number in [0, 1]".
    from pose.evaluation.runner import run_evaluation

    (standalone,) = run_evaluation(cfg, tmp_path / "final.pth", progress=False)["metrics"].values()
    assert val[0]["metrics"] == pytest.approx(standalone, abs=1e-12) and val[0]["value"] == standalone["AP"]
    last = load_checkpoint(tmp_path / "checkpoint_last.pth")
    assert (last["epoch"], last["step"]) == (2, 0)
    assert {"optimizer", "scheduler", "scaler", "rng_state"} <= set(last)

    # final.pth -> load_predictor gives the same heatmaps as the network that was trained.
    predictor, _ = load_predictor(tmp_path / "final.pth")
    dataset = build_dataset(cfg, "test", predictor.codec)
    crops = np.stack([dataset[i]["image"] for i in range(3)])
    reference = TopDownPredictor(out["model"], predictor.codec, predictor.spec, flip_test=True)
    got, got_flip = predictor.forward_heatmaps(crops)
    want, want_flip = reference.forward_heatmaps(crops)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got_flip, want_flip)


def _epoch_lrs(cfg, epochs):
    """The lr each 0-based epoch trains with, from the scheduler as ``train`` drives it (no training)."""
    optimizer = build_optimizer(cfg, [torch.nn.Parameter(torch.zeros(1))])
    scheduler = build_scheduler(cfg, optimizer)
    lrs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # no optimizer.step() here: torch warns about the call order
        for _ in range(epochs):
            lrs.append(scheduler.get_last_lr()[0])   # what train_one_epoch sets on the optimizer
            scheduler.step()                          # after the epoch, as train() does
    return lrs


def _official_loop_lrs(lr, milestones, factor, epochs):
    """tools/train.py's call order: a fresh MultiStepLR, ``lr_scheduler.step()`` at the start of each epoch."""
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, factor)
    lrs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # "lr_scheduler.step() before optimizer.step()", as official
        for _ in range(epochs):
            scheduler.step()
            lrs.append(optimizer.param_groups[0]["lr"])
    return lrs


@pytest.mark.parametrize("name", ["coco_hrnet_w32_256x192.yaml", "mpii_hrnet_w32_256x256.yaml"])
def test_official_yaml_gets_the_official_lr_timing(name):
    cfg = load_config(REPO / "configs" / name)
    t = cfg.TRAIN
    assert t.LR_SCHEDULE_STEP == "official" and list(t.LR_STEP) == [170, 200] and t.END_EPOCH == 210
    lrs = _epoch_lrs(cfg, t.END_EPOCH)
    assert lrs == pytest.approx(_official_loop_lrs(t.LR, list(t.LR_STEP), t.LR_FACTOR, t.END_EPOCH), rel=1e-12)
    assert lrs[168:172] == pytest.approx([1e-3, 1e-4, 1e-4, 1e-4], rel=1e-9)      # drops at epoch 169
    assert lrs[198:202] == pytest.approx([1e-4, 1e-5, 1e-5, 1e-5], rel=1e-9)      # and at 199
    paper = _epoch_lrs(load_config(REPO / "configs" / name, ["TRAIN.LR_SCHEDULE_STEP", "paper"]), t.END_EPOCH)
    assert paper[168:172] == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4], rel=1e-9)    # after epoch 170
    assert paper[198:202] == pytest.approx([1e-4, 1e-4, 1e-5, 1e-5], rel=1e-9)


def test_training_run_uses_the_official_timing_unless_told_otherwise(tmp_path):
    """The tiny config selects 'paper' (epoch 0 at LR, epoch 1 at LR/10, see the round-trip test); with the
    official timing the same LR_STEP [1] drops the lr from epoch 0, as the official loop does."""
    torch.set_num_threads(1)
    cfg = tiny("TRAIN.END_EPOCH", 2, "TRAIN.MAX_ITERS_PER_EPOCH", 1, "TRAIN.BATCH_SIZE_PER_GPU", 2,
               "TRAIN.VAL_INTERVAL", 0, "TRAIN.LR_STEP", "[1]", "TRAIN.LR_SCHEDULE_STEP", "official", "LOG_DIR", "")
    train(cfg, tmp_path, device="cpu", progress=False)
    assert [r["lr"] for r in records(tmp_path, "train")] == pytest.approx([1e-4, 1e-4])
    assert _epoch_lrs(cfg, 2) == pytest.approx(_official_loop_lrs(1e-3, [1], 0.1, 2))


def test_model_best_rule_is_the_official_one():
    assert is_new_best(0.5, None) and is_new_best(0.6, 0.5)
    assert is_new_best(0.5, 0.5)           # official perf_indicator >= best_perf: a tie moves model_best on
    assert not is_new_best(0.4, 0.5)


def test_resume_order_is_the_tail_of_the_full_epoch():
    sampler = torch.utils.data.DistributedSampler(list(range(13)), num_replicas=1, rank=0, shuffle=True,
                                                  seed=5)
    full = epoch_indices(sampler, 3, 0, 4)
    assert sorted(full) == list(range(13))
    assert epoch_indices(sampler, 3, 2, 4) == full[8:]
    assert epoch_indices(sampler, 4, 0, 4) != full  # a new permutation per epoch, reproducible per epoch
    assert epoch_indices(sampler, 3, 0, 4) == full


def test_warmup_and_metric_names():
    assert warmup_factor(0, 10, 0.001) == pytest.approx(0.001)
    assert warmup_factor(5, 10, 0.001) == pytest.approx(0.5005)
    assert warmup_factor(10, 10, 0.001) == 1.0 and warmup_factor(3, 0, 0.001) == 1.0
    assert primary_metric("coco") == "AP" and primary_metric("mpii") == "Mean"


def test_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    from pose.codec import build_codec
    from pose.keypoints import COCO_17
    from pose.models import build_model

    cfg = tiny()
    model = build_model(cfg.MODEL)
    path = tmp_path / "checkpoint_last.pth"
    save_checkpoint(path, model=model, cfg=cfg, codec=build_codec(cfg), spec=COCO_17, epoch=3, step=7)
    good = path.read_bytes()

    def dying_save(obj, f, *args, **kwargs):  # writes half a file, then the disk "fills up"
        f.write(good[:len(good) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", dying_save)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    with pytest.raises(OSError):
        save_checkpoint(path, model=model, cfg=cfg, codec=build_codec(cfg), spec=COCO_17, epoch=4, step=0)
    assert path.read_bytes() == good
    assert (load_checkpoint(path)["epoch"], load_checkpoint(path)["step"]) == (3, 7)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint_last.pth"]  # no temp file left


def test_plot_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    from pose.cli.plot import main

    lines = [{"type": "train", "epoch": 0, "step": s, "global_step": s, "loss": 0.01 / s, "lr": 1e-3}
             for s in range(1, 6)]
    lines += [{"type": "epoch", "epoch": 0, "global_step": 5, "loss": 0.004, "lr": 1e-3},
              {"type": "val", "epoch": 0, "global_step": 5, "metric": "AP", "value": 0.5},
              {"type": "train", "epoch": 0, "step": 5, "global_step": 5, "loss": 0.002,
               "lr": 1e-3}]  # repeated by a resumed run
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"type": "tr')
    assert main([str(tmp_path), "--quiet"]) == 0
    png = (tmp_path / "curves.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    c = run_log_curves(read_run_log(tmp_path))
    assert c["train_loss"][0] == [1, 2, 3, 4, 5] and c["train_loss"][1][-1] == 0.002  # latest record wins
    assert main([str(tmp_path / "missing"), "--quiet"]) == 1


def test_train_cli_help_and_bad_config(tmp_path, capfd):
    # capfd, not capsys: a line written to fd 2 by C code (OpenCV, FFmpeg) must count too
    from pose.cli.train import main

    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    assert "--cfg" in capfd.readouterr().out
    assert main(["--cfg", str(TINY), "--output-dir", str(tmp_path / "run"), "TRAIN.LR", "-1.0"]) == 1
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "TRAIN.LR" in err[0]
    assert main(["--cfg", str(tmp_path / "nope.yaml")]) == 1


def test_missing_pretrained_file_is_one_line_error(tmp_path, capfd):
    from pose.cli.train import main

    code = main(["--cfg", str(TINY), "--output-dir", str(tmp_path), *DATA,
                 "MODEL.PRETRAINED", str(tmp_path / "hrnet_w32-36af842e.pth")])
    assert code == 1
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "MODEL.PRETRAINED" in err[0] and "does not exist" in err[0]


# ------------------------------------------------------------------------------------------------
# Slow
# ------------------------------------------------------------------------------------------------
# Memorisation settings: no augmentation, the whole sample (12 persons) in every batch, lr dropped
# for the last fifth, UDP targets/decoding (sub-pixel exact, so precision is not capped by the coarse
# 24x32 heatmap). Measured on the 2-core machine (1 thread, shared with other jobs, 277 s): loss fell
# 38x; AP 0.60 (100 it) -> 0.94 (200 it) -> 0.98 (300 it).
LEARN = ["DATASET.FLIP", False, "DATASET.SCALE_FACTOR", 0.0, "DATASET.ROT_FACTOR", 0,
         "DATASET.PROB_HALF_BODY", -1.0, "TEST.FLIP_TEST", False, "TEST.USE_GT_BBOX", True, "TEST.DECODER", "udp",
         "TRAIN.BATCH_SIZE_PER_GPU", 12, "TRAIN.MAX_ITERS_PER_EPOCH", 0, "TRAIN.LR", 0.003,
         "TRAIN.END_EPOCH", 300, "TRAIN.LR_STEP", "[240]", "TRAIN.VAL_INTERVAL", 300, "PRINT_FREQ", 1]
LEARN_LOSS_DROP, LEARN_MIN_AP = 10.0, 0.9


@pytest.mark.slow
def test_it_learns_the_sample(tmp_path):
    torch.set_num_threads(2)
    out = train(tiny(*LEARN), tmp_path, device="cpu", progress=False)
    losses = [r["loss"] for r in records(tmp_path, "train")]
    assert losses[0] / np.mean(losses[-5:]) >= LEARN_LOSS_DROP, (losses[0], losses[-5:])
    assert out["best_metric"] >= LEARN_MIN_AP, out["last_val"]
    assert list((tmp_path / "log").glob("events.out.tfevents.*"))  # TensorBoard scalars (LOG_DIR 'log')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ddp_two_processes_matches_single_process_validation(tmp_path):
    from pose.evaluation.runner import run_evaluation

    # 55 detected boxes (score >= 0.1): not divisible by the world size 2.
    opts = DATA + ["TEST.USE_GT_BBOX", "False", "TEST.IMAGE_THRE", "0.1", "TRAIN.END_EPOCH", "1",
                   "TRAIN.MAX_ITERS_PER_EPOCH", "0", "TRAIN.VAL_INTERVAL", "1", "TRAIN.SYNC_BN", "True"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           "-m", "pose.cli.train", "--cfg", str(TINY),
           "--output-dir", str(tmp_path / "ddp"), "--device", "cpu", "--no-progress", *opts]
    proc = subprocess.run(cmd, env=ENV, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "ddp"
    (epoch,) = records(run, "epoch")
    assert epoch["iters"] == 2  # 12 samples / (2 ranks x batch 4) = 1.5 -> 2 iterations per rank
    (val,) = records(run, "val")

    report = run_evaluation(load_config(TINY, opts), run / "final.pth", output_dir=tmp_path / "single",
                            progress=False)
    assert report["num_samples"] == 55
    single = report["metrics"]["quarter"]
    assert val["metrics"] == pytest.approx(single, abs=1e-12)
    name = "keypoints_val2017_results_quarter.json"
    dist_results = json.loads((run / name).read_text())
    single_results = json.loads((tmp_path / "single" / name).read_text())
    assert len(dist_results) == len(single_results) > 0
    for a, b in zip(dist_results, single_results):
        assert a["image_id"] == b["image_id"] and a["score"] == pytest.approx(b["score"], abs=1e-5)
        np.testing.assert_allclose(a["keypoints"], b["keypoints"], atol=1e-3)


def _train_opts(end_epoch=2):
    return DATA + ["TRAIN.DETERMINISTIC", "True", "AUTO_RESUME", "True",
                   "TRAIN.CHECKPOINT_INTERVAL_ITERS", "2",
                   "TRAIN.MAX_ITERS_PER_EPOCH", "0", "TRAIN.BATCH_SIZE_PER_GPU", "2", "TRAIN.END_EPOCH", str(end_epoch),
                   "TRAIN.VAL_INTERVAL", "0", "TRAIN.WARMUP_ITERS", "4", "PRINT_FREQ", "1"]


def _train_cmd(run_dir, end_epoch=2):
    opts = _train_opts(end_epoch)
    return [sys.executable, "-m", "pose.cli.train", "--cfg", str(TINY), "--output-dir", str(run_dir),
            "--device", "cpu", "--no-progress", *opts]


def _wait_for_mid_epoch_checkpoint(proc, run_dir, min_step=2, timeout=120):
    metrics = run_dir / "metrics.jsonl"
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, "training finished before a mid-epoch checkpoint was seen"
        if metrics.exists():
            for r in records(run_dir, "checkpoint"):
                if r["step"] >= min_step:
                    return
        time.sleep(0.02)
    raise AssertionError("no mid-epoch checkpoint appeared")


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path):
    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    proc = subprocess.run(_train_cmd(straight), env=ENV, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    proc = subprocess.Popen(_train_cmd(crashed), env=ENV, cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        _wait_for_mid_epoch_checkpoint(proc, crashed)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (crashed / "final.pth").exists()
    ckpt = load_checkpoint(crashed / "checkpoint_last.pth")  # whatever the kill hit, this file is whole
    assert ckpt["epoch"] == 0 and 2 <= ckpt["step"] < 6, (ckpt["epoch"], ckpt["step"])

    proc = subprocess.run(_train_cmd(crashed), env=ENV, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (resume,) = records(crashed, "resume")
    assert (resume["epoch"], resume["step"]) == (ckpt["epoch"], ckpt["step"])
    want, got = state_dict(straight / "final.pth"), state_dict(crashed / "final.pth")
    assert list(want) == list(got)
    for key in want:
        assert torch.equal(want[key], got[key]), key
    assert not list(crashed.glob(".*.tmp"))

    # Training moved the weights (bit-identical copies of an untouched init would also be "equal"):
    # every convolution of the tiny config's 2-epoch run differs from the seeded initialisation.
    from pose.distributed import Dist
    from pose.training import build_training_model

    init = build_training_model(load_config(TINY, _train_opts()), Dist()).state_dict()
    convs = [k for k in init if k.endswith(".weight") and init[k].ndim == 4]
    assert convs and all(not torch.equal(init[k], want[k]) for k in convs)

    # The resumed run went on from the checkpointed iteration: its logged iterations are exactly the
    # straight run's from there on (none repeated, none skipped), each with the same loss (same batch).
    lines = records(crashed)
    after = lines[next(i for i, r in enumerate(lines) if r["type"] == "resume") + 1:]
    resumed = [(r["global_step"], r["loss"]) for r in after if r["type"] == "train"]
    full = [(r["global_step"], r["loss"]) for r in records(straight, "train")]
    per_epoch = len(full) // 2
    start = ckpt["epoch"] * per_epoch + ckpt["step"]
    assert per_epoch == 6 and [g for g, _ in full] == list(range(1, 13))
    assert resumed == full[start:], (resumed[:3], full[start:start + 3])


@pytest.mark.slow
def test_sigint_exits_130_and_keeps_the_last_checkpoint(tmp_path):
    run = tmp_path / "run"
    # A run far longer than the test, so SIGINT always lands mid-training however fast the machine is.
    # SIGINT's default action in the child, even when pytest itself runs in the background with it ignored.
    proc = subprocess.Popen(_train_cmd(run, end_epoch=100000), env=ENV, cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        _wait_for_mid_epoch_checkpoint(proc, run)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in err
    assert load_checkpoint(run / "checkpoint_last.pth")["step"] >= 2
    assert not list(run.glob(".*.tmp"))


def test_config_copy_is_written_atomically(tmp_path, monkeypatch):
    """``config.yaml`` in the run folder is replaced whole or not at all (disk full at fsync: the old copy
    stays, no temp file)."""
    import errno

    from pose import fileio
    from pose.distributed import Dist
    from pose.training import write_run_config

    write_run_config(tiny(), tmp_path, Dist())
    before = (tmp_path / "config.yaml").read_text()
    assert config_from_yaml_text(before) == tiny()

    def disk_full(_fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(fileio.os, "fsync", disk_full)
    with pytest.raises(OSError):
        write_run_config(tiny("TRAIN.LR", 0.5), tmp_path, Dist())
    assert (tmp_path / "config.yaml").read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]
