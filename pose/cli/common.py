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


#: The positional that collects ``KEY VALUE`` config overrides (``nargs=argparse.REMAINDER``).
OVERRIDES_DEST = "opts"


def _option_action(parser: argparse.ArgumentParser, token: str):
    """The parser's action for an option token (``--quiet``, ``--batch-size=4``, a unique prefix), else None."""
    name = token.split("=", 1)[0]
    actions = parser._option_string_actions  # argparse keeps no public map from option strings to actions
    if name in actions:
        return actions[name]
    if parser.allow_abbrev and name.startswith("--"):
        matches = {actions[o] for o in actions if o.startswith(name)}
        if len(matches) == 1:
            return matches.pop()
    return None


def _is_option_like(token: str) -> bool:
    """``--x`` or ``-x`` (not a negative number such as ``-0.5``, a legitimate override value)."""
    if not token.startswith("-") or token == "-":
        return False
    try:
        float(token)
        return False
    except ValueError:
        return True


def split_trailing_flags(parser: argparse.ArgumentParser, overrides: Sequence[str]):
    """``(overrides, flags)``: the command-line flags written among or after the ``KEY VALUE`` overrides.

    ``--cfg F TEST.MODEL_FILE w.pth --quiet`` puts ``--quiet`` into the overrides (argparse's
    ``REMAINDER`` takes everything after the first override). A flag of the parser standing where a
    KEY is expected (config keys never start with ``-``) moves, with its value(s), to ``flags``. A
    usage error (exit 2) that says to put flags first: an unknown flag-like token where a KEY is
    expected, a known flag where a VALUE is expected (``TEST.MODEL_FILE --quiet``: is ``--quiet`` the
    value?), or a flag with a variable number of values.
    """
    kept, flags, i = [], [], 0
    tokens = list(overrides)
    hint = "put flags before the KEY VALUE overrides"
    while i < len(tokens):
        token = tokens[i]
        action = _option_action(parser, token) if _is_option_like(token) else None
        if len(kept) % 2:  # a VALUE is expected
            if action is not None:
                parser.error(f"override {kept[-1]} is followed by the flag {token!r} instead of a value; {hint}")
            kept.append(token)
            i += 1
            continue
        if action is None:
            if _is_option_like(token):
                parser.error(f"unrecognized argument {token!r} among the KEY VALUE overrides; {hint}")
            kept.append(token)
            i += 1
            continue
        takes = 0 if "=" in token else (1 if action.nargs is None else action.nargs)
        if not isinstance(takes, int):  # nargs '?', '*', '+': where its values end is ambiguous
            parser.error(f"flag {token!r} after the KEY VALUE overrides is ambiguous; {hint}")
        chunk = tokens[i:i + 1 + takes]
        if len(chunk) < 1 + takes or any(_option_action(parser, t) for t in chunk[1:] if _is_option_like(t)):
            parser.error(f"flag {token!r} expects {takes} value(s); {hint}")
        flags += chunk
        i += 1 + takes
    return kept, flags


def parse_args(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """``parser.parse_args`` that also accepts flags after the ``KEY VALUE`` overrides (see
    :func:`split_trailing_flags`): they are moved before the overrides and the line is parsed again."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    overrides = getattr(args, OVERRIDES_DEST, None)
    if not overrides:
        return args
    kept, flags = split_trailing_flags(parser, overrides)
    if not flags:
        return args
    head = argv[:len(argv) - len(overrides)]
    if argv[len(head):] != list(overrides):  # REMAINDER is the tail of argv; anything else: leave it
        return args
    return parser.parse_args(head + flags + kept)


def run_cli(prog: str, body: Callable[[argparse.Namespace], Optional[int]],
            parser: argparse.ArgumentParser, argv: Optional[Sequence[str]] = None) -> int:
    """Parse ``argv`` (:func:`parse_args`), run ``body(args)`` and turn exceptions into one-line messages
    + exit codes."""
    args = parse_args(parser, argv)
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
