"""Safe file output and checked file input.

Outputs are written to a temporary file in the destination folder and renamed into place, so an
interrupted or failing write never leaves a half-written file under the final name
(:func:`atomic_write` for a file object, :func:`atomic_path` for writers that want a path, such as
``torch.onnx.export``). The renamed file gets the permissions ``open(path, "w")`` would give: those
of the file it replaces, else ``0o666`` minus the process umask (``mkstemp`` alone would leave
``0o600``, unreadable by the other users of a shared machine or container volume). JSON input is
parsed with errors that name the file.
"""
import contextlib
import json
import os
import stat
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator, Optional, Union

from pose.errors import DataError

PathLike = Union[str, os.PathLike]

#: The package's bundled files (``pose/assets``: the YOLOX-Nano detector, the ``auto`` probe photo).
ASSETS_DIR = Path(__file__).resolve().parent / "assets"

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask (``os.umask`` can only be read by setting it, hence the lock)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _final_mode(path: Path) -> int:
    """Mode ``open(path, 'w')`` would leave: an existing file keeps its own, a new one 0o666 & ~umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~current_umask()


def _temp_beside(path: Path) -> str:
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    return tmp


def _fsync_folder(folder: Path) -> None:
    """Make a rename durable (POSIX); silently skipped where folders cannot be opened."""
    with contextlib.suppress(OSError, AttributeError):
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success give it ``path``'s mode and rename it into place.

    On any exception (Ctrl-C included) the temp file is deleted and a previous file at ``path`` is left
    untouched.

    Raises:
        OSError: the folder does not exist or is not writable, or the disk is full.
    """
    path = Path(path)
    tmp = _temp_beside(path)
    try:
        yield Path(tmp)
        os.chmod(tmp, _final_mode(path))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_folder(path.parent if str(path.parent) else Path("."))


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "w", encoding: str = "utf-8") -> Iterator[Any]:
    """Open a temp file beside ``path``; on success fsync + rename it to ``path``, else delete it.

    Raises:
        OSError: the folder does not exist or is not writable, or the disk is full.
    """
    with atomic_path(path) as tmp:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": encoding})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


def write_json(path: PathLike, obj: Any, indent: Optional[int] = None) -> None:
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


def check_output_folder(path: PathLike) -> Path:
    """Check that ``path`` is, or can be created as, a writable folder, without creating it.

    Raises:
        DataError: a file is in the way, or the nearest existing folder above it is not writable.
    """
    path = Path(path)
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise DataError(f"output folder '{path}' cannot be created ('{probe}' is a file)")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise DataError(f"output folder '{path}' is not writable" if probe == path else
                        f"output folder '{path}' cannot be created (folder '{probe}' is not writable)")
    return path


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
