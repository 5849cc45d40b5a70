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
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np

import pose
from pose.codec import DECODERS, HeatmapCodec
from pose.cli.common import add_common_args, run_cli
from pose.fileio import ensure_output_dir, write_json

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
            rows.append({"section": "decode", "name": name, "n": n, "value": t / n * 1e6,
                         "unit": "us/person"})
        ratio = times["loop-quarter"] / times["vec-quarter"]
        rows.append({"section": "decode", "name": "ratio loop/vec-quarter", "n": n, "value": ratio,
                     "unit": "x", "note": "same results, checked"})
    return rows


# -- sections: model (inference backends) and demo (end-to-end) ----------------------------------
W32_MACS_PER_CROP = 7.645e9  # conv MACs of HRNet-W32 at 256x192 (research/cpu-performance.md section 3)


class _OtherLoad:
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


def _time_rounds(variants: Dict[str, Callable[[], object]], rounds: int, min_block_s: float = 0.0,
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
    load, others, steals = _OtherLoad(), [], []
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


def _random_bn_hrnet(arch: str = "hrnet_w32", seed: int = 0):
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


def _setup_cpu_env(threads: int = 2) -> None:
    """The research method: 2 torch threads, large oneDNN primitive caches (many variants per process)."""
    import torch
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "8192")
    os.environ.setdefault("LRU_CACHE_CAPACITY", "8192")
    torch.set_num_threads(threads)


def _model_backends(model, compile_too: bool, threads: int, cache_dir: str) -> Dict[str, Callable]:
    from pose.backends import OptimizedTorchBackend, build_backend
    from pose.predictor import TorchBackend
    out = {
        "eager (official-style)": TorchBackend(model, "cpu"),
        "torch bn-fold": OptimizedTorchBackend(model, fold_bn=True, channels_last=False),
        "torch channels_last": OptimizedTorchBackend(model, fold_bn=False, channels_last=True),
        "torch bn-fold+channels_last": OptimizedTorchBackend(model),
    }
    if compile_too:
        out["torch compile(freezing)+cl"] = OptimizedTorchBackend(model, compile=True)
    try:
        out["onnxruntime"] = build_backend(model, "onnxruntime", input_size=(192, 256), threads=threads,
                                           cache_dir=cache_dir)
    except Exception as e:  # onnxruntime missing: report the torch rows only
        print(f"# model: onnxruntime skipped ({e})", file=sys.stderr)
    return out


def _matmul_gflops(rounds: int = 3) -> float:
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


@section("model")
def bench_model(args) -> List[dict]:
    """HRNet-W32 256x192 crops/s per backend at batch 1 and 8, vs the official-style eager model."""
    import tempfile

    import torch
    _setup_cpu_env(2)
    model = _random_bn_hrnet("hrnet_w32")
    rows = []
    with tempfile.TemporaryDirectory(prefix="pose-bench-") as cache_dir:
        t0 = time.perf_counter()
        backends = _model_backends(model, getattr(args, "compile", False), 2, cache_dir)
        setup_s = time.perf_counter() - t0
        check = torch.rand(2, 3, 256, 192, generator=torch.Generator().manual_seed(0)) * 255
        ref = backends["eager (official-style)"](check)
        for name, fn in backends.items():
            diff = float(np.abs(fn(check) - ref).max())
            rows.append({"section": "model", "name": f"{name} max|diff| vs eager", "n": 2, "value": diff,
                         "unit": "heatmap", "note": "accuracy check, 2 random crops"})
        rows.append({"section": "model", "name": "backend setup (fold, ONNX export+session)", "value": setup_s,
                     "unit": "s"})
        batches = [1, 8]
        rounds = max(3, min(args.rounds, 3 if args.quick else 7))
        for batch in batches:
            x = torch.rand(batch, 3, 256, 192, generator=torch.Generator().manual_seed(batch)) * 255
            variants = {name: (lambda fn=fn: fn(x)) for name, fn in backends.items()}
            a, mm = torch.randn(2048, 2048), torch.randn(2048, 2048)
            variants["matmul 2048^2"] = lambda: torch.matmul(a, mm)
            min_block = 0.0 if (args.quick or batch > 1) else 1.0
            samples, other, steal = _time_rounds(variants, rounds, min_block_s=min_block)
            matmul_rate = 2 * 2048 ** 3 / statistics.median(samples.pop("matmul 2048^2")) / 1e9
            base = samples["eager (official-style)"]
            for name, ts in samples.items():
                t = statistics.median(ts)
                ratios = [b / v for b, v in zip(base, ts)]
                gflops = 2 * W32_MACS_PER_CROP * batch / t / 1e9
                rows.append({"section": "model", "name": name, "n": batch, "value": batch / t, "unit": "crops/s",
                             "ms_per_crop": t / batch * 1e3, "speedup": statistics.median(ratios),
                             "speedup_range": [min(ratios), max(ratios)], "gflops": gflops,
                             "pct_matmul": gflops / matmul_rate,
                             "note": (f"{t / batch * 1e3:.0f} ms/crop, x{statistics.median(ratios):.2f} "
                                      f"[{min(ratios):.2f}-{max(ratios):.2f}] vs eager, {gflops:.0f} GFLOP/s = "
                                      f"{100 * gflops / matmul_rate:.0f}% of matmul")})
            rows.append({"section": "model", "name": "torch.matmul 2048^2 fp32", "n": batch, "value": matmul_rate,
                         "unit": "GFLOP/s", "note": f"same run; other load {other:.2f} cores, steal {steal:.2f}"})
    return rows


