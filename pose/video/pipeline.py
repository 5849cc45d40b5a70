"""The video pipeline: frames from a source -> person boxes -> batched poses -> tracks -> files / window.

It does no vision of its own and comes in three reusable pieces, which ``pose-demo`` and the Python
API (:class:`pose.api.PoseEstimator`) share:

- :func:`pose_frames`: the per-frame loop. Frames come from :func:`pose.video.sources.open_source`,
  boxes from a :mod:`pose.video.detection` detector (or, with ``det_every > 1``, from the previous
  frame's poses via :func:`pose.video.tracking.boxes_from_keypoints`), keypoints from one batched
  :class:`pose.predictor.TopDownPredictor` call per frame (it crops, normalises and decodes), ids from
  :mod:`pose.video.tracking`, smoothing from :mod:`pose.video.smoothing`. Boxes that cannot give a
  crop (zero size, outside the image, non-finite: :func:`pose.geometry.box_problems`) are dropped,
  with one counted warning per run (:class:`BoxFilter`).
- :func:`write_demo_outputs`: the files and the window for a stream of ``(frame, poses)`` pairs,
  pictures from :mod:`pose.video.render`, records from :mod:`pose.video.records`.
- :func:`run_demo`: both, for a source spec, a predictor and a detector.

Files written into ``output_dir`` (``<name>`` = video stem, folder name, image stem, ``webcam<N>``
or a cleaned stream URL); the folder is created, and every file opened, only when the first frame
has decoded, so a refused input leaves nothing behind:

- every input: ``<name>_keypoints.jsonl``, one schema-1 frame record per processed frame, written and
  flushed as each frame finishes (a killed run keeps every finished frame; a SIGKILL during a write can
  cut the last line short, which :func:`pose.video.records.read_frame_records` drops);
  optional ``<name>_keypoints.csv``.
- video / webcam / stream: ``<name>_pose.mp4`` (mp4v, annotated). It is written under a hidden temp
  name and renamed when the loop ends, also after Ctrl-C or an error, so the finished frames are kept;
  only a hard kill (SIGKILL, power loss) leaves the temp file ``.<name>_pose.tmp.mp4`` behind.
- single image / folder / glob: ``<stem>_pose.jpg`` per image and ``<name>_coco_results.json``
  (COCO ``loadRes`` format, written atomically). The COCO ``image_id`` is the file stem when it is all
  digits (COCO naming), else the image's position in the list.

Untrained weights (``untrained=True``) draw a red "UNTRAINED WEIGHTS" banner on every rendered
picture and set ``meta.untrained_weights = true`` in every JSON-lines record.

Why a little over 400 lines: the loop, the writers it feeds and their shared naming rules (stems,
COCO ids, the output-folder check) change together; the parts with their own idea live in siblings.
"""
import dataclasses
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from pose.errors import DataError
from pose.fileio import atomic_write, check_output_folder, ensure_output_dir
from pose.geometry import box_problems, count_box_problems
from pose.structures import PersonBox, PoseResult
from pose.video.records import FrameCsvWriter, FrameRecordWriter, write_coco_results
from pose.video.render import UNTRAINED_TEXT, render
from pose.video.smoothing import KeypointSmoother
from pose.video.sources import Frame, FrameSource, open_source
from pose.video.tracking import PoseTracker, boxes_from_keypoints

logger = logging.getLogger(__name__)

UNTRAINED_WARNING = ("the pose model has UNTRAINED (random) weights: its keypoints are meaningless; use this "
                     "only for pipeline smoke runs and timing")
IMAGE_KINDS = ("image", "folder", "glob")
STATUS_EVERY_S = 5.0


