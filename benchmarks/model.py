"""Section ``model``: HRNet-W32 256x192 crops/s per backend at batch 1 and 8, vs the official-style eager model."""
import statistics
import sys
import time
from typing import Callable, Dict, List

import numpy as np

from benchmarks.harness import W32_MACS_PER_CROP, random_bn_hrnet, section, setup_cpu_env, time_rounds


def model_backends(model, compile_too: bool, threads: int, cache_dir: str) -> Dict[str, Callable]:
    """The timed variants: eager, BN fold, channels_last, both, optionally compile, and ONNX Runtime."""
    from pose.backends import OptimizedTorchBackend, TorchBackend
    from pose.loading import build_runtime

    out = {
        "eager (official-style)": TorchBackend(model, "cpu"),
        "torch bn-fold": OptimizedTorchBackend(model, fold_bn=True, channels_last=False),
        "torch channels_last": OptimizedTorchBackend(model, fold_bn=False, channels_last=True),
        "torch bn-fold+channels_last": OptimizedTorchBackend(model),
    }
    if compile_too:
        out["torch compile(freezing)+cl"] = OptimizedTorchBackend(model, compile=True)
    try:
        out["onnxruntime"] = build_runtime(model, "onnxruntime", input_size=(192, 256), threads=threads,
                                           cache_dir=cache_dir)
    except Exception as e:  # onnxruntime missing: report the torch rows only
        print(f"# model: onnxruntime skipped ({e})", file=sys.stderr)
    return out


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


@section("model")
def bench_model(args) -> List[dict]:
    """HRNet-W32 256x192 crops/s per backend at batch 1 and 8, vs the official-style eager model."""
    import tempfile

    import torch
    setup_cpu_env(2)
    model = random_bn_hrnet("hrnet_w32")
    rows = []
    with tempfile.TemporaryDirectory(prefix="pose-bench-") as cache_dir:
        t0 = time.perf_counter()
        backends = model_backends(model, getattr(args, "compile", False), 2, cache_dir)
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
            variants = {name: (lambda fn=fn, x=x: fn(x)) for name, fn in backends.items()}
            a, mm = torch.randn(2048, 2048), torch.randn(2048, 2048)
            variants["matmul 2048^2"] = lambda a=a, mm=mm: torch.matmul(a, mm)
            min_block = 0.0 if (args.quick or batch > 1) else 1.0
            samples, other, steal = time_rounds(variants, rounds, min_block_s=min_block)
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
