"""Seeded fuzzing of the file loaders: a mutated input either loads or raises ``pose.errors.PoseError``.

Mutations are structural (a random node of the parsed JSON/YAML tree is deleted, retyped, replaced
by an extreme value, duplicated or emptied) and textual (bytes flipped, inserted or cut off). Each
loader gets ``FUZZ_CASES`` mutations per run (10x with ``POSE_SLOW=1``); a failure message names the
seed so it can be replayed with ``mutate(..., seed)``.
"""
import copy
import json
import os
import random
from pathlib import Path
from typing import Any, Callable, List

import pytest
import yaml

from pose.errors import PoseError

SLOW = os.environ.get("POSE_SLOW", "") not in ("", "0")
FUZZ_CASES = 150 * (10 if SLOW else 1)
REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
COCO = DATA / "coco"

ODD_VALUES = [None, True, False, 0, -1, 1.5, -1e9, 1e308, float("nan"), float("inf"), "", "x", "1",
              [], [1, 2], [None], {}, {"a": 1}, 2**70]


def _nodes(tree, path=()):
    """(path, value) for every node of a JSON-like tree."""
    yield path, tree
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _nodes(v, path + (k,))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from _nodes(v, path + (i,))


def _mutate_tree(tree, rng: random.Random):
    tree = copy.deepcopy(tree)
    for _ in range(rng.randint(1, 3)):
        nodes = [p for p, _ in _nodes(tree) if p]
        if not nodes:
            return rng.choice(ODD_VALUES)
        path = rng.choice(nodes)
        parent = tree
        for key in path[:-1]:
            parent = parent[key]
        key, value = path[-1], parent[path[-1]]
        op = rng.choice(["delete", "odd", "odd", "scale", "duplicate", "empty", "swap"])
        if op == "delete":
            del parent[key]
        elif op == "odd":
            parent[key] = copy.deepcopy(rng.choice(ODD_VALUES))
        elif op == "scale" and isinstance(value, (int, float)) and not isinstance(value, bool):
            parent[key] = value * rng.choice([-1, 0, 1e6, -1e6]) + rng.choice([0, 0.5])
        elif op == "duplicate" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(value))
        elif op == "empty":
            parent[key] = type(value)() if isinstance(value, (list, dict, str)) else None
        elif op == "swap":
            other = rng.choice(nodes)
            target = tree
            try:
                for k in other:
                    target = target[k]
                parent[key] = copy.deepcopy(target)
            except (KeyError, IndexError, TypeError):
                pass
    return tree


def _mutate_text(text: str, rng: random.Random) -> bytes:
    data = bytearray(text.encode("utf-8"))
    op = rng.choice(["flip", "insert", "cut", "cut"])
    if op == "cut" or not data:
        return bytes(data[: rng.randint(0, len(data))])
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(data))
        if op == "flip":
            data[i] = rng.randrange(256)
        else:
            data[i:i] = rng.choice([b"{", b"]", b",", b":", b'"', b"\x00", b"\xff", b"-", b"\n  - ", b"NaN"])
    return bytes(data)


def mutate(original_text: str, parse: Callable[[str], Any], dump: Callable[[Any], str], seed: int) -> bytes:
    """The ``seed``-th mutation of a file's text (structural 3 times in 4, else textual)."""
    rng = random.Random(seed)
    if rng.random() < 0.75:
        return dump(_mutate_tree(parse(original_text), rng)).encode("utf-8")
    return _mutate_text(original_text, rng)


def _fuzz(tmp_path, name: str, original: str, parse, dump, load: Callable[[Path], Any]) -> List[str]:
    """Run the loader on FUZZ_CASES mutations; return descriptions of unhandled exceptions."""
    failures = []
    load(tmp_path / "pristine")  # the unmutated file loads
    path = tmp_path / name
    loaded = 0
    for seed in range(FUZZ_CASES):
        path.write_bytes(mutate(original, parse, dump, seed))
        try:
            load(path)
            loaded += 1
        except PoseError:
            pass
        except Exception as e:  # noqa: BLE001 - the point of the test
            failures.append(f"seed {seed}: {type(e).__name__}: {str(e)[:200]}")
    assert loaded > 0 or name.endswith(".yaml"), "no mutation loaded: the mutator is too destructive"
    return failures


