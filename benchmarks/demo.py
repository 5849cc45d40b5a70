"""Section ``demo``: end-to-end frames/s (YOLOX-Nano + HRNet-W32 + tracking) vs a per-box eager pipeline.

The baseline is the official-style demo: YOLOX-Nano on ``cv2.dnn`` and one eager fp32 forward per person
box. The fast pipelines batch the boxes of a frame and run YOLOX-Nano on the fastest installed runtime
(OpenVINO, else ONNX Runtime): ``onnxruntime`` fp32, ``openvino`` fp32 and ``openvino`` bf16 where the CPU
has bf16 units, and ``auto`` (what ``pose-demo`` picks; its ``describe()`` is printed in the row).

``overlapped`` rows run the fastest batched pipeline with detection of frame t+1 in a worker thread while
the pose model runs on frame t (both runtimes release the GIL). The pipeline keeps detection and pose in
sequence; these rows are the measurement that decides whether overlapping pays on the machine at hand.
"""
import statistics
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, List, Sequence

import numpy as np

from benchmarks.harness import REPO, section, setup_cpu_env, time_rounds


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


def detections_in_order(detector, frames: Sequence, overlap: bool) -> Iterator:
    """``detector(frame)`` for each frame, in order; with ``overlap``, frame t+1's detection runs in a worker
    thread while the caller works on frame t's (submitted before frame t's result is handed over)."""
    if not overlap:
        yield from map(detector, frames)
        return
    if not frames:
        return
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(detector, frames[0])
        for t in range(len(frames)):
            found = pending.result()
            if t + 1 < len(frames):
                pending = pool.submit(detector, frames[t + 1])
            yield found


@section("demo")
def bench_demo(args) -> List[dict]:
    """End-to-end frames/s (YOLOX-Nano + HRNet-W32 + tracking) vs a per-box eager pipeline."""
    import tempfile

    from pose.backends import TorchBackend, build_backend
    from pose.loading import build_runtime
    from pose.predictor import TopDownPredictor
    from pose.video.detection import build_detector
    from pose.video.tracking import PoseTracker

    setup_cpu_env(2)
    video = REPO / "demo" / "assets" / "demo_skeleton.mp4"
    frames = _read_frames(video, 4 if args.quick else getattr(args, "frames", 16))
    from benchmarks.precision import _calibration_crops, _model_and_codec, variants_offered

    baseline_detector = build_detector("yolox-nano", runtime="cv2")
    fast_detector = build_detector("yolox-nano", threads=2)
    model, codec, spec, what = _model_and_codec()  # the memorised W32 when cached (auto can then pick bf16)
    rows = []
    with tempfile.TemporaryDirectory(prefix="pose-bench-") as cache_dir:
        offered = variants_offered()
        fast = {}
        for backend, precision in [("onnxruntime", "fp32"), ("openvino", "fp32"), ("openvino", "bf16")]:
            if (backend, precision) in offered:
                fast[f"{backend} {precision}"] = build_runtime(model, backend, precision=precision, threads=2,
                                                               input_size=codec.input_size, cache_dir=cache_dir)
        auto = build_runtime(model, "auto", precision="auto", threads=2, input_size=codec.input_size,
                             cache_dir=cache_dir, codec=codec, calibration_crops=_calibration_crops(model, codec, spec))
        fast[f"auto ({auto.describe()['backend']} {auto.describe()['precision']})"] = auto
        if not fast:
            fast["torch-fast fp32"] = build_backend(model, "torch-fast")
        eager = TorchBackend(model, "cpu")
        persons = []

        def pipeline(backend, flip, batch_size, overlap=False):
            detector = baseline_detector if batch_size == 1 else fast_detector
            predictor = TopDownPredictor(backend, codec, spec, flip_test=flip, batch_size=batch_size)
            tracker = PoseTracker()

            def run():
                tracker.reset()
                count = 0
                for frame, found in zip(frames, detections_in_order(detector, frames, overlap)):
                    boxes = tracker.update(found)
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
            for label, backend in fast.items():
                variants[f"batched {label}, {tag}"] = pipeline(backend, flip, 32)
            fastest = next(label for label in ("openvino bf16", "openvino fp32", "onnxruntime fp32", *fast)
                           if label in fast)
            variants[f"batched {fastest} overlapped, {tag}"] = pipeline(fast[fastest], flip, 32, overlap=True)
        rounds = 1 if args.quick else max(1, min(args.rounds, 3))
        samples, other, steal = time_rounds(variants, rounds, warmup=0 if args.quick else 1)
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
                     "unit": "boxes", "note": f"{video.name}; {what}; fast detector on {fast_detector.runtime}; "
                                              f"auto: {auto.describe()['reason']}; other load {other:.2f} cores, "
                                              f"steal {steal:.2f}"})
    return rows
