"""``make demo`` without network: ``pose-demo --offline-fallback`` cannot download the zoo model, says so
loudly and runs with untrained weights: a banner on every rendered picture and
``meta.untrained_weights = true`` in every JSON-lines record (README "Quick start")."""
import shutil
import urllib.error
import urllib.request

import cv2
import numpy as np

from pose.cli.demo import main
from pose.video.records import read_frame_records
from tests.conftest import DATA


def test_offline_fallback_banners_and_flags_every_record(tmp_path, monkeypatch, capsys):
    def no_network(*_args, **_kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setenv("POSE_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.delenv("POSE_OFFLINE", raising=False)
    images = tmp_path / "frames"
    images.mkdir()
    for name in ("000000000785.jpg", "000000040083.jpg"):
        shutil.copy(DATA / "coco" / name, images / name)
    out = tmp_path / "demo"
    # --backend torch and the whole-image detector only keep the test short; the fallback is the same.
    code = main([str(images), "--output-dir", str(out), "--offline-fallback", "--detector", "whole-image",
                 "--backend", "torch"])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-2000:]
    assert "falling back to UNTRAINED weights" in captured.err and "Temporary failure" in captured.err
    records = read_frame_records(out / "frames_keypoints.jsonl")
    assert len(records) == 2 and all(r["meta"]["untrained_weights"] is True for r in records)
    for name in ("000000000785", "000000040083"):
        picture = cv2.imread(str(out / f"{name}_pose.jpg"))  # BGR
        bottom = picture[-3:].reshape(-1, 3).astype(float).mean(0)
        assert bottom[2] > 200 and bottom[:2].max() < 60, bottom  # the red UNTRAINED banner
        assert np.abs(picture[:20].astype(int) - cv2.imread(str(images / f"{name}.jpg"))[:20]).mean() < 10
