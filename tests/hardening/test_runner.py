"""The hardening runner's checks themselves (no subprocess): each flags the defect it is there for."""
import json
from pathlib import Path

from tests.hardening import runner


def _outcome(tmp_path, *, exit, returncode, stderr="", files=None):
    out = tmp_path / "out"
    out.mkdir(parents=True)
    for name, data in (files or {}).items():
        (out / name).write_bytes(data)
    case = runner.Case(id="c", cmd="pose-eval", args="", exit=exit)
    return runner.Outcome(case, [str(Path("/venv/bin/pose-eval"))], out, returncode, "", stderr, 0.1)


ERROR = "pose-eval: error: 'x.json' does not exist\n"


def test_a_clean_refusal_passes(tmp_path):
    assert runner.problems(_outcome(tmp_path, exit=1, returncode=1, stderr=ERROR), {}) == []


def test_refusal_leaving_any_file_is_flagged(tmp_path):
    found = runner.problems(_outcome(tmp_path, exit=1, returncode=1, stderr=ERROR,
                                     files={"clip_keypoints.jsonl": b""}), {})
    assert found == ["a refusal left files in the output folder: ['clip_keypoints.jsonl']"]


def test_a_second_stderr_line_is_flagged_for_every_non_zero_exit(tmp_path):
    for code in (1, 2, 3):
        found = runner.problems(_outcome(tmp_path / str(code), exit=code, returncode=code,
                                         stderr="[mov,mp4 @ 0x55] moov atom not found\n" + ERROR), {})
        assert len(found) == 1 and "got 2 line(s)" in found[0] and "moov atom" in found[0], (code, found)
    found = runner.problems(_outcome(tmp_path / "u", exit=2, returncode=2,
                                     stderr="usage: pose-eval [-h]\n" + ERROR), {})
    assert len(found) == 1 and "got 2 line(s)" in found[0]
    found = runner.problems(_outcome(tmp_path / "n", exit=2, returncode=2, stderr="pose-eval: bad flag\n"), {})
    assert len(found) == 1 and "exactly one 'PROG: error: ...' line" in found[0]


def test_success_with_a_half_written_output_is_flagged(tmp_path):
    good = json.dumps({"AP": 0.5}).encode()
    assert runner.problems(_outcome(tmp_path / "ok", exit=0, returncode=0, files={"metrics.json": good}), {}) == []
    half = {"metrics.json": good[:7], "a_keypoints.jsonl": b'{"frame_index": 0}\n{"frame_ind',
            "b_pose.jpg": b"\xff\xd8"}
    found = runner.problems(_outcome(tmp_path / "bad", exit=0, returncode=0, files=half), {})
    assert sorted(f.split(" is not")[0] for f in found) == [
        "output a_keypoints.jsonl", "output b_pose.jpg", "output metrics.json"], found
