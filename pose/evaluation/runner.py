"""Running a predictor over an evaluation dataset and scoring it (``pose-eval``, training validation).

Both measure the same thing: dataset crops (made by :mod:`pose.geometry`, in ``DataLoader`` workers)
-> one forward pass per batch through :meth:`TopDownPredictor.forward_heatmaps` -> one decode per
requested decoder -> :class:`pose.evaluation.coco.CocoKeypointEvaluator` or
:class:`pose.evaluation.mpii.MpiiPCKhEvaluator`.

Distributed: each rank predicts an interleaved shard of the samples; the per-sample keypoints are
gathered by sample index on every rank, so the evaluator sees each sample exactly once, whatever
the world size.
"""
import logging
import time
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from pose.codec import HeatmapCodec
from pose.config import resolve_data_path
from pose.data import build_dataset
from pose.data.layout import resolve_dataset_paths
from pose.data.topdown import TopDownDataset
from pose.distributed import gather_by_index, rank_and_world
from pose.errors import ConfigError
from pose.evaluation.coco import CocoKeypointEvaluator
from pose.evaluation.coco_protocols import CrowdPoseEvaluator, WholeBodyEvaluator
from pose.evaluation.landmarks import NmeEvaluator, PckEvaluator
from pose.evaluation.mpii import MpiiPCKhEvaluator
from pose.fileio import check_output_folder, ensure_output_dir, write_json
from pose.keypoints import OKS_PROTOCOLS
from pose.loading import load_predictor
from pose.predictor import TopDownPredictor
from pose.structures import PoseResult

logger = logging.getLogger(__name__)


def predict_dataset(predictor: TopDownPredictor, dataset: TopDownDataset, *,
                    decoders: Optional[Dict[str, HeatmapCodec]] = None, workers: int = 0,
                    progress: bool = True) -> Dict[str, np.ndarray]:
    """Keypoints of every sample, for every decoder, from one forward pass.

    Args:
        predictor: the inference path (its batch size sets the loader batch size).
        dataset: an evaluation dataset (``train=False``) whose items hold ``image`` crops.
        decoders: name -> codec; default ``{"default": predictor.codec}``.
        workers: ``DataLoader`` worker processes for reading and cropping.
        progress: show a progress bar with images/s (rank 0 only).

    Returns:
        name -> (num_samples, K, 3) image-space ``[x, y, score]``, in dataset order.
    """
    decoders = decoders or {"default": predictor.codec}
    rank, world = rank_and_world()
    indices = list(range(rank, len(dataset), world))
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, indices),
                                         batch_size=predictor.batch_size, shuffle=False,
                                         num_workers=workers, persistent_workers=False)
    k = predictor.spec.num_keypoints
    local = {name: np.zeros((len(indices), k, 3), np.float32) for name in decoders}
    local_index = np.asarray(indices, dtype=np.int64)
    done, start = 0, time.perf_counter()
    bar = tqdm(total=len(indices), unit="person", disable=not progress or rank != 0, dynamic_ncols=True,
               desc="evaluating")
    image_ids_seen = set()
    try:
        for batch in loader:
            crops = batch["image"].numpy()
            centers, scales = batch["center"].numpy(), batch["scale"].numpy()
            heatmaps, flipped = predictor.forward_heatmaps(crops)
            for name, codec in decoders.items():
                local[name][done:done + len(crops)] = predictor.decode(heatmaps, flipped, centers, scales,
                                                                       codec=codec)
            done += len(crops)
            image_ids_seen.update(batch["image_id"].tolist())
            elapsed = max(time.perf_counter() - start, 1e-9)
            bar.set_postfix(images_per_s=f"{len(image_ids_seen) / elapsed:.1f}", refresh=False)
            bar.update(len(crops))
    finally:  # also on Ctrl-C / errors: end the bar's line so the CLI's one-line message stands alone
        bar.close()
    if world == 1:
        return local
    return {name: gather_by_index(local_index, values, len(dataset)) for name, values in local.items()}


def to_pose_results(dataset: TopDownDataset, keypoints: np.ndarray) -> List[PoseResult]:
    """Per-sample keypoints (num_samples, K, 3) -> PoseResults carrying each sample's window."""
    return [PoseResult(keypoints_img=kp, center_img=np.asarray(s.center, np.float32),
                       scale=np.asarray(s.scale, np.float32), box_score=float(s.box_score),
                       image_id=int(s.image_id), bbox_xywh=s.bbox_xywh)
            for s, kp in zip(dataset.samples, keypoints)]