@dataclass
class DemoSummary:
    """What a demo run did.

    Attributes:
        frames: frames processed (one JSON-lines record each).
        persons: poses over all frames.
        fps: processed frames per second of wall time (detector + pose + drawing + writing).
        files: files written, in creation order.
        source_kind: ``image``, ``folder``, ``glob``, ``video``, ``webcam`` or ``stream``.
        interrupted: the run ended by Ctrl-C (outputs hold the frames finished before it).
        skipped: undecodable images skipped; dropped: live frames dropped because the loop was slower.
    """

    frames: int = 0
    persons: int = 0
    fps: float = 0.0
    files: List[Path] = field(default_factory=list)
    source_kind: str = ""
    interrupted: bool = False
    skipped: int = 0
    dropped: int = 0


def output_stem(source: FrameSource) -> str:
    """Base name of the output files for a source (see the module docstring)."""
    if source.kind == "webcam":
        return f"webcam{source.name}"
    if source.kind == "stream":
        cleaned = re.sub(r"[^A-Za-z0-9_-]+", "_", source.name.split("://", 1)[-1]).strip("_")
        return f"stream_{cleaned[:60]}" if cleaned else "stream"
    if source.kind == "glob":
        return "glob"
    path = Path(source.name.rstrip("/\\"))
    return (path.name if source.kind == "folder" else path.stem) or "input"


def coco_image_id(file_name: str, index: int) -> int:
    """COCO image id of an image file: its stem when all digits (``000000000785.jpg`` -> 785), else
    ``index``."""
    stem = Path(file_name).stem
    return int(stem) if stem.isdigit() else int(index)


class _VideoOutput:
    """mp4v writer opened on the first frame under a temp name; :meth:`close` renames it into place."""

    def __init__(self, path: Path, fps: float):
        self.path, self.fps = path, fps
        self.tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
        self.writer, self.frames = None, 0

    def write(self, image_bgr: np.ndarray) -> None:
        if self.writer is None:
            h, w = image_bgr.shape[:2]
            self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not self.writer.isOpened():
                self.writer = None
                raise DataError(f"video output '{self.tmp}' cannot be opened by cv2.VideoWriter (mp4v)")
        self.writer.write(image_bgr)
        self.frames += 1

    def close(self) -> Optional[Path]:
        """Finalise; returns the video path, or None when no frame was written."""
        if self.writer is None:
            return None
        self.writer.release()
        self.writer = None
        self.tmp.replace(self.path)
        return self.path


class _Window:
    """``cv2.imshow`` that turns itself off (one warning) where OpenCV has no GUI."""

    def __init__(self, title: str):
        self.title, self.enabled = title, True

    def show(self, image_bgr: np.ndarray) -> bool:
        """Display a frame; returns False when the user pressed q or Esc."""
        if not self.enabled:
            return True
        try:
            cv2.imshow(self.title, image_bgr)
            key = cv2.waitKey(1) & 0xFF
        except cv2.error:
            logger.warning("--show: this OpenCV build has no GUI support (headless); continuing without "
                           "a window")
            self.enabled = False
            return True
        return key not in (ord("q"), 27)

    def close(self) -> None:
        if self.enabled:
            try:
                cv2.destroyWindow(self.title)
            except cv2.error:
                pass


def record_meta(predictor, *, model: str, detector: str, untrained: bool = False, **extra) -> dict:
    """The ``meta`` object of every frame record of a run (model, detector, decoder, flip test, keypoint names).

    ``extra`` (e.g. ``stride``, ``det_every``) is added as given; untrained weights add
    ``untrained_weights: true`` and the banner text.
    """
    meta = {"model": str(model), "detector": str(detector), "decoder": predictor.codec.decoder,
            "flip_test": bool(predictor.flip_test), **extra}
    meta.setdefault("keypoint_names", list(predictor.spec.keypoint_names))  # the set the model predicts
    if untrained:
        meta.update(untrained_weights=True, warning=UNTRAINED_TEXT)
    return meta


