"""Hardening: the bad-input catalogue (tests/hardening/cases.yaml) against every CLI, disk-full
writes, and Ctrl-C (SIGINT) during each long command.

Each catalogue row runs as a subprocess of the installed console script (or ``scripts/*.py``); the
outcome must have the expected exit code and message fragment, no traceback, a single one-line error
and no temp file left in the output folder (see tests/hardening/runner.py). Selected rows run in two
threads up front (one session fixture), then each row is reported as its own test; a line
``hardening: N passed, M failed`` is added to the terminal summary.
"""
import concurrent.futures
import errno
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.hardening import runner
from tests.hardening.make_fixtures import MARKER_NAME, make_fixtures

TEMPLATES, CASES = runner.load_catalogue()
CASE_TEST = "test_catalogue_case"


def _case_param(case):
    marks = [pytest.mark.slow]
    if case.xfail:
        marks.append(pytest.mark.xfail(reason=case.xfail, strict=True))
    return pytest.param(case, id=case.id, marks=marks)


class _Summary:
    """Plugin registered at run time: adds ``hardening: N passed, M failed`` to the terminal summary."""

    def __init__(self):
        self.passed, self.failed, self.xfailed = 0, 0, 0

    def pytest_terminal_summary(self, terminalreporter):
        extra = f", {self.xfailed} known gaps (xfail)" if self.xfailed else ""
        terminalreporter.write_line(f"hardening: {self.passed} passed, {self.failed} failed{extra}")


@pytest.fixture(scope="session")
def hardening_summary(request):
    plugin = request.config.pluginmanager.get_plugin("hardening-summary")
    if plugin is None:
        plugin = _Summary()
        request.config.pluginmanager.register(plugin, "hardening-summary")
    return plugin


@pytest.fixture(scope="session")
def fixtures(tmp_path_factory):
    return make_fixtures(tmp_path_factory.mktemp("hardening_fx"))


@pytest.fixture(scope="module")
def w32_ckpt(tmp_path_factory):
    """An untrained HRNet-W32 pose checkpoint: slow enough per crop that Ctrl-C lands mid-run even on a
    fast, quiet machine (the tiny net finishes a whole evaluation or clip in about two seconds)."""
    import torch

    from pose.checkpoint import save_checkpoint
    from pose.codec import build_codec
    from pose.keypoints import COCO_17
    from pose.loading import config_for_zoo_model
    from pose.models import build_model

    cfg = config_for_zoo_model("hrnet_w32_coco_256x192")
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w32") / "w32_untrained.pth"
    save_checkpoint(path, model=build_model(cfg.MODEL), cfg=cfg, codec=build_codec(cfg), spec=COCO_17)
    return str(path)


@pytest.fixture(scope="session")
def outcomes(request, fixtures, tmp_path_factory):
    """Run every selected catalogue case once (2 threads); ``{case id: Outcome}``."""
    selected = {item.callspec.id for item in request.session.items
                if item.originalname == CASE_TEST and hasattr(item, "callspec")}
    cases = [c for c in CASES if c.id in selected]
    out_root = tmp_path_factory.mktemp("hardening_out")
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        done = pool.map(lambda c: runner.run_case(c, fixtures, TEMPLATES, out_root), cases)
        return {o.case.id: o for o in done}


@pytest.mark.parametrize("case", [_case_param(c) for c in CASES])
def test_catalogue_case(case, outcomes, fixtures, hardening_summary):
    outcome = outcomes[case.id]
    issues = runner.problems(outcome, fixtures)
    if case.xfail:
        hardening_summary.xfailed += 1
    elif issues:
        hardening_summary.failed += 1
    else:
        hardening_summary.passed += 1
    assert not issues, runner.describe(outcome, issues)


def test_catalogue_covers_every_cli():
    assert len(CASES) >= 30
    commands = {c.cmd for c in CASES}
    assert {"pose-eval", "pose-demo", "pose-train", "pose-export", "scripts/test.py", "scripts/train.py",
            "demo/demo.py", "benchmarks"} <= commands
    assert all(c.exit in (0, 1, 2) for c in CASES)
    assert all(c.stderr or c.exit == 0 for c in CASES), "every failing case names the message it expects"


