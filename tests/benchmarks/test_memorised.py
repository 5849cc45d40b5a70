"""The memorised W32 cache: where it lives, when it counts as ready, and the fidelity row without it."""
import json
from types import SimpleNamespace

from benchmarks.memorised import MIN_AP, memorised_checkpoint, memorised_config, memorised_status
from benchmarks.precision import bench_fidelity


def test_not_ready_without_a_run(tmp_path, monkeypatch):
    monkeypatch.setenv("POSE_CACHE", str(tmp_path))
    status = memorised_status()
    assert status["path"] == str(tmp_path / "fidelity" / "w32_memorised" / "model_best.pth")
    assert not status["exists"] and not status["ready"]
    rows = bench_fidelity(SimpleNamespace(quick=True, rounds=1))
    assert len(rows) == 1 and rows[0]["note"].startswith("not measured") and "benchmarks.memorised" in rows[0]["note"]


def test_ready_only_with_ap_at_least_the_bound(tmp_path, monkeypatch):
    monkeypatch.setenv("POSE_CACHE", str(tmp_path))
    run = memorised_checkpoint().parent
    run.mkdir(parents=True)
    memorised_checkpoint().write_bytes(b"x")
    losses = [{"type": "train", "loss": v} for v in (1.0, 0.5, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05)]
    for ap, ready in ((MIN_AP - 0.01, False), (MIN_AP + 0.01, True)):
        vals = [{"type": "val", "epoch": 19, "value": ap}]
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in losses + vals))
        status = memorised_status()
        assert status["ready"] is ready and abs(status["best_ap"] - ap) < 1e-9
        assert status["loss_drop"] == 1.0 / 0.05


def test_recipe_is_the_w32_memorisation():
    cfg = memorised_config()
    assert list(cfg.MODEL.IMAGE_SIZE) == [192, 256] and cfg.MODEL.EXTRA.STAGE2.NUM_CHANNELS == [32, 64]
    assert cfg.TEST.USE_GT_BBOX and cfg.TEST.DECODER == "udp" and not cfg.DATASET.FLIP
    assert cfg.TRAIN.BATCH_SIZE_PER_GPU == 12 and cfg.MODEL.PRETRAINED == ""


def test_best_epoch_is_the_last_of_equal_aps_as_model_best_keeps_it(tmp_path, monkeypatch):
    monkeypatch.setenv("POSE_CACHE", str(tmp_path))
    run = memorised_checkpoint().parent
    run.mkdir(parents=True)
    vals = [{"type": "val", "epoch": e, "value": ap} for e, ap in ((99, 0.95), (119, 1.0), (139, 1.0), (159, 0.99))]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in vals))
    status = memorised_status()
    assert status["best_ap"] == 1.0 and status["best_epoch"] == 139  # model_best.pth is saved on AP >= best
