"""``pose-plot``: draw the training curves of a run (loss, lr, validation AP/PCKh) into a PNG.

Examples:
    pose-plot output/coco/pose_hrnet/coco_hrnet_w32_256x192            (reads metrics.jsonl there)
    pose-plot run/metrics.jsonl -o curves.png

Reads the ``metrics.jsonl`` that ``pose-train`` writes. Records repeated by a resumed run (the
iterations between the last checkpoint and a crash are trained again) are shown once: the latest
record of each global step wins. Needs matplotlib (``pip install matplotlib`` or ``pose[plot]``).
"""
import argparse
import json
import sys
from pathlib import Path

from pose.cli.common import add_common_args, run_cli
from pose.errors import DataError, PoseError


def read_metrics(path) -> list:
    """The records of a ``metrics.jsonl`` file (a run folder is accepted too)."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    if not path.is_file():
        raise DataError(f"metrics file '{path}' does not exist; expected the metrics.jsonl of a "
                        "pose-train run")
    records = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                # A run killed mid-write can leave a cut last line; anything else is a bad file.
                if f.readline():
                    raise DataError(f"metrics file '{path}': line {number} is not JSON; expected one JSON "
                                    "record per line") from None
    return records


def curves(records: list) -> dict:
    """``{name: (xs, ys)}`` for ``train_loss``, ``epoch_loss``, ``lr``, ``val`` (x = global step)."""
    latest = {}
    for r in records:
        if r.get("type") in ("train", "epoch", "val") and "global_step" in r:
            latest[(r["type"], r["global_step"])] = r
    out = {"train_loss": ([], []), "epoch_loss": ([], []), "lr": ([], []), "val": ([], [])}
    val_name = "metric"
    for (kind, step), r in sorted(latest.items(), key=lambda kv: kv[0][1]):
        if kind == "train" and r.get("loss") is not None:
            out["train_loss"][0].append(step)
            out["train_loss"][1].append(r["loss"])
            out["lr"][0].append(step)
            out["lr"][1].append(r["lr"])
        elif kind == "epoch" and r.get("loss") is not None:
            out["epoch_loss"][0].append(step)
            out["epoch_loss"][1].append(r["loss"])
        elif kind == "val" and r.get("value") is not None:
            out["val"][0].append(step)
            out["val"][1].append(r["value"])
            val_name = r.get("metric", val_name)
    out["val_name"] = val_name
    return out


def plot_metrics(records: list, output_png, title: str = "") -> Path:
    """Render loss (log scale), lr and the validation metric against the global step into ``output_png``."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PoseError("pose-plot needs matplotlib, which is not installed; pip install matplotlib "
                        "(or pip install 'pose[plot]')") from None
    from pose.fileio import atomic_write

    c = curves(records)
    if not c["train_loss"][0] and not c["epoch_loss"][0] and not c["val"][0]:
        raise DataError("the metrics file has no train/epoch/val records yet; nothing to plot")
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(11, 4))
    if c["train_loss"][0]:
        ax_loss.plot(*c["train_loss"], lw=0.8, alpha=0.6, label="loss (logged steps)")
    if c["epoch_loss"][0]:
        ax_loss.plot(*c["epoch_loss"], "o-", ms=3, label="loss (epoch mean)")
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("iteration")
    ax_loss.set_ylabel("training loss")
    ax_loss.grid(alpha=0.3)
    ax_loss.legend(loc="upper right")
    if c["lr"][0]:
        ax_lr = ax_loss.twinx()
        ax_lr.plot(*c["lr"], color="gray", lw=0.8, ls="--")
        ax_lr.set_ylabel("learning rate", color="gray")
        ax_lr.set_ylim(bottom=0)
    if c["val"][0]:
        ax_val.plot(*c["val"], "o-", color="tab:green")
        best = max(c["val"][1])
        ax_val.set_title(f"best {c['val_name']} {best:.4f}")
    else:
        ax_val.text(0.5, 0.5, "no validation yet", ha="center", va="center", transform=ax_val.transAxes)
    ax_val.set_xlabel("iteration")
    ax_val.set_ylabel(f"validation {c['val_name']}")
    ax_val.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    output_png = Path(output_png)
    with atomic_write(output_png, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
    return output_png


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pose-plot", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("metrics", help="a run folder or its metrics.jsonl")
    p.add_argument("-o", "--output", help="PNG to write (default: curves.png beside metrics.jsonl)")
    add_common_args(p)
    return p


def _body(args) -> int:
    source = Path(args.metrics)
    folder = source if source.is_dir() else source.parent
    output = Path(args.output) if args.output else folder / "curves.png"
    plot_metrics(read_metrics(source), output, title=str(folder))
    print(f"wrote {output}")
    return 0


def main(argv=None) -> int:
    return run_cli("pose-plot", _body, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
