"""Keypoint metadata: :class:`KeypointSpec`, read from the declarations in ``configs/keypoints/*.yaml``.

A keypoint set is declared once, as data, in a small YAML file (the shipped ones are in
``configs/keypoints/``; a user's own may live anywhere)::

    name: mine                      # a short name; also what DATASET.DATASET may say
    protocol: coco                  # how it is scored: coco | crowdpose | coco_wholebody | mpii | nme | pck
    keypoints: [wrist, thumb_tip, index_tip]          # K names, in channel order (unique)
    flip_pairs: [[left_eye, right_eye]]               # by name; a horizontal flip swaps them
    skeleton: [[wrist, thumb_tip]]                    # by name; drawing only
    sigmas: [0.025, 0.025, 0.025]   # K OKS sigmas (COCO convention, already /10), or TODO
    joint_weights: [1, 1, 1]        # optional K loss weights (LOSS.USE_DIFFERENT_JOINTS_WEIGHT)
    upper_body: [...]               # optional names for the half-body crop
    lower_body: [...]
    oks_area: area                  # OKS scale: 'area' (the file's, default) or 'bbox' (0.53 * w * h)
    nme_pair: [a, b]                # face sets: the inter-ocular normaliser (protocol nme)
    parts: {body: [0, 17], ...}     # optional named [start, end) slices (COCO-WholeBody)
    annotation_fields: [keypoints, foot_kpts]   # optional: the annotation keys concatenated into K points

Every problem is a one-line :class:`~pose.errors.ConfigError` naming the file and the key. The
COCO and MPII facts used everywhere (:data:`COCO_17`, :data:`MPII_16`) are loaded from the same files
(lazily, on first use). A :class:`KeypointSpec` travels with a model's checkpoint (``to_dict`` /
``from_dict``) so a predictor is always rebuilt with the joints it was trained on. Indices are 0-based.

The shipped files are found beside the package (``<repo>/configs/keypoints``) in a checkout or an editable
install (``pip install -e .``); a wheel (``pip install .``) installs the same files as data under
``<prefix>/share/pose/keypoints`` (``[options.data_files]`` in ``setup.cfg``), where they are found otherwise.
"""
import functools
import math
import os
import site
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence, Tuple

import numpy as np

from pose.errors import ConfigError


def shipped_keypoint_sets_dir(prefixes: Sequence[str] = ()) -> Path:
    """The folder of the shipped declarations: ``configs/keypoints`` beside the package (checkout, editable
    install), else ``share/pose/keypoints`` under the first of ``prefixes`` (default: the interpreter's
    prefix, then the user base) that has it (a wheel install)."""
    beside = Path(__file__).resolve().parent.parent / "configs" / "keypoints"
    if beside.is_dir():
        return beside
    for prefix in prefixes or (sys.prefix, site.getuserbase()):
        installed = Path(prefix) / "share" / "pose" / "keypoints"
        if installed.is_dir():
            return installed
    return beside


#: Folder of the shipped declarations.
KEYPOINT_SETS_DIR = shipped_keypoint_sets_dir()
#: Scoring protocols a declaration may name (implemented in :mod:`pose.evaluation`).
PROTOCOLS = ("coco", "crowdpose", "coco_wholebody", "mpii", "nme", "pck")
#: Protocols that need OKS sigmas.
OKS_PROTOCOLS = ("coco", "crowdpose", "coco_wholebody")
#: OKS scale choices: the file's ``area``, or ``0.53 * w * h`` of the GT box (xtcocotools ``use_area=False``).
OKS_AREAS = ("area", "bbox")
#: ``DATASET.DATASET`` value for a COCO-format file whose keypoints ``DATASET.KEYPOINTS`` declares.
COCO_FORMAT = "coco_format"
#: The value of ``sigmas`` in a declaration whose sigmas are not known yet (``pose-keypoints init``).
TODO = "TODO"
_KEYS = ("name", "protocol", "keypoints", "flip_pairs", "skeleton", "sigmas", "joint_weights", "upper_body",
         "lower_body", "oks_area", "nme_pair", "parts", "annotation_fields")


def flip_permutation(num_keypoints: int, flip_pairs: Sequence[Sequence[int]]) -> np.ndarray:
    """Index array ``perm`` with ``flipped[..., k] = original[..., perm[k]]`` (left/right swap)."""
    perm = np.arange(num_keypoints)
    for a, b in flip_pairs:
        perm[a], perm[b] = b, a
    return perm


