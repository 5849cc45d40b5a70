"""``pose-train``: train a pose net from an experiment YAML (official layout), resuming automatically.

Examples:
    pose-train --cfg configs/coco_hrnet_w32_256x192.yaml
    pose-train --cfg configs/tiny_hrnet_128x96.yaml --output-dir output/tiny TRAIN.END_EPOCH 5
    torchrun --nproc_per_node 4 -m pose.cli.train --cfg configs/coco_hrnet_w32_256x192.yaml

The run folder (default OUTPUT_DIR/<dataset>/<model>/<config name>, as the official code) receives
config.yaml, metrics.jsonl, checkpoint_last.pth, model_best.pth, final.pth and TensorBoard events.
Rerunning the same command resumes from checkpoint_last.pth (TRAIN.AUTO_RESUME, default true).
Ctrl-C stops at once; the last complete checkpoint is kept (exit code 130).
"""
import argparse
import os
import sys

from pose.cli.common import add_common_args, run_cli


def build_parser(prog: str = "pose-train") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n", 1)[1])
    p.add_argument("--cfg", required=True, help="experiment YAML (official HRNet layout)")
    p.add_argument("--output-dir", help="run folder (default: OUTPUT_DIR/<dataset>/<model>/<config name>)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs, metrics.jsonl)")
    # Official tools/train.py flags, so its documented command lines keep working.
    p.add_argument("--dataDir", help="official alias: sets DATA_DIR")
    p.add_argument("--modelDir", help="official alias: sets OUTPUT_DIR")
    p.add_argument("--logDir", help="official alias: sets LOG_DIR")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    add_common_args(p)
    return p


def _body(args) -> int:
    from pose.config import load_config, run_folder
    from pose.training import train

    opts = list(args.opts)
    for flag, key in ((args.dataDir, "DATA_DIR"), (args.modelDir, "OUTPUT_DIR"), (args.logDir, "LOG_DIR")):
        if flag:
            opts += [key, flag]
    cfg = load_config(args.cfg, opts)
    output_dir = args.output_dir or run_folder(cfg, args.cfg)
    summary = train(cfg, output_dir, device=args.device, progress=not (args.no_progress or args.quiet))
    if os.environ.get("RANK", "0") != "0":  # torchrun: rank 0 reports
        return 0
    if summary["best_metric"] is not None:
        print(f"best {summary['metric']} {summary['best_metric']:.4f} at epoch {summary['best_epoch']}: "
              f"{summary['best_checkpoint']}")
    print(f"final weights: {summary['final_checkpoint']}")
    return 0


def main(argv=None) -> int:
    return run_cli("pose-train", _body, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