class BoxFilter:
    """Drops person boxes that cannot give a crop and counts them, for one warning per run.

    Args:
        what: how the warning names the boxes' origin (``"detector boxes of 'clip.mp4'"``).
    """

    def __init__(self, what: str):
        self.what = what
        self._codes: List[np.ndarray] = []

    @property
    def dropped(self) -> int:
        return int(sum(len(c) for c in self._codes))

    def __call__(self, boxes: Sequence[PersonBox], image_size: Tuple[int, int]) -> List[PersonBox]:
        """The usable boxes of an image of ``image_size`` (W, H), in order."""
        if not boxes:
            return list(boxes)
        codes = box_problems(np.array([b.bbox_xywh for b in boxes], dtype=np.float64), image_size)
        if codes.any():
            self._codes.append(codes[codes != 0])
        return [b for b, c in zip(boxes, codes) if c == 0]

    def warn(self) -> None:
        """Log one warning with the counts, if anything was dropped (then start counting afresh)."""
        if self.dropped:
            codes = np.concatenate(self._codes)
            logger.warning("dropped %d %s that cannot be cropped: %s", len(codes), self.what,
                           count_box_problems(codes))
        self._codes = []


def pose_frames(source: FrameSource, predictor, detector, *, det_every: int = 1,
                track: Optional[str] = "iou", smooth: Optional[bool] = None,
                kpt_thr: float = 0.3) -> Iterator[Tuple[Frame, List[PoseResult]]]:
    """Yield ``(frame, poses)`` for each frame of an opened source (closed when the generator ends).

    Args:
        source: an opened :class:`pose.video.sources.FrameSource`.
        predictor: a :class:`pose.predictor.TopDownPredictor`.
        detector: a :class:`pose.video.detection.PersonDetector`; called as ``detector(image_rgb, image_id)``.
        det_every: run the detector every N-th processed frame of a video/stream; in between, boxes
            come from the previous frame's poses. Image inputs always run the detector.
        track: tracker metric (``iou``, ``oks``, ``iou+oks``) for video/stream, or ``None``/``"none"``.
        smooth: One-Euro keypoint smoothing per track; ``None`` = on for live sources, off otherwise.
        kpt_thr: joints below this score are not used for boxes, smoothing or OKS.

    Image sources get COCO image ids (:func:`coco_image_id`) on their poses, videos the frame index.
    """
    try:
        is_images = source.kind in IMAGE_KINDS
        tracker = None if (is_images or track in (None, "none")) else PoseTracker(
            metric=track, keypoint_score_threshold=kpt_thr)
        smooth = source.is_live if smooth is None else bool(smooth)
        if smooth and tracker is None and not is_images:
            logger.warning("smoothing needs tracking (track ids); it is off because tracking is off")
        smoother = (KeypointSmoother(score_threshold=kpt_thr, freq=(source.fps or 30.0) / source.stride)
                    if smooth and tracker is not None else None)
        det_every = 1 if is_images else max(1, int(det_every))
    except BaseException:
        source.close()
        raise
    box_filter = BoxFilter(f"detector boxes of '{source.name}'")
    previous: List[PoseResult] = []
    try:
        with source:
            for n, frame in enumerate(source):
                image = frame.image_rgb
                size = (image.shape[1], image.shape[0])
                image_id = coco_image_id(frame.source_name, frame.index) if is_images else frame.index
                if n % det_every == 0 or not previous:
                    boxes = box_filter(detector(image, image_id), size)
                else:
                    boxes = boxes_from_keypoints(previous, score_threshold=kpt_thr, image_size=size)
                    boxes = box_filter([dataclasses.replace(b, image_id=image_id) for b in boxes], size)
                results = predictor(image, boxes)  # every crop of the frame in one batched call
                if tracker is not None:
                    results = tracker.update(results)
                if smoother is not None:
                    results = smoother(results, frame.timestamp_s)
                previous = results
                yield frame, results
    finally:
        box_filter.warn()


