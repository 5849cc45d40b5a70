"""Micro-benchmarks for ``pose``, organised in named sections.

    python -m benchmarks                      # every section
    python -m benchmarks --only decode        # one (or a comma list of) section(s)
    python -m benchmarks --only decode --json bench.json --rounds 9

Sections live in their own modules (``benchmarks/decode.py``, ``model.py``, ``precision.py`` (sections
``precision`` and ``fidelity``), ``demo.py``, ``train.py``, ``gpu.py`` (only with ``--device cuda``)),
registered with ``@section`` (:mod:`benchmarks.harness`, which also holds the timing rules). The
command prints a header with the machine and library versions, a table, and optionally writes
``{"header": ..., "rows": [...]}`` as JSON.
"""
import argparse
import sys
from pathlib import Path

from benchmarks import decode, demo, gpu, model, precision, train  # noqa: F401  (registers the sections)
from benchmarks.harness import SECTIONS, machine_header, print_table
from pose.cli.common import add_common_args, run_cli
from pose.fileio import ensure_output_dir, write_json


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"got {value}, expected an integer >= 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="benchmarks", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default="", help=f"comma-separated sections to run (of: {', '.join(SECTIONS)})")
    p.add_argument("--rounds", type=_positive_int, default=7, help="timed rounds per variant (median reported)")
    p.add_argument("--quick", action="store_true", help="smaller sizes, for smoke tests")
    p.add_argument("--json", metavar="OUT", help="also write header and rows to this JSON file")
    p.add_argument("--compile", action="store_true", help="model: also time torch.compile (minutes per shape)")
    p.add_argument("--frames", type=int, default=16, help="demo: number of video frames")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                   help="cuda: also run the gpu section (skipped with a 'not measured' row without a GPU)")
    add_common_args(p)
    return p


def parse_args(argv=None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv=None) -> int:
    """Exit codes and one-line errors as the ``pose-*`` commands (:func:`pose.cli.common.run_cli`)."""
    return run_cli("benchmarks", _body, build_parser(), argv)


def _body(args: argparse.Namespace) -> int:
    names = [s.strip() for s in args.only.split(",") if s.strip()] or [
        s for s in SECTIONS if s != "gpu" or args.device == "cuda"]
    unknown = [s for s in names if s not in SECTIONS]
    if unknown:
        print(f"benchmarks: error: unknown section(s) {', '.join(unknown)}; expected some of "
              f"{', '.join(SECTIONS)}", file=sys.stderr)
        return 2
    if args.json:  # fail now, not after minutes of timing
        ensure_output_dir(Path(args.json).resolve().parent)
    header = machine_header()
    for key, value in header.items():
        print(f"# {key}: {value}")
    rows = []
    for name in names:
        rows.extend(SECTIONS[name](args))
    print_table(rows)
    if args.json:
        write_json(args.json, {"header": header, "rows": rows})
        print(f"# wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
