"""Result files: COCO results JSON, per-frame JSON lines (schema version 1) and CSV.

COCO results (:func:`coco_results_json`, :func:`write_coco_results`): a list of
``{"image_id", "category_id": 1, "keypoints": [x1, y1, s1, ..., xK, yK, sK], "score"}``, the
format ``pycocotools.COCO.loadRes`` reads. Written atomically (temp file + rename).

Frame records, schema version 1 (:class:`FrameRecordWriter`, :func:`frame_record`,
:func:`validate_frame_record`): one JSON object per line (JSON Lines), one line per processed
frame, in processing order::

    {
      "schema_version": 1,                 # int, this document describes version 1
      "frame_index": 12,                   # int >= 0, frame number in the source (strides skip numbers)
      "timestamp_s": 0.428,                # float seconds from the start, or null (still images)
      "source": "clip.mp4",                # str, source spec or image file name
      "persons": [                         # list, possibly empty
        {
          "track_id": 0,                   # int >= 0, or null when not tracked
          "bbox_xywh": [x, y, w, h],       # 4 numbers, image pixels, or null
          "keypoints": [[x, y, score], ...],  # K triples, image pixels, score = heatmap maximum
          "score": 0.87                    # pose score: box score x mean joint score above 0.2
        }
      ],
      "meta": {...}                        # optional object, e.g. model name, decoder, detector
    }

Every record of one file has the same K. Readers must ignore unknown keys (later minor additions).

Why the JSON-lines file is written in place and not via temp file + rename like other outputs: it
is a stream that can run for hours (webcam), and a kill must not lose the frames already done. Each
record is serialised first and then handed to the OS as one ``write()`` of a complete,
newline-terminated line on an unbuffered file, so after a crash every earlier line is a complete
record (the file is created new on open, so there is no stale tail to repair). Only the last line
can be cut short, and only by a kill that lands during its ``write()``: Linux ends a regular-file
write early at a page boundary when a fatal signal (SIGKILL) is pending, and a record of several
people with full-precision coordinates spans pages. :func:`read_frame_records` drops such an
unterminated last line with a warning.

CSV (:class:`FrameCsvWriter`): one row per frame x person with columns ``frame_index,
timestamp_s, source, track_id, score, bbox_x, bbox_y, bbox_w, bbox_h`` then ``<joint>_x, <joint>_y,
<joint>_score`` for each joint name; flushed per frame the same way.

Why one long module: the JSON Schema, its validator, the writer and the reader of the same record
format belong together (a change to one must be a change to all); CSV and COCO results are its views.
"""
import csv
import io
import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from pose.errors import DataError
from pose.evaluation.coco import coco_result
from pose.evaluation.coco import rescore as official_rescore
from pose.fileio import write_json
from pose.keypoints import KeypointSpec
from pose.structures import PoseResult

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
PathLike = Union[str, os.PathLike]

#: JSON Schema (draft 2020-12) of a version-1 frame record, for external tools; inside ``pose``,
#: :func:`validate_frame_record` checks the same rules without a jsonschema dependency.
FRAME_RECORD_SCHEMA: Dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "pose frame record",
    "type": "object",
    "required": ["schema_version", "frame_index", "timestamp_s", "source", "persons"],
    "properties": {
        "schema_version": {"const": 1},
        "frame_index": {"type": "integer", "minimum": 0},
        "timestamp_s": {"type": ["number", "null"]},
        "source": {"type": "string"},
        "meta": {"type": "object"},
        "persons": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["track_id", "bbox_xywh", "keypoints", "score"],
                "properties": {
                    "track_id": {"type": ["integer", "null"], "minimum": 0},
                    "bbox_xywh": {"oneOf": [{"type": "null"},
                                            {"type": "array", "items": {"type": "number"},
                                             "minItems": 4, "maxItems": 4}]},
                    "keypoints": {"type": "array", "minItems": 1,
                                  "items": {"type": "array", "items": {"type": "number"},
                                            "minItems": 3, "maxItems": 3}},
                    "score": {"type": "number"},
                },
            },
        },
    },
}


# ---------------------------------------------------------------------------------------------
# Scores and COCO results
# ---------------------------------------------------------------------------------------------