def write_demo_outputs(items: Iterable[Tuple[Frame, Sequence[PoseResult]]], source: FrameSource, spec, *,
                       output_dir: Union[str, Path], kpt_thr: float = 0.3, write_video: bool = True,
                       write_csv: bool = False, show: bool = False, untrained: bool = False,
                       meta: Optional[dict] = None, progress: bool = True) -> DemoSummary:
    """Write the demo's files (module docstring) for a stream of ``(frame, poses)`` pairs of ``source``.

    The output folder is created and the files opened when the first pair arrives, so a stream that
    fails before its first frame leaves nothing behind. Ctrl-C ends the run and keeps the finished
    frames; ``items`` is closed (if it is a generator) however the loop ends.

    Args:
        items: ``(frame, poses)`` pairs (:func:`pose_frames`) or objects with ``.frame`` and ``.results``
            (the :class:`pose.poses.Poses` of :meth:`pose.api.PoseEstimator.stream`).
        source: the source the frames come from (names, kind, fps, counts of skipped/dropped frames).
        spec: the :class:`pose.keypoints.KeypointSpec` of the poses (skeleton, CSV columns).
        kpt_thr: joints below this score are not drawn.
        write_video, write_csv, show: the optional outputs.
        untrained: the weights are random: banner on pictures (the records' flag is in ``meta``).
        meta: stored in every JSON-lines record (see :func:`record_meta`).
        progress: tqdm bar for files, a status line every ~5 s for live sources (via logging).
    """
    is_images, live, name = source.kind in IMAGE_KINDS, source.is_live, output_stem(source)
    summary = DemoSummary(source_kind=source.kind)
    records = csv_writer = video = window = bar = None
    all_results: List[PoseResult] = []
    t_start = t_status = time.monotonic()
    frame_fps: Optional[float] = None
    try:
        t0 = time.monotonic()
        for item in items:
            frame, results = item if isinstance(item, tuple) else (item.frame, item.results)
            if records is None:  # the first frame decoded: only now create the folder and the files
                out_dir = ensure_output_dir(output_dir)
                records = FrameRecordWriter(out_dir / f"{name}_keypoints.jsonl", meta=meta)
                summary.files.append(records.path)
                if write_csv:
                    csv_writer = FrameCsvWriter(out_dir / f"{name}_keypoints.csv", spec)
                    summary.files.append(csv_writer.path)
                if write_video and not is_images:
                    video = _VideoOutput(out_dir / f"{name}_pose.mp4", (source.fps or 25.0) / source.stride)
                window = _Window(f"pose-demo: {source.name}") if show else None
                if progress and not live:
                    from tqdm import tqdm
                    bar = tqdm(total=source.total_frames, unit="frame", desc=name, dynamic_ncols=True)
            results = list(results)
            records.write(frame.index, frame.timestamp_s, frame.source_name, results)
            if csv_writer is not None:
                csv_writer.write(frame.index, frame.timestamp_s, frame.source_name, results)
            summary.frames += 1
            summary.persons += len(results)
            if is_images:
                all_results.extend(results)
            if video is not None or window is not None or is_images:
                picture = render(frame.image_rgb, results, spec, kpt_thr=kpt_thr,
                                 fps=None if is_images else frame_fps, untrained=untrained)
                if is_images:
                    stem = Path(frame.source_name).stem
                    summary.files.append(write_image(out_dir / f"{stem}_pose.jpg", picture))
                if video is not None:
                    video.write(picture)
                if window is not None and not window.show(picture):
                    logger.info("stopped from the window (q / Esc)")
                    break
            dt = max(time.monotonic() - t0, 1e-6)  # detector + pose + drawing + writing of this frame
            frame_fps = 1.0 / dt if frame_fps is None else 0.9 * frame_fps + 0.1 / dt
            if bar is not None:
                bar.update(1)
            elif progress and time.monotonic() - t_status >= STATUS_EVERY_S:
                t_status = time.monotonic()
                logger.info("%s: %d frames, %.1f fps, %d persons in frame %d, %d dropped", name,
                            summary.frames, frame_fps, len(results), frame.index, source.dropped)
            t0 = time.monotonic()
    except KeyboardInterrupt:
        summary.interrupted = True
        logger.warning("interrupted: keeping the %d frames finished so far", summary.frames)
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()
        if bar is not None:
            bar.close()
        if records is not None:
            records.close()
        if csv_writer is not None:
            csv_writer.close()
        if window is not None:
            window.close()
        if video is not None and video.close() is not None:
            summary.files.append(video.path)
        if is_images and summary.frames:
            coco_path = Path(output_dir) / f"{name}_coco_results.json"
            write_coco_results(coco_path, all_results)
            summary.files.append(coco_path)
    summary.fps = summary.frames / max(time.monotonic() - t_start, 1e-6)
    summary.skipped, summary.dropped = source.skipped, source.dropped
    return summary