def _json_dump(obj) -> str:
    return json.dumps(obj)  # NaN / Infinity tokens included on purpose (Python's json reads them)


def _setup(tmp_path, original: str) -> None:
    (tmp_path / "pristine").write_text(original)


def test_fuzz_coco_annotation_loaders(tmp_path):
    from pose.data.coco import load_coco_gt_samples
    from pose.evaluation import load_coco_gt

    original = (COCO / "test_coco.json").read_text()
    _setup(tmp_path, original)

    def load(path):
        load_coco_gt_samples(path, COCO, input_size=(192, 256), check_images=False)
        load_coco_gt(path)

    failures = _fuzz(tmp_path, "ann.json", original, json.loads, _json_dump, load)
    assert not failures, "\n".join(failures[:10])


def test_fuzz_detection_loaders(tmp_path):
    from pose.data.coco import load_coco_det_samples
    from pose.video.detection import build_detector

    dets = json.loads((COCO / "test_coco_det_AP_H_56.json").read_text())[:12]
    original = json.dumps(dets)
    _setup(tmp_path, original)

    def load(path):
        load_coco_det_samples(path, COCO / "test_coco.json", COCO, input_size=(192, 256), check_images=False)
        detector = build_detector(f"json:{path}")
        detector(__import__("numpy").zeros((480, 640, 3), "uint8"), 785)

    failures = _fuzz(tmp_path, "det.json", original, json.loads, _json_dump, load)
    assert not failures, "\n".join(failures[:10])


def test_fuzz_config_loader(tmp_path):
    from pose.config import load_config

    original = (REPO / "configs" / "tiny_hrnet_128x96.yaml").read_text()
    _setup(tmp_path, original)
    failures = _fuzz(tmp_path, "cfg.yaml", original, yaml.safe_load,
                     lambda obj: yaml.safe_dump(obj, allow_unicode=True), load_config)
    assert not failures, "\n".join(failures[:10])


def test_fuzz_frame_records_reader(tmp_path):
    import numpy as np

    from pose.structures import PoseResult
    from pose.video.records import FrameRecordWriter, read_frame_records

    rng = np.random.default_rng(0)
    path = tmp_path / "good.jsonl"
    with FrameRecordWriter(path, meta={"model": "x"}) as writer:
        for i in range(4):
            results = [PoseResult(keypoints_img=rng.uniform(0, 100, (17, 3)).astype(np.float32),
                                  center_img=np.array([50.0, 50.0]), scale=np.array([1.0, 1.0]), box_score=0.9,
                                  bbox_xywh=(1.0, 2.0, 30.0, 40.0), track_id=j) for j in range(2)]
            writer.write(i, i / 25, "clip.mp4", results)
    original = path.read_text()
    _setup(tmp_path, original)

    def parse(text):
        return [json.loads(line) for line in text.splitlines()]

    def dump(records):
        if not isinstance(records, list):
            return _json_dump(records)
        return "".join(_json_dump(r) + "\n" for r in records)

    failures = _fuzz(tmp_path, "records.jsonl", original, parse, dump, read_frame_records)
    assert not failures, "\n".join(failures[:10])


@pytest.mark.parametrize("seed", range(3))
def test_mutations_are_reproducible(seed):
    text = (COCO / "test_coco.json").read_text()
    assert mutate(text, json.loads, _json_dump, seed) == mutate(text, json.loads, _json_dump, seed)
    # The mutation really changes the file (an identity "mutator" would make every fuzz test vacuous),
    # and seeds give different mutations.
    mutated = mutate(text, json.loads, _json_dump, seed)
    assert mutated not in (text.encode("utf-8"), _json_dump(json.loads(text)).encode("utf-8"))
    assert len({mutate(text, json.loads, _json_dump, s) for s in range(seed, seed + 20)}) >= 18
