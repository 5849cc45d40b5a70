"""Frame sources: one image, a folder or glob of images, a video file, a webcam or a network stream.

:func:`open_source` picks the kind from the spec and returns a :class:`FrameSource`; iterating it
yields :class:`Frame` records with RGB uint8 (H, W, 3) images (colour order as in :mod:`pose.imageio`):

===========  ======================================  ======================  ================
kind         spec                                    ``total_frames``        slow consumer
===========  ======================================  ======================  ================
``image``    path of an image file                   1                       waits
``folder``   folder holding images (sorted by name)  number of images        waits
``glob``     pattern with ``*``/``?``/``[``          number of images        waits
``video``    path of a video file                    container frame count   waits
``webcam``   integer index, e.g. ``0`` or ``"0"``    ``None``                stale frames dropped
``stream``   ``rtsp://``, ``http(s)://``, ...        ``None``                stale frames dropped
===========  ======================================  ======================  ================

Frames are read ahead in a background thread into a bounded queue (``queue_size``). For files the
reader waits when the queue is full, so no frame is ever lost. For live sources (webcam, stream) a
full queue drops its *oldest* frame, so the consumer always gets the newest picture (low latency);
dropped frames are counted in ``source.dropped``.

``stride=N`` keeps every N-th frame of the source (``Frame.index`` stays the source's own frame
number, so output records line up with the video). Errors a user can cause raise a one-line
:class:`pose.errors.DataError` when the source is opened: missing path, a video with no decodable
frame, a webcam index that does not open, an unreachable stream (bounded by ``open_timeout_s``), a
folder or glob without images. A corrupt image inside a folder is skipped with a warning and counted
in ``source.skipped``; a video whose tail is damaged ends at its last decodable frame.

:meth:`FrameSource.peek` decodes the first frame *now* (videos and live sources already did, on
opening; an image list decodes until one image works) and the iteration yields it again, so a caller
can refuse an input with no usable frame before it builds a model or creates any output.

Why a little over 400 lines: the six kinds share one reader thread, one queue policy and one error
style; splitting them would scatter the threading rules across files.
"""
import contextlib
import glob as globlib
import logging
import math
import os
import queue
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Union

import cv2
import numpy as np

from pose.errors import ConfigError, DataError
from pose.imageio import bgr_to_rgb, read_image_rgb

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")


@dataclass(frozen=True)
class Frame:
    """One frame of a source.

    Attributes:
        index: frame number in the source (0-based; with a stride, the numbers skip).
        timestamp_s: seconds from the start: video position for files, wall-clock time since the
            source opened for live sources, ``None`` for still images.
        image_rgb: (H, W, 3) uint8 RGB.
        source_name: image file name for image sources, else the source spec.
    """

    index: int
    timestamp_s: Optional[float]
    image_rgb: np.ndarray
    source_name: str


_END = object()


