"""Section ``train``: training data-loader samples/s per worker count and the W32 training step time on the CPU."""
import os
from typing import List

from benchmarks.harness import REPO, section, time_variants


def _train_bench_config(repo: str):
    """The paper's COCO W32 256x192 config with its augmentation, pointed at the 4-image sample."""
    from pose.config import load_config
    coco = os.path.join(repo, "tests", "data", "coco")
    ann = os.path.join(coco, "test_coco.json")
    return load_config(os.path.join(repo, "configs", "coco_hrnet_w32_256x192.yaml"),
                       ["DATA_DIR", "", "DATASET.TRAIN_ANN_FILE", ann, "DATASET.TRAIN_IMAGE_DIR", coco,
                        "DATASET.TEST_ANN_FILE", ann, "DATASET.TEST_IMAGE_DIR", coco])


@section("train")
def bench_train(args) -> List[dict]:
    """Training data-loader samples/s (augmented COCO crops + targets) per worker count, and the
    forward+backward+Adam step time of HRNet-W32 256x192 at batch 8 on the CPU."""
    import torch

    from pose.codec import build_codec
    from pose.data import build_dataset
    from pose.losses import joints_mse_loss
    from pose.models import build_model

    cfg = _train_bench_config(str(REPO))
    dataset = build_dataset(cfg, "train", build_codec(cfg))
    rows = []
    n = 24 if args.quick else 96
    order = [i % len(dataset) for i in range(n)]
    rounds = min(args.rounds, 3)
    for workers in (0, 1, 2):
        def run_loader(workers=workers):
            loader = torch.utils.data.DataLoader(dataset, batch_size=8, sampler=order, num_workers=workers)
            for _ in loader:
                pass
        t = time_variants({"loader": run_loader}, rounds=rounds, warmup=0)["loader"]
        rows.append({"section": "train", "name": f"data loader, {workers} workers", "n": n, "value": n / t,
                     "unit": "samples/s", "note": "256x192 crops + 64x48 targets, COCO augmentation, "
                                                 "worker start-up included"})

    torch.manual_seed(0)
    model = build_model(cfg.MODEL)
    model.init_weights()
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch = 2 if args.quick else 8
    w, h = cfg.MODEL.IMAGE_SIZE
    hw, hh = cfg.MODEL.HEATMAP_SIZE
    images = torch.rand(batch, 3, h, w) * 255
    target = torch.rand(batch, cfg.MODEL.NUM_JOINTS, hh, hw)
    weight = torch.ones(batch, cfg.MODEL.NUM_JOINTS)

    def step():
        optimizer.zero_grad(set_to_none=True)
        joints_mse_loss(model(images), target, weight).backward()
        optimizer.step()

    t = time_variants({"step": step}, rounds=rounds, warmup=1)["step"]
    note = f"forward+backward+Adam, fp32, {torch.get_num_threads()} threads"
    rows.append({"section": "train", "name": "W32 256x192 train step (cpu)", "n": batch, "value": t,
                 "unit": "s/step", "note": note})
    rows.append({"section": "train", "name": "W32 256x192 train throughput (cpu)", "n": batch,
                 "value": batch / t, "unit": "samples/s", "note": note})
    return rows
