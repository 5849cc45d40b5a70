"""A first keypoint declaration from a COCO-format annotation file (``pose-keypoints init``).

The names come from the file's categories, flip pairs are guessed from left/right tokens, the skeleton is the
file's when it fits, and the sigmas are marked ``TODO`` (see :mod:`pose.keypoints` for the format).
"""
import json
import os
import re
from typing import Optional

from pose.data.coco import _read_annotation_file, _require_list
from pose.errors import DataError

_SIDES = (("left", "right"), ("Left", "Right"), ("LEFT", "RIGHT"), ("l", "r"), ("L", "R"))


def _mirror_name(name: str, names: set) -> Optional[str]:
    """The name with its left/right token swapped (``left_eye`` <-> ``right_eye``, ``L_Eye`` <-> ``R_Eye``,
    ``Left Knee``, ``hand_left``), if that name is in ``names``."""
    tokens = re.split(r"([_\-\s.])", name)
    for i, tok in enumerate(tokens):
        for a, b in _SIDES:
            for x, y in ((a, b), (b, a)):
                if tok == x or (len(x) > 1 and tok.startswith(x) and tok[len(x):len(x) + 1].isupper()):
                    other = "".join(tokens[:i] + [y + tok[len(x):]] + tokens[i + 1:])
                    if other in names:
                        return other
    return None


def draft_declaration(ann_file, name: str) -> str:
    """YAML text of a keypoint declaration guessed from a COCO-format file's ``categories``.

    Names come from the first category with a ``keypoints`` list (all such categories must agree); flip pairs
    are guessed from left/right tokens in the names; the skeleton is the category's (1-based) when it fits;
    ``sigmas: TODO`` (OKS evaluation refuses it until real sigmas are written, or an explicit uniform
    fallback is passed). Files without names (the face sets) get ``kpt-0`` ... from the annotations' length.
    """
    data = _read_annotation_file(ann_file, "a COCO keypoint file with 'categories' and 'annotations'")
    cats = [c for c in data.get("categories") or [] if isinstance(c, dict) and c.get("keypoints")]
    if cats:
        names = [str(n) for n in cats[0]["keypoints"]]
        for c in cats[1:]:
            if [str(n) for n in c["keypoints"]] != names:
                raise DataError(f"annotation file '{ann_file}': category id {c.get('id')} lists other keypoint "
                                f"names than category id {cats[0].get('id')}; expected one keypoint set per file")
        raw_skeleton = cats[0].get("skeleton") or []
    else:
        anns = [a for a in _require_list(data, "annotations", ann_file) if isinstance(a, dict)]
        lengths = {len(a.get("keypoints") or []) for a in anns}
        if len(lengths) != 1 or not lengths or min(lengths) % 3 or min(lengths) == 0:
            raise DataError(f"annotation file '{ann_file}': no category lists keypoint names and the annotations' "
                            f"keypoints lengths are {sorted(lengths)}; expected one length 3K")
        names = [f"kpt-{i}" for i in range(lengths.pop() // 3)]
        raw_skeleton = []
    if len(set(names)) != len(names):
        raise DataError(f"annotation file '{ann_file}': duplicate keypoint names in its category; expected unique")
    pool, pairs, paired = set(names), [], set()
    for n in names:
        m = _mirror_name(n, pool)
        if m and n not in paired and m not in paired and m != n:
            pairs.append((n, m))
            paired.update((n, m))
    skeleton = [(names[a - 1], names[b - 1]) for a, b in raw_skeleton
                if isinstance(a, int) and isinstance(b, int) and 1 <= a <= len(names) and 1 <= b <= len(names)]
    if len(skeleton) != len(raw_skeleton):
        skeleton = []

    def q(n):
        return json.dumps(n)
    lines = [f"# Keypoint declaration drafted by `pose-keypoints init` from {os.path.basename(str(ann_file))}.",
             "# Check the flip pairs (guessed from left/right in the names) and replace 'sigmas: TODO' with",
             "# K per-keypoint OKS sigmas (std of annotator error / object scale; COCO's are 0.025-0.107).",
             f"name: {q(name)}", "protocol: coco",
             "keypoints: [" + ", ".join(q(n) for n in names) + "]",
             "flip_pairs: [" + ", ".join(f"[{q(a)}, {q(b)}]" for a, b in pairs) + "]",
             "skeleton: [" + ", ".join(f"[{q(a)}, {q(b)}]" for a, b in skeleton) + "]",
             "sigmas: TODO"]
    return "\n".join(lines) + "\n"
