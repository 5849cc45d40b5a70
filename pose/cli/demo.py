"""``pose-demo``: detect people, estimate and track their poses in images, videos, webcams or streams.

Examples:
    pose-demo clip.mp4                                  zoo model hrnet_w32_coco_256x192 (downloaded once)
    pose-demo photos/ --weights model.pth --cfg configs/coco_hrnet_w32_256x192.yaml
    pose-demo 0 --show                                  webcam 0, smoothing on, window if a GUI exists
    pose-demo rtsp://camera/stream --det-every 3 --csv
    pose-demo clip.mp4 --random-weights --no-flip       untrained HRNet-W32: pipeline smoke run / timing

The same pipeline as the Python API (pose.PoseEstimator(...).stream(INPUT)); the input is checked
before the model loads, and a refused input leaves nothing in --output-dir. Outputs go to --output-dir:
<name>_keypoints.jsonl (one record per frame), <name>_pose.mp4 for videos and streams,
<stem>_pose.jpg + <name>_coco_results.json for images, <name>_keypoints.csv with --csv.
"""
import argparse
import sys

from pose.cli.common import EXIT_INTERRUPTED, add_common_args, run_cli


def build_parser() -> argparse.ArgumentParser:
    from pose.backends import BACKENDS
    from pose.codec import DECODERS
    from pose.loading import DEFAULT_MODEL, PRECISIONS
    from pose.video.tracking import TRACK_METRICS

    p = argparse.ArgumentParser(prog="pose-demo", description=__doc__.split("\n")[0],
                                epilog=__doc__.split("\n", 2)[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="image, folder, glob ('imgs/*.jpg'), video file, webcam index (0) or "
                                 "rtsp/http URL")
    p.add_argument("--output-dir", default="output/demo", help="where outputs go (default: output/demo)")
    model = p.add_argument_group("pose model")
    model.add_argument("--model", default=None,
                       help=f"zoo model name (default {DEFAULT_MODEL}; downloaded on first use)")
    model.add_argument("--weights", help="checkpoint file (project, official or mmpose) instead of --model")
    model.add_argument("--cfg", help="experiment YAML for official/mmpose weights (or --random-weights)")
    model.add_argument("--random-weights", action="store_true",
                       help="UNTRAINED model of --model's architecture: pipeline smoke runs and timing only")
    model.add_argument("--decoder", choices=DECODERS, default=None,
                       help="heatmap decoder (default: the model's)")
    model.add_argument("--no-flip", action="store_true", help="skip the flip test (about 2x faster)")
    model.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    model.add_argument("--backend", default="auto", choices=BACKENDS,
                       help="inference backend (default auto: ONNX Runtime on CPU when installed, else "
                            "BatchNorm-folded channels_last torch)")
    model.add_argument("--batch-size", type=int, default=None, help="person crops per forward pass")
    model.add_argument("--precision", choices=PRECISIONS, default="auto",
                       help="numeric precision of the pose model's runtime (default auto: bf16 only where the "
                            "CPU has bf16 units and a probe on these weights keeps fp32 fidelity, else fp32)")
    model.add_argument("--offline", action="store_true", help="never download; zoo weights must be cached")
    model.add_argument("--offline-fallback", action="store_true",
                       help="if the zoo model cannot be downloaded, warn loudly and run with --random-weights "
                            "--no-flip instead of failing (used by `make demo`)")
    det = p.add_argument_group("person detector")
    det.add_argument("--detector", default="yolox-nano",
                     help="yolox-nano (default, offline), fasterrcnn, json:PATH or whole-image")
    det.add_argument("--det-score", type=float, default=0.3, help="minimum detector box score (default 0.3)")
    det.add_argument("--max-persons", type=int, default=None, help="at most this many persons per frame")
    det.add_argument("--det-every", type=int, default=1,
                     help="run the detector every N-th frame; in between reuse boxes from the last poses")
    vid = p.add_argument_group("video")
    vid.add_argument("--stride", type=int, default=1, help="process every N-th frame")
    vid.add_argument("--track", choices=TRACK_METRICS + ("none",), default="iou",
                     help="tracking similarity for persistent ids (default iou)")
    vid.add_argument("--smooth", action=argparse.BooleanOptionalAction, default=None,
                     help="One-Euro keypoint smoothing (default: on for webcam/streams, off for files)")
    vid.add_argument("--open-timeout", type=float, default=10.0,
                     help="seconds a webcam or stream may take to deliver its first frame")
    out = p.add_argument_group("outputs")
    out.add_argument("--kpt-thr", type=float, default=0.3, help="joints below this score are not drawn")
    out.add_argument("--no-video", action="store_true", help="do not write the annotated video")
    out.add_argument("--csv", action="store_true", help="also write <name>_keypoints.csv")
    out.add_argument("--show", action="store_true", help="show a window (needs an OpenCV build with GUI)")
    add_common_args(p)
    return p


def build_estimator(args):
    """The :class:`pose.api.PoseEstimator` of the model and detector arguments; untrained when asked."""
    from pose.api import PoseEstimator
    from pose.errors import ConfigError, DownloadError
    from pose.loading import DEFAULT_MODEL

    if args.random_weights and args.weights:
        raise ConfigError("--random-weights and --weights exclude each other; pick one")
    if args.weights and args.model:
        raise ConfigError("--model and --weights exclude each other; pick one")
    options = dict(model=args.model or DEFAULT_MODEL, weights=args.weights, cfg=args.cfg, device=args.device,
                   backend=args.backend, detector=args.detector, flip_test=False if args.no_flip else None,
                   decoder=args.decoder, batch_size=args.batch_size, offline=args.offline,
                   precision=args.precision, det_score=args.det_score, max_persons=args.max_persons)
    if args.random_weights:
        return PoseEstimator(**options, pretrained=False)
    try:
        return PoseEstimator(**options)
    except DownloadError as e:
        if args.offline_fallback and not args.weights:
            print(f"WARNING: {e}", file=sys.stderr)
            print("WARNING: falling back to UNTRAINED weights (--random-weights --no-flip): the detector, "
                  "tracking, rendering and JSON-lines output are real, the keypoints are not", file=sys.stderr)
            args.random_weights, args.no_flip = True, True
            return build_estimator(args)
        raise DownloadError(f"{e}; or run with --random-weights for an untrained smoke run") from None


def _body(args) -> int:
    from pose.errors import ConfigError
    from pose.video.pipeline import UNTRAINED_WARNING, check_output_folder, format_summary, write_demo_outputs
    from pose.video.sources import open_source

    for name, value, low in (("--stride", args.stride, 1), ("--det-every", args.det_every, 1),
                             ("--max-persons", args.max_persons, 1), ("--batch-size", args.batch_size, 1)):
        if value is not None and value < low:
            raise ConfigError(f"{name}: got {value}, expected an integer >= {low}")
    # Cheap checks first, in about a second and before any model loads: the output folder (not created
    # yet), then the input down to its first decoded frame. A refused input leaves nothing behind.
    check_output_folder(args.output_dir)
    source = open_source(args.input, stride=args.stride, open_timeout_s=args.open_timeout)
    try:
        source.peek()
        estimator = build_estimator(args)
        poses = estimator.stream(source, track=args.track, smooth=args.smooth, det_every=args.det_every,
                                 kpt_thr=args.kpt_thr)
    except BaseException:
        source.close()
        raise
    info = estimator.info()  # (the estimator has logged the untrained warning once; it is repeated at the end)
    print(f"pose runtime: {info['backend']} {info['precision']} on {info['device']} ({info['runtime_reason']})")
    summary = write_demo_outputs(poses, source, estimator.spec, output_dir=args.output_dir, kpt_thr=args.kpt_thr,
                                 write_video=not args.no_video, write_csv=args.csv, show=args.show,
                                 untrained=args.random_weights,
                                 meta=estimator.record_meta(stride=args.stride, det_every=args.det_every),
                                 progress=not args.quiet)
    print(format_summary(summary))
    if args.random_weights:
        print(f"WARNING: {UNTRAINED_WARNING}", file=sys.stderr)
    if summary.interrupted and summary.source_kind not in ("webcam", "stream"):
        return EXIT_INTERRUPTED  # Ctrl-C is the normal way to end a live run, not for a file
    return 0


def main(argv=None) -> int:
    return run_cli("pose-demo", _body, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
