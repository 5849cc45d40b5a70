"""The oracle network, shared by the tests that need a model with known, non-zero accuracy.

The fake network returns ``codec.encode`` of the ground-truth keypoints mapped into each crop (looked
up by the crop's pixels), so crop -> encode -> decode -> un-crop must give the GT back: AP = 1 on GT
boxes of the real COCO sample. :func:`oracle_loader` puts it behind ``load_predictor``'s signature so
the whole evaluation job (``run_evaluation``, ``pose-eval``, distributed validation) runs on it.
"""
import numpy as np

from pose import geometry
from pose.codec import HeatmapCodec
from pose.keypoints import COCO_17


class OracleNetwork:
    """Backend callable: crop pixels -> heatmaps of the keypoints registered for that crop."""

    def __init__(self, codec: HeatmapCodec, spec=COCO_17):
        self.codec = codec
        self.perm = spec.flip_permutation()
        self.table = {}
        k = spec.num_keypoints
        self.empty = np.zeros((k, codec.heatmap_size[1], codec.heatmap_size[0]), np.float32)

    def register(self, crop: np.ndarray, keypoints_crop: np.ndarray, visible: np.ndarray) -> None:
        heatmaps, _ = self.codec.encode(keypoints_crop[None], visible[None])
        self.table[crop.tobytes()] = heatmaps[0]
        # The mirrored crop shows the mirrored person: its maps are the flipped, channel-swapped ones.
        self.table[np.ascontiguousarray(crop[:, ::-1]).tobytes()] = heatmaps[0][self.perm, :, ::-1]

    def __call__(self, crops_nchw):
        crops = crops_nchw.permute(0, 2, 3, 1).numpy().astype(np.uint8)
        return np.stack([self.table.get(c.tobytes(), self.empty) for c in crops])


def build_oracle(dataset, codec, *, jitter_px=0.0, gt_samples=None, rng=None) -> OracleNetwork:
    """An oracle that knows every crop of ``dataset`` (detection samples: the best-IoU GT person)."""
    net = OracleNetwork(codec)
    for i, sample in enumerate(dataset.samples):
        source = sample if gt_samples is None else best_gt(sample, gt_samples)
        joints = np.asarray(source.joints, np.float64)
        if jitter_px:
            joints = joints + rng.normal(0.0, jitter_px, joints.shape)
        m = geometry.crop_matrix(np.asarray(sample.center)[None], np.asarray(sample.scale)[None], np.zeros(1),
                                 tuple(dataset.input_size), unbiased=codec.unbiased)
        keypoints_crop = geometry.apply_affine(joints[None], m)[0]
        net.register(dataset[i]["image"], keypoints_crop, np.asarray(source.joints_visible))
    return net


def best_gt(det_sample, gt_samples):
    same = [g for g in gt_samples if g.image_id == det_sample.image_id]
    if not same:
        return det_sample
    d = np.asarray(det_sample.bbox_xywh)
    ious = [_iou(d, np.asarray(g.bbox_xywh)) for g in same]
    return same[int(np.argmax(ious))]


def _iou(a, b):
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter + 1e-9)


def oracle_loader():
    """A stand-in for ``pose.loading.load_predictor(weights, cfg, ...)`` that returns the oracle, built
    for the config's own test set and codec, wrapped in the real :class:`TopDownPredictor`."""
    from pose.codec import build_codec
    from pose.data import build_dataset
    from pose.data.coco import load_coco_gt_samples
    from pose.data.layout import resolve_dataset_paths
    from pose.predictor import TopDownPredictor

    def load_predictor(weights, cfg, *, batch_size=None, flip_test=None, device="cpu", **_ignored):
        codec = build_codec(cfg)
        dataset = build_dataset(cfg, "test", codec, skip_missing_images=True)
        gt = None
        if not cfg.TEST.USE_GT_BBOX:
            paths = resolve_dataset_paths(cfg, "test")
            gt = load_coco_gt_samples(paths["ann_file"], paths["image_dir"], input_size=tuple(cfg.MODEL.IMAGE_SIZE),
                                      skip_missing_images=True)
        net = build_oracle(dataset, codec, gt_samples=gt)
        predictor = TopDownPredictor(net, codec, COCO_17, device=device,
                                     flip_test=bool(cfg.TEST.FLIP_TEST if flip_test is None else flip_test),
                                     batch_size=int(batch_size or cfg.TEST.BATCH_SIZE_PER_GPU))
        return predictor, cfg

    return load_predictor


class OracleModule:
    """Factory of a ``torch.nn.Module`` around an :class:`OracleNetwork` (float RGB crops in [0, 255] ->
    heatmaps), for code that takes a model rather than a backend (``pose.training.validate``)."""

    def __new__(cls, oracle: OracleNetwork):
        import torch

        class _Oracle(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.oracle = oracle

            def forward(self, crops_nchw):
                return torch.from_numpy(self.oracle(crops_nchw.cpu()))

        return _Oracle()
