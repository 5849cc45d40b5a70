"""Sections ``precision`` and ``fidelity``: every backend x precision on HRNet-W32 256x192.

``precision``: crops/s at batch 1 and 8 for eager fp32 (the baseline), ``torch-fast`` fp32/bf16,
``onnxruntime`` fp32/int8 and ``openvino`` fp32/bf16/int8 (those this machine offers), with speed-ups as
per-round ratios to eager in the same run. Timing uses the memorised W32 when it is cached (see
:mod:`benchmarks.memorised`), else random weights with random BatchNorm (the speed is the same).

``fidelity``: on the memorised W32 and the real 4-image COCO sample with GT boxes (flip test off, UDP
decoding, as trained): AP, and keypoint displacement vs fp32 eager in image pixels (mean, max, share
within 0.5 px), per backend x precision. Without the cached network it prints one "not measured" row
naming the command that prepares it.

int8 is calibrated on crops of the same 4 images (the only real images bundled), so its fidelity here is
an optimistic in-sample number; the label says so.
"""
import statistics
import sys
from typing import Dict, List, Tuple

import numpy as np

from benchmarks.harness import REPO, random_bn_hrnet, section, setup_cpu_env, time_rounds

COCO = REPO / "tests" / "data" / "coco"
BATCHES = (1, 8)


def variants_offered() -> List[Tuple[str, str]]:
    """(backend, precision) pairs this machine can run, eager fp32 first."""
    from pose.backends import BACKEND_PRECISIONS, check_precision
    from pose.errors import ConfigError
    from pose.openvino_backend import openvino_available

    out = [("torch", "fp32")]
    for backend in ("torch-fast", "onnxruntime", "openvino"):
        if backend == "openvino" and not openvino_available():
            print("# precision: openvino not installed (pip install pose[openvino]); its rows skipped",
                  file=sys.stderr)
            continue
        for precision in BACKEND_PRECISIONS[backend]:
            try:
                check_precision(backend, precision)
            except ConfigError as e:
                print(f"# precision: {backend} {precision} skipped ({e})", file=sys.stderr)
                continue
            out.append((backend, precision))
    return out


def _label(backend: str, precision: str) -> str:
    return "eager fp32 (official-style)" if backend == "torch" else f"{backend} {precision}"


def _model_and_codec():
    """The memorised W32 + its codec when cached, else random-BN W32 + the default 256x192 codec."""
    from benchmarks.memorised import memorised_checkpoint, memorised_status
    from pose.codec import HeatmapCodec
    from pose.loading import load_model

    if memorised_status()["ready"]:
        model, _, codec, spec = load_model(str(memorised_checkpoint()))
        return model, codec, spec, "memorised W32"
    from pose.keypoints import COCO_17
    return random_bn_hrnet("hrnet_w32"), HeatmapCodec((192, 256), (48, 64), 2.0), COCO_17, "random-BN W32"


def _calibration_crops(model, codec, spec):
    from pose.export import sample_crops
    from pose.imageio import read_image_rgb
    from pose.predictor import TopDownPredictor

    predictor = TopDownPredictor(model, codec, spec, flip_test=False)
    return sample_crops(predictor, [read_image_rgb(p) for p in sorted(COCO.glob("*.jpg"))])


def build_variants(model, codec, crops, cache_dir: str, threads: int = 2) -> Dict[str, object]:
    from pose.runtime import build_runtime

    out = {}
    for backend, precision in variants_offered():
        out[_label(backend, precision)] = build_runtime(
            model, backend, precision=precision, input_size=codec.input_size, cache_dir=cache_dir,
            threads=threads, calibration_crops=crops, codec=codec)
    return out


@section("precision")
def bench_precision(args) -> List[dict]:
    """crops/s per backend x precision at batch 1 and 8, as ratios to eager fp32 in the same run."""
    import tempfile

    import torch
    setup_cpu_env(2)
    model, codec, spec, what = _model_and_codec()
    crops = _calibration_crops(model, codec, spec)
    rows = []
    with tempfile.TemporaryDirectory(prefix="pose-bench-") as cache_dir:
        backends = build_variants(model, codec, crops, cache_dir)
        base_name = _label("torch", "fp32")
        rounds = max(3, min(args.rounds, 3 if args.quick else 7))
        w, h = codec.input_size
        for batch in BATCHES:
            x = torch.rand(batch, 3, h, w, generator=torch.Generator().manual_seed(batch)) * 255
            timed = {name: (lambda fn=fn, x=x: fn(x)) for name, fn in backends.items()}
            samples, other, steal = time_rounds(timed, rounds, min_block_s=0.0 if args.quick else 1.0)
            base = samples[base_name]
            for name, ts in samples.items():
                t = statistics.median(ts)
                ratios = [b / v for b, v in zip(base, ts)]
                rows.append({"section": "precision", "name": name, "n": batch, "value": batch / t,
                             "unit": "crops/s", "speedup": statistics.median(ratios),
                             "note": f"x{statistics.median(ratios):.2f} [{min(ratios):.2f}-{max(ratios):.2f}] "
                                     f"vs eager fp32; {what}; other load {other:.2f} cores, steal {steal:.2f}"})
    return rows


