"""The golden-data fixtures: a missing ../shared/reference is a skip on a fresh clone and a failure in CI."""
import pytest

from tests import conftest


def _outcome(fn, *args):
    """The skip/fail exception ``fn(*args)`` raises (caught here so a skip cannot skip this test)."""
    try:
        fn(*args)
    except (pytest.fail.Exception, pytest.skip.Exception) as e:
        return e
    raise AssertionError(f"{fn.__name__}{args} neither skipped nor failed")


@pytest.mark.parametrize("ci", ["true", "1"])
def test_missing_reference_fails_in_ci(tmp_path, monkeypatch, ci):
    monkeypatch.setattr(conftest, "REFERENCE", tmp_path / "no_reference")
    monkeypatch.setattr(conftest, "SHARED_DATA", tmp_path / "no_data")
    monkeypatch.setenv("CI", ci)
    e = _outcome(conftest.reference_path, "golden_w32_seed0.npz")
    assert isinstance(e, pytest.fail.Exception), f"skipped in CI: {e}"
    assert "missing and CI=true" in str(e) and "must provide ../shared/reference" in str(e)
    e = _outcome(conftest.shared_data_path, "mpii/annot/detections_our_format.mat")
    assert isinstance(e, pytest.fail.Exception) and "missing and CI=true" in str(e), e


@pytest.mark.parametrize("ci", [None, "", "false"])
def test_missing_reference_skips_on_a_fresh_clone(tmp_path, monkeypatch, ci):
    monkeypatch.setattr(conftest, "REFERENCE", tmp_path / "no_reference")
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    e = _outcome(conftest.reference_path, "golden_w32_seed0.npz")
    assert isinstance(e, pytest.skip.Exception) and "is absent" in str(e), e


def test_present_reference_is_returned(tmp_path, monkeypatch):
    (tmp_path / "g.json").write_text("{}")
    monkeypatch.setattr(conftest, "REFERENCE", tmp_path)
    monkeypatch.setenv("CI", "true")
    assert conftest.reference_path("g.json") == tmp_path / "g.json"
