"""Safe file output and checked file input.

Outputs are written to a temporary file in the destination folder and renamed into place, so an
interrupted or failing write never leaves a half-written file under the final name. JSON input is
parsed with errors that name the file.
"""
import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Union

from pose.errors import DataError

PathLike = Union[str, os.PathLike]


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "w", encoding: str = "utf-8") -> Iterator[Any]:
    """Open a temp file beside ``path``; on success fsync + rename it to ``path``, else delete it.

    Raises:
        OSError: the folder does not exist or is not writable, or the disk is full.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": encoding})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError, AttributeError):  # make the rename itself durable (POSIX)
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def write_json(path: PathLike, obj: Any, indent: int = None) -> None:
    """Atomically write ``obj`` as JSON."""
    with atomic_write(path) as f:
        json.dump(obj, f, indent=indent)


def read_json(path: PathLike, what: str = "JSON file") -> Any:
    """Parse a JSON file; missing, unreadable or malformed files raise :class:`DataError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} '{path}' does not exist")
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{what} '{path}' is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    except UnicodeDecodeError:
        raise DataError(f"{what} '{path}' is not valid JSON (not UTF-8 text)") from None
    except OSError as e:
        raise DataError(f"{what} '{path}' cannot be read ({e.strerror})") from None


def ensure_output_dir(path: PathLike) -> Path:
    """Create ``path`` (and parents) and check it is writable; raise :class:`DataError` otherwise."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"output folder '{path}' cannot be created ({e.strerror})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise DataError(f"output folder '{path}' is not writable")
    return path
