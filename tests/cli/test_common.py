"""pose.cli.common: flags written after the KEY VALUE overrides (issue 16, item 7)."""
import pytest

from pose.cli.common import parse_args


@pytest.fixture(scope="module")
def eval_parser():
    from pose.cli.evaluate import build_parser

    return build_parser()


@pytest.fixture(scope="module")
def train_parser():
    from pose.cli.train import build_parser

    return build_parser()


@pytest.mark.parametrize("argv, opts, flags", [
    # the command line: --quiet after an override used to become an override ("expected KEY VALUE pairs")
    (["--cfg", "F", "TEST.MODEL_FILE", "w.pth", "--quiet"], ["TEST.MODEL_FILE", "w.pth"], {"quiet": True}),
    (["--cfg", "F", "TEST.FLIP_TEST", "False", "--batch-size", "4", "TEST.POST_PROCESS", "False", "--debug"],
     ["TEST.FLIP_TEST", "False", "TEST.POST_PROCESS", "False"], {"batch_size": 4, "debug": True}),
    (["--cfg", "F", "TRAIN.LR", "-0.5", "--gt-boxes"], ["TRAIN.LR", "-0.5"], {"gt_boxes": True}),  # -0.5: a value
    (["--cfg", "F", "TEST.X", "1", "--output-dir=out", "--quie"], ["TEST.X", "1"],
     {"output_dir": "out", "quiet": True}),
    (["--cfg", "F", "--quiet", "TEST.X", "1"], ["TEST.X", "1"], {"quiet": True}),  # flags first: unchanged
    (["--cfg", "F", "TEST.X", "1"], ["TEST.X", "1"], {"quiet": False}),
    (["--cfg", "F", "DATA_DIR", "-data", "--quiet"], ["DATA_DIR", "-data"], {"quiet": True}),  # not a flag: a value
])
def test_flags_after_overrides_are_parsed_as_flags(eval_parser, argv, opts, flags):
    args = parse_args(eval_parser, argv)
    assert args.opts == opts and args.cfg == "F"
    for name, value in flags.items():
        assert getattr(args, name) == value


@pytest.mark.parametrize("argv, message", [
    (["--cfg", "F", "TEST.FLIP_TEST", "--quiet"],
     "override TEST.FLIP_TEST is followed by the flag '--quiet' instead of a value; put flags before the KEY VALUE "
     "overrides"),
    (["--cfg", "F", "TEST.X", "1", "--no-such-flag"],
     "unrecognized argument '--no-such-flag' among the KEY VALUE overrides; put flags before the KEY VALUE overrides"),
    (["--cfg", "F", "TEST.X", "1", "--batch-size"], "flag '--batch-size' expects 1 value(s); put flags before"),
    (["--cfg", "F", "TEST.X", "1", "--batch-size", "--quiet"], "flag '--batch-size' expects 1 value(s)"),
])
def test_ambiguous_or_unknown_flags_after_overrides_are_usage_errors(eval_parser, argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(eval_parser, argv)
    assert exit_info.value.code == 2
    assert f"pose-eval: error: {message}" in capsys.readouterr().err


def test_required_flags_and_official_aliases_survive_the_reparse(train_parser):
    args = parse_args(train_parser, ["--cfg", "F", "TRAIN.END_EPOCH", "1", "--dataDir", "/d", "--no-progress"])
    assert args.cfg == "F" and args.dataDir == "/d" and args.no_progress and args.opts == ["TRAIN.END_EPOCH", "1"]


def test_a_flag_after_the_overrides_takes_effect_end_to_end(tmp_path, capsys):
    """Through main(): ``--weights`` written after the overrides is the weights file that is read."""
    from pose.cli.evaluate import main
    from tests.conftest import REPO

    missing = tmp_path / "nope.pth"
    code = main(["--cfg", str(REPO / "configs" / "tiny_hrnet_128x96.yaml"), "TEST.FLIP_TEST", "False",
                 "--weights", str(missing), "--output-dir", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert err[0].startswith("pose-eval: error: ") and "nope.pth" in err[0]
