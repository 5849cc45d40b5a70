"""Model zoo: table consistency, downloads against a local HTTP server, cache and offline behaviour."""
import functools
import hashlib
import http.server
import json
import re
import socket
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import torch

from pose import zoo
from pose.config import load_config
from pose.errors import CheckpointError, ConfigError, DownloadError
from pose.keypoints import get_keypoint_spec
from pose.models import build_model_from_arch
from pose.weights import load_weights

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------
# The table
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(zoo.ZOO))
def test_zoo_entry_is_consistent(name):
    info = zoo.ZOO[name]
    assert info.name == name
    assert info.url.startswith("https://download.openmmlab.com/mmpose/")
    # lower-case hex: the download check compares it with hexdigest(), which is lower case
    assert re.fullmatch(r"[0-9a-f]{8}", info.sha256_prefix), info.sha256_prefix
    assert f"-{info.sha256_prefix}_" in info.filename  # torch.hub convention: the hash is in the name
    w, h = info.input_size
    assert name == f"{info.arch}_{info.dataset}_{h}x{w}"
    assert get_keypoint_spec(info.dataset).num_keypoints == info.num_keypoints
    cfg = load_config(REPO / info.config)
    assert list(cfg.MODEL.IMAGE_SIZE) == [w, h]
    assert cfg.MODEL.NUM_JOINTS == info.num_keypoints
    assert cfg.DATASET.DATASET == info.dataset
    assert 0.7 < info.score < 1 and (info.official_score is None or 0.7 < info.official_score < 1)


def test_zoo_has_the_paper_models():
    assert {"hrnet_w32_coco_256x192", "hrnet_w32_coco_384x288", "hrnet_w48_coco_256x192",
            "hrnet_w48_coco_384x288", "hrnet_w32_mpii_256x256", "hrnet_w48_mpii_256x256"} <= set(zoo.ZOO)
    assert zoo.ZOO["hrnet_w32_coco_256x192"].official_score == pytest.approx(0.744)
    assert zoo.ZOO["hrnet_w48_coco_384x288"].score == pytest.approx(0.767)


def test_unknown_name_lists_the_names():
    with pytest.raises(ConfigError, match="hrnet_w32_coco_256x192"):
        zoo.resolve_weights("hrnet_w99_coco", cache_dir="unused")