def test_pickle_payload_fixture_is_live(fixtures, tmp_path):
    """The payload checkpoint really executes code when loaded unsafely (so the catalogue's 'marker
    absent' checks mean something), and the project loader refuses it."""
    import torch

    from pose.errors import CheckpointError
    from pose.weights import read_checkpoint

    marker = Path(fixtures["marker"])
    with pytest.raises(CheckpointError, match="non-tensor Python objects"):
        read_checkpoint(Path(fixtures["fx"]) / "evil.pth")
    assert not marker.exists()
    torch.load(Path(fixtures["fx"]) / "evil.pth", weights_only=False)  # the unsafe way, on purpose
    assert marker.exists() and marker.name == MARKER_NAME
    marker.unlink()


# ------------------------------------------------------------------------------------------------
# Disk full: the writers fail with one OSError, and leave no half-written file under the final name
# ------------------------------------------------------------------------------------------------
def _enospc(*_args, **_kw):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_json_writer_disk_full_leaves_nothing(tmp_path, monkeypatch):
    from pose import fileio
    from pose.video.records import write_coco_results

    (tmp_path / "results.json").write_text("[]")  # an older complete file stays as it was
    monkeypatch.setattr(fileio.os, "fsync", _enospc)
    with pytest.raises(OSError) as info:
        write_coco_results(tmp_path / "results.json", [])
    assert info.value.errno == errno.ENOSPC
    with pytest.raises(OSError):
        fileio.write_json(tmp_path / "metrics.json", {"AP": 0.5})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]
    assert (tmp_path / "results.json").read_text() == "[]"


def test_jsonl_writer_on_a_full_device_raises_oserror_naming_the_file():
    from pose.video.records import FrameRecordWriter

    if not Path("/dev/full").exists():
        pytest.skip("/dev/full is absent on this system")
    writer = FrameRecordWriter("/dev/full")
    try:
        with pytest.raises(OSError) as info:
            writer.write(0, 0.0, "clip.mp4", [])
    finally:
        writer.close()
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename == "/dev/full"