def _person_ann_ids(gt, image_id) -> List[int]:
    """Ids of the labelled, non-crowd persons of one image (the GT boxes the fidelity check crops)."""
    return [a["id"] for a in gt.loadAnns(gt.getAnnIds(imgIds=[image_id], iscrowd=False)) if a["num_keypoints"] > 0]


def _predict_gt_boxes(backend, codec, spec, images, gt):
    """(keypoints_img (P, K, 2), COCO results) for every GT person box with the given backend."""
    from pose.evaluation.coco import coco_result
    from pose.predictor import TopDownPredictor
    from pose.structures import PersonBox

    predictor = TopDownPredictor(backend, codec, spec, flip_test=False, batch_size=16)
    keypoints, results = [], []
    for image_id, image in images.items():
        anns = gt.loadAnns(_person_ann_ids(gt, image_id))
        boxes = [PersonBox(bbox_xywh=tuple(a["bbox"]), score=1.0, image_id=image_id) for a in anns]
        for pose_result in predictor(image, boxes):
            keypoints.append(np.asarray(pose_result.keypoints_img)[:, :2])
            kps = np.asarray(pose_result.keypoints_img)
            results.append(coco_result(image_id, kps, float(kps[:, 2].mean())))
    return np.stack(keypoints), results


def _coco_ap(gt, results) -> float:
    import contextlib
    import io

    from pycocotools.cocoeval import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes(results), "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0])


@section("fidelity")
def bench_fidelity(args) -> List[dict]:
    """AP with GT boxes and keypoint displacement vs fp32 eager, per backend x precision, memorised W32."""
    import contextlib
    import io
    import tempfile

    from pycocotools.coco import COCO as CocoApi

    from benchmarks.memorised import memorised_status
    from pose.fidelity import MEAN_DISPLACEMENT_BOUND_PX
    from pose.imageio import read_image_rgb

    status = memorised_status()
    if not status["ready"]:
        return [{"section": "fidelity", "name": "memorised W32", "value": float("nan"), "unit": "",
                 "note": f"not measured: no memorised W32 with AP >= 0.9 at {status['path']}; prepare it with "
                         "`nice -n 10 python -m benchmarks.memorised` (~20 min on 2 cores)"}]
    setup_cpu_env(2)
    model, codec, spec, _ = _model_and_codec()
    crops = _calibration_crops(model, codec, spec)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = CocoApi(str(COCO / "test_coco.json"))
    images = {i["id"]: read_image_rgb(COCO / i["file_name"]) for i in gt.dataset["images"]}
    rows = []
    with tempfile.TemporaryDirectory(prefix="pose-bench-") as cache_dir:
        backends = build_variants(model, codec, crops, cache_dir)
        person_boxes = [a["bbox"] for i in images for a in gt.loadAnns(_person_ann_ids(gt, i))]  # results' order
        ref_kp, ref_results = _predict_gt_boxes(backends[_label("torch", "fp32")], codec, spec, images, gt)
        ref_ap = _coco_ap(gt, ref_results)
        for name, backend in backends.items():
            kp, results = _predict_gt_boxes(backend, codec, spec, images, gt)
            per_person = np.linalg.norm(kp - ref_kp, axis=-1)  # (P, K)
            dist = per_person.reshape(-1)
            worst = int(per_person.mean(axis=1).argmax())
            moved = int((per_person > 0.5).any(axis=1).sum())
            ap = _coco_ap(gt, results)
            holds = abs(ap - ref_ap) <= 0.005 and dist.mean() <= MEAN_DISPLACEMENT_BOUND_PX
            label = " (int8 calibrated on these images: in-sample)" if name.endswith("int8") else ""
            rows.append({"section": "fidelity", "name": name, "n": int(dist.size), "value": ap, "unit": "AP",
                         "ap_delta": ap - ref_ap, "mean_px": float(dist.mean()), "max_px": float(dist.max()),
                         "within_half_px": float((dist <= 0.5).mean()), "holds": bool(holds),
                         "worst_person": {"image_id": int(results[worst]["image_id"]),
                                          "bbox_xywh": [round(float(v)) for v in person_boxes[worst]],
                                          "mean_px": float(per_person[worst].mean()),
                                          "max_px": float(per_person[worst].max()),
                                          "score": float(results[worst]["score"]),
                                          "fp32_score": float(ref_results[worst]["score"])},
                         "persons_moved": moved,
                         "note": f"dAP {ap - ref_ap:+.4f}, displacement mean {dist.mean():.3f} / max "
                                 f"{dist.max():.3f} px (image), {100 * (dist <= 0.5).mean():.1f}% within 0.5 px; "
                                 f"{'holds' if holds else 'does NOT hold'} (|dAP| <= 0.005, mean <= "
                                 f"{MEAN_DISPLACEMENT_BOUND_PX:g} px){label}; worst of {len(per_person)} "
                                 f"persons: image {results[worst]['image_id']}, mean "
                                 f"{per_person[worst].mean():.3f} / max {per_person[worst].max():.3f} px, score "
                                 f"{results[worst]['score']:.3f} (fp32 {ref_results[worst]['score']:.3f}); "
                                 f"{moved} persons have a joint moved > 0.5 px"})
    return rows
