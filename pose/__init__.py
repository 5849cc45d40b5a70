"""pose: top-down human pose estimation with HRNet.

Module map (the tree reads as the pipeline):
    config        yacs defaults (official HRNet schema), load_config, dataset path resolution
    keypoints     KeypointSpec: names, flip pairs, skeleton, OKS sigmas (COCO_17, MPII_16)
    structures    PersonBox, PoseResult: frozen records crossing module boundaries
    errors        PoseError and friends: one-line, user-facing errors
    fileio        atomic writes, checked JSON reading, output folders
    imageio       reading images as RGB (the model input contract starts here)
    geometry      box <-> centre/scale, crop affine matrices, warp_crop, joint flips
    codec         HeatmapCodec: Gaussian targets, decoding (none/quarter/dark/udp), flip test
    data/         COCO and MPII readers, the top-down dataset, training augmentation
    models/       HRNet (official state-dict names), presets, build_model, complexity counting
    checkpoint    strict, weights_only loading of official/mmpose/own checkpoints; atomic saving
    zoo           named pretrained models: URLs, checksums, cached downloads
    losses        joints MSE, OHKM, training accuracy
    predictor     TopDownPredictor: THE inference path (crop -> forward -> flip -> decode -> image)
    backends      fast inference: BN folding, channels_last, torch.compile, ONNX Runtime
    export        ONNX / TorchScript export with verification
    evaluation    COCO rescoring, OKS-NMS, pycocotools evaluator
    mpii_eval     MPII PCKh
    validation    running a predictor over a dataset and scoring it (pose-eval, training)
    distributed   torchrun ranks and devices; gathering per-sample results across ranks
    training      the training loop (DDP, AMP, auto-resume)
    detection     person detectors (YOLOX-Nano offline, torchvision, JSON, whole image)
    sources       frame sources: images, folders, videos, webcams, streams
    tracking      IoU/OKS tracking, One-Euro smoothing
    visualize     skeleton drawing
    outputs       COCO results JSON, JSON-lines frame records, CSV
    demo          the demo loop (detector -> predictor -> tracker -> outputs)
    cli/          console entry points (thin shells)

The curated API below is imported lazily, so ``import pose`` has no side effects and is cheap.
"""

__version__ = "0.1.0"

_API = {
    "build_model": "pose.models",
    "HeatmapCodec": "pose.codec",
    "build_codec": "pose.codec",
    "TopDownPredictor": "pose.predictor",
    "load_predictor": "pose.predictor",
    "CocoKeypointEvaluator": "pose.evaluation",
    "MpiiPCKhEvaluator": "pose.mpii_eval",
    "load_config": "pose.config",
    "get_default_config": "pose.config",
    "COCO_17": "pose.keypoints",
    "MPII_16": "pose.keypoints",
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
