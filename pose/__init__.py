"""pose: top-down human pose estimation with HRNet.

Module map (the tree reads as the pipeline):
    config        yacs defaults (official HRNet schema), load_config
    keypoints     KeypointSpec: names, flip pairs, skeleton, OKS sigmas (COCO_17, MPII_16)
    structures    PersonBox, PoseResult: frozen records crossing module boundaries
    errors        PoseError and friends: one-line, user-facing errors
    geometry      box <-> centre/scale, crop affine matrices, warp_crop, joint flips
    codec         HeatmapCodec: Gaussian targets, decoding (none/quarter/dark/udp), flip test
    imageio       reading images as RGB (the model input contract starts here)
    data/         COCO and MPII readers, training augmentation
    models/       HRNet backbone, heatmap head, build_model, complexity counting
    checkpoint    strict, weights_only loading of official/mmpose/own checkpoints; save/load_predictor
    zoo           named pretrained models: URLs, checksums, cached downloads
    losses        joints MSE and OHKM
    predictor     TopDownPredictor: THE inference path (crop -> forward -> flip -> decode -> image)
    evaluation    COCO OKS-NMS, rescoring, pycocotools; MPII PCKh
    training      the training loop (DDP, AMP, auto-resume)
    detection     person detectors (YOLOX-Nano offline, torchvision, JSON, whole image)
    tracking      IoU/OKS tracking, One-Euro smoothing
    export        results JSON / JSON-lines writers, ONNX/TorchScript export
    visualize     skeleton drawing
    cli/          console entry points (thin shells)
"""

__version__ = "0.1.0"
