"""Section ``decode``: the vectorised heatmap decoders vs a per-joint Python loop (same results, checked)."""
from typing import List

import numpy as np

from benchmarks.harness import section, time_variants
from pose.codec import DECODERS, HeatmapCodec


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
