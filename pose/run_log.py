"""The run log of a training run: ``metrics.jsonl`` (+ TensorBoard scalars), its reader and its plot.

:class:`RunLog` writes one flushed JSON record per line, rank 0 only. Every record has ``type``
(``train``, ``epoch``, ``val``, ``checkpoint``, ``resume``), ``time`` (Unix seconds) and, for curves,
``epoch`` and ``global_step``; NaN/inf become ``null`` so every line is strict JSON.
:func:`read_run_log` reads it back (a run killed mid-write may leave a cut last line, which is
dropped), :func:`run_log_curves` turns records into curves (records repeated by a resumed run are
shown once: the latest record of each global step wins) and :func:`plot_run_log` draws them
(``pose-plot``; needs matplotlib).
"""
import json
import logging
import math
import time
from pathlib import Path
from typing import Optional

from pose.errors import DataError, PoseError
from pose.fileio import atomic_write

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"


class RunLog:
    """``metrics.jsonl`` (one flushed JSON record per line) plus TensorBoard scalars, rank 0 only."""

    def __init__(self, output_dir: Path, tensorboard_dir: Optional[Path], enabled: bool = True):
        self.enabled = enabled
        self.file = open(output_dir / METRICS_FILE, "a", encoding="utf-8") if enabled else None
        self.writer = None
        if enabled and tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                logger.info("TensorBoard logging off: the 'tensorboard' package is not installed "
                            "(pip install tensorboard); metrics.jsonl is still written")
            else:
                self.writer = SummaryWriter(log_dir=str(tensorboard_dir))
                logger.info("TensorBoard scalars in %s", tensorboard_dir)

    def write(self, kind: str, **fields) -> None:
        if not self.enabled:
            return
        record = {"type": kind, "time": round(time.time(), 3), **_finite(fields)}
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.writer is not None and "global_step" in fields:
            for name, value in fields.items():
                if name not in ("epoch", "step", "global_step") and isinstance(value, (int, float)) \
                        and not isinstance(value, bool):
                    self.writer.add_scalar(f"{kind}/{name}", value, fields["global_step"])
            self.writer.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.writer is not None:
            self.writer.close()


def _finite(value):
    """``value`` with NaN/inf floats replaced by None, so every line is strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def read_run_log(path) -> list:
    """The records of a ``metrics.jsonl`` file (a run folder is accepted too)."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
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


def run_log_curves(records: list) -> dict:
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


def plot_run_log(records: list, output_png, title: str = "") -> Path:
    """Render loss (log scale), lr and the validation metric against the global step into ``output_png``."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PoseError("pose-plot needs matplotlib, which is not installed; pip install matplotlib "
                        "(or pip install 'pose[plot]')") from None
    c = run_log_curves(records)
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