class FrameSource:
    """Base class: iterate once to get frames; use as a context manager (or call :meth:`close`).

    Attributes:
        name: the spec as given (path, index or URL).
        kind: ``image``, ``folder``, ``glob``, ``video``, ``webcam`` or ``stream``.
        is_live: frames arrive in real time and stale ones may be dropped.
        fps: frames per second of the source if known (before the stride), else ``None``.
        total_frames: number of frames the iteration will yield if known (after the stride), else
            ``None``; for videos it comes from the container and can be off at a damaged tail.
        skipped: images that could not be decoded and were skipped.
        dropped: live frames dropped because the consumer was slower than the source.
    """

    kind = "base"
    is_live = False

    def __init__(self, name: str, *, stride: int = 1, queue_size: int = 4, threaded: bool = True):
        if int(stride) < 1:
            raise ConfigError(f"stride: got {stride}, expected an integer >= 1")
        if int(queue_size) < 1:
            raise ConfigError(f"queue_size: got {queue_size}, expected an integer >= 1")
        self.name = str(name)
        self.stride = int(stride)
        self.queue_size = int(queue_size)
        self.threaded = bool(threaded)
        self.fps: Optional[float] = None
        self.total_frames: Optional[int] = None
        self.skipped = 0
        self.dropped = 0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._started = False

    # subclasses implement _frames(): a generator of Frame, honouring the stride and self._stop
    def _frames(self) -> Iterator[Frame]:
        raise NotImplementedError

    def _release(self) -> None:
        """Free the underlying device/file (called once, from the thread that read it)."""

    def peek(self) -> Frame:
        """The first frame, decoded now; the iteration still starts with it.

        Raises:
            DataError: the source holds no decodable frame (same message the iteration would give).
        """
        raise NotImplementedError

    def __iter__(self) -> Iterator[Frame]:
        if self._started:
            raise RuntimeError(f"frame source '{self.name}' can be iterated only once; open it again")
        self._started = True
        if not self.threaded:
            try:
                for frame in self._frames():
                    if self._stop.is_set():
                        break
                    yield frame
            finally:
                self._release()
            return
        q: "queue.Queue" = queue.Queue(maxsize=self.queue_size)
        self._thread = threading.Thread(target=self._reader, args=(q,), name=f"frames:{self.name}",
                                        daemon=True)
        self._thread.start()
        try:
            while True:
                item = q.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.close()

    def _reader(self, q: "queue.Queue") -> None:
        try:
            for frame in self._frames():
                if self._stop.is_set():
                    return
                self._put(q, frame)
            self._put(q, _END, force=True)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, raised there
            self._put(q, e, force=True)
        finally:
            self._release()

    def _put(self, q: "queue.Queue", item, force: bool = False) -> None:
        if self.is_live and not force:
            while True:
                try:
                    q.put_nowait(item)
                    return
                except queue.Full:
                    try:
                        q.get_nowait()
                        self.dropped += 1
                    except queue.Empty:
                        pass
        # files, and the end marker / an error of any source: wait for room (never drop), but give up
        # when the consumer has closed the source
        while not self._stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                pass

    def close(self) -> None:
        """Stop the reader thread and release the source (idempotent)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        if not self._started:
            self._release()

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, kind={self.kind}, fps={self.fps}, "
                f"total_frames={self.total_frames}, stride={self.stride})")


class ImageListSource(FrameSource):
    """A list of image files (one image, a folder or a glob); corrupt images are skipped and counted."""

    def __init__(self, name: str, paths: List[Path], kind: str, **kw):
        super().__init__(name, **kw)
        self.kind = kind
        self.paths = list(paths)
        self.total_frames = math.ceil(len(self.paths) / self.stride)
        self._peeked: Optional[Frame] = None
        self._next_index = 0  # where decoding resumes after a peek
        # "skipping" warnings wait for the first decoded image: a folder where nothing decodes is refused
        # with its one error line only (naming the first reason), not a warning per file before it
        self._held_skips: Optional[List[str]] = []

    def _decode_from(self, start: int) -> Iterator[Frame]:
        for index in range(start, len(self.paths), self.stride):
            path = self.paths[index]
            try:
                image = read_image_rgb(path)
            except DataError as e:
                if self.kind == "image":
                    raise
                self.skipped += 1
                if self._held_skips is None:
                    logger.warning("skipping %s", e)
                else:
                    self._held_skips.append(str(e))
                continue
            for reason in self._held_skips or ():
                logger.warning("skipping %s", reason)
            self._held_skips = None
            self._next_index = index + self.stride
            yield Frame(index=index, timestamp_s=None, image_rgb=image, source_name=path.name)

    def _none_decoded(self) -> DataError:
        first = f" (first: {self._held_skips[0]})" if self._held_skips else ""
        return DataError(f"{self.kind} '{self.name}': none of its {len(self.paths)} images could be "
                         f"decoded{first}")

    def peek(self) -> Frame:
        if self._started:
            raise RuntimeError(f"frame source '{self.name}': peek() must come before the iteration")
        if self._peeked is None:
            self._peeked = next(self._decode_from(0), None)
            if self._peeked is None:
                raise self._none_decoded()
        return self._peeked

    def _frames(self) -> Iterator[Frame]:
        decoded = 0
        if self._peeked is not None:
            first, self._peeked = self._peeked, None
            decoded += 1
            yield first
        for frame in self._decode_from(self._next_index):
            decoded += 1
            yield frame
        if decoded == 0 and self.paths:
            raise self._none_decoded()


class BackendLog(Exception):
    """What FFmpeg/OpenCV printed while a source was probed; the ``__cause__`` of the refusal."""


@contextlib.contextmanager
def capture_backend_log():
    """Capture what C libraries (FFmpeg, OpenCV) write to file descriptor 2 inside the block.

    Yields a list that holds the captured text (one string) once the block ends. The descriptor is
    redirected to a temporary file and restored, also when the block raises; Python's own
    ``sys.stderr`` is flushed first. Where fd 2 cannot be redirected (closed), nothing is captured.
    Process-wide while it lasts: keep the block to the probe itself.
    """
    captured: List[str] = []
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield captured
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            captured.append(tmp.read().decode("utf-8", errors="replace").strip())


def _refusal(message: str, backend_log: List[str]) -> DataError:
    """A DataError whose cause holds the backend's own words (``--debug`` prints the chain)."""
    error = DataError(message)
    text = backend_log[0] if backend_log else ""
    if text:
        error.__cause__ = BackendLog(f"FFmpeg/OpenCV said: {text}")
    return error


