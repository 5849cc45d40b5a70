"""``pose-keypoints``: start and check a keypoint-set declaration (configs/keypoints/*.yaml format).

Examples:
    pose-keypoints init ann.json -o configs/keypoints/mine.yaml     (names, guessed flip pairs, sigmas TODO)
    pose-keypoints check configs/keypoints/mine.yaml                 (validate; print K, pairs, protocol)
    pose-keypoints list                                              (the shipped sets)
"""
import argparse
import sys

from pose.cli.common import add_common_args, run_cli


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pose-keypoints", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="draft a declaration from a COCO-format annotation file")
    init.add_argument("ann_file", help="COCO-format keypoint annotation JSON")
    init.add_argument("-o", "--output", required=True, help="declaration YAML to write")
    init.add_argument("--name", default=None, help="set name (default: the output file's stem)")
    init.add_argument("--force", action="store_true", help="overwrite an existing output file")
    check = sub.add_parser("check", help="validate a declaration (a path or a shipped name)")
    check.add_argument("declaration")
    sub.add_parser("list", help="list the shipped keypoint sets")
    for sp in sub.choices.values():
        add_common_args(sp)
    return p


def _body(args) -> int:
    from pathlib import Path

    from pose.errors import ConfigError
    from pose.fileio import atomic_write
    from pose.keypoints import load_keypoint_set, shipped_keypoint_sets

    if args.command == "list":
        for name in shipped_keypoint_sets():
            spec = load_keypoint_set(name)
            print(f"{name:16s} K={spec.num_keypoints:<4d} protocol={spec.protocol}")
        return 0
    if args.command == "check":
        spec = load_keypoint_set(args.declaration)
        sigmas = "TODO" if spec.sigmas_todo else (f"{len(spec.oks_sigmas)}" if spec.oks_sigmas else "none")
        print(f"{spec.name}: K={spec.num_keypoints}, {len(spec.flip_pairs)} flip pairs, {len(spec.skeleton)} "
              f"skeleton links, sigmas {sigmas}, protocol {spec.protocol}")
        return 0
    from pose.data.declaration import draft_declaration

    out = Path(args.output)
    if out.exists() and not args.force:
        raise ConfigError(f"pose-keypoints init: '{out}' exists; expected a new file (or pass --force)")
    text = draft_declaration(args.ann_file, args.name or out.stem)
    with atomic_write(out) as f:
        f.write(text)
    spec = load_keypoint_set(out)   # what was written must load
    print(f"wrote {out}: {spec.num_keypoints} keypoints, {len(spec.flip_pairs)} guessed flip pairs, sigmas TODO")
    return 0


def main(argv=None) -> int:
    return run_cli("pose-keypoints", _body, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
