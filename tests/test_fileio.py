"""Atomic outputs: complete or absent, never half-written, and with the permissions ``open(path, "w")`` gives."""
import json
import os
import stat

import pytest

from pose import fileio


@pytest.fixture
def umask():
    """Set the process umask for one test and restore it afterwards."""
    saved = os.umask(0o022)
    os.umask(saved)

    def set_mask(mask):
        os.umask(mask)
    yield set_mask
    os.umask(saved)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077, 0o027])
def test_new_files_get_0o666_minus_umask(tmp_path, umask, mask):
    umask(mask)
    expected = 0o666 & ~mask
    fileio.write_json(tmp_path / "a.json", {"x": 1})
    with fileio.atomic_write(tmp_path / "b.bin", "wb") as f:
        f.write(b"data")
    with fileio.atomic_path(tmp_path / "c.onnx") as tmp:
        tmp.write_bytes(b"graph")
    for name in ("a.json", "b.bin", "c.onnx"):
        assert _mode(tmp_path / name) == expected, (name, oct(_mode(tmp_path / name)))
    # what a plain open() gives under the same umask: the promise of the README
    with open(tmp_path / "plain.txt", "w") as f:
        f.write("x")
    assert _mode(tmp_path / "plain.txt") == expected


def test_a_replaced_file_keeps_its_mode(tmp_path, umask):
    umask(0o022)
    path = tmp_path / "results.json"
    path.write_text("{}")
    os.chmod(path, 0o640)
    fileio.write_json(path, {"new": True})
    assert _mode(path) == 0o640 and json.loads(path.read_text()) == {"new": True}


def test_failed_write_leaves_nothing_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "out.json"
    fileio.write_json(path, {"old": 1})
    with pytest.raises(RuntimeError):
        with fileio.atomic_write(path) as f:
            f.write('{"half": ')
            raise RuntimeError("disk full")
    assert json.loads(path.read_text()) == {"old": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_checkpoints_and_exports_use_normal_permissions(tmp_path, umask):
    """The real writers go through the same helper: a checkpoint and an ONNX export under umask 022."""
    import torch

    from pose.checkpoint import save_checkpoint
    from pose.codec import HeatmapCodec
    from pose.config import load_config
    from pose.export import export_onnx
    from pose.keypoints import COCO_17
    from pose.models import build_model
    from tests.conftest import REPO

    umask(0o022)
    cfg = load_config(REPO / "configs" / "tiny_hrnet_128x96.yaml")
    torch.manual_seed(0)
    model = build_model(cfg.MODEL).eval()
    save_checkpoint(tmp_path / "c.pth", model=model, cfg=cfg, codec=HeatmapCodec((96, 128), (24, 32), 2.0),
                    spec=COCO_17)
    export_onnx(model, tmp_path / "m.onnx", (96, 128))
    assert _mode(tmp_path / "c.pth") == 0o644 and _mode(tmp_path / "m.onnx") == 0o644
