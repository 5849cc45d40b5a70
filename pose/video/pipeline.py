"""The video pipeline: frames from a source -> person boxes -> batched poses -> tracks -> files / window.

``run_demo(source, predictor, detector, output_dir=...)`` wires the components and does no vision of
its own: frames come from :func:`pose.video.sources.open_source`, boxes from a
:mod:`pose.video.detection` detector (or, with ``det_every > 1``, from the previous frame's poses via
:func:`pose.video.tracking.boxes_from_keypoints`), keypoints from one batched
:class:`pose.predictor.TopDownPredictor` call per frame (it crops, normalises and decodes), ids from
:mod:`pose.video.tracking`, smoothing from :mod:`pose.video.smoothing`, pictures from
:mod:`pose.video.render`, records from :mod:`pose.video.records`.

Files written into ``output_dir`` (``<name>`` = video stem, folder name, image stem, ``webcam<N>``
or a cleaned stream URL):

- every input: ``<name>_keypoints.jsonl``, one schema-1 frame record per processed frame, written and
  flushed as each frame finishes (a killed run keeps every finished frame, never half a record);
  optional ``<name>_keypoints.csv``.
- video / webcam / stream: ``<name>_pose.mp4`` (mp4v, annotated). It is written under a hidden temp
  name and renamed when the loop ends, also after Ctrl-C or an error, so the finished frames are kept;
  only a hard kill (SIGKILL, power loss) leaves the temp file ``.<name>_pose.tmp.mp4`` behind.
- single image / folder / glob: ``<stem>_pose.jpg`` per image and ``<name>_coco_results.json``
  (COCO ``loadRes`` format, written atomically). The COCO ``image_id`` is the file stem when it is all
  digits (COCO naming), else the image's position in the list.

Untrained weights (``untrained=True``) draw a red "UNTRAINED WEIGHTS" banner on every rendered
picture and set ``meta.untrained_weights = true`` in every JSON-lines record.
"""
import dataclasses
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Union

import cv2
import numpy as np

from pose.errors import DataError
from pose.fileio import atomic_write, ensure_output_dir
from pose.video.records import FrameCsvWriter, FrameRecordWriter, write_coco_results
from pose.video.render import UNTRAINED_TEXT, render
from pose.video.smoothing import KeypointSmoother
from pose.video.sources import FrameSource, open_source
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


