"""Shared CLI plumbing: one-line errors, ``--debug`` tracebacks, exit codes.

Exit codes: 0 success, 1 a :class:`pose.errors.PoseError` (bad input), 2 usage error (argparse),
130 interrupted (Ctrl-C), 3 unexpected internal error (a bug: rerun with ``--debug`` and report it).
"""
import argparse
import logging
import sys
import traceback
from typing import Callable, Optional, Sequence

from pose.errors import PoseError

EXIT_OK, EXIT_BAD_INPUT, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """``--debug`` (show tracebacks) and ``--quiet`` (warnings only)."""
    parser.add_argument("--debug", action="store_true", help="show full Python tracebacks on errors")
    parser.add_argument("--quiet", action="store_true", help="only print warnings and errors")


def setup_logging(quiet: bool = False) -> None:
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def run_cli(prog: str, body: Callable[[argparse.Namespace], Optional[int]],
            parser: argparse.ArgumentParser, argv: Optional[Sequence[str]] = None) -> int:
    """Parse ``argv``, run ``body(args)`` and turn exceptions into one-line messages + exit codes."""
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False)
    setup_logging(getattr(args, "quiet", False))
    try:
        code = body(args)
        return EXIT_OK if code is None else int(code)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; finished outputs were kept, partial files removed", file=sys.stderr)
        return EXIT_INTERRUPTED
    except PoseError as e:
        if debug:
            traceback.print_exc()
        print(f"{prog}: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as e:  # unwritable folder, disk full, ...: still the user's environment, not a bug
        if debug:
            traceback.print_exc()
        where = f" '{e.filename}'" if getattr(e, "filename", None) else ""
        print(f"{prog}: error: {e.strerror or e}{where}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as e:  # a bug in pose: say so in one line, traceback only with --debug
        if debug:
            traceback.print_exc()
        print(f"{prog}: internal error: {type(e).__name__}: {_one_line(e)} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return EXIT_INTERNAL


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__
