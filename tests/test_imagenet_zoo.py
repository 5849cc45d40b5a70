"""ImageNet-pretrained trunks: the zoo table, download + completeness check, and the init report per head."""
import functools
import hashlib
import logging
import urllib.request

import pytest
import torch

from pose import loading, zoo
from pose.errors import CheckpointError, ConfigError, DownloadError
from pose.models import CLS_HRNET_ARCHS, OFFICIAL_CLS_RESULTS, build_model_from_arch, build_network
from pose.models.presets import OFFICIAL_PRETRAINED_LAYERS
from pose.weights import check_classifier_state_dict, load_imagenet_pretrained
from tests.test_zoo import _QuietHandler, _serve


def classifier_state(arch: str, seed: int = 0):
    """An official-layout classifier state dict; tensors outside the trunk are 1-element storages
    expanded to their shape (small files, real shapes)."""
    torch.manual_seed(seed)
    state = build_model_from_arch(arch, head="classification").state_dict()
    return {k: (v if not k.startswith(("incre_modules", "downsamp_modules", "final_layer", "classifier"))
                else torch.zeros((), dtype=v.dtype).expand(v.shape)) for k, v in state.items()}


# ------------------------------------------------------------------------------------------------
# The table
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(zoo.IMAGENET_ZOO))
def test_imagenet_entry_is_consistent(name):
    info = zoo.IMAGENET_ZOO[name]
    assert info.name == name and info.arch in CLS_HRNET_ARCHS
    assert info.url.startswith(("https://github.com/HRNet/HRNet-Image-Classification/releases/download/",
                                "https://download.openmmlab.com/mmpose/pretrain_models/"))
    assert info.sha256_prefix is None  # none of these files has a published checksum
    if info.name_hash:
        assert f"-{info.name_hash}." in info.filename
    assert 15 < info.top1_error <= OFFICIAL_CLS_RESULTS[info.arch].top1_error


def test_imagenet_names_and_aliases():
    assert {"hrnet_w32_imagenet", "hrnet_w48_imagenet", "HRNet_W18_C_ssld", "HRNet_W48_C_ssld"} <= set(
        zoo.IMAGENET_ZOO)
    assert zoo.get_imagenet_info("HRNet_W32_C") is zoo.IMAGENET_ZOO["hrnet_w32_imagenet"]
    assert zoo.get_imagenet_info("hrnet_w32_coco_256x192") is None
    assert loading.is_imagenet_zoo_name("HRNet_W48_C") and not loading.is_imagenet_zoo_name("x.pth")
    with pytest.raises(ConfigError, match="unknown ImageNet weights 'HRNet_W99_C'.*hrnet_w32_imagenet"):
        zoo.resolve_imagenet_weights("HRNet_W99_C", cache_dir="unused")


def test_offline_and_not_cached_says_where_to_get_it(tmp_path):
    with pytest.raises(DownloadError, match="offline mode is on.*HRNet_W18_C_ssld_pretrained.pth"):
        zoo.resolve_imagenet_weights("HRNet_W18_C_ssld", cache_dir=tmp_path, offline=True)