def run_demo(source_spec: Union[str, int, FrameSource], predictor, detector, *,
             output_dir: Union[str, Path], stride: int = 1, det_every: int = 1, smooth: Optional[bool] = None,
             track: Optional[str] = "iou", kpt_thr: float = 0.3, write_video: bool = True,
             write_csv: bool = False, show: bool = False, untrained: bool = False,
             meta: Optional[dict] = None, progress: bool = True, open_timeout_s: float = 10.0) -> DemoSummary:
    """Run detection + pose (+ tracking) over a source and write the outputs (module docstring).

    Args:
        source_spec: anything :func:`pose.video.sources.open_source` takes, or an opened source (then closed here).
        predictor: a :class:`pose.predictor.TopDownPredictor` (``predictor.spec`` picks the skeleton).
        detector: a :class:`pose.video.detection.PersonDetector`; called as ``detector(image_rgb, image_id)``.
        output_dir: created if needed; checked writable before anything runs.
        stride: keep every ``stride``-th frame (ignored when an opened source is passed).
        det_every: run the detector every N-th processed frame of a video/stream; in between, boxes
            come from the previous frame's poses. Image inputs always run the detector.
        smooth: One-Euro keypoint smoothing per track; ``None`` = on for live sources, off otherwise.
        track: tracker metric (``iou``, ``oks``, ``iou+oks``) for video/stream, or ``None``/``"none"``.
        kpt_thr: joints below this score are not drawn (nor used for boxes / smoothing / OKS).
        write_video, write_csv, show: the optional outputs.
        untrained: the weights are random: banner on pictures, flag in the records.
        meta: stored in every JSON-lines record (model, detector, decoder ...).
        progress: tqdm bar for files, a status line every ~5 s for live sources (via logging).

    Raises:
        DataError: unusable source or output folder (one line, raised before any processing).
    """
    out_dir = ensure_output_dir(output_dir)
    source = (source_spec if isinstance(source_spec, FrameSource)
              else open_source(source_spec, stride=stride, open_timeout_s=open_timeout_s))
    csv_writer = None
    try:
        is_images = source.kind in IMAGE_KINDS
        live = source.is_live
        name = output_stem(source)
        summary = DemoSummary(source_kind=source.kind)
        meta = dict(meta or {})
        meta.setdefault("keypoint_names", list(predictor.spec.keypoint_names))  # the set the model predicts
        if untrained:
            logger.warning(UNTRAINED_WARNING)
            meta.update(untrained_weights=True, warning=UNTRAINED_TEXT)
        tracker = None if (is_images or track in (None, "none")) else PoseTracker(
            metric=track, keypoint_score_threshold=kpt_thr)
        smooth = live if smooth is None else bool(smooth)
        if smooth and tracker is None and not is_images:
            logger.warning("smoothing needs tracking (track ids); it is off because tracking is off")
        smoother = (KeypointSmoother(score_threshold=kpt_thr, freq=(source.fps or 30.0) / source.stride)
                    if smooth and tracker is not None else None)
        det_every = 1 if is_images else max(1, int(det_every))

        records = FrameRecordWriter(out_dir / f"{name}_keypoints.jsonl", meta=meta)
        summary.files.append(records.path)
        if write_csv:
            csv_writer = FrameCsvWriter(out_dir / f"{name}_keypoints.csv", predictor.spec)
            summary.files.append(csv_writer.path)
    except BaseException:
        source.close()
        raise
    video = None
    if write_video and not is_images:
        video = _VideoOutput(out_dir / f"{name}_pose.mp4", (source.fps or 25.0) / source.stride)
    window = _Window(f"pose-demo: {source.name}") if show else None
    bar = None
    if progress and not live:
        from tqdm import tqdm
        bar = tqdm(total=source.total_frames, unit="frame", desc=name, dynamic_ncols=True)
    all_results, previous = [], []
    t_start = t_status = time.monotonic()
    frame_fps: Optional[float] = None
    try:
        with source:
            for n, frame in enumerate(source):
                t0 = time.monotonic()
                image = frame.image_rgb
                image_id = coco_image_id(frame.source_name, frame.index) if is_images else frame.index
                if n % det_every == 0 or not previous:
                    boxes = detector(image, image_id)
                else:
                    boxes = boxes_from_keypoints(previous, score_threshold=kpt_thr,
                                                 image_size=(image.shape[1], image.shape[0]))
                    boxes = [dataclasses.replace(b, image_id=image_id) for b in boxes]
                results = predictor(image, boxes)  # every crop of the frame in one batched call
                if tracker is not None:
                    results = tracker.update(results)
                if smoother is not None:
                    results = smoother(results, frame.timestamp_s)
                previous = results
                records.write(frame.index, frame.timestamp_s, frame.source_name, results)
                if csv_writer is not None:
                    csv_writer.write(frame.index, frame.timestamp_s, frame.source_name, results)
                summary.frames += 1
                summary.persons += len(results)
                if is_images:
                    all_results.extend(results)
                if video is not None or window is not None or is_images:
                    picture = render(image, results, predictor.spec, kpt_thr=kpt_thr,
                                     fps=None if is_images else frame_fps, untrained=untrained)
                    if is_images:
                        stem = Path(frame.source_name).stem
                        summary.files.append(_write_image(out_dir / f"{stem}_pose.jpg", picture))
                    if video is not None:
                        video.write(picture)
                    if window is not None and not window.show(picture):
                        logger.info("stopped from the window (q / Esc)")
                        break
                dt = max(time.monotonic() - t0, 1e-6)
                frame_fps = 1.0 / dt if frame_fps is None else 0.9 * frame_fps + 0.1 / dt
                if bar is not None:
                    bar.update(1)
                elif progress and time.monotonic() - t_status >= STATUS_EVERY_S:
                    t_status = time.monotonic()
                    logger.info("%s: %d frames, %.1f fps, %d persons in frame %d, %d dropped", name,
                                summary.frames, frame_fps, len(results), frame.index, source.dropped)
    except KeyboardInterrupt:
        summary.interrupted = True
        logger.warning("interrupted: keeping the %d frames finished so far", summary.frames)
    finally:
        if bar is not None:
            bar.close()
        records.close()
        if csv_writer is not None:
            csv_writer.close()
        if window is not None:
            window.close()
        if video is not None and video.close() is not None:
            summary.files.append(video.path)
        if is_images and summary.frames:
            coco_path = out_dir / f"{name}_coco_results.json"
            write_coco_results(coco_path, all_results)
            summary.files.append(coco_path)
    summary.fps = summary.frames / max(time.monotonic() - t_start, 1e-6)
    summary.skipped, summary.dropped = source.skipped, source.dropped
    return summary


def _write_image(path: Path, image_bgr: np.ndarray) -> Path:
    ok, data = cv2.imencode(path.suffix, image_bgr)
    if not ok:
        raise DataError(f"rendered image '{path}' cannot be encoded")
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

