"""A V2 pose model (MODEL.HEAD v2) trains, initialised from a named ImageNet trunk, and reloads."""
import numpy as np
import torch

from pose import zoo
from pose.checkpoint import load_checkpoint
from pose.data import build_dataset
from pose.loading import load_predictor
from pose.models import PoseHRNetV2
from pose.predictor import TopDownPredictor
from pose.training import train
from tests.test_imagenet_zoo import classifier_state
from tests.test_training import tiny


def test_v2_head_trains_from_a_named_imagenet_trunk_and_reloads(tmp_path, monkeypatch, caplog):
    torch.set_num_threads(1)
    # 'tiny_imagenet' is a cached ImageNet entry: no network, the same path as hrnet_w32_imagenet.
    cache = tmp_path / "cache"
    (cache / "checkpoints").mkdir(parents=True)
    state = classifier_state("hrnet_tiny", seed=3)
    torch.save(state, cache / "checkpoints" / "tiny_cls.pth")
    entry = zoo.ImageNetWeights(name="tiny_imagenet", arch="hrnet_tiny", url="http://127.0.0.1:9/tiny_cls.pth",
                                sha256_prefix=None, name_hash=None, top1_error=99.0, source="test")
    monkeypatch.setattr(zoo, "IMAGENET_ZOO", {"tiny_imagenet": entry})
    monkeypatch.setenv("POSE_CACHE", str(cache))

    cfg = tiny("MODEL.HEAD", "v2", "MODEL.PRETRAINED", "tiny_imagenet", "TRAIN.END_EPOCH", 1,
               "TRAIN.MAX_ITERS_PER_EPOCH", 2, "TRAIN.BATCH_SIZE_PER_GPU", 2, "TRAIN.VAL_INTERVAL", 1,
               "TRAIN.LR_STEP", "[1]", "LOG_DIR", "")
    with caplog.at_level("INFO"):
        out = train(cfg, tmp_path / "run", device="cpu", progress=False)
    assert "ImageNet init from tiny_imagenet" in caplog.text and "loaded 480 tensors" in caplog.text
    assert isinstance(out["model"], PoseHRNetV2)
    trained = load_checkpoint(tmp_path / "run" / "final.pth")["state_dict"]
    assert "head.0.weight" in trained and "stage4.0.fuse_layers.3.0.0.0.weight" in trained

    predictor, loaded_cfg = load_predictor(tmp_path / "run" / "final.pth")
    assert loaded_cfg.MODEL.HEAD == "v2" and isinstance(predictor.backend.model, PoseHRNetV2)
    dataset = build_dataset(cfg, "test", predictor.codec)
    crops = np.stack([dataset[i]["image"] for i in range(2)])
    reference = TopDownPredictor(out["model"], predictor.codec, predictor.spec, flip_test=False)
    got, _ = predictor.forward_heatmaps(crops)
    want, _ = reference.forward_heatmaps(crops)
    assert got.shape == (2, 17, 32, 24)
    np.testing.assert_array_equal(got, want)