def pose_scores(results: Sequence[PoseResult], in_vis_thre: float = 0.2) -> np.ndarray:
    """(N,) official rescoring ``box_score * mean(joint scores > in_vis_thre)`` (0 if none)."""
    if not results:
        return np.zeros(0)
    kpts = np.stack([np.asarray(r.keypoints_img) for r in results])
    return official_rescore(kpts, np.array([r.box_score for r in results], dtype=np.float64), in_vis_thre)


def coco_results_json(results: Sequence[PoseResult], *, rescore: bool = True,
                      category_id: int = 1) -> List[dict]:
    """COCO keypoint results (``loadRes`` format) for poses with an ``image_id``.

    Args:
        results: poses; each needs ``image_id``.
        rescore: score = official rescoring (:func:`pose_scores`); ``False`` uses ``box_score``.
    """
    scores = pose_scores(results) if rescore else [r.box_score for r in results]
    out = []
    for i, (r, s) in enumerate(zip(results, scores)):
        if r.image_id is None:
            raise DataError(f"COCO results: result {i} has no image_id; expected the COCO id of its "
                            "image")
        out.append(coco_result(r.image_id, np.asarray(r.keypoints_img, dtype=np.float64), s,
                               category_id=category_id))
    return out


def write_coco_results(path: PathLike, results: Sequence[PoseResult], **kw) -> List[dict]:
    """Atomically write :func:`coco_results_json` to ``path``; returns the list written."""
    data = coco_results_json(results, **kw)
    write_json(path, data)
    return data


# ---------------------------------------------------------------------------------------------
# Frame records
# ---------------------------------------------------------------------------------------------

def _num(v: float, digits: Optional[int]) -> float:
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"frame record: non-finite number {v}")
    return round(v, digits) if digits is not None else v


def frame_record(frame_index: int, timestamp_s: Optional[float], source: str,
                 results: Sequence[PoseResult], *, meta: Optional[dict] = None,
                 digits: Optional[int] = 3) -> dict:
    """Build a version-1 frame record (see the module docstring) from one frame's poses.

    ``digits`` rounds coordinates and scores (3 = 1/1000 px); ``None`` keeps full precision.
    """
    scores = pose_scores(results)
    persons = []
    for r, s in zip(results, scores):
        kp = np.asarray(r.keypoints_img, dtype=np.float64)
        persons.append({
            "track_id": None if r.track_id is None else int(r.track_id),
            "bbox_xywh": None if r.bbox_xywh is None else [_num(v, digits) for v in r.bbox_xywh],
            "keypoints": [[_num(x, digits), _num(y, digits), _num(c, digits)] for x, y, c in kp[:, :3]],
            "score": _num(s, digits),
        })
    record = {"schema_version": SCHEMA_VERSION, "frame_index": int(frame_index),
              "timestamp_s": None if timestamp_s is None else _num(timestamp_s, 6),
              "source": str(source), "persons": persons}
    if meta:
        record["meta"] = dict(meta)
    return record


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def validate_frame_record(record: Any, num_keypoints: Optional[int] = None) -> None:
    """Check a parsed frame record against schema version 1; raise :class:`DataError` naming the field.

    Args:
        record: one parsed JSON line.
        num_keypoints: expected K, if known.
    """
    def fail(field: str, expected: str):
        raise DataError(f"frame record: field '{field}' {expected}")

    if not isinstance(record, dict):
        fail("<record>", "must be a JSON object")
    for key in FRAME_RECORD_SCHEMA["required"]:
        if key not in record:
            fail(key, "is missing")
    if record["schema_version"] != SCHEMA_VERSION:
        fail("schema_version", f"is {record['schema_version']!r}; expected {SCHEMA_VERSION}")
    if not _is_int(record["frame_index"]) or record["frame_index"] < 0:
        fail("frame_index", "must be an integer >= 0")
    if record["timestamp_s"] is not None and not _is_num(record["timestamp_s"]):
        fail("timestamp_s", "must be a number or null")
    if not isinstance(record["source"], str):
        fail("source", "must be a string")
    if "meta" in record and not isinstance(record["meta"], dict):
        fail("meta", "must be an object")
    if not isinstance(record["persons"], list):
        fail("persons", "must be a list")
    for i, p in enumerate(record["persons"]):
        where = f"persons[{i}]"
        if not isinstance(p, dict):
            fail(where, "must be an object")
        for key in ("track_id", "bbox_xywh", "keypoints", "score"):
            if key not in p:
                fail(f"{where}.{key}", "is missing")
        if p["track_id"] is not None and (not _is_int(p["track_id"]) or p["track_id"] < 0):
            fail(f"{where}.track_id", "must be an integer >= 0 or null")
        box = p["bbox_xywh"]
        if box is not None and not (isinstance(box, list) and len(box) == 4 and all(map(_is_num, box))):
            fail(f"{where}.bbox_xywh", "must be [x, y, w, h] numbers or null")
        kps = p["keypoints"]
        if not isinstance(kps, list) or not kps:
            fail(f"{where}.keypoints", "must be a non-empty list of [x, y, score]")
        if num_keypoints is not None and len(kps) != num_keypoints:
            fail(f"{where}.keypoints", f"has {len(kps)} joints; expected {num_keypoints}")
        for k, kp in enumerate(kps):
            if not (isinstance(kp, list) and len(kp) == 3 and all(map(_is_num, kp))):
                fail(f"{where}.keypoints[{k}]", "must be [x, y, score] numbers")
        if not _is_num(p["score"]):
            fail(f"{where}.score", "must be a number")


