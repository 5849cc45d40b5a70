"""Micro-benchmarks for ``pose``, organised in named sections.

    python scripts/benchmark.py                      # every section
    python scripts/benchmark.py --only decode        # one (or a comma list of) section(s)
    python scripts/benchmark.py --only decode --json bench.json --rounds 9

Each section is a function ``(args) -> list[dict]`` registered with ``@section("name")``; add new
ones (model backends, data loading, demo) the same way. Every row holds at least ``section``,
``name`` and ``value``/``unit``; the script prints a header with the machine and library versions,
a table, and optionally writes ``{"header": ..., "rows": [...]}`` as JSON.

Timing rules: warm-up calls first, then ``--rounds`` rounds in which the variants run in
alternating order (so a noisy neighbour hurts all of them alike); the median is reported.
"""
import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from typing import Callable, Dict, List

import numpy as np

import pose
from pose.codec import DECODERS, HeatmapCodec
from pose.fileio import write_json

SECTIONS: Dict[str, Callable[[argparse.Namespace], List[dict]]] = {}


def section(name: str):
    """Register a benchmark section under ``name`` (selected with ``--only name``)."""
    def register(fn):
        SECTIONS[name] = fn
        return fn
    return register


# -- harness -------------------------------------------------------------------------------
def machine_header() -> dict:
    """Machine and library versions, printed above the table and stored in the JSON."""
    import cv2
    header = {
        "python": platform.python_version(), "platform": platform.platform(), "machine": platform.machine(),
        "processor": platform.processor() or "unknown", "cpu_count": os.cpu_count(),
        "pose": pose.__version__, "numpy": np.__version__, "opencv": cv2.__version__,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", ""),
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    try:
        import torch
        header["torch"] = torch.__version__
        header["torch_threads"] = torch.get_num_threads()
        header["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    except ImportError:
        header["torch"] = "not installed"
    return header


def time_variants(variants: Dict[str, Callable[[], object]], rounds: int = 7, warmup: int = 1) -> Dict[str, float]:
    """Median wall time (seconds) of each zero-argument callable; order alternates per round."""
    names = list(variants)
    for _ in range(warmup):
        for name in names:
            variants[name]()
    samples = {name: [] for name in names}
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            t0 = time.perf_counter()
            variants[name]()
            samples[name].append(time.perf_counter() - t0)
    return {name: statistics.median(s) for name, s in samples.items()}


def print_table(rows: List[dict]) -> None:
    cols = ["section", "name", "n", "value", "unit", "note"]
    cells = [[_fmt(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    return str(v)


# -- section: decode ---------------------------------------------------------------------------
def loop_quarter_decode(heatmaps: np.ndarray):
    """A straightforward per-joint Python implementation of argmax + quarter-pixel decoding.

    The baseline the vectorised :class:`pose.codec.HeatmapCodec` is measured against (and checked
    to agree with). Returns heatmap-space coords (N, K, 2) float32 and maxvals (N, K) float32.
    """
    n, k, h, w = heatmaps.shape
    coords = np.zeros((n, k, 2), np.float32)
    maxvals = np.zeros((n, k), np.float32)
    for i in range(n):
        for j in range(k):
            hm = heatmaps[i, j]
            idx = int(np.argmax(hm))
            m = hm.flat[idx]
            maxvals[i, j] = m
            if m <= 0:
                continue
            x, y = idx % w, idx // w
            coords[i, j] = x, y
            if 1 < x < w - 1 and 1 < y < h - 1:
                coords[i, j, 0] += 0.25 * np.sign(hm[y, x + 1] - hm[y, x - 1])
                coords[i, j, 1] += 0.25 * np.sign(hm[y + 1, x] - hm[y - 1, x])
    return coords, maxvals


def synthetic_heatmaps(n: int, k: int = 17, seed: int = 0) -> np.ndarray:
    """Peaky (N, K, 64, 48) float32 maps: unbiased Gaussians at random positions plus noise."""
    rng = np.random.default_rng(seed)
    codec = HeatmapCodec((192, 256), (48, 64), 2, encoding="unbiased")
    kp = rng.uniform([8, 8], [184, 248], size=(n, k, 2))
    heatmaps, _ = codec.encode(kp, np.ones((n, k)))
    return heatmaps + rng.normal(0, 0.02, heatmaps.shape).astype(np.float32)


@section("decode")
def bench_decode(args) -> List[dict]:
    """Decode microseconds per person (17 joints, 64x48) for each decoder vs a per-joint loop."""
    rows = []
    sizes = [1, 32] if args.quick else [1, 32, 256]
    codecs = {d: HeatmapCodec((192, 256), (48, 64), 2, decoder=d) for d in DECODERS}
    for n in sizes:
        hm = synthetic_heatmaps(n)
        ref_coords, ref_max = loop_quarter_decode(hm)
        got_coords, got_max = codecs["quarter"].decode_heatmap_space(hm)
        if not (np.array_equal(ref_coords, got_coords) and np.array_equal(ref_max, got_max)):
            raise AssertionError("vectorised quarter decode disagrees with the loop baseline")
        variants = {"loop-quarter": lambda hm=hm: loop_quarter_decode(hm)}
        variants.update({f"vec-{d}": (lambda c=c, hm=hm: c.decode(hm)) for d, c in codecs.items()})
        times = time_variants(variants, rounds=args.rounds, warmup=1)
        for name, t in times.items():
            rows.append({"section": "decode", "name": name, "n": n, "value": t / n * 1e6, "unit": "us/person"})
        ratio = times["loop-quarter"] / times["vec-quarter"]
        rows.append({"section": "decode", "name": "ratio loop/vec-quarter", "n": n, "value": ratio, "unit": "x",
                     "note": "same results, checked"})
    return rows


# -- entry point ---------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default="", help=f"comma-separated sections to run (of: {', '.join(SECTIONS)})")
    p.add_argument("--rounds", type=int, default=7, help="timed rounds per variant (median reported)")
    p.add_argument("--quick", action="store_true", help="smaller sizes, for smoke tests")
    p.add_argument("--json", metavar="OUT", help="also write header and rows to this JSON file")
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error("--rounds: expected an integer >= 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    names = [s.strip() for s in args.only.split(",") if s.strip()] or list(SECTIONS)
    unknown = [s for s in names if s not in SECTIONS]
    if unknown:
        print(f"benchmark: unknown section(s) {', '.join(unknown)}; expected some of {', '.join(SECTIONS)}",
              file=sys.stderr)
        return 2
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
