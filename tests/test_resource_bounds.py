"""Resource bounds: many boxes, huge frames, huge folders -> bounded memory, no crash.

Peak memory is measured as the growth of the process's resident set size (RSS, from
``/proc/self/statm``) sampled every few milliseconds by a background thread while the work runs;
PyTorch's allocations are invisible to ``tracemalloc``, RSS is not. The bounds are generous (several
times what the batched code needs) but far below what an unbatched implementation would take.

Documented limits (README, "Failure behaviour"): the predictor holds at most
``pose.predictor.WINDOW_CHUNK_BATCHES * batch_size`` crops and heatmaps at once; detectors keep at most
``max_persons`` boxes per frame (100 by default); folder sources list file names up front (a few
hundred bytes per file) and decode one image at a time, reading ahead ``queue_size`` frames.
"""
import json
import os
import threading
import time
from contextlib import contextmanager

import cv2
import numpy as np
import pytest
import torch

from pose.codec import HeatmapCodec
from pose.keypoints import COCO_17
from pose.predictor import WINDOW_CHUNK_BATCHES, TopDownPredictor
from pose.structures import PersonBox

MB = 1024 * 1024


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@contextmanager
def peak_rss_growth():
    """Yields a dict; on exit ``d['growth']`` = peak RSS during the block minus RSS before it (bytes)."""
    if not os.path.exists("/proc/self/statm"):
        pytest.skip("needs /proc/self/statm (Linux) to sample the resident set size")
    result = {"growth": 0}
    base = _rss()
    peak = [base]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.003)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        stop.set()
        thread.join()
        result["growth"] = max(peak[0], _rss()) - base


@pytest.fixture(scope="module")
def tiny_predictor():
    from pose.models import build_model_from_arch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_model_from_arch("hrnet_tiny", 17).eval()
    codec = HeatmapCodec((96, 128), (24, 32), 2.0)
    return TopDownPredictor(model, codec, COCO_17, flip_test=True, batch_size=16)


class _FakeBackend:
    """Deterministic per-crop "network" (channel mean, 4x average pool, one map per joint): costs
    nothing, so the test measures the predictor's own buffers (crops, heatmaps), not a model."""

    def __call__(self, x: torch.Tensor) -> np.ndarray:
        pooled = torch.nn.functional.avg_pool2d(x.mean(1, keepdim=True), 4)
        return (pooled.repeat(1, 17, 1, 1) * torch.linspace(0.5, 1.5, 17)[None, :, None, None]).numpy()


@pytest.mark.slow
def test_thousands_of_boxes_are_batched_with_bounded_memory():
    predictor = TopDownPredictor(_FakeBackend(), HeatmapCodec((96, 128), (24, 32), 2.0), COCO_17,
                                 flip_test=True, batch_size=16)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    n = 2000
    xy = rng.uniform(0, 1000, (n, 2))
    wh = rng.uniform(20, 300, (n, 2))
    boxes = [PersonBox(bbox_xywh=tuple(map(float, (*p, *s))), score=0.5) for p, s in zip(xy, wh)]
    predictor(image, boxes[:40])  # warm up allocators
    with peak_rss_growth() as mem:
        results = predictor(image, boxes)
    assert len(results) == n
    assert all(np.isfinite(r.keypoints_img).all() for r in results)
    # Unbatched, the crops (n x 128x96x3 uint8 + float32 copies) and the plain + flipped heatmaps
    # (2 x n x 17x32x24 float32) alone would take ~500 MB; the chunked path needs a few tens.
    unbatched = n * (128 * 96 * 3 * 5 + 2 * 17 * 32 * 24 * 4)
    assert mem["growth"] < min(150 * MB, unbatched / 4), f"peak RSS grew by {mem['growth'] / MB:.0f} MB"
    # Chunking gives the same keypoints as one batch of the same windows.
    few = boxes[: predictor.batch_size * WINDOW_CHUNK_BATCHES * 2 + 5]
    chunked = np.stack([r.keypoints_img for r in predictor(image, few)])
    centers, scales = predictor.make_windows(np.array([b.bbox_xywh for b in few]))
    whole = predictor.predict_crops(predictor.crop(image, centers, scales), centers, scales)
    np.testing.assert_allclose(chunked, whole, atol=1e-4)


