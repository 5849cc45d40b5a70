"""A wheel (``pip install .``, not editable) carries what the package reads at run time: the shipped keypoint
declarations, which live in ``configs/keypoints`` of the repository."""
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import pose.keypoints
from pose.keypoints import KEYPOINT_SETS_DIR, shipped_keypoint_sets_dir
from tests.conftest import REPO


def test_the_installed_share_folder_is_used_when_no_checkout_is_beside_the_package(tmp_path, monkeypatch):
    site_packages = tmp_path / "site-packages" / "pose"
    site_packages.mkdir(parents=True)
    monkeypatch.setattr(pose.keypoints, "__file__", str(site_packages / "keypoints.py"))
    prefix = tmp_path / "prefix"
    beside = tmp_path / "site-packages" / "configs" / "keypoints"
    assert shipped_keypoint_sets_dir([str(prefix)]) == beside  # nothing anywhere: the error names this folder
    (prefix / "share" / "pose" / "keypoints").mkdir(parents=True)
    assert shipped_keypoint_sets_dir([str(tmp_path / "empty"), str(prefix)]) == prefix / "share" / "pose" / "keypoints"


def test_in_a_checkout_the_declarations_beside_the_package_are_used():
    assert KEYPOINT_SETS_DIR == REPO / "configs" / "keypoints"


@pytest.mark.slow
def test_the_wheel_carries_every_shipped_keypoint_declaration(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "pose", source / "pose", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "configs" / "keypoints", source / "configs" / "keypoints")
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-c", f"import setuptools.build_meta as b; b.build_wheel({str(dist)!r})"],
                   cwd=source, check=True, capture_output=True, timeout=300)
    (wheel,) = dist.glob("pose-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packed = {Path(n).name: archive.read(n) for n in archive.namelist()
                  if "/data/share/pose/keypoints/" in n and n.endswith(".yaml")}
        assets = {Path(n).name for n in archive.namelist() if n.startswith("pose/assets/")}
    shipped = {p.name: p.read_bytes() for p in (REPO / "configs" / "keypoints").glob("*.yaml")}
    assert {"coco.yaml", "mpii.yaml"} <= set(shipped)
    assert packed == shipped
    assert {p.name for p in (REPO / "pose" / "assets").iterdir()} <= assets  # detector, auto-probe photo