# ------------------------------------------------------------------------------------------------
# Download without a published checksum: completeness checked, sha256 logged
# ------------------------------------------------------------------------------------------------
@pytest.fixture
def served_classifier(tmp_path, monkeypatch):
    """A tiny-trunk classifier file on a local HTTP server, registered as ImageNet entry 'tiny_imagenet'."""
    root = tmp_path / "www"
    root.mkdir()
    state = classifier_state("hrnet_tiny")
    torch.save(state, root / "tiny_cls-deadbeef.pth")
    server, thread = _serve(functools.partial(_QuietHandler, directory=str(root)))
    url = f"http://127.0.0.1:{server.server_address[1]}/tiny_cls-deadbeef.pth"
    entry = zoo.ImageNetWeights(name="tiny_imagenet", arch="hrnet_tiny", url=url, sha256_prefix=None,
                                name_hash="deadbeef", top1_error=99.0, source="test")
    monkeypatch.setattr(zoo, "IMAGENET_ZOO", {"tiny_imagenet": entry})
    yield state, root / "tiny_cls-deadbeef.pth"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_download_checks_completeness_and_logs_the_sha256(served_classifier, tmp_path, caplog, monkeypatch):
    state, served_file = served_classifier
    model = build_model_from_arch("hrnet_tiny", 17, head="v2")
    with caplog.at_level(logging.INFO):
        report = loading.load_imagenet_init(model, "tiny_imagenet", OFFICIAL_PRETRAINED_LAYERS,
                                            cache_dir=tmp_path / "cache")
    digest = hashlib.sha256(served_file.read_bytes()).hexdigest()
    assert f"sha256 {digest}" in caplog.text and "do NOT match" in caplog.text
    assert "all 606 tensors of the official hrnet_tiny classifier present" in caplog.text
    assert report.left_at_init == tuple(k for k in model.state_dict() if k.startswith("head."))
    assert torch.equal(model.state_dict()["stage4.0.fuse_layers.1.0.0.0.weight"],
                       state["stage4.0.fuse_layers.1.0.0.0.weight"])
    # Cached: the second call does not touch the network.
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("network used"))
    loading.load_imagenet_init(model, "tiny_imagenet", OFFICIAL_PRETRAINED_LAYERS, cache_dir=tmp_path / "cache")


def test_incomplete_file_is_refused_before_use(served_classifier, tmp_path):
    state, served_file = served_classifier
    broken = {k: v for k, v in state.items() if k != "classifier.bias"}
    broken["stage2.0.branches.0.0.conv1.weight"] = torch.zeros(3, 3, 3, 3)
    torch.save(broken, served_file)
    model = build_model_from_arch("hrnet_tiny", 17)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"not a complete official hrnet_tiny classifier: 1 missing "
                                              r"\(classifier.bias\); 1 with another shape"):
        loading.load_imagenet_init(model, "tiny_imagenet", OFFICIAL_PRETRAINED_LAYERS, cache_dir=tmp_path)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_completeness_tolerates_missing_num_batches_tracked():
    state = {k: v for k, v in classifier_state("hrnet_tiny").items() if not k.endswith("num_batches_tracked")}
    assert check_classifier_state_dict(state, "hrnet_tiny") == 606
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"1 unexpected \(extra.weight\)"):
        check_classifier_state_dict(state, "hrnet_tiny")


# ------------------------------------------------------------------------------------------------
# What ImageNet init loads into each head (README "HRNet as a backbone")
# ------------------------------------------------------------------------------------------------
def test_imagenet_init_report_per_head():
    arch = CLS_HRNET_ARCHS["hrnet_w18_small_v1"]
    state = classifier_state("hrnet_w18_small_v1")
    counts = {}
    for head in ("v1", "v2", "v2p"):
        net = build_network(arch, head=head)
        report = load_imagenet_pretrained(net, state, OFFICIAL_PRETRAINED_LAYERS)
        counts[head] = (report.num_loaded, len(report.skipped["not in PRETRAINED_LAYERS"]),
                        len(report.skipped["no counterpart in the model"]), report.left_at_init)
    # V1 drops the lower branches of the last stage-4 module, so their fusion weights have no home.
    assert counts["v1"][:3] == (348, 126, 78) and counts["v1"][3] == ("final_layer.weight", "final_layer.bias")
    assert all(k.startswith("stage4.0.fuse_layers.") for k in
               load_imagenet_pretrained(build_network(arch, head="v1"), state).skipped[
                   "no counterpart in the model"])
    # V2 and V2p keep every branch: the whole trunk loads, only their heads stay at init.
    for head, prefixes in (("v2", ("head.",)), ("v2p", ("reduction_conv.", "fpn_conv."))):
        loaded, _, absent, left = counts[head]
        assert (loaded, absent) == (426, 0) and left and all(k.startswith(prefixes) for k in left)
    everything = load_imagenet_pretrained(build_network(arch, head="classification"), state, ["*"])
    assert everything.num_loaded == len(state) and everything.left_at_init == ()
