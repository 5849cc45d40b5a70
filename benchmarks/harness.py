"""Benchmark harness: section registry, machine header, alternating timed rounds, the result table.

Each section is a function ``(args) -> list[dict]`` registered with ``@section("name")`` in its own
module (:mod:`benchmarks.decode`, :mod:`benchmarks.model`, :mod:`benchmarks.demo`,
:mod:`benchmarks.train`); every row holds at least ``section``, ``name`` and ``value``/``unit``.

Timing rules: warm-up calls first, then rounds in which the variants run in alternating order (so a
noisy neighbour hurts all of them alike); medians are reported, speed-ups are per-round ratios to the
baseline of the same run. Other processes' CPU load and VM steal during each timed block are recorded.
"""
import argparse
import math
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np

import pose
from pose.hardware import cpu_bf16_units, cpu_model

#: The repository root (the benchmarks read its bundled clip and test images).
REPO = Path(__file__).resolve().parents[1]

SECTIONS: Dict[str, Callable[[argparse.Namespace], List[dict]]] = {}


def section(name: str):
    """Register a benchmark section under ``name`` (selected with ``--only name``)."""
    def register(fn):
        SECTIONS[name] = fn
        return fn
    return register


def machine_header() -> dict:
    """Machine and library versions, printed above the table and stored in the JSON."""
    import cv2
    header = {
        "python": platform.python_version(), "platform": platform.platform(), "machine": platform.machine(),
        "processor": platform.processor() or "unknown", "cpu": cpu_model(),
        "cpu_bf16_units": ", ".join(cpu_bf16_units()) or "none", "cpu_count": os.cpu_count(),
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


def time_variants(variants: Dict[str, Callable[[], object]], rounds: int = 7,
                  warmup: int = 1) -> Dict[str, float]:
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


W32_MACS_PER_CROP = 7.645e9  # conv MACs of HRNet-W32 at 256x192 (research/cpu-performance.md section 3)


class OtherLoad:
    """CPU use of *other* processes (cores) and VM steal during a timed block, from /proc/stat."""

    def __init__(self):
        self.hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def _read(self):
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:]]
        except OSError:
            return None
        busy = v[0] + v[1] + v[2] + v[5] + v[6]  # user nice system irq softirq
        steal = v[7] if len(v) > 7 else 0
        t = os.times()
        return busy / self.hz, steal / self.hz, t.user + t.system, time.perf_counter()

    def start(self):
        self._t0 = self._read()

    def stop(self):
        t1 = self._read()
        if t1 is None or self._t0 is None:
            return float("nan"), float("nan")
        wall = max(t1[3] - self._t0[3], 1e-9)
        other = ((t1[0] - self._t0[0]) - (t1[2] - self._t0[2])) / wall
        return max(other, 0.0), (t1[1] - self._t0[1]) / wall


def time_rounds(variants: Dict[str, Callable[[], object]], rounds: int, min_block_s: float = 0.0,
                 warmup: int = 1):
    """Per-round seconds per call of each variant; order alternates per round.

    Each block repeats a variant's call until ``min_block_s`` has passed (at least once).
    Returns ``({name: [s/call per round]}, other_load_cores_median, steal_median)``.
    """
    names = list(variants)
    for _ in range(warmup):
        for name in names:
            variants[name]()
    samples = {name: [] for name in names}
    load, others, steals = OtherLoad(), [], []
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            load.start()
            calls, t0 = 0, time.perf_counter()
            while True:
                variants[name]()
                calls += 1
                elapsed = time.perf_counter() - t0
                if elapsed >= min_block_s:
                    break
            samples[name].append(elapsed / calls)
            other, steal = load.stop()
            others.append(other)
            steals.append(steal)
    return samples, statistics.median(others), statistics.median(steals)


def random_bn_hrnet(arch: str = "hrnet_w32", seed: int = 0):
    """An eval-mode PoseHRNet with random weights and random BN statistics (so BN folding is real)."""
    import torch

    from pose.models import build_model_from_arch

    torch.manual_seed(seed)
    model = build_model_from_arch(arch, 17)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.mul_(0.5)
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
    return model.eval()


def setup_cpu_env(threads: int = 2) -> None:
    """The research method: 2 torch threads, large oneDNN primitive caches (many variants per process)."""
    import torch
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "8192")
    os.environ.setdefault("LRU_CACHE_CAPACITY", "8192")
    torch.set_num_threads(threads)


def matmul_gflops(rounds: int = 3) -> float:
    """torch.matmul 2048^2 fp32 rate in this process (GFLOP/s, median)."""
    import torch
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    torch.matmul(a, b)
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        times.append(time.perf_counter() - t0)
    return 2 * 2048 ** 3 / statistics.median(times) / 1e9