# ------------------------------------------------------------------------------------------------
# A local HTTP server serving a generated checkpoint
# ------------------------------------------------------------------------------------------------
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _TruncatingHandler(http.server.BaseHTTPRequestHandler):
    """Announces 100000 bytes, sends 10, hangs up."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        self.wfile.write(b"PK\x03\x04" + b"\x00" * 6)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


def _serve(handler):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture
def served(tmp_path):
    """(base URL, file name, sha256, state dict) of a tiny-model checkpoint served over HTTP."""
    root = tmp_path / "www"
    root.mkdir()
    torch.manual_seed(0)
    state = build_model_from_arch("hrnet_tiny", 17).state_dict()
    data_path = root / "tiny.pth"
    torch.save(state, data_path)
    sha = hashlib.sha256(data_path.read_bytes()).hexdigest()
    name = f"tiny_coco-{sha[:8]}_20240101.pth"
    data_path.rename(root / name)
    server, thread = _serve(functools.partial(_QuietHandler, directory=str(root)))
    yield f"http://127.0.0.1:{server.server_address[1]}/", name, sha, state
    server.shutdown()
    server.server_close()
    thread.join(5)


def _fake_entry(url: str, sha_prefix: str) -> zoo.ZooModel:
    return zoo.ZooModel(name="tiny_coco_128x96", arch="hrnet_tiny", dataset="coco", num_keypoints=17,
                        input_size=(96, 128), config="configs/tiny_hrnet_128x96.yaml", url=url,
                        sha256_prefix=sha_prefix, metric="none", score=0.0, official_score=None,
                        official_file="")


def _files(folder: Path):
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_download_good_checksum_lands_in_cache_and_loads(served, tmp_path, monkeypatch):
    base, name, sha, state = served
    monkeypatch.setattr(zoo, "ZOO", {"tiny_coco_128x96": _fake_entry(base + name, sha[:8])})
    cache = tmp_path / "cache"
    path = zoo.resolve_weights("tiny_coco_128x96", cache_dir=cache, progress=False)
    assert path == cache / "checkpoints" / name
    # no temp file left behind; the stamp records when the checksum was verified
    assert _files(cache) == sorted([path, path.with_name(f".{name}.verified")])
    model = build_model_from_arch("hrnet_tiny", 17)
    load_weights(model, path)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())

    # A second resolve uses the cache and never touches the network.
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("network used"))
    assert zoo.resolve_weights("tiny_coco_128x96", cache_dir=cache) == path


def test_cached_file_truncated_or_replaced_is_caught(served, tmp_path, monkeypatch, caplog):
    """A cached file is hashed again when its size or mtime changed since its last verification: a
    truncated file is deleted and downloaded again; offline, a replaced file is a one-line error."""
    base, name, sha, state = served
    monkeypatch.setattr(zoo, "ZOO", {"tiny_coco_128x96": _fake_entry(base + name, sha[:8])})
    cache = tmp_path / "cache"
    path = zoo.resolve_weights("tiny_coco_128x96", cache_dir=cache, progress=False)
    good = path.read_bytes()
    stamp = path.with_name(f".{name}.verified")
    assert stamp.is_file()

    # Unchanged: no re-hash (the stamp matches size and mtime).
    monkeypatch.setattr(zoo, "_sha256_of", lambda p: pytest.fail("an unchanged cached file was hashed again"))
    assert zoo.resolve_weights("tiny_coco_128x96", cache_dir=cache, offline=True) == path
    monkeypatch.undo()
    monkeypatch.setattr(zoo, "ZOO", {"tiny_coco_128x96": _fake_entry(base + name, sha[:8])})

    # Truncated later: caught, deleted and fetched again (the server still has the good file).
    path.write_bytes(good[: len(good) // 2])
    with caplog.at_level("WARNING", logger="pose.zoo"):
        assert zoo.resolve_weights("tiny_coco_128x96", cache_dir=cache, progress=False) == path
    assert "truncated or replaced" in caplog.text
    assert path.read_bytes() == good

    # Replaced by another file of the same size, offline: refused, and the message names the file.
    other = bytearray(good)
    other[-1] ^= 0xFF
    path.write_bytes(bytes(other))
    with pytest.raises(DownloadError, match=f"cached weights '{re.escape(str(path))}' fail their checksum"):
        zoo.resolve_weights("tiny_coco_128x96", cache_dir=cache, offline=True)

    # Put back (same bytes as verified, new mtime): re-hashed once, accepted, stamp refreshed.
    path.write_bytes(good)
    assert zoo.resolve_weights("tiny_coco_128x96", cache_dir=cache, offline=True) == path
    assert json.loads(stamp.read_text())["mtime_ns"] == path.stat().st_mtime_ns


def test_pose_cache_environment_variable(served, tmp_path, monkeypatch):
    base, name, sha, _ = served
    monkeypatch.setattr(zoo, "ZOO", {"tiny_coco_128x96": _fake_entry(base + name, sha[:8])})
    monkeypatch.setenv("POSE_CACHE", str(tmp_path / "envcache"))
    path = zoo.resolve_weights("tiny_coco_128x96", progress=False)
    assert path == tmp_path / "envcache" / "checkpoints" / name and path.is_file()


def test_download_bad_checksum_leaves_nothing(served, tmp_path, monkeypatch):
    base, name, sha, _ = served
    wrong = "0" * 8 if not sha.startswith("0" * 8) else "1" * 8
    monkeypatch.setattr(zoo, "ZOO", {"tiny_coco_128x96": _fake_entry(base + name, wrong)})
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match=f"sha256 {sha[:16]}.*{wrong}.*deleted"):
        zoo.resolve_weights("tiny_coco_128x96", cache_dir=cache, progress=False)
    assert _files(cache) == []


def test_http_404_is_a_download_error(served, tmp_path):
    base, _, _, _ = served
    with pytest.raises(DownloadError, match="HTTP 404.*--weights PATH"):
        zoo.download(base + "missing.pth", tmp_path / "c" / "missing.pth", None, progress=False)
    assert _files(tmp_path / "c") == []


def test_truncated_transfer_leaves_nothing(tmp_path):
    server, thread = _serve(_TruncatingHandler)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/x.pth"
        with pytest.raises(DownloadError, match="download of .*x.pth"):
            zoo.download(url, tmp_path / "c" / "x.pth", None, progress=False, timeout=5)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert _files(tmp_path / "c") == []


def test_server_gone_fails_fast_with_instructions(tmp_path, monkeypatch):
    with socket.socket() as s:  # a port that was free a moment ago and now has no listener
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/weights-deadbeef_1.pth"
    monkeypatch.setattr(zoo, "ZOO", {"tiny_coco_128x96": _fake_entry(url, "deadbeef")})
    cache = tmp_path / "cache"
    start = time.monotonic()
    with pytest.raises(DownloadError) as err:
        zoo.resolve_weights("tiny_coco_128x96", cache_dir=cache, progress=False, timeout=5)
    assert time.monotonic() - start < 5
    msg = str(err.value)
    assert url in msg and "--weights PATH" in msg and "\n" not in msg
    assert _files(cache) == []


def test_offline_and_not_cached_explains_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("network used"))
    info = zoo.ZOO["hrnet_w32_coco_256x192"]
    with pytest.raises(DownloadError, match="offline") as err:
        zoo.resolve_weights("hrnet_w32_coco_256x192", cache_dir=tmp_path, offline=True)
    assert info.url in str(err.value) and "--weights PATH" in str(err.value)


def test_local_path_never_uses_the_network(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("network used"))
    weights = tmp_path / "my.pth"
    torch.save({"w": torch.zeros(1)}, weights)
    assert zoo.resolve_weights(weights) == weights
    assert zoo.resolve_weights(str(weights), offline=False) == weights
    with pytest.raises(CheckpointError, match="does not exist"):
        zoo.resolve_weights(tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match="not a file"):
        zoo.resolve_weights(tmp_path)