def _fps_of(cap) -> Optional[float]:
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    return fps if 0.0 < fps < 1000.0 and math.isfinite(fps) else None


class _CaptureSource(FrameSource):
    """An OpenCV capture opened with its first frame already read (``self._first``, BGR)."""

    def peek(self) -> Frame:
        if self._first is None:
            raise RuntimeError(f"frame source '{self.name}': peek() must come before the iteration")
        return Frame(index=0, timestamp_s=0.0, image_rgb=bgr_to_rgb(self._first), source_name=self.name)


class VideoFileSource(_CaptureSource):
    """A video file decoded with OpenCV (FFmpeg); ends at the first frame that cannot be decoded.

    Opening and reading the first frame run inside :func:`capture_backend_log`: what FFmpeg prints on
    its own (``[mov,mp4,...] moov atom not found``) does not reach the terminal; it becomes the
    refusal's ``__cause__`` (``--debug`` shows it) or a DEBUG log line when the video opens.
    """

    kind = "video"

    def __init__(self, path: Union[str, os.PathLike], **kw):
        super().__init__(str(path), **kw)
        self.path = Path(path)
        with capture_backend_log() as backend_log:
            self._cap = cv2.VideoCapture(str(self.path))
            opened = self._cap.isOpened()
            ok, first = self._cap.read() if opened else (False, None)
        if not opened:
            self._cap.release()
            raise _refusal(f"video '{self.path}' cannot be opened; expected a video file that "
                           "OpenCV/FFmpeg can decode", backend_log)
        if not ok or first is None:
            self._cap.release()
            raise _refusal(f"video '{self.path}' has no decodable frame (corrupt or unsupported codec)",
                           backend_log)
        if backend_log and backend_log[0]:
            logger.debug("video '%s': FFmpeg/OpenCV said while opening: %s", self.path, backend_log[0])
        self._first = first
        self.fps = _fps_of(self._cap)
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = count if count > 0 else None
        self.total_frames = math.ceil(count / self.stride) if count > 0 else None

    def _frames(self) -> Iterator[Frame]:
        cap, index, image_bgr = self._cap, 0, self._first
        self._first = None
        while image_bgr is not None:
            ts = index / self.fps if self.fps else cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            yield Frame(index=index, timestamp_s=float(ts), image_rgb=bgr_to_rgb(image_bgr),
                        source_name=self.name)
            for _ in range(self.stride - 1):
                if not cap.grab():
                    image_bgr = None
                    break
                index += 1
            else:
                ok, image_bgr = cap.read()
                image_bgr = image_bgr if ok else None
                index += 1
        if self.frame_count is not None and index < self.frame_count - 1:
            logger.warning("video '%s' ended at frame %d of %d announced (damaged or truncated tail)",
                           self.path, index, self.frame_count)

    def _release(self) -> None:
        if self._cap is not None:
            self._cap.release()


def _open_capture_bounded(target, api: int, params: List[int], timeout_s: float, what: str):
    """Open a capture and read its first frame in a helper thread; give up after ``timeout_s``.

    Returns ``(cap, first_bgr)``; raises DataError naming ``what`` when it does not open, delivers
    no frame, or takes longer than ``timeout_s``.
    """
    result = {}

    def work():
        cap = cv2.VideoCapture(target, api, params) if params else cv2.VideoCapture(target, api)
        if not cap.isOpened():
            cap.release()
            result["error"] = "cannot be opened"
            return
        ok, frame = cap.read()
        if not ok or frame is None:
            cap.release()
            result["error"] = "opened but delivered no frame"
            return
        result["cap"], result["frame"] = cap, frame

    worker = threading.Thread(target=work, name=f"open:{what}", daemon=True)
    with capture_backend_log() as backend_log:
        worker.start()
        worker.join(timeout_s)
    if worker.is_alive():
        raise _refusal(f"{what} did not open within {timeout_s:g} s (unreachable or not answering)", backend_log)
    if "error" in result:
        raise _refusal(f"{what} {result['error']}", backend_log)
    if backend_log and backend_log[0]:
        logger.debug("%s: FFmpeg/OpenCV said while opening: %s", what, backend_log[0])
    return result["cap"], result["frame"]