class _LineFile:
    """An unbuffered file opened new, written one complete line per ``os.write`` call."""

    def __init__(self, path: PathLike, *, overwrite: bool, fsync: bool):
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise DataError(f"output folder '{self.path.parent}' does not exist")
        if self.path.exists() and not overwrite:
            raise DataError(f"output '{self.path}' already exists; pass overwrite=True to replace it")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0)
        try:
            self._fd: Optional[int] = os.open(self.path, flags, 0o644)
        except OSError as e:
            raise DataError(f"output '{self.path}' cannot be opened for writing ({e.strerror})") from None
        self.fsync = bool(fsync)

    def write_line(self, text: str) -> None:
        if self._fd is None:
            raise ValueError(f"output '{self.path}' is closed")
        data = text.encode("utf-8")
        view = memoryview(data)
        try:
            while view:  # os.write may write less than asked (rare on regular files); finish the line
                n = os.write(self._fd, view)
                view = view[n:]
            if self.fsync:
                os.fsync(self._fd)
        except OSError as e:  # disk full, I/O error: name the file in the one-line CLI message
            raise OSError(e.errno, e.strerror, str(self.path)) from None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class FrameRecordWriter:
    """Write version-1 frame records as JSON lines, one complete line per frame, as they come.

    Args:
        path: output ``.jsonl`` file; created new (an existing file is replaced unless
            ``overwrite=False``).
        schema_version: only 1 is defined.
        meta: optional object stored in every record under ``"meta"`` (model, decoder, ...).
        digits: rounding of coordinates and scores (see :func:`frame_record`).
        fsync: also fsync after each record (survives power loss, slower); a process kill is
            survived either way.
        validate: check each record with :func:`validate_frame_record` before writing it.
    """

    def __init__(self, path: PathLike, schema_version: int = SCHEMA_VERSION, *, meta: Optional[dict] = None,
                 digits: Optional[int] = 3, overwrite: bool = True, fsync: bool = False,
                 validate: bool = False):
        if schema_version != SCHEMA_VERSION:
            raise DataError(f"frame records: schema_version {schema_version} is not supported; expected "
                            f"{SCHEMA_VERSION}")
        self.path = Path(path)
        self.meta, self.digits, self.validate = meta, digits, validate
        self.records_written = 0
        self._num_keypoints: Optional[int] = None
        self._file = _LineFile(path, overwrite=overwrite, fsync=fsync)

    def write(self, frame_index: int, timestamp_s: Optional[float], source: str,
              results: Sequence[PoseResult]) -> dict:
        """Write one frame's record; returns it."""
        record = frame_record(frame_index, timestamp_s, source, results, meta=self.meta, digits=self.digits)
        self.write_record(record)
        return record

    def write_record(self, record: dict) -> None:
        """Write an already built record (one line)."""
        if self.validate:
            validate_frame_record(record, self._num_keypoints)
        for p in record.get("persons", ()):
            self._num_keypoints = self._num_keypoints or len(p["keypoints"])
        self._file.write_line(json.dumps(record, allow_nan=False, separators=(",", ":")) + "\n")
        self.records_written += 1

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "FrameRecordWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_frame_records(path: PathLike, *, validate: bool = True) -> List[dict]:
    """Parse a frame-record JSON-lines file.

    An unterminated last line (an interrupted write) is dropped with a warning; any other bad line
    raises :class:`DataError` naming the file and line number.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"frame records '{path}' do not exist")
    text = path.read_bytes().decode("utf-8", errors="replace")
    lines = text.split("\n")
    if lines[-1]:
        logger.warning("frame records '%s': dropping an incomplete last line (%d bytes)", path,
                       len(lines[-1]))
    records, num_keypoints = [], None
    for lineno, line in enumerate(lines[:-1], start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"frame records '{path}' line {lineno}: not valid JSON ({e.msg})") from None
        if validate:
            try:
                validate_frame_record(record, num_keypoints)
            except DataError as e:
                raise DataError(f"frame records '{path}' line {lineno}: {e}") from None
            for p in record["persons"]:
                num_keypoints = num_keypoints or len(p["keypoints"])
        records.append(record)
    return records


# ---------------------------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------------------------

def csv_header(keypoint_names: Sequence[str]) -> List[str]:
    """Column names of :class:`FrameCsvWriter`."""
    cols = ["frame_index", "timestamp_s", "source", "track_id", "score",
            "bbox_x", "bbox_y", "bbox_w", "bbox_h"]
    for name in keypoint_names:
        cols += [f"{name}_x", f"{name}_y", f"{name}_score"]
    return cols


class FrameCsvWriter:
    """CSV with one row per frame x person (columns: :func:`csv_header`); frames without persons add no row.

    Args:
        path: output ``.csv``, created new.
        spec: keypoint layout (names give the joint columns); or pass ``keypoint_names``.
    """

    def __init__(self, path: PathLike, spec: Optional[KeypointSpec] = None, *,
                 keypoint_names: Optional[Sequence[str]] = None, digits: Optional[int] = 3,
                 overwrite: bool = True, fsync: bool = False):
        names = keypoint_names if keypoint_names is not None else (spec.keypoint_names if spec else None)
        if not names:
            raise DataError("CSV writer: pass a KeypointSpec or keypoint_names to name the joint columns")
        self.keypoint_names = tuple(names)
        self.path = Path(path)
        self.digits = digits
        self.rows_written = 0
        self._file = _LineFile(path, overwrite=overwrite, fsync=fsync)
        self._file.write_line(self._format([csv_header(self.keypoint_names)]))

    @staticmethod
    def _format(rows) -> str:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        return buf.getvalue()

    def write(self, frame_index: int, timestamp_s: Optional[float], source: str,
              results: Sequence[PoseResult]) -> int:
        """Write one frame's rows (all in one ``write``); returns the number of rows."""
        record = frame_record(frame_index, timestamp_s, source, results, digits=self.digits)
        return self.write_record(record)

    def write_record(self, record: dict) -> int:
        """Rows for an already built frame record."""
        rows = []
        for p in record["persons"]:
            if len(p["keypoints"]) != len(self.keypoint_names):
                raise DataError(f"CSV writer: a person has {len(p['keypoints'])} joints; expected "
                                f"{len(self.keypoint_names)}")
            box = p["bbox_xywh"] or ["", "", "", ""]
            row = [record["frame_index"], "" if record["timestamp_s"] is None else record["timestamp_s"],
                   record["source"], "" if p["track_id"] is None else p["track_id"], p["score"], *box]
            for kp in p["keypoints"]:
                row += kp
            rows.append(row)
        if rows:
            self._file.write_line(self._format(rows))
        self.rows_written += len(rows)
        return len(rows)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "FrameCsvWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
