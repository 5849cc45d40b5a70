"""Section ``gpu`` (``python -m benchmarks --device cuda``): HRNet-W32 256x192 on a CUDA device.

Inference crops/s at batch 1, 8 and 32 for fp32 eager, fp32 + channels_last + BN fold (``torch-fast``),
and AMP fp16 / bf16 on ``torch-fast`` (ratios to fp32 eager in the same run; max |heatmap diff| vs fp32
on the same batch), then training samples/s (fp32 and AMP fp16 with a GradScaler, batch 32, Adam, MSE on
random targets). Random weights with random BatchNorm: timing only. Without a GPU the section prints
one "not measured" row.
"""
import statistics
import time
from typing import List

from benchmarks.harness import random_bn_hrnet, section

BATCHES = (1, 8, 32)


def _sync_timer(fn, rounds: int, calls: int):
    import torch
    times = []
    for _ in range(rounds):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) / calls)
    return times


@section("gpu")
def bench_gpu(args) -> List[dict]:
    """CUDA inference (fp32 / channels_last / AMP fp16, bf16) at batch 1/8/32 and training samples/s."""
    import numpy as np
    import torch

    from pose.backends import OptimizedTorchBackend, TorchBackend

    if not torch.cuda.is_available():
        return [{"section": "gpu", "name": "cuda", "value": float("nan"), "unit": "",
                 "note": "not measured: no CUDA device on this machine"}]
    device = "cuda"
    name = torch.cuda.get_device_name(0)
    torch.backends.cudnn.benchmark = True
    model = random_bn_hrnet("hrnet_w32")
    variants = {"eager fp32": TorchBackend(model, device),
                "torch-fast fp32 (bn-fold+channels_last)": OptimizedTorchBackend(model, device)}
    variants["torch-fast AMP fp16"] = OptimizedTorchBackend(model, device, autocast_dtype=torch.float16)
    if torch.cuda.is_bf16_supported():
        variants["torch-fast AMP bf16"] = OptimizedTorchBackend(model, device, precision="bf16")
    rounds = 3 if args.quick else 5
    rows = []
    for batch in BATCHES:
        x = (torch.rand(batch, 3, 256, 192, generator=torch.Generator().manual_seed(batch)) * 255).to(device)
        ref = variants["eager fp32"](x)
        samples = {}
        for label, fn in variants.items():
            fn(x)  # warm-up (cudnn autotuning)
            ts = _sync_timer(lambda fn=fn, x=x: fn(x), rounds, calls=max(2, 64 // batch))
            samples[label] = (ts, float(np.abs(fn(x) - ref).max()))
        base = samples["eager fp32"][0]
        for label, (ts, diff) in samples.items():
            ratios = [b / v for b, v in zip(base, ts)]
            rows.append({"section": "gpu", "name": label, "n": batch, "value": batch / statistics.median(ts),
                         "unit": "crops/s", "speedup": statistics.median(ratios), "max_diff": diff,
                         "note": f"x{statistics.median(ratios):.2f} vs eager fp32; max|diff| {diff:.2g}; {name}"})
    rows += _training_rows(device, name, rounds)
    return rows


def _train_step(model, opt, scaler, x, target, amp: bool):
    import torch

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
            loss = torch.nn.functional.mse_loss(model(x).float(), target)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    return step


def _training_rows(device, gpu_name: str, rounds: int) -> List[dict]:
    import torch

    batch = 32
    rows = []
    for amp in (False, True):
        model = random_bn_hrnet("hrnet_w32").to(device).train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        scaler = torch.amp.GradScaler("cuda", enabled=amp)
        x = torch.rand(batch, 3, 256, 192, device=device) * 255
        target = torch.rand(batch, 17, 64, 48, device=device)
        step = _train_step(model, opt, scaler, x, target, amp)
        for _ in range(3):
            step()
        ts = _sync_timer(step, rounds, calls=5)
        rows.append({"section": "gpu", "name": f"training {'AMP fp16' if amp else 'fp32'}", "n": batch,
                     "value": batch / statistics.median(ts), "unit": "samples/s",
                     "note": f"Adam, batch {batch}, 256x192; {gpu_name}"})
    return rows