class LiveCaptureSource(_CaptureSource):
    """A webcam (integer index) or a network stream URL; stale frames are dropped."""

    is_live = True

    def __init__(self, target: Union[int, str], *, open_timeout_s: float = 10.0, **kw):
        super().__init__(str(target), **kw)
        timeout_ms = int(max(open_timeout_s, 0.1) * 1000)
        if isinstance(target, int):
            self.kind = "webcam"
            what = f"webcam {target}"
            api, params = cv2.CAP_ANY, []
        else:
            self.kind = "stream"
            what = f"stream '{target}'"
            api = cv2.CAP_FFMPEG
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]
        # The thread bound covers backends that ignore the timeout properties; allow a little slack
        # over the backend's own timeout so its clearer failure wins when it fires.
        self._cap, self._first = _open_capture_bounded(target, api, params, open_timeout_s + 1.0, what)
        self.fps = _fps_of(self._cap)
        self._t0 = time.monotonic()

    def _frames(self) -> Iterator[Frame]:
        cap, index, image_bgr = self._cap, 0, self._first
        self._first = None
        while image_bgr is not None and not self._stop.is_set():
            if index % self.stride == 0:
                yield Frame(index=index, timestamp_s=time.monotonic() - self._t0,
                            image_rgb=bgr_to_rgb(image_bgr), source_name=self.name)
            ok, image_bgr = cap.read()
            image_bgr = image_bgr if ok else None
            index += 1
        if image_bgr is None and not self._stop.is_set():
            logger.info("%s '%s' stopped delivering frames after %d", self.kind, self.name, index)

    def _release(self) -> None:
        if self._cap is not None:
            self._cap.release()


def _list_images(folder: Path) -> List[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def open_source(spec: Union[str, int, os.PathLike], *, stride: int = 1, queue_size: int = 4,
                open_timeout_s: float = 10.0, threaded: bool = True) -> FrameSource:
    """Open a frame source from a spec (see the module docstring for the kinds).

    Args:
        spec: image/video path, folder, glob pattern, webcam index (int or digits) or stream URL.
        stride: keep every ``stride``-th frame.
        queue_size: frames read ahead by the background thread.
        open_timeout_s: how long a webcam or stream may take to open and deliver its first frame.
        threaded: read in a background thread (default); ``False`` reads in the caller's thread.

    Raises:
        DataError: the source does not exist, cannot be opened, or holds no usable frame.
    """
    kw = dict(stride=stride, queue_size=queue_size, threaded=threaded)
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        return LiveCaptureSource(int(spec), open_timeout_s=open_timeout_s, **kw)
    text = os.fspath(spec) if isinstance(spec, os.PathLike) else str(spec)
    if text.strip().isdigit() and not Path(text).exists():
        return LiveCaptureSource(int(text), open_timeout_s=open_timeout_s, **kw)
    if text.lower().startswith(STREAM_SCHEMES):
        return LiveCaptureSource(text, open_timeout_s=open_timeout_s, **kw)
    path = Path(text).expanduser()
    if path.is_dir():
        images = _list_images(path)
        if not images:
            raise DataError(f"folder '{path}' holds no images; expected files ending in "
                            f"{', '.join(IMAGE_EXTENSIONS)}")
        return ImageListSource(text, images, "folder", **kw)
    if path.is_file():
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            return ImageListSource(text, [path], "image", **kw)
        return VideoFileSource(path, **kw)
    if any(c in text for c in "*?["):
        images = sorted(Path(p) for p in globlib.glob(os.path.expanduser(text), recursive=True)
                        if Path(p).is_file() and Path(p).suffix.lower() in IMAGE_EXTENSIONS)
        if not images:
            raise DataError(f"pattern '{text}' matches no images")
        return ImageListSource(text, images, "glob", **kw)
    raise DataError(f"input '{text}' does not exist; expected an image, video, folder, glob, webcam index "
                    "or URL")