def _read_frames(path: Path, n: int) -> List[np.ndarray]:
    import cv2
    from pose.imageio import bgr_to_rgb
    cap = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < n:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(bgr_to_rgb(frame))
    cap.release()
    if not frames:
        raise SystemExit(f"benchmark demo: no frames could be read from {path}")
    return frames


@section("demo")
def bench_demo(args) -> List[dict]:
    """End-to-end frames/s (YOLOX-Nano + HRNet-W32 + tracking) vs a per-box eager pipeline."""
    import tempfile

    from pose.backends import build_backend
    from pose.codec import HeatmapCodec
    from pose.detection import build_detector
    from pose.keypoints import COCO_17
    from pose.predictor import TopDownPredictor, TorchBackend
    from pose.tracking import PoseTracker

    _setup_cpu_env(2)
    video = Path(__file__).resolve().parents[1] / "demo" / "assets" / "demo_skeleton.mp4"
    frames = _read_frames(video, 4 if args.quick else getattr(args, "frames", 16))
    detector = build_detector("yolox-nano")
    model = _random_bn_hrnet("hrnet_w32")  # random weights: timing only
    codec = HeatmapCodec((192, 256), (48, 64), 2.0)
    rows = []
    with tempfile.TemporaryDirectory(prefix="pose-bench-") as cache_dir:
        try:
            fast = build_backend(model, "onnxruntime", input_size=(192, 256), threads=2, cache_dir=cache_dir)
        except Exception:
            fast = build_backend(model, "torch-fast")
        eager = TorchBackend(model, "cpu")
        persons = []

        def pipeline(backend, flip, batch_size):
            predictor = TopDownPredictor(backend, codec, COCO_17, flip_test=flip, batch_size=batch_size)
            tracker = PoseTracker()

            def run():
                tracker.reset()
                count = 0
                for frame in frames:
                    boxes = tracker.update(detector(frame))
                    if batch_size == 1:  # the official demo: one forward per person box
                        for box in boxes:
                            predictor(frame, [box])
                    else:
                        predictor(frame, boxes)
                    count += len(boxes)
                persons.append(count)
            return run

        variants = {}
        for flip in (False, True):
            tag = "flip" if flip else "no flip"
            variants[f"per-box eager, {tag}"] = pipeline(eager, flip, 1)
            variants[f"batched {getattr(fast, 'name', 'fast')}, {tag}"] = pipeline(fast, flip, 32)
        rounds = 1 if args.quick else max(1, min(args.rounds, 3))
        samples, other, steal = _time_rounds(variants, rounds, warmup=0 if args.quick else 1)
        n = len(frames)
        for flip_tag in ("no flip", "flip"):
            base = samples[f"per-box eager, {flip_tag}"]
            for name, ts in samples.items():
                if name.rsplit(", ", 1)[-1] != flip_tag:
                    continue
                ratios = [b / v for b, v in zip(base, ts)]
                rows.append({"section": "demo", "name": name, "n": n, "value": n / statistics.median(ts),
                             "unit": "frames/s", "speedup": statistics.median(ratios),
                             "note": f"x{statistics.median(ratios):.2f} vs per-box eager "
                                     f"[{min(ratios):.2f}-{max(ratios):.2f}]"})
        rows.append({"section": "demo", "name": "persons per frame", "n": n, "value": persons[-1] / n,
                     "unit": "boxes", "note": f"{video.name}; other load {other:.2f} cores, steal {steal:.2f}"})
    return rows


