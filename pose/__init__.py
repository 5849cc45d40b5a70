"""pose: top-down human pose estimation with HRNet.

Module map, by floor (a module imports only from floors below it; ``setup.cfg`` holds the contract that
CI checks with import-linter, ``docs/design.md`` says why):

    cli/          console entry points (thin shells: parse, call one library function, print)
    api           PoseEstimator: the one-object Python API (images, batches, videos, webcams, streams)
    poses         Poses / Person: one frame's result (numpy views, plot, JSON-lines record, COCO, pandas)
    video/        frames in, tracked poses out: sources, detection, tracking, smoothing, render,
                  records (JSON lines, CSV, COCO results), pipeline (the demo loop)
    training      the training loop (DDP, AMP, auto-resume) as named steps
    evaluation/   oks (one OKS for NMS, COCOeval and tracking), coco (rescoring, OKS-NMS,
                  pycocotools), coco_protocols (CrowdPose E/M/H, COCO-WholeBody's six APs), mpii (PCKh),
                  landmarks (NME for faces, PCK/AUC/EPE for hands), runner (predict once, score many decoders)
    data/         layout (dataset folders), coco / mpii (readers), topdown (the dataset), augment
    losses        joints MSE, OHKM, training accuracy
    distributed   torchrun ranks and devices; gathering per-sample results across ranks
    run_log       metrics.jsonl (+ TensorBoard): writer, reader, plot
    loading       THE place where weights / a zoo name / "untrained" become model, codec, spec, predictor
    export        ONNX / TorchScript export, the export cache, verification against PyTorch
    checkpoint    the project's own self-describing checkpoint and training state
    config/       yacs schema (official HRNet keys): defaults, merge, validate; no global config
    predictor     TopDownPredictor: THE inference path (crop -> forward -> flip -> decode -> image)
    backends      runtimes behind one callable: torch, torch-fast (BN folded), onnxruntime, torchscript
    weights       safe torch.load, official / mmpose / ImageNet layouts, strict loading with reports
    zoo           named pretrained models: URLs, checksums, inference settings, cached downloads
    models/       HRNet (official state-dict names), presets, build_model, complexity counting
    codec         HeatmapCodec: Gaussian targets, decoding (none/quarter/dark/udp), flip test
    geometry      boxes (IoU, NMS), centre/scale windows, affine matrices, warp_crop, joint flips
    keypoints     KeypointSpec, read from the declarations in configs/keypoints/*.yaml (COCO_17, MPII_16,
                  CrowdPose, COCO-WholeBody, AP-10K, faces, hands, a user's own) and checked
    structures    PersonBox, PoseResult: frozen records crossing module boundaries
    fileio        atomic writes (normal permissions), checked JSON reading, output folders
    imageio       reading images / arrays / PIL images as RGB (the model input contract starts here)
    errors        PoseError and friends: one-line, user-facing errors

The curated API below is imported lazily, so ``import pose`` has no side effects and is cheap.
"""

__version__ = "0.1.0"

_API = {
    "PoseEstimator": "pose.api",
    "Poses": "pose.poses",
    "build_model": "pose.models",
    "HeatmapCodec": "pose.codec",
    "build_codec": "pose.codec",
    "TopDownPredictor": "pose.predictor",
    "load_predictor": "pose.loading",
    "load_model": "pose.loading",
    "CocoKeypointEvaluator": "pose.evaluation",
    "MpiiPCKhEvaluator": "pose.evaluation",
    "load_config": "pose.config",
    "get_default_config": "pose.config",
    "COCO_17": "pose.keypoints",
    "MPII_16": "pose.keypoints",
    "KeypointSpec": "pose.keypoints",
    "load_keypoint_set": "pose.keypoints",
    "PersonBox": "pose.structures",
    "PoseResult": "pose.structures",
    "PoseError": "pose.errors",
}

__all__ = ["__version__", *_API]


def __getattr__(name):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'pose' has no attribute {name!r}")