def test_jsonl_writer_disk_full_mid_run_keeps_complete_lines(tmp_path, monkeypatch):
    """Two records written, the third hits ENOSPC after half its bytes: the reader gets the two."""
    from pose.video import records as outputs
    from pose.video.records import FrameRecordWriter, read_frame_records

    path = tmp_path / "clip_keypoints.jsonl"
    writer = FrameRecordWriter(path)
    writer.write(0, 0.0, "clip.mp4", [])
    writer.write(1, 0.04, "clip.mp4", [])
    real_write = os.write

    def half_then_full(fd, data):
        real_write(fd, bytes(data[: len(data) // 2]))
        _enospc()

    monkeypatch.setattr(outputs.os, "write", half_then_full)
    with pytest.raises(OSError):
        writer.write(2, 0.08, "clip.mp4", [])
    monkeypatch.undo()
    writer.close()
    records = read_frame_records(path)
    assert [r["frame_index"] for r in records] == [0, 1]


def test_eval_cli_disk_full_exits_1_one_line_no_partial_outputs(fixtures, tmp_path, monkeypatch, capsys):
    from pose import fileio
    from pose.cli.evaluate import main

    monkeypatch.setattr(fileio.os, "fsync", _enospc)
    out = tmp_path / "eval"
    code = main(["--cfg", fixtures["tiny_cfg"], "--weights", fixtures["ckpt"], "--output-dir", str(out),
                 "--gt-boxes", "--quiet", "TEST.FLIP_TEST", "False"])
    err = capsys.readouterr().err
    assert code == 1
    errors = [line for line in err.splitlines() if "error" in line]
    assert errors == ["pose-eval: error: No space left on device"] or (
        len(errors) == 1 and errors[0].startswith("pose-eval: error: No space left on device")), err
    assert "Traceback" not in err
    assert list(out.iterdir()) == []  # neither results nor metrics JSON, no temp file


# ------------------------------------------------------------------------------------------------
# Ctrl-C during each long command
# ------------------------------------------------------------------------------------------------
def _default_sigint():
    """Child side: take SIGINT's default action even when the test runner was started in the background
    (a non-interactive shell starts ``cmd &`` with SIGINT ignored, and Python then never raises
    KeyboardInterrupt). Users pressing Ctrl-C in a terminal always have the default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(cmd, args, log_path):
    env = runner.child_env()
    env.pop("TQDM_DISABLE", None)
    log = open(log_path, "w")
    proc = subprocess.Popen(runner.command_prefix(cmd) + args, cwd=runner.REPO, env=env,
                            stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True,
                            preexec_fn=_default_sigint)
    return proc, log


def _wait_for(proc, condition, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        if proc.poll() is not None:
            pytest.fail(f"the command ended (exit {proc.returncode}) before {what}")
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"timed out after {timeout_s} s waiting for {what}")


INTERRUPTED_LINE = "{prog}: interrupted; finished outputs were kept, partial files removed"


def _interrupt(proc, log, log_path, prog, message=INTERRUPTED_LINE):
    """SIGINT; expect exit 130, no traceback and ``message`` as a whole stderr line (once)."""
    proc.send_signal(signal.SIGINT)
    try:
        stdout, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the command did not stop within 60 s of SIGINT")
    log.close()
    stderr = Path(log_path).read_text()
    assert proc.returncode == 130, (proc.returncode, stderr[-2000:])
    assert "Traceback" not in stderr, stderr[-3000:]
    expected = message.format(prog=prog)
    if expected:
        lines = [line for line in stderr.splitlines() if expected in line]
        assert lines == [expected], stderr[-2000:]
    return stdout, stderr


@pytest.mark.slow
def test_sigint_during_eval(fixtures, w32_ckpt, tmp_path):
    out = tmp_path / "eval"
    coco_mini = Path(fixtures["data"]) / "coco-mini"
    proc, log = _start("pose-eval", [
        "--weights", w32_ckpt, "--output-dir", str(out), "--gt-boxes",
        "--batch-size", "1", "DATASET.TEST_ANN_FILE", str(coco_mini / "annotations" / "person_keypoints_val2017.json"),
        "DATASET.TEST_IMAGE_DIR", str(coco_mini / "val2017")], tmp_path / "stderr.txt")
    _wait_for(proc, lambda: "evaluating:" in (tmp_path / "stderr.txt").read_text(), 120, "the evaluation loop")
    _interrupt(proc, log, tmp_path / "stderr.txt", "pose-eval")
    assert not list(out.iterdir()), "an interrupted evaluation writes no results or metrics file"


@pytest.mark.slow
def test_sigint_during_demo_keeps_finished_frames(fixtures, w32_ckpt, tmp_path):
    from pose.video.records import read_frame_records

    out = tmp_path / "demo"
    jsonl = out / "demo_skeleton_keypoints.jsonl"
    proc, log = _start("pose-demo", [fixtures["video"], "--weights", w32_ckpt, "--detector", "whole-image",
                                     "--backend", "torch",
                                     "--output-dir", str(out)], tmp_path / "stderr.txt")
    _wait_for(proc, lambda: jsonl.exists() and jsonl.read_text().count("\n") >= 3, 120, "3 finished frames")
    # The demo ends a file run on Ctrl-C itself: it logs how many frames it keeps, prints its summary
    # and exits 130 (for a webcam/stream, Ctrl-C is the normal end: exit 0).
    stdout, stderr = _interrupt(proc, log, tmp_path / "stderr.txt", "pose-demo", "")
    assert "WARNING pose.video.pipeline: interrupted: keeping the" in stderr
    assert "- interrupted" in stdout
    records = read_frame_records(jsonl)  # every line complete and valid
    assert 3 <= len(records) < 72
    assert [r["frame_index"] for r in records] == list(range(len(records)))
    assert (out / "demo_skeleton_pose.mp4").stat().st_size > 0  # the finished frames' video is kept
    assert runner.temp_leftovers(out) == []


@pytest.mark.slow
def test_sigint_during_train_keeps_last_complete_checkpoint(fixtures, tmp_path):
    from pose.weights import read_checkpoint

    out = tmp_path / "train"
    proc, log = _start("pose-train", ["--cfg", fixtures["tiny_cfg"], "--output-dir", str(out),
                                      "TRAIN.END_EPOCH", "100000", "TRAIN.MAX_ITERS_PER_EPOCH", "3",
                                      "TRAIN.LR_STEP", "[99999]", "TRAIN.VAL_INTERVAL", "0"], tmp_path / "stderr.txt")
    _wait_for(proc, lambda: (out / "checkpoint_last.pth").exists(), 240, "the first checkpoint")
    time.sleep(1.0)
    _interrupt(proc, log, tmp_path / "stderr.txt", "pose-train")
    assert runner.temp_leftovers(out) == []
    for path in out.glob("*.pth"):
        read_checkpoint(path)  # complete, loadable files only
