"""``pose-plot``: draw the training curves of a run (loss, lr, validation AP/PCKh) into a PNG.

Examples:
    pose-plot output/coco/pose_hrnet/coco_hrnet_w32_256x192            (reads metrics.jsonl there)
    pose-plot run/metrics.jsonl -o curves.png

Reads the ``metrics.jsonl`` that ``pose-train`` writes. Records repeated by a resumed run (the
iterations between the last checkpoint and a crash are trained again) are shown once: the latest
record of each global step wins. Needs matplotlib (``pip install matplotlib`` or ``pose[plot]``).
"""
import argparse
import sys
from pathlib import Path

from pose.cli.common import add_common_args, run_cli


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pose-plot", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("metrics", help="a run folder or its metrics.jsonl")
    p.add_argument("-o", "--output", help="PNG to write (default: curves.png beside metrics.jsonl)")
    add_common_args(p)
    return p


def _body(args) -> int:
    from pose.run_log import plot_run_log, read_run_log

    source = Path(args.metrics)
    folder = source if source.is_dir() else source.parent
    output = Path(args.output) if args.output else folder / "curves.png"
    plot_run_log(read_run_log(source), output, title=str(folder))
    print(f"wrote {output}")
    return 0


def main(argv=None) -> int:
    return run_cli("pose-plot", _body, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
