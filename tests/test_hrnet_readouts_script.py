"""scripts/hrnet_readouts.py: the README's read-out table comes from this command."""
import importlib.util

from tests.conftest import REPO


def _script():
    spec = importlib.util.spec_from_file_location("hrnet_readouts", REPO / "scripts" / "hrnet_readouts.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_table_rows_for_the_tiny_trunk(capsys):
    assert _script().main(["hrnet_tiny", "--quiet"]) == 0
    rows = {line.split(" | ")[1]: line for line in capsys.readouterr().out.splitlines()[2:]}
    assert list(rows) == ["v1", "v2", "v2p", "classification"]
    assert "| 256x192 | (17, 64, 48) |" in rows["v1"] and "| 256x192 | (17, 64, 48) |" in rows["v2"]
    assert "(256, 200, 200), (256, 100, 100), (256, 50, 50), (256, 25, 25), (256, 12, 12)" in rows["v2p"]
    assert "| 224x224 | (1000,) |" in rows["classification"]
    # V1 drops the last module's lower-branch fusion, so fewer tensors load than into V2 / V2p.
    loaded = {head: int(row.rstrip(" |").split(" | ")[-1].split(" / ")[0]) for head, row in rows.items()}
    assert loaded["v1"] < loaded["v2"] == loaded["v2p"] < loaded["classification"]


def test_unknown_trunk_is_a_one_line_error(capsys):
    assert _script().main(["hrnet_w99"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "hrnet_w99" in err[0] and "hrnet_w32" in err[0]
