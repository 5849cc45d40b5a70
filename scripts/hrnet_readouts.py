"""The four read-outs of one HRNet trunk: outputs, parameters, MACs and what ImageNet init loads into each.

    python scripts/hrnet_readouts.py hrnet_w32 hrnet_w18

Everything is built on the meta device (no memory, no weights, seconds even at 800x800). Sizes are the
ones the README quotes: pose heads at 256x192 (H x W), V2p at 800x800, the classifier at 224x224.
"""
import argparse
import sys

from pose.cli.common import add_common_args, run_cli

# head -> (input (W, H), what it is)
READOUTS = {"v1": ((192, 256), "pose heatmaps, top branch"), "v2": ((192, 256), "pose heatmaps, all branches"),
            "v2p": ((800, 800), "feature pyramid"), "classification": ((224, 224), "ImageNet logits")}


def _body(args) -> int:
    import torch

    from pose.models import build_model_from_arch, count_macs, count_parameters, macs_to_readme_gflops
    from pose.models.presets import HRNET_ARCHS, OFFICIAL_PRETRAINED_LAYERS, TRUNK_ARCHS, get_arch
    from pose.weights import load_imagenet_pretrained

    print("| trunk | head | output | input (HxW) | output shapes | params (M) | GFLOPs | ImageNet init: "
          "loaded / skipped / left at init |\n|---|---|---|---|---|---|---|---|")
    for name in args.arch:
        get_arch(name, TRUNK_ARCHS)  # one-line error for an unknown name
        with torch.device("meta"):
            imagenet = build_model_from_arch(name, head="classification").state_dict()
            for head, ((w, h), what) in READOUTS.items():
                if head == "v1" and name not in HRNET_ARCHS:
                    continue  # V1 is built for the published pose trunks only
                model = build_model_from_arch(name, 17, head=head)
                forward = getattr(model, "forward_pixels", model)
                out = forward(torch.zeros(1, 3, h, w))
                shapes = [tuple(t.shape[1:]) for t in (out.values() if isinstance(out, dict) else [out])]
                prefixes = ["*"] if head == "classification" else OFFICIAL_PRETRAINED_LAYERS
                report = load_imagenet_pretrained(model, imagenet, prefixes)
                skipped = sum(len(v) for v in report.skipped.values())
                print(f"| {name} | {head} | {what} | {h}x{w} | {', '.join(map(str, shapes))} | "
                      f"{count_parameters(model) / 1e6:.2f} | {macs_to_readme_gflops(count_macs(model, (w, h))):.2f} "
                      f"| {report.num_loaded} / {skipped} / {len(report.left_at_init)} |")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="hrnet_readouts.py", description=__doc__.split("\n")[0])
    p.add_argument("arch", nargs="+", help="trunk preset names (pose.models.TRUNK_ARCHS), e.g. hrnet_w32")
    add_common_args(p)
    return run_cli("hrnet_readouts.py", _body, p, argv)


if __name__ == "__main__":
    sys.exit(main())
