"""Frame sources on real files, and their one-line errors for every kind of bad input."""
import logging
import shutil
import threading
import time

import cv2
import numpy as np
import pytest

from pose.errors import DataError
from pose.video.sources import Frame, FrameSource, _open_capture_bounded, open_source

VIDEO = "video/demo_skeleton.mp4"


def _coco_images(data_dir):
    return sorted((data_dir / "coco").glob("*.jpg"))


def test_single_image(data_dir):
    path = _coco_images(data_dir)[0]
    with open_source(path) as src:
        frames = list(src)
    assert src.kind == "image" and src.total_frames == 1
    assert len(frames) == 1 and isinstance(frames[0], Frame)
    f = frames[0]
    assert f.image_rgb.dtype == np.uint8 and f.image_rgb.ndim == 3 and f.image_rgb.shape[2] == 3
    assert f.source_name == path.name and f.index == 0 and f.timestamp_s is None
    # RGB, as pose.imageio reads it
    np.testing.assert_array_equal(f.image_rgb, cv2.imread(str(path))[:, :, ::-1])


def test_folder_skips_corrupt_image_and_counts_it(data_dir, tmp_path, caplog):
    good = _coco_images(data_dir)
    for p in good:
        shutil.copy(p, tmp_path / p.name)
    (tmp_path / "000000000001_corrupt.jpg").write_bytes(good[0].read_bytes()[:300])  # truncated JPEG header
    (tmp_path / "notes.txt").write_text("not an image")
    src = open_source(tmp_path)
    assert src.kind == "folder" and src.total_frames == 5
    with caplog.at_level("WARNING", logger="pose.video.sources"):
        frames = list(src)
    assert [f.source_name for f in frames] == [p.name for p in good]
    assert src.skipped == 1
    assert any("corrupt" in r.getMessage() for r in caplog.records)


def test_glob_and_stride(data_dir):
    src = open_source(str(data_dir / "coco" / "*.jpg"), stride=2)
    assert src.kind == "glob" and src.total_frames == 2
    assert [f.index for f in src] == [0, 2]


def test_video_frames_fps_count_and_stride(data_dir):
    src = open_source(data_dir / VIDEO, stride=5, queue_size=2)
    assert src.kind == "video" and not src.is_live
    assert src.fps == pytest.approx(28.05, abs=0.1)
    assert src.total_frames == 15  # ceil(72 / 5)
    frames = list(src)
    assert [f.index for f in frames] == list(range(0, 72, 5))
    assert frames[0].image_rgb.shape == (1080, 1920, 3)
    assert frames[3].timestamp_s == pytest.approx(15 / src.fps)


def test_file_source_never_drops_with_slow_consumer(data_dir):
    src = open_source(data_dir / VIDEO, stride=8, queue_size=1)
    indices = []
    for f in src:
        time.sleep(0.01)
        indices.append(f.index)
    assert indices == list(range(0, 72, 8)) and src.dropped == 0


def test_unthreaded_matches_threaded(data_dir):
    a = [f.index for f in open_source(data_dir / VIDEO, stride=20, threaded=False)]
    b = [f.index for f in open_source(data_dir / VIDEO, stride=20)]
    assert a == b == [0, 20, 40, 60]