# -- section: train (owner: training) --------------------------------------------------------
def _train_bench_config(repo: str):
    """The paper's COCO W32 256x192 config with its augmentation, pointed at the 4-image sample."""
    from pose.config import load_config
    coco = os.path.join(repo, "tests", "data", "coco")
    ann = os.path.join(coco, "test_coco.json")
    return load_config(os.path.join(repo, "configs", "coco_hrnet_w32_256x192.yaml"),
                       ["DATA_DIR", "", "DATASET.TRAIN_ANN_FILE", ann, "DATASET.TRAIN_IMAGE_DIR", coco,
                        "DATASET.TEST_ANN_FILE", ann, "DATASET.TEST_IMAGE_DIR", coco])


@section("train")
def bench_train(args) -> List[dict]:
    """Training data-loader samples/s (augmented COCO crops + targets) per worker count, and the
    forward+backward+Adam step time of HRNet-W32 256x192 at batch 8 on the CPU."""
    import torch

    from pose.codec import build_codec
    from pose.data import build_dataset
    from pose.losses import joints_mse_loss
    from pose.models import build_model

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cfg = _train_bench_config(repo)
    dataset = build_dataset(cfg, "train", build_codec(cfg))
    rows = []
    n = 24 if args.quick else 96
    order = [i % len(dataset) for i in range(n)]
    rounds = min(args.rounds, 3)
    for workers in (0, 1, 2):
        def run_loader(workers=workers):
            loader = torch.utils.data.DataLoader(dataset, batch_size=8, sampler=order, num_workers=workers)
            for _ in loader:
                pass
        t = time_variants({"loader": run_loader}, rounds=rounds, warmup=0)["loader"]
        rows.append({"section": "train", "name": f"data loader, {workers} workers", "n": n, "value": n / t,
                     "unit": "samples/s", "note": "256x192 crops + 64x48 targets, COCO augmentation, "
                                                 "worker start-up included"})

    torch.manual_seed(0)
    model = build_model(cfg.MODEL)
    model.init_weights()
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch = 2 if args.quick else 8
    w, h = cfg.MODEL.IMAGE_SIZE
    hw, hh = cfg.MODEL.HEATMAP_SIZE
    images = torch.rand(batch, 3, h, w) * 255
    target = torch.rand(batch, cfg.MODEL.NUM_JOINTS, hh, hw)
    weight = torch.ones(batch, cfg.MODEL.NUM_JOINTS)

    def step():
        optimizer.zero_grad(set_to_none=True)
        joints_mse_loss(model(images), target, weight).backward()
        optimizer.step()

    t = time_variants({"step": step}, rounds=rounds, warmup=1)["step"]
    note = f"forward+backward+Adam, fp32, {torch.get_num_threads()} threads"
    rows.append({"section": "train", "name": "W32 256x192 train step (cpu)", "n": batch, "value": t,
                 "unit": "s/step", "note": note})
    rows.append({"section": "train", "name": "W32 256x192 train throughput (cpu)", "n": batch,
                 "value": batch / t, "unit": "samples/s", "note": note})
    return rows


# -- entry point ---------------------------------------------------------------------------
def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"got {value}, expected an integer >= 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="benchmark.py", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default="", help=f"comma-separated sections to run (of: {', '.join(SECTIONS)})")
    p.add_argument("--rounds", type=_positive_int, default=7, help="timed rounds per variant (median reported)")
    p.add_argument("--quick", action="store_true", help="smaller sizes, for smoke tests")
    p.add_argument("--json", metavar="OUT", help="also write header and rows to this JSON file")
    p.add_argument("--compile", action="store_true", help="model: also time torch.compile (minutes per shape)")
    p.add_argument("--frames", type=int, default=16, help="demo: number of video frames")
    add_common_args(p)
    return p


def parse_args(argv=None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv=None) -> int:
    """Exit codes and one-line errors as the ``pose-*`` commands (:func:`pose.cli.common.run_cli`)."""
    return run_cli("benchmark.py", _body, build_parser(), argv)


def _body(args: argparse.Namespace) -> int:
    names = [s.strip() for s in args.only.split(",") if s.strip()] or list(SECTIONS)
    unknown = [s for s in names if s not in SECTIONS]
    if unknown:
        print(f"benchmark: unknown section(s) {', '.join(unknown)}; expected some of {', '.join(SECTIONS)}",
              file=sys.stderr)
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
