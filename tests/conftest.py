"""Shared fixtures: seeded rng, paths to copied real data and to the golden reference files.

Golden files live in ../shared/reference beside the repository. On a user's fresh clone they are
absent and the parity tests skip with the reason; in CI (``CI=true``) the folder must be there, so a
missing file fails the test instead of letting ~70 parity tests skip while the run stays green.
"""
import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
REFERENCE = REPO.parent / "shared" / "reference"
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


def in_ci() -> bool:
    """True where the environment says this is a CI run (``CI=true``, as GitHub Actions, GitLab... set)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def reference_path(name: str) -> Path:
    """Path of a golden file in ../shared/reference; skip the test with the reason, or fail it in CI."""
    path = REFERENCE / name
    if not path.exists():
        if in_ci():
            pytest.fail(f"golden reference {path} is missing and CI=true: the CI job must provide "
                        f"../shared/reference beside the repository ({REFERENCE}); parity tests do not "
                        "skip in CI", pytrace=False)
        pytest.skip(f"golden reference {path} is absent (it lives in ../shared/reference beside the repo, "
                    "present in CI, not in a user's fresh clone)")
    return path


def shared_data_path(relpath: str) -> Path:
    """A data file kept outside the repo in ../shared/data (licence reasons), or skip with the reason."""
    path = SHARED_DATA / relpath
    if not path.exists():
        if in_ci():
            pytest.fail(f"{path} is missing and CI=true: the CI job must provide ../shared/data beside the "
                        "repository", pytrace=False)
        pytest.skip(f"{path} is absent (kept in ../shared/data beside the repo, not in a fresh clone: it comes "
                    "from a GPL-3.0 repository)")
    return path


@pytest.fixture(scope="session")
def golden():
    """``golden(name)`` -> loaded npz (dict-like) or JSON of a reference file; skips when absent."""
    cache = {}

    def load(name: str):
        if name not in cache:
            path = reference_path(name)
            if path.suffix == ".npz":
                cache[name] = dict(np.load(path, allow_pickle=False))
            else:
                import json
                cache[name] = json.loads(path.read_text())
        return cache[name]

    return load


@pytest.fixture
def without_openvino(monkeypatch):
    """Make ``import openvino`` fail as on a machine without the optional dependency."""
    _hide_module(monkeypatch, "openvino")


@pytest.fixture
def without_onnxruntime(monkeypatch):
    """Make ``import onnxruntime`` fail as on a machine without the optional dependency."""
    import builtins
    import sys

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "onnxruntime" or name.startswith("onnxruntime."):
            raise ImportError("No module named 'onnxruntime'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "onnxruntime", raising=False)
    monkeypatch.setattr(builtins, "__import__", fake_import)


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true",
                     help="long local runs of the property and fuzz tests (10x the examples; same as POSE_SLOW=1)")


def pytest_configure(config):
    import os

    if config.getoption("--slow", default=False):
        os.environ["POSE_SLOW"] = "1"


def _hide_module(monkeypatch, module: str) -> None:
    import builtins
    import sys

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == module or name.startswith(module + "."):
            raise ImportError(f"No module named '{module}'")
        return real_import(name, *args, **kwargs)

    for name in [n for n in sys.modules if n == module or n.startswith(module + ".")]:
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setattr(builtins, "__import__", fake_import)


@pytest.fixture
def one_thread():
    """torch on one thread for the test (restored after): small models run faster so, on any core count."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """A project checkpoint of the tiny HRNet (configs/tiny_hrnet_128x96.yaml, COCO-17), random weights, seed 0."""
    import torch

    from pose.checkpoint import save_checkpoint
    from pose.codec import build_codec
    from pose.config import load_config
    from pose.keypoints import COCO_17
    from pose.models import build_model_from_arch

    torch.set_num_threads(1)
    cfg = load_config(REPO / "configs" / "tiny_hrnet_128x96.yaml")
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny.pth"
    save_checkpoint(path, model=build_model_from_arch("hrnet_tiny", 17), cfg=cfg, codec=build_codec(cfg),
                    spec=COCO_17)
    return path