def test_video_with_garbage_tail_ends_at_last_good_frame(tmp_path, rng):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    originals = [np.full((48, 64, 3), 20 + 10 * i, np.uint8) for i in range(20)]
    for im in originals:
        writer.write(im)
    writer.release()
    data = path.read_bytes()
    starts = [i for i in range(len(data) - 4) if data[i:i + 4] == b"00dc"]
    cut = starts[10]  # keep the first 9 frames intact (chunk 0 is a header entry) + garbage
    path.write_bytes(data[:cut] + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    frames = list(open_source(path))
    assert len(frames) == 9  # every intact frame, then a clean end
    for f, orig in zip(frames, originals):  # the decoded frames are the original ones, in order
        assert abs(f.image_rgb.mean() - orig.mean()) < 3


def test_missing_path_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        open_source(tmp_path / "nope.mp4")


def test_corrupt_video_error(tmp_path, rng):
    path = tmp_path / "broken.mp4"
    path.write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(DataError, match="broken.mp4"):
        open_source(path)


def test_empty_folder_and_glob_errors(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(DataError, match="holds no images"):
        open_source(tmp_path)
    with pytest.raises(DataError, match="matches no images"):
        open_source(str(tmp_path / "*.jpg"))


def test_folder_of_only_corrupt_images_errors(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"\xff\xd8garbage")
    with pytest.raises(DataError, match="none of its 1 images"):
        list(open_source(tmp_path))


def test_webcam_index_that_does_not_open():
    t0 = time.monotonic()
    with pytest.raises(DataError, match="webcam 99"):
        open_source(99, open_timeout_s=3)
    with pytest.raises(DataError, match="webcam 99"):
        open_source("99", open_timeout_s=3)
    assert time.monotonic() - t0 < 10


def test_unreachable_stream_errors_within_bound():
    t0 = time.monotonic()
    with pytest.raises(DataError, match="rtsp://127.0.0.1:9/x"):
        open_source("rtsp://127.0.0.1:9/x", open_timeout_s=2)
    assert time.monotonic() - t0 < 5


def test_open_that_hangs_is_bounded(monkeypatch):
    """A backend that ignores its timeout properties is cut off by the helper thread's join."""
    release = threading.Event()

    class Hanging:
        def __init__(self, *a):
            release.wait(10)

        def isOpened(self):
            return False

        def release(self):
            pass

    monkeypatch.setattr(cv2, "VideoCapture", Hanging)
    t0 = time.monotonic()
    with pytest.raises(DataError, match="did not open within 0.5 s"):
        _open_capture_bounded("rtsp://x", cv2.CAP_FFMPEG, [], 0.5, "stream 'rtsp://x'")
    release.set()
    assert time.monotonic() - t0 < 3


class _FakeLive(FrameSource):
    """A live source producing numbered frames faster than the consumer takes them."""

    kind = "stream"
    is_live = True

    def _frames(self):
        for i in range(200):
            time.sleep(0.001)
            yield Frame(i, i * 0.001, np.zeros((2, 2, 3), np.uint8), self.name)


def test_live_source_drops_stale_frames_keeps_newest():
    src = _FakeLive("fake", queue_size=2)
    got = []
    for f in src:
        got.append(f.index)
        time.sleep(0.02)
    assert got[-1] == 199  # the newest frame always arrives
    assert src.dropped > 0 and len(got) + src.dropped == 200
    assert got == sorted(got)


def test_close_stops_reader_early(data_dir):
    src = open_source(data_dir / VIDEO, queue_size=2)
    it = iter(src)
    next(it)
    src.close()
    it.close()
    assert src._thread is not None and not src._thread.is_alive()
    with pytest.raises(RuntimeError, match="only once"):
        next(iter(src))


def test_bad_stride():
    from pose.errors import ConfigError
    with pytest.raises(ConfigError, match="stride"):
        FrameSource("x", stride=0)


# ------------------------------------------------------------------------------------------------
# peek(): the first frame decoded up front, and yielded again
# ------------------------------------------------------------------------------------------------
def test_peek_on_a_folder_skips_corrupt_images_and_keeps_the_iteration_whole(data_dir, tmp_path):
    good = _coco_images(data_dir)
    (tmp_path / "000000000000.jpg").write_bytes(b"")
    for p in good[:2]:
        shutil.copy(p, tmp_path / p.name)
    src = open_source(tmp_path)
    first = src.peek()
    assert first.source_name == good[0].name and src.skipped == 1
    assert src.peek() is first  # decoded once
    frames = list(src)
    assert [f.source_name for f in frames] == [p.name for p in good[:2]]
    assert frames[0] is first and src.skipped == 1


def test_peek_refuses_a_folder_where_nothing_decodes(tmp_path, caplog):
    for name in ("a.jpg", "b.png"):
        (tmp_path / name).write_bytes(b"\x00garbage")
    src = open_source(tmp_path)
    with caplog.at_level(logging.WARNING):
        with pytest.raises(DataError, match=r"none of its 2 images could be decoded \(first: .*a\.jpg"):
            src.peek()
    assert not caplog.records  # the refusal is its one error line, no "skipping" warning per file before it


def test_skipping_warnings_come_once_an_image_decodes(tmp_path, caplog):
    (tmp_path / "a.jpg").write_bytes(b"\x00garbage")
    cv2.imwrite(str(tmp_path / "b.png"), np.zeros((8, 8, 3), np.uint8))
    with caplog.at_level(logging.WARNING):
        frames = list(open_source(tmp_path))
    assert [f.source_name for f in frames] == ["b.png"]
    assert [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()][0].count("a.jpg") == 1


def test_peek_on_a_video_is_its_first_frame(data_dir):
    with open_source(data_dir / VIDEO, stride=10) as src:
        first = src.peek()
        frames = list(src)
    assert first.index == 0 and first.timestamp_s == 0.0
    np.testing.assert_array_equal(first.image_rgb, frames[0].image_rgb)
    assert [f.index for f in frames][:2] == [0, 10]
    with pytest.raises(RuntimeError, match="before the iteration"):
        src.peek()


# ------------------------------------------------------------------------------------------------
# FFmpeg's own log while probing (issue 16, item 5): silent, kept as the refusal's cause for --debug
# ------------------------------------------------------------------------------------------------
def test_capture_backend_log_takes_c_level_writes_to_fd_2(capfd):
    import os

    from pose.video.sources import capture_backend_log

    with capture_backend_log() as log:
        os.write(2, b"[mov,mp4 @ 0x1] moov atom not found\n")
    os.write(2, b"after\n")
    assert log == ["[mov,mp4 @ 0x1] moov atom not found"]
    assert capfd.readouterr().err == "after\n"  # restored: later writes reach stderr again
    with pytest.raises(KeyError), capture_backend_log() as log:
        os.write(2, b"x\n")
        raise KeyError("restored also on errors")
    os.write(2, b"after error\n")
    assert log == ["x"] and capfd.readouterr().err == "after error\n"


@pytest.mark.parametrize("bad", ["truncated", "text"])
def test_refused_video_prints_one_line_and_ffmpeg_only_with_debug(data_dir, tmp_path, bad):
    """A subprocess, because FFmpeg writes to fd 2 from C (capsys/capfd of this process would not prove the
    terminal sees one line)."""
    import subprocess
    import sys

    from tests.conftest import REPO

    path = tmp_path / f"{bad}.mp4"
    video = (data_dir / VIDEO).read_bytes()
    path.write_bytes(video[: len(video) // 2] if bad == "truncated" else b"not a video\n")
    code = ("import sys; from pose.cli.common import run_cli; import argparse\n"
            "from pose.video.sources import open_source\n"
            "p = argparse.ArgumentParser(prog='probe'); p.add_argument('path'); p.add_argument('--debug', "
            "action='store_true')\n"
            "sys.exit(run_cli('probe', lambda a: open_source(a.path) and 0, p))\n")
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    quiet = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env)
    assert quiet.returncode == 1
    assert quiet.stderr.splitlines() == [f"probe: error: video '{path}' cannot be opened; expected a video file "
                                         "that OpenCV/FFmpeg can decode"]
    debug = subprocess.run([sys.executable, "-c", code, str(path), "--debug"], capture_output=True, text=True,
                           env=env)
    assert debug.returncode == 1 and "moov atom not found" in debug.stderr
    assert "BackendLog: FFmpeg/OpenCV said:" in debug.stderr
