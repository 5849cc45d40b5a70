"""The README's "Python API" example runs as written (a tiny checkpoint stands in for the zoo weights,
which cannot be downloaded here)."""
import functools
import re

import torch

from pose.api import PoseEstimator
from pose.checkpoint import save_checkpoint
from pose.codec import build_codec
from pose.config import load_config
from pose.keypoints import COCO_17
from pose.models import build_model_from_arch
from tests.conftest import REPO


def readme_python_api_example() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)[:1]
    return code


def test_readme_python_api_example_runs(tmp_path, monkeypatch, capsys):
    torch.set_num_threads(1)
    cfg = load_config(REPO / "configs" / "tiny_hrnet_128x96.yaml")
    torch.manual_seed(0)
    weights = tmp_path / "tiny.pth"
    save_checkpoint(weights, model=build_model_from_arch("hrnet_tiny", 17), cfg=cfg, codec=build_codec(cfg),
                    spec=COCO_17)
    monkeypatch.setattr(PoseEstimator, "__init__", functools.partialmethod(
        PoseEstimator.__init__, weights=weights, backend="torch"))
    work = tmp_path / "work"
    work.mkdir()
    for name in ("tests", "demo"):
        (work / name).symlink_to(REPO / name)
    monkeypatch.chdir(work)
    code = readme_python_api_example()
    assert len(code.strip().splitlines()) <= 12
    namespace = {}
    exec(compile(code, "README.md (Python API)", "exec"), namespace)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("(") and lines[0].endswith(" left_wrist") and ", 17, 3)" in lines[0]
    assert [line.split()[0] for line in lines[2:]] == [str(i) for i in range(0, 72, 12)]
    assert (work / "poses.jpg").is_file()
    assert namespace["record"]["schema_version"] == 1 and namespace["record"]["persons"]