@dataclass(frozen=True)
class KeypointSpec:
    """Facts about one keypoint layout.

    Attributes:
        name: the set's name, e.g. ``"coco"``, ``"crowdpose"`` or a user's own.
        keypoint_names: K names in channel order.
        flip_pairs: (left, right) index pairs swapped by a horizontal flip.
        skeleton: index pairs drawn as limbs.
        oks_sigmas: K per-keypoint OKS sigmas (COCO convention, already divided by 10); empty if unused.
        joint_weights: K loss weights used when ``LOSS.USE_DIFFERENT_JOINTS_WEIGHT`` is on.
        upper_body_ids: joints forming the upper half for half-body augmentation.
        lower_body_ids: joints forming the lower half.
        protocol: the scoring protocol (one of :data:`PROTOCOLS`).
        oks_area: OKS scale source (one of :data:`OKS_AREAS`).
        nme_pair: the two indices whose GT distance normalises NME (face sets); empty otherwise.
        parts: ``(name, start, end)`` slices scored separately (COCO-WholeBody); empty otherwise.
        annotation_fields: annotation keys whose ``3 * k`` values are concatenated into the K points.
        sigmas_todo: the declaration says ``sigmas: TODO`` (OKS evaluation refuses it without a fallback).
    """

    name: str
    keypoint_names: Tuple[str, ...]
    flip_pairs: Tuple[Tuple[int, int], ...]
    skeleton: Tuple[Tuple[int, int], ...]
    oks_sigmas: Tuple[float, ...] = ()
    joint_weights: Tuple[float, ...] = ()
    upper_body_ids: Tuple[int, ...] = ()
    lower_body_ids: Tuple[int, ...] = field(default=())
    protocol: str = "coco"
    oks_area: str = "area"
    nme_pair: Tuple[int, ...] = ()
    parts: Tuple[Tuple[str, int, int], ...] = ()
    annotation_fields: Tuple[str, ...] = ("keypoints",)
    sigmas_todo: bool = False

    def __post_init__(self):
        k = len(self.keypoint_names)
        where = f"keypoint spec '{self.name}'"
        if k == 0:
            raise ConfigError(f"{where}: no keypoints; expected at least one name")
        seen = set()
        for a, b in self.flip_pairs:
            if not (0 <= a < k and 0 <= b < k) or a == b:
                raise ConfigError(f"{where}: flip pair ({a}, {b}) out of range for {k} keypoints")
            if a in seen or b in seen:
                raise ConfigError(f"{where}: flip pair ({a}, {b}) reuses a keypoint of another pair; "
                                  "expected each keypoint in at most one pair")
            seen.update((a, b))
        for a, b in self.skeleton:
            if not (0 <= a < k and 0 <= b < k):
                raise ConfigError(f"{where}: skeleton edge ({a}, {b}) out of range for {k} keypoints")
        for attr in ("oks_sigmas", "joint_weights"):
            n = len(getattr(self, attr))
            if n not in (0, k):
                raise ConfigError(f"{where}: {attr} has {n} values, expected {k}")
        for attr in ("upper_body_ids", "lower_body_ids", "nme_pair"):
            if any(not 0 <= i < k for i in getattr(self, attr)):
                raise ConfigError(f"{where}: {attr} {list(getattr(self, attr))} out of range for {k} keypoints")
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"{where}: protocol '{self.protocol}'; expected one of {list(PROTOCOLS)}")
        if self.oks_area not in OKS_AREAS:
            raise ConfigError(f"{where}: oks_area '{self.oks_area}'; expected one of {list(OKS_AREAS)}")

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoint_names)

    def flip_permutation(self) -> np.ndarray:
        """:func:`flip_permutation` of this layout."""
        return flip_permutation(self.num_keypoints, self.flip_pairs)

    def part_slices(self) -> Tuple[Tuple[str, slice], ...]:
        """``(name, slice)`` of every declared part (empty when the set has none)."""
        return tuple((name, slice(a, b)) for name, a, b in self.parts)

    def annotation_keypoints(self, ann: dict) -> list:
        """The flat ``3K`` list of a COCO-format annotation: its :attr:`annotation_fields` concatenated
        (``keypoints`` alone for most sets). A missing field raises KeyError naming it."""
        if self.annotation_fields == ("keypoints",):
            return ann["keypoints"]
        flat = []
        for key in self.annotation_fields:
            value = ann[key]
            flat += list(value) if isinstance(value, (list, tuple)) else [value]
        return flat

    def to_dict(self) -> dict:
        """Plain lists/strings/floats only, so it can live inside a ``weights_only`` checkpoint."""
        d = asdict(self)
        return {key: [list(v) if isinstance(v, tuple) else v for v in val] if isinstance(val, tuple) else val
                for key, val in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "KeypointSpec":
        def pairs(v):
            return tuple(tuple(int(i) for i in p) for p in v)
        try:
            return cls(
                name=str(d["name"]),
                keypoint_names=tuple(str(n) for n in d["keypoint_names"]),
                flip_pairs=pairs(d["flip_pairs"]),
                skeleton=pairs(d["skeleton"]),
                oks_sigmas=tuple(float(s) for s in d.get("oks_sigmas", ())),
                joint_weights=tuple(float(w) for w in d.get("joint_weights", ())),
                upper_body_ids=tuple(int(i) for i in d.get("upper_body_ids", ())),
                lower_body_ids=tuple(int(i) for i in d.get("lower_body_ids", ())),
                protocol=str(d.get("protocol", "coco")),
                oks_area=str(d.get("oks_area", "area")),
                nme_pair=tuple(int(i) for i in d.get("nme_pair", ())),
                parts=tuple((str(p[0]), int(p[1]), int(p[2])) for p in d.get("parts", ())),
                annotation_fields=tuple(str(f) for f in d.get("annotation_fields", ("keypoints",))),
                sigmas_todo=bool(d.get("sigmas_todo", False)),
            )
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise ConfigError(f"keypoint spec: malformed entry ({e}); expected the fields of KeypointSpec") from None


# ------------------------------------------------------------------------------------------------
# Declarations (YAML) -> KeypointSpec
# ------------------------------------------------------------------------------------------------
def spec_from_declaration(data, source: str = "<declaration>") -> KeypointSpec:
    """Validate a parsed declaration (see the module docstring) and build its :class:`KeypointSpec`.

    Raises:
        ConfigError: one line, ``SOURCE: KEY: what is wrong; what was expected``.
    """
    def fail(key, msg):
        raise ConfigError(f"keypoint declaration '{source}': {key}: {msg}")

    if not isinstance(data, dict):
        fail("(top level)", f"got a {type(data).__name__}; expected a mapping with 'name' and 'keypoints'")
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        fail(unknown[0], f"unknown key; expected only {', '.join(_KEYS)}")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        fail("name", f"got {name!r}; expected a short name such as 'my_hands'")
    names = data.get("keypoints")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        fail("keypoints", f"got {str(names)[:60]!r}; expected a non-empty list of keypoint names")
    index = {}
    for i, n in enumerate(names):
        if n in index:
            fail("keypoints", f"duplicate name '{n}' (positions {index[n]} and {i}); expected unique names")
        index[n] = i
    k = len(names)

    def name_list(key, value, length=None):
        if not isinstance(value, list) or (length is not None and len(value) != length):
            want = f"a list of {length} keypoint names" if length else "a list of keypoint names"
            fail(key, f"got {str(value)[:60]!r}; expected {want}")
        for n in value:
            if n not in index:
                fail(key, f"'{n}' is not a name in 'keypoints'; expected one of the {k} declared names")
        return tuple(index[n] for n in value)

    def pair_list(key):
        value = data.get(key) or []
        if not isinstance(value, list):
            fail(key, f"got {str(value)[:60]!r}; expected a list of [name, name] pairs")
        return tuple(name_list(f"{key}[{j}]", p, 2) for j, p in enumerate(value))

    def numbers(key, positive):
        value = data.get(key)
        if value is None or value == []:
            return ()
        ok = isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                             and math.isfinite(v) and (v > 0 if positive else v >= 0)
                                             for v in value)
        if not ok:
            fail(key, f"got {str(value)[:60]!r}; expected a list of {k} {'positive' if positive else 'non-negative'}"
                 " numbers")
        if len(value) != k:
            fail(key, f"has {len(value)} values; expected {k}, one per keypoint")
        return tuple(float(v) for v in value)

    flips = pair_list("flip_pairs")
    used = {}
    for j, (a, b) in enumerate(flips):
        if a == b:
            fail(f"flip_pairs[{j}]", f"'{names[a]}' paired with itself; expected two different names "
                 "(leave self-symmetric points out)")
        for i in (a, b):
            if i in used:
                fail(f"flip_pairs[{j}]", f"'{names[i]}' is already in flip_pairs[{used[i]}]; expected each "
                     "name in at most one pair")
            used[i] = j
    sigmas_raw = data.get("sigmas")
    todo = sigmas_raw == TODO
    sigmas = () if todo else numbers("sigmas", positive=True)
    protocol = data.get("protocol", "coco")
    if protocol not in PROTOCOLS:
        fail("protocol", f"got {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
    if protocol in OKS_PROTOCOLS and not sigmas and not todo:
        fail("sigmas", f"missing for protocol '{protocol}' (OKS needs {k} sigmas); give them, or write "
             "'sigmas: TODO' and pass an explicit uniform fallback (DATASET.OKS_SIGMA_FALLBACK) to evaluate")
    oks_area = data.get("oks_area", "area")
    if oks_area not in OKS_AREAS:
        fail("oks_area", f"got {oks_area!r}; expected one of {', '.join(OKS_AREAS)}")
    nme_pair = name_list("nme_pair", data["nme_pair"], 2) if data.get("nme_pair") else ()
    if protocol == "nme" and not nme_pair:
        fail("nme_pair", "missing for protocol 'nme'; expected the two names whose distance normalises NME")
    parts = []
    raw_parts = data.get("parts") or {}
    if not isinstance(raw_parts, dict):
        fail("parts", f"got {str(raw_parts)[:60]!r}; expected a mapping name: [start, end]")
    for pname, rng in raw_parts.items():
        if (not isinstance(rng, list) or len(rng) != 2 or not all(type(v) is int for v in rng)
                or not 0 <= rng[0] < rng[1] <= k):
            fail(f"parts.{pname}", f"got {rng!r}; expected [start, end) with 0 <= start < end <= {k}")
        parts.append((str(pname), rng[0], rng[1]))
    fields = data.get("annotation_fields") or ["keypoints"]
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        fail("annotation_fields", f"got {fields!r}; expected a list of annotation keys")
    return KeypointSpec(
        name=name, keypoint_names=tuple(names), flip_pairs=flips, skeleton=pair_list("skeleton"),
        oks_sigmas=sigmas, joint_weights=numbers("joint_weights", positive=False),
        upper_body_ids=name_list("upper_body", data["upper_body"]) if data.get("upper_body") else (),
        lower_body_ids=name_list("lower_body", data["lower_body"]) if data.get("lower_body") else (),
        protocol=protocol, oks_area=oks_area, nme_pair=nme_pair, parts=tuple(parts),
        annotation_fields=tuple(fields), sigmas_todo=todo)


def _read_declaration(path: Path) -> KeypointSpec:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"keypoint declaration '{path}': cannot read ({e.strerror or e})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"keypoint declaration '{path}': not valid YAML ({' '.join(str(e).split())[:120]})") \
            from None
    return spec_from_declaration(data, str(path))


@functools.lru_cache(maxsize=64)
def _cached_declaration(path: str, mtime_ns: int) -> KeypointSpec:
    return _read_declaration(Path(path))


def shipped_keypoint_sets() -> Tuple[str, ...]:
    """Names of the declarations in :data:`KEYPOINT_SETS_DIR`."""
    return tuple(sorted(p.stem for p in KEYPOINT_SETS_DIR.glob("*.yaml")))


def load_keypoint_set(name_or_path) -> KeypointSpec:
    """The :class:`KeypointSpec` of a shipped set (``"crowdpose"``) or of a declaration file path."""
    text = os.fspath(name_or_path)
    shipped = KEYPOINT_SETS_DIR / f"{text.lower()}.yaml"
    looks_like_path = text.endswith((".yaml", ".yml")) or os.sep in text or "/" in text
    path = Path(text) if looks_like_path else shipped
    if not looks_like_path and not shipped.is_file():
        raise ConfigError(f"keypoint set '{text}' is unknown; expected one of {list(shipped_keypoint_sets())} "
                          "or a path to a declaration YAML")
    try:
        stat = path.stat()
    except OSError:
        raise ConfigError(f"keypoint declaration '{path}': no such file; expected a YAML declaration "
                          "(see configs/keypoints/)") from None
    return _cached_declaration(str(path.resolve()), stat.st_mtime_ns)


def get_keypoint_spec(dataset_name: str) -> KeypointSpec:
    """Spec for a dataset name as used in ``DATASET.DATASET`` (a shipped set: ``coco``, ``crowdpose``, ...)."""
    if str(dataset_name).lower() not in shipped_keypoint_sets():
        raise ConfigError(f"DATASET.DATASET: unknown dataset '{dataset_name}'; expected one of "
                          f"{list(shipped_keypoint_sets())} or '{COCO_FORMAT}' with DATASET.KEYPOINTS")
    return load_keypoint_set(str(dataset_name).lower())


def __getattr__(name: str):
    # COCO_17, MPII_16 and KEYPOINT_SPECS are read from configs/keypoints on first use (no import-time I/O).
    if name == "COCO_17":
        return load_keypoint_set("coco")
    if name == "MPII_16":
        return load_keypoint_set("mpii")
    if name == "KEYPOINT_SPECS":
        return {n: load_keypoint_set(n) for n in shipped_keypoint_sets()}
    raise AttributeError(f"module 'pose.keypoints' has no attribute '{name}'")
