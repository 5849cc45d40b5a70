"""The CLI contract of the README ("Exit codes"): one-line errors, exit 3 on an internal error, and
``--debug`` printing the traceback, checked through a real command (``pose-eval``). Standard error is
captured at file descriptor 2 (``capfd``), so a line written there by C code would count too."""
import pytest

from pose.cli import common
from pose.cli.evaluate import main
from pose.errors import DataError
from tests.conftest import DATA, REPO

ARGS = ["--cfg", str(REPO / "configs" / "tiny_hrnet_128x96.yaml"), "--weights", "w.pth", "--gt-boxes", "--quiet"]


def _raise(exc):
    def body(*_args, **_kwargs):
        raise exc
    return body


@pytest.fixture
def evaluation_raises(monkeypatch):
    from pose.evaluation import runner

    def set_error(exc):
        monkeypatch.setattr(runner, "run_evaluation", _raise(exc))
    return set_error


def test_internal_error_exits_3_with_one_line_and_no_traceback(evaluation_raises, tmp_path, capfd):
    evaluation_raises(ZeroDivisionError("division by zero in a bug"))
    code = main(ARGS + ["--output-dir", str(tmp_path)])
    err = capfd.readouterr().err
    assert code == common.EXIT_INTERNAL == 3
    assert err.strip().splitlines() == ["pose-eval: internal error: ZeroDivisionError: division by zero in a bug "
                                        "(rerun with --debug for the traceback)"]


def test_debug_prints_the_traceback_then_the_same_line(evaluation_raises, tmp_path, capfd):
    evaluation_raises(ZeroDivisionError("division by zero in a bug"))
    code = main(ARGS + ["--output-dir", str(tmp_path), "--debug"])
    err = capfd.readouterr().err
    assert code == 3
    assert err.startswith("Traceback (most recent call last):") and "ZeroDivisionError" in err
    assert "in body" in err  # the frame that raised is shown
    assert err.strip().splitlines()[-1].startswith("pose-eval: internal error: ZeroDivisionError")


def test_bad_input_exits_1_and_debug_shows_its_traceback(evaluation_raises, tmp_path, capfd):
    evaluation_raises(DataError(f"annotation file '{DATA / 'x.json'}' does not exist"))
    assert main(ARGS + ["--output-dir", str(tmp_path)]) == common.EXIT_BAD_INPUT == 1
    err = capfd.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert main(ARGS + ["--output-dir", str(tmp_path), "--debug"]) == 1
    err = capfd.readouterr().err
    assert err.startswith("Traceback") and err.strip().splitlines()[-1].startswith("pose-eval: error: annotation")