def run_demo(source_spec: Union[str, int, FrameSource], predictor, detector, *,
             output_dir: Union[str, Path], stride: int = 1, det_every: int = 1, smooth: Optional[bool] = None,
             track: Optional[str] = "iou", kpt_thr: float = 0.3, write_video: bool = True,
             write_csv: bool = False, show: bool = False, untrained: bool = False,
             meta: Optional[dict] = None, progress: bool = True, open_timeout_s: float = 10.0) -> DemoSummary:
    """Run detection + pose (+ tracking) over a source and write the outputs (:func:`pose_frames` +
    :func:`write_demo_outputs`).

    Args:
        source_spec: anything :func:`pose.video.sources.open_source` takes, or an opened source (then closed here).
        predictor: a :class:`pose.predictor.TopDownPredictor` (``predictor.spec`` picks the skeleton).
        detector: a :class:`pose.video.detection.PersonDetector`.
        output_dir: checked before anything runs, created at the first decoded frame.
        stride: keep every ``stride``-th frame (ignored when an opened source is passed).
        det_every, track, smooth, kpt_thr: see :func:`pose_frames`.
        write_video, write_csv, show, progress: see :func:`write_demo_outputs`.
        untrained: the weights are random: banner on pictures, flag in the records.
        meta: stored in every JSON-lines record (model, detector, decoder ...).

    Raises:
        DataError: unusable source or output folder (one line, raised before any processing).
    """
    check_output_folder(output_dir)
    source = (source_spec if isinstance(source_spec, FrameSource)
              else open_source(source_spec, stride=stride, open_timeout_s=open_timeout_s))
    meta = dict(meta or {})
    if untrained:
        logger.warning(UNTRAINED_WARNING)
        meta.update(untrained_weights=True, warning=UNTRAINED_TEXT)
    frames = pose_frames(source, predictor, detector, det_every=det_every, track=track, smooth=smooth,
                         kpt_thr=kpt_thr)
    return write_demo_outputs(frames, source, predictor.spec, output_dir=output_dir, kpt_thr=kpt_thr,
                              write_video=write_video, write_csv=write_csv, show=show, untrained=untrained,
                              meta=meta, progress=progress)


def write_image(path: Path, image_bgr: np.ndarray) -> Path:
    """Encode a BGR picture by ``path``'s suffix (.jpg, .png, ...) and write it atomically; returns ``path``."""
    path = Path(path)
    try:
        ok, data = cv2.imencode(path.suffix, image_bgr)
    except cv2.error:
        ok = False
    if not ok:
        raise DataError(f"rendered image '{path}' cannot be encoded; expected a file name ending in .jpg, "
                        ".png, .bmp, ...")
    with atomic_write(path, "wb") as f:
        f.write(data.tobytes())
    return path


def format_summary(summary: DemoSummary) -> str:
    """Human-readable multi-line summary (for the CLI)."""
    lines = [f"{summary.frames} frames ({summary.source_kind}), {summary.persons} poses, "
             f"{summary.fps:.1f} fps" + (" - interrupted" if summary.interrupted else "")]
    if summary.skipped or summary.dropped:
        lines.append(f"skipped {summary.skipped} unreadable images, dropped {summary.dropped} live frames")
    images = [p for p in summary.files if p.name.endswith("_pose.jpg")]
    lines += [f"wrote {p}" for p in summary.files if p not in images or len(images) <= 3]
    if len(images) > 3:
        lines.append(f"wrote {len(images)} rendered images *_pose.jpg to {images[0].parent}")
    return "\n".join(lines)

