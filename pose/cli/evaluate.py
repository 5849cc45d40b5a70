"""``pose-eval``: evaluate weights with the keypoint set's protocol (OKS AP, PCKh, CrowdPose, WholeBody, NME, PCK).

Examples:
    pose-eval --cfg configs/coco_hrnet_w32_256x192.yaml --weights model.pth --det-file dets.json
    pose-eval --cfg configs/coco_hrnet_w32_256x192.yaml --weights hrnet_w32_coco_256x192 --gt-boxes
    pose-eval --cfg FILE --weights W --decoders none,quarter,dark   (one forward pass, one AP row each;
        decoders of the model's pixel convention only: udp needs a UDP-trained model)
"""
import argparse
import sys

from pose.cli.common import add_common_args, run_cli


def build_parser() -> argparse.ArgumentParser:
    from pose.backends import BACKENDS

    p = argparse.ArgumentParser(prog="pose-eval", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cfg", help="experiment YAML (official layout); optional for a pose checkpoint")
    p.add_argument("--weights", help="checkpoint file or zoo name (default: TEST.MODEL_FILE)")
    boxes = p.add_mutually_exclusive_group()
    boxes.add_argument("--gt-boxes", action="store_true", help="use ground-truth person boxes")
    boxes.add_argument("--det-file", help="COCO person detection results JSON (sets TEST.USE_GT_BBOX False)")
    p.add_argument("--decoders", default="",
                   help="comma-separated decoders to score on one forward pass, of the model's pixel convention: "
                        "none,quarter,dark (official models) or udp (UDP-trained)")
    p.add_argument("--output-dir", default=None,
                   help="where results and metrics JSON go (default: the official OUTPUT_DIR/<dataset>/<model>/"
                        "<config name> with --cfg, else output/eval)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--backend", default=None, choices=BACKENDS,
                   help="inference backend (default TEST.BACKEND = torch, the official numerics)")
    p.add_argument("--batch-size", type=int, default=None, help="crops per forward (default TEST.BATCH_SIZE_PER_GPU)")
    p.add_argument("--workers", type=int, default=0, help="data loader processes")
    p.add_argument("--skip-missing-images", action="store_true",
                   help="drop samples whose image file is absent (warning) and score only processed images")
    p.add_argument("--offline", action="store_true", help="never download; zoo weights must be cached")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    add_common_args(p)
    return p


def _body(args) -> int:
    from pose.config import load_config, resolve_data_path, run_folder
    from pose.errors import ConfigError
    from pose.evaluation.runner import format_table, run_evaluation

    opts = list(args.opts)
    if args.gt_boxes:
        opts += ["TEST.USE_GT_BBOX", "True"]
    if args.det_file:
        opts += ["TEST.USE_GT_BBOX", "False", "TEST.COCO_BBOX_FILE", args.det_file]
    cfg = load_config(args.cfg, opts) if args.cfg else None
    weights = args.weights or (resolve_data_path(cfg, cfg.TEST.MODEL_FILE) if cfg is not None else "")
    if not weights:
        raise ConfigError("no weights: pass --weights PATH|ZOO_NAME or set TEST.MODEL_FILE in the config")
    output_dir = args.output_dir or (run_folder(cfg, args.cfg) if cfg is not None else "output/eval")
    decoders = [d.strip() for d in args.decoders.split(",") if d.strip()]
    report = run_evaluation(cfg, weights, output_dir=output_dir, decoders=decoders,
                            overrides=[] if cfg is not None else opts, device=args.device, workers=args.workers,
                            batch_size=args.batch_size, progress=not args.quiet,
                            skip_missing_images=args.skip_missing_images, offline=args.offline,
                            backend=args.backend)
    print(f"boxes:   {report['boxes']}")
    print(f"weights: {report['weights']}  (flip test {'on' if report['flip_test'] else 'off'}, "
          f"{report['num_samples']} person samples)")
    for name, metrics in report["metrics"].items():
        print(format_table(metrics, name=f"decoder={name}"))
    for path in report["files"]:
        print(f"wrote {path}")
    return 0


def main(argv=None) -> int:
    return run_cli("pose-eval", _body, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