def evaluate_dataset(predictor: TopDownPredictor, dataset: TopDownDataset, make_evaluator, *,
                     decoders: Optional[Dict[str, HeatmapCodec]] = None, workers: int = 0,
                     progress: bool = True) -> Dict[str, dict]:
    """Predict once, then score every decoder.

    Args:
        make_evaluator: ``name -> evaluator`` with ``reset/process/evaluate`` (a new one per decoder,
            so each can write its own results file).

    Returns:
        decoder name -> metrics dict (rank 0; other ranks get the same numbers).
    """
    keypoints = predict_dataset(predictor, dataset, decoders=decoders, workers=workers, progress=progress)
    metrics = {}
    for name, kps in keypoints.items():
        evaluator = make_evaluator(name)
        evaluator.reset()
        evaluator.process(to_pose_results(dataset, kps))
        metrics[name] = evaluator.evaluate()
    return metrics


def decoder_codecs(base: HeatmapCodec, names: Sequence[str]) -> Dict[str, HeatmapCodec]:
    """Codecs that differ from ``base`` only in the decoder (``pose-eval --decoders none,quarter,dark``).

    Raises:
        ConfigError: a name is not a decoder of ``base``'s pixel convention (``udp`` on an official model,
            an official decoder on a UDP model; see :data:`pose.codec.CONVENTIONS`).
    """
    return {name: base.with_decoding(name) for name in names}


# ------------------------------------------------------------------------------------------------
# The whole evaluation job (pose-eval, scripts/test.py)
# ------------------------------------------------------------------------------------------------
def boxes_label(cfg) -> str:
    """What boxes an evaluation uses, said loudly in every report."""
    if cfg.DATASET.DATASET.lower() == "mpii":
        return "MPII annotated person windows (center/scale from the annotation file)"
    if cfg.TEST.USE_GT_BBOX:
        return "GROUND-TRUTH boxes (TEST.USE_GT_BBOX true): not comparable with detector-based results"
    return (f"DETECTED boxes from {resolve_data_path(cfg, cfg.TEST.COCO_BBOX_FILE)} "
            f"(score >= TEST.IMAGE_THRE {cfg.TEST.IMAGE_THRE})")


def results_file_name(cfg, decoder: str) -> str:
    """File name of the COCO results JSON of one decoder (official ``keypoints_<set>_results``)."""
    return f"keypoints_{cfg.DATASET.TEST_SET}_results_{decoder}.json"


def evaluation_sigmas(cfg, spec) -> Optional[tuple]:
    """The OKS sigmas an evaluation of ``spec`` uses (None for protocols without OKS).

    A set declared with ``sigmas: TODO`` is refused unless ``DATASET.OKS_SIGMA_FALLBACK`` gives a uniform
    sigma explicitly (then a warning says the AP is not comparable): a silent default (COCO's 17, or
    Ultralytics' 1/K) makes AP meaningless.
    """
    if spec.protocol not in OKS_PROTOCOLS:
        return None
    if spec.oks_sigmas:
        return spec.oks_sigmas
    fallback = float(cfg.DATASET.OKS_SIGMA_FALLBACK)
    if fallback <= 0:
        raise ConfigError(f"keypoint set '{spec.name}': sigmas are {'TODO' if spec.sigmas_todo else 'missing'}; "
                          f"OKS AP needs {spec.num_keypoints} per-keypoint sigmas (std of annotator error / object "
                          "scale); write them into the declaration, or pass DATASET.OKS_SIGMA_FALLBACK 0.05 to "
                          "evaluate with a uniform sigma (AP then not comparable)")
    logger.warning("keypoint set '%s': OKS AP with the uniform fallback sigma %g (DATASET.OKS_SIGMA_FALLBACK); "
                   "not comparable with AP under real sigmas", spec.name, fallback)
    return (fallback,) * spec.num_keypoints


def check_evaluable(cfg, spec) -> None:
    """Raise ConfigError now if the config's test set cannot be scored with ``spec`` (e.g. TODO sigmas)."""
    evaluation_sigmas(cfg, spec)


def make_evaluator_factory(cfg, spec, output_dir=None, *, img_ids=None):
    """``name -> evaluator`` for the keypoint set's protocol: OKS AP (COCO, CrowdPose, COCO-WholeBody), MPII
    PCKh, NME (faces) or PCK/AUC/EPE (hands)."""
    paths = resolve_dataset_paths(cfg, "test")
    if spec.protocol == "mpii":
        return lambda name: MpiiPCKhEvaluator(paths["gt_valid_file"])
    if spec.protocol == "nme":
        return lambda name: NmeEvaluator(paths["ann_file"], spec)
    if spec.protocol == "pck":
        return lambda name: PckEvaluator(paths["ann_file"], spec)
    sigmas = evaluation_sigmas(cfg, spec)
    common = dict(sigmas=sigmas, in_vis_thre=float(cfg.TEST.IN_VIS_THRE), oks_thre=float(cfg.TEST.OKS_THRE),
                  soft_nms=bool(cfg.TEST.SOFT_NMS), output_dir=output_dir, img_ids=img_ids)
    if spec.protocol == "coco_wholebody":
        return lambda name: WholeBodyEvaluator(paths["ann_file"], spec, results_file=results_file_name(cfg, name),
                                               **common)
    kind = CrowdPoseEvaluator if spec.protocol == "crowdpose" else CocoKeypointEvaluator
    return lambda name: kind(paths["ann_file"], oks_area=spec.oks_area, results_file=results_file_name(cfg, name),
                             **common)