def test_max_persons_caps_a_detector_with_thousands_of_boxes(tmp_path):
    from pose.video.detection import build_detector

    rng = np.random.default_rng(1)
    dets = [{"image_id": 7, "category_id": 1, "bbox": [float(v) for v in rng.uniform(1, 300, 4)],
             "score": float(s)} for s in rng.uniform(0, 1, 5000)]
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(dets))
    image = np.zeros((480, 640, 3), np.uint8)
    capped = build_detector(f"json:{path}", max_persons=25)(image, 7)
    assert len(capped) == 25
    top = sorted((d["score"] for d in dets), reverse=True)[:25]
    np.testing.assert_allclose(sorted((b.score for b in capped), reverse=True), top)
    default = build_detector(f"json:{path}")(image, 7)
    assert len(default) == 100  # the documented default cap


def test_8k_frame_through_yolox_and_the_predictor(tiny_predictor):
    from pose.video.detection import build_detector

    src = cv2.imread(str(__import__("pathlib").Path(__file__).parent / "data" / "coco" / "000000000785.jpg"))
    frame = cv2.cvtColor(cv2.resize(src, (7680, 4320), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)
    detector = build_detector("yolox-nano", max_persons=10)
    with peak_rss_growth() as mem:
        boxes = detector(frame, 0)
        results = tiny_predictor(frame, boxes)
    assert 1 <= len(boxes) <= 10
    assert len(results) == len(boxes)
    person = boxes[0].bbox_xywh
    assert person[2] > 1000 and person[3] > 1500, "the skier is found at 8K scale"
    for r in results:
        assert np.isfinite(r.keypoints_img).all()
        x, y = r.keypoints_img[:, 0], r.keypoints_img[:, 1]
        assert x.min() > -7680 and x.max() < 2 * 7680 and y.min() > -4320 and y.max() < 2 * 4320
    # The frame itself is 95 MB; detection works on a 416x416 resize and crops are tiny.
    assert mem["growth"] < 600 * MB, f"peak RSS grew by {mem['growth'] / MB:.0f} MB"


def test_folder_of_10000_tiny_images_streams_lazily(tmp_path):
    from pose.video.sources import open_source

    folder = tmp_path / "many"
    folder.mkdir()
    rng = np.random.default_rng(2)
    tiles = [cv2.imencode(".png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))[1].tobytes()
             for _ in range(16)]
    n = 10_000
    for i in range(n):
        (folder / f"img_{i:05d}.png").write_bytes(tiles[i % 16])
    (folder / "img_00005.png").write_bytes(b"broken")  # one corrupt file among them: skipped, counted

    t0 = time.monotonic()
    with peak_rss_growth() as mem:
        source = open_source(str(folder))
        listed_s = time.monotonic() - t0
        count, first, last = 0, None, None
        with source:
            for frame in source:
                count += 1
                first = first or frame.source_name
                last = frame.source_name
                assert frame.image_rgb.shape == (8, 8, 3)
    elapsed = time.monotonic() - t0
    assert source.kind == "folder" and source.total_frames == n
    assert count == n - 1 and source.skipped == 1
    assert (first, last) == ("img_00000.png", "img_09999.png")
    assert listed_s < 5.0, f"listing 10,000 files took {listed_s:.1f} s"
    assert elapsed < 120.0, f"iterating 10,000 tiny images took {elapsed:.1f} s"
    # File names (~10k Path objects) and a few read-ahead frames: a few MB, not 10,000 decoded images.
    assert mem["growth"] < 64 * MB, f"peak RSS grew by {mem['growth'] / MB:.0f} MB"
