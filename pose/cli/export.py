"""``pose-export``: write ONNX / TorchScript versions of a pose model and verify them against PyTorch.

Examples:
    pose-export --weights model_best.pth --cfg configs/coco_hrnet_w32_256x192.yaml --format both --output-dir exports
    pose-export --weights hrnet_w32_coco_256x192 --format onnx --output-dir exports --images tests/data/coco/*.jpg
    pose-export --weights model_best.pth --precision int8 --calibration-images my_photos/ --output-dir exports

Each export is run next to the PyTorch model on a few crops (from ``--images`` via the predictor's
cropping, else seeded random crops); the largest heatmap and decoded-keypoint differences are printed,
and the command fails (exit 1) when they exceed ``--heatmap-tol`` / ``--keypoint-tol``.

``--precision bf16|int8`` checks the export on the runtime that will run it (``--runtime``) against fp32
PyTorch on crops of ``--calibration-images`` (int8 also calibrates on them) and writes nothing when the
mean keypoint displacement exceeds the bound (0.25 model-input pixels, pose.fidelity) unless ``--force``.
"""
import argparse
from pathlib import Path

from pose.cli.common import add_common_args, run_cli


def build_parser() -> argparse.ArgumentParser:
    from pose.export import HEATMAP_TOLERANCE, KEYPOINT_TOLERANCE, ONNX_OPSET

    p = argparse.ArgumentParser(prog="pose-export", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, help="checkpoint file or zoo name")
    p.add_argument("--cfg", help="experiment YAML (needed for plain/official weights files)")
    p.add_argument("--format", default="onnx", choices=("onnx", "torchscript", "both"), help="what to write")
    p.add_argument("--output-dir", default="output/export", help="folder for the exported files")
    p.add_argument("--name", help="file stem (default: the weights file stem or zoo name)")
    p.add_argument("--opset", type=int, default=ONNX_OPSET, help=f"ONNX opset (default {ONNX_OPSET})")
    p.add_argument("--images", nargs="*", default=[], help="images to make verification crops from")
    p.add_argument("--num-random", type=int, default=4, help="random verification crops when no --images")
    p.add_argument("--heatmap-tol", type=float, default=HEATMAP_TOLERANCE, help="max |heatmap diff| allowed")
    p.add_argument("--keypoint-tol", type=float, default=KEYPOINT_TOLERANCE,
                   help="max decoded keypoint diff allowed (crop pixels)")
    p.add_argument("--no-verify", action="store_true", help="skip the comparison against PyTorch")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "int8"),
                   help="numerics of the export (bf16/int8: checked against fp32, see above)")
    p.add_argument("--calibration-images", metavar="DIR", help="photos of people: int8 calibration + the check")
    p.add_argument("--runtime", choices=("onnxruntime", "openvino", "torch-fast"),
                   help="runtime that checks a bf16/int8 export (default: openvino/torch-fast for bf16, "
                        "onnxruntime for int8)")
    p.add_argument("--force", action="store_true", help="write a bf16/int8 export even beyond the bound")
    p.add_argument("--offline", action="store_true", help="never download; zoo weights must be cached")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    add_common_args(p)
    return p


def _body(args) -> int:
    from pose.backends import import_onnxruntime
    from pose.config import load_config
    from pose.errors import ConfigError
    from pose.export import export_model, sample_crops
    from pose.fileio import check_output_folder
    from pose.imageio import read_image_rgb
    from pose.loading import load_model
    from pose.predictor import TopDownPredictor

    if args.num_random < 1:
        raise ConfigError(f"--num-random: got {args.num_random}, expected an integer >= 1")
    check_output_folder(args.output_dir)  # before any model loads: a refusal prints one line only
    cfg = load_config(args.cfg, list(args.opts)) if args.cfg else None
    model, cfg, codec, spec = load_model(args.weights, cfg, overrides=[] if args.cfg else list(args.opts),
                                         offline=args.offline)
    stem = args.name or Path(str(args.weights)).stem
    if args.precision != "fp32":
        return _reduced_precision(args, model, codec, spec, stem)
    formats = ["onnx", "torchscript"] if args.format == "both" else [args.format]
    crops = None
    if not args.no_verify:
        if "onnx" in formats:
            import_onnxruntime()  # fail before exporting when the verifier is missing
        predictor = TopDownPredictor(model, codec, spec, flip_test=False)
        images = [read_image_rgb(path) for path in args.images]
        crops = sample_crops(predictor, images, num_random=args.num_random)
    results = export_model(model, codec, spec, args.output_dir, stem=stem, formats=formats, opset=args.opset,
                           crops=crops, verify=not args.no_verify, heatmap_tolerance=args.heatmap_tol,
                           keypoint_tolerance=args.keypoint_tol)
    for fmt, result in results.items():
        print(f"wrote {result['path']}")
        check = result["verify"]
        if check is not None:
            print(f"  {fmt} vs PyTorch on {check['num_crops']} crops: max |heatmap diff| "
                  f"{check['max_heatmap_diff']:.3g}, max keypoint diff {check['max_keypoint_diff_px']:.3g} px: OK")
    print(f"wrote {Path(args.output_dir) / (stem + '.export.json')}")
    return 0


def _reduced_precision(args, model, codec, spec, stem) -> int:
    from pose.errors import ConfigError
    from pose.export import export_precision
    from pose.loading import calibration_crops_from
    from pose.predictor import TopDownPredictor

    if not args.calibration_images:
        raise ConfigError(f"--precision {args.precision} needs --calibration-images DIR (photos of people)")
    crops = calibration_crops_from(args.calibration_images, TopDownPredictor(model, codec, spec, flip_test=False))
    result = export_precision(model, codec, spec, args.output_dir, stem=stem, precision=args.precision,
                              crops=crops, runtime=args.runtime, force=args.force, opset=args.opset)
    f = result["fidelity"]
    print(f"wrote {result['path']} ({args.precision}, checked on {result['runtime']})")
    print(f"  vs fp32 PyTorch on {len(crops)} crops: mean keypoint displacement {f['mean_px']:.3f} px "
          f"(bound {f['bound_px']:g}), max {f['max_px']:.3f} px, {100 * f['within_half_px']:.1f}% within 0.5 px"
          f"{', FORCED beyond the bound' if result['forced'] else ''}")
    if result["note"]:
        print(f"  {result['note']}")
    print(f"wrote {Path(args.output_dir) / (stem + '.export.json')}")
    return 0


def main(argv=None) -> int:
    return run_cli("pose-export", _body, build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