def run_evaluation(cfg, weights, *, output_dir=None, decoders: Sequence[str] = (), overrides=(),
                   device="cpu", workers: int = 0, batch_size: Optional[int] = None, progress: bool = True,
                   skip_missing_images: bool = False, offline: bool = False, backend=None) -> dict:
    """Evaluate ``weights`` on the config's test set; write results and metrics JSON to ``output_dir``.

    Args:
        cfg: the experiment config (dataset, boxes, test settings), or None with a self-describing
            checkpoint / zoo name (then the dataset keys must come from ``overrides``).
        weights: checkpoint path or zoo name (see :func:`pose.loading.load_model`).
        decoders: refinements to score on one forward pass, all of the model's pixel convention
            (default: the predictor's, i.e. ``TEST.DECODER`` or the checkpoint's).

    Returns:
        ``{"boxes": label, "num_samples": n, "metrics": {decoder: {name: value}}, "files": [...]}``.
    """
    if output_dir is not None:  # a folder that cannot be created is refused before any model loads
        check_output_folder(output_dir)
    predictor, cfg = load_predictor(weights, cfg, overrides=overrides, device=device, batch_size=batch_size,
                                    offline=offline, backend=backend)
    if output_dir is not None:
        output_dir = ensure_output_dir(output_dir)
    label = boxes_label(cfg)
    logger.info("boxes: %s", label)
    dataset = build_dataset(cfg, "test", predictor.codec, skip_missing_images=skip_missing_images)
    names = list(decoders) or [predictor.codec.decoder]
    codecs = decoder_codecs(predictor.codec, names)
    img_ids = "processed" if skip_missing_images else None
    metrics = evaluate_dataset(predictor, dataset, make_evaluator_factory(cfg, predictor.spec, output_dir,
                                                                          img_ids=img_ids),
                               decoders=codecs, workers=workers, progress=progress)
    report = {"boxes": label, "num_samples": len(dataset), "weights": str(weights),
              "keypoints": predictor.spec.name, "protocol": predictor.spec.protocol,
              "backend": getattr(predictor.backend, "name", type(predictor.backend).__name__),
              "flip_test": predictor.flip_test, "metrics": {k: dict(v) for k, v in metrics.items()}}
    if output_dir is not None:
        files = [output_dir / results_file_name(cfg, name) for name in names
                 if predictor.spec.protocol in OKS_PROTOCOLS]
        report["files"] = [str(p) for p in files + [output_dir / "metrics.json"]]
        write_json(output_dir / "metrics.json", report, indent=2)
    else:
        report["files"] = []
    return report


def format_table(metrics: dict, name: Optional[str] = None, digits: int = 3) -> str:
    """Markdown table of a metrics dict (one header row, one value row), like the official log.

    Metrics named ``"<row>/<stat>"`` (COCO-WholeBody's ``body/AP``, ``face/AR`` ...) give one row per part
    instead, with the stats as columns.

    Args:
        metrics: name -> value (e.g. the output of ``evaluate``).
        name: optional first column (e.g. the model name).
        digits: decimals printed.
    """
    if metrics and all("/" in str(k) for k in metrics):
        rows = OrderedDict()
        for key, value in metrics.items():
            row, stat = str(key).split("/", 1)
            rows.setdefault(row, OrderedDict())[stat] = value
        stats = list(OrderedDict.fromkeys(s for r in rows.values() for s in r))
        head = ([("Arch")] if name is not None else []) + ["part"] + stats
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        for row, values in rows.items():
            cells = ([name] if name is not None else []) + [row]
            cells += [f"{float(values[s]):.{digits}f}" if s in values else "" for s in stats]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)
    names = list(metrics)
    values = [f"{float(metrics[n]):.{digits}f}" for n in names]
    if name is not None:
        names, values = ["Arch"] + names, [name] + values
    return "\n".join([
        "| " + " | ".join(names) + " |",
        "|" + "|".join("---" for _ in names) + "|",
        "| " + " | ".join(values) + " |",
    ])
