"""Crash-safe file primitives: atomic JSON writes and append-only JSON lines.

Every file a run writes goes through here. `write_json_atomic` writes a temp
file in the same directory, fsyncs it and `os.replace`s it over the target, so
a reader (or a resumed run after kill -9) sees either the old or the new file,
never half of one. This is safe on NFS/Lustre/GPFS, where rename within a
directory is atomic. Files get the mode an ordinary ``open`` would give them (0644 under the usual
umask 022), not `mkstemp`'s 0600. A file that does not parse raises `DamagedFileError`, which names it.

**Links.** A runs directory may be shared, so a file or folder in it may be a link someone planted. No
write follows one: the atomic writes refuse a symbolic-link parent folder (the temp file and the rename
stay in the real folder; a link as the target itself is replaced, never written through), and the files
written in place (metrics appends, lock files, the metrics-tail repair) are opened with ``O_NOFOLLOW``
and refused when they have a second hard link. Each refusal is an `UnsafeLinkError` naming the path.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class DamagedFileError(ValueError):
    """A stored file that cannot be read back (truncated, torn, not JSON); the message names it and the fix."""

    def __init__(self, path: str | Path, detail: str, fix: str) -> None:
        self.path, self.detail = Path(path), detail
        super().__init__(f"{path} is damaged ({detail}): {fix}")


class UnsafeLinkError(ValueError):
    """A write would go through a symbolic (or extra hard) link; the message names the path and the fix."""

    def __init__(self, path: str | Path, kind: str = "a symbolic link") -> None:
        self.path = Path(path)
        super().__init__(f"refusing to write through {path}: it is {kind} (planted in a shared directory?); remove "
                         f"it, or point --runs-dir at the real directory")


def refuse_links(*paths: str | Path) -> None:
    """Raise `UnsafeLinkError` if any of `paths` is a symbolic link (checked with lstat; missing is fine)."""
    for path in paths:
        if os.path.islink(path):
            raise UnsafeLinkError(path)


def open_no_follow(path: str | Path, flags: int, mode: int = 0o666) -> int:
    """`os.open` that refuses a symbolic link as the final component and a file with a second hard link.

    Raises:
        UnsafeLinkError: `path` is a link.
    """
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeLinkError(path) from None
        raise
    info = os.fstat(fd)
    if info.st_nlink > 1 and (flags & os.O_ACCMODE) != os.O_RDONLY:
        os.close(fd)
        raise UnsafeLinkError(path, f"a file with {info.st_nlink} hard links")
    return fd


def file_mode() -> int:
    """0666 minus the process umask: what `open(path, "w")` would create (0644 under umask 022)."""
    return 0o666 & ~_umask()


def _umask() -> int:
    # /proc/self/status reads the umask without changing it (setting it, even briefly, races other threads)
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def _default(obj: Any) -> Any:
    # numpy / torch scalars and paths become plain numbers and strings
    if hasattr(obj, "item") and callable(obj.item):
        return obj.item()
    if hasattr(obj, "tolist") and callable(obj.tolist):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in a run record")


def _clean(obj: Any) -> Any:
    """NaN/inf are not JSON: store them as null so every file stays standard JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def dumps(obj: Any, indent: int | None = None) -> str:
    return json.dumps(_clean(json.loads(json.dumps(obj, default=_default))), indent=indent, sort_keys=False)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    refuse_links(path.parent)  # mkstemp and os.replace never follow a link in the final component itself
    with _naming(path):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, file_mode())  # mkstemp creates 0600 whatever the umask
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


@contextlib.contextmanager
def _naming(path: Path) -> Iterator[None]:
    """Give an OSError that names no file (a write or fsync on a full disk) the path being written."""
    try:
        yield
    except OSError as exc:
        if exc.filename is not None or exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from exc


def write_in_place(path: str | Path, data: bytes) -> None:
    """Overwrite a small existing file in place (no temp file: what still works on a full disk, where the
    blocks it frees are reused). Not atomic: only for a last status write; refuses links."""
    path = Path(path)
    refuse_links(path.parent)
    with _naming(path):
        fd = open_no_follow(path, os.O_WRONLY | os.O_CREAT)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def write_json_atomic(path: str | Path, obj: Any) -> None:
    write_bytes_atomic(path, (dumps(obj, indent=2) + "\n").encode())


def read_json(path: str | Path, fix: str = "restore it or delete it") -> Any:
    """Parse a JSON file; a file that does not parse raises `DamagedFileError` naming it and `fix`."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise DamagedFileError(path, f"not UTF-8 text: {exc.reason}", fix) from None
    except json.JSONDecodeError as exc:
        raise DamagedFileError(path, f"{exc.msg} at line {exc.lineno} column {exc.colno}", fix) from None


def append_jsonl(path: str | Path, obj: Any) -> None:
    """Append one JSON line and fsync; a torn last line is skipped by `read_jsonl`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    refuse_links(path.parent)
    with _naming(path):
        fd = open_no_follow(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.write(dumps(obj) + "\n")
            f.flush()
            os.fsync(f.fileno())


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """All complete lines of a JSON-lines file that hold a JSON object (a line torn by a crash, garbage, or
    a value of another shape is dropped)."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in path.read_bytes().splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:  # not JSON, or not UTF-8
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows
