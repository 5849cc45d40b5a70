"""The README's "HRNet as a backbone" Python examples run as written (untrained weights)."""
import re

import pytest
import torch

from tests.conftest import REPO


def backbone_examples():
    section = (REPO / "README.md").read_text().split("## HRNet as a backbone", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_section_has_one_example_per_readout():
    blocks = backbone_examples()
    assert len(blocks) == 3 and "FasterRCNN" in blocks[0] and "classify" in blocks[1]
    assert "export_readout" in blocks[2]


@pytest.mark.slow  # about a minute on 2 cores: FasterRCNN at its default 800 px, two exports
def test_the_examples_run(tmp_path, monkeypatch, capsys):
    torch.set_num_threads(1)
    (tmp_path / "tests").symlink_to(REPO / "tests")
    monkeypatch.chdir(tmp_path)
    for block in backbone_examples():
        exec(compile(block, "README.md (HRNet as a backbone)", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("{'boxes': (") and "'scores': (" in out[0]
    indices = re.match(r"TopKClasses\(indices=\(([\d, ]+)\)", out[1])
    assert indices and len(indices.group(1).split(",")) == 5
    assert (tmp_path / "exported" / "w18s_v2p.onnx").is_file()
