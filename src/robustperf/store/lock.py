"""One owner per run directory and per study: an exclusive, advisory file lock.

A process that trains, evaluates or finishes a run holds ``<run_dir>/.lock`` (``fcntl.flock`` on an
open file) for as long as it writes there, with its host, PID and start time written into the file so
that a second process can say who holds it::

    with RunLock(run_dir):          # or lock.acquire() ... lock.release()
        ...                         # train, evaluate, write result.json

A second process gets `RunLockedError` ("run X is being trained by PID p on host h (started t); wait,
or use --force after that process is gone"); a study skips the run and comes back to it. The kernel
drops an flock when its holder dies (kill -9 included), so a lock left by a dead process is simply
taken: the holder information it still names is logged as a warning. ``force=True`` breaks a lock the
kernel still reports as held (a stale lock on a network file system whose client died): the lock file
is replaced by a new one, so whoever held the old one no longer excludes anyone. It is refused while the
holder is alive: on this host, while its PID runs with the start time the lock recorded (a reused PID is
not the holder); on another host, while its lease is fresh (the holder rewrites a ``heartbeat`` time in
the lock every `HEARTBEAT_S` seconds; the lease is stale after `STALE_S` seconds without one, judged by
the later of that time and the file's mtime, so a skewed clock errs towards refusing).

The lock file is a fixed-size record rewritten in place (`pwrite`, padded with spaces), never truncated,
and opened with ``O_NOFOLLOW`` in a directory that must not be a symbolic link: a link planted in a shared
runs directory is refused (`robustperf.store.io.UnsafeLinkError`), never written through.

Locks are re-entrant within a process (the study's ``run_one`` holds the run while ``train`` takes it
again) and are not inherited across ``spawn``.

**Network file systems.** flock on NFS is emulated with byte-range locks through the NFS lock manager
(Linux >= 2.6.12) and is only as reliable as that server's lock service; on Lustre it needs the
``flock`` mount option; some GPFS and older NFS set-ups silently grant every lock. `warn_if_network_fs`
logs a warning when the runs directory is on such a file system: there, run one study per runs
directory at a time.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from robustperf.store.io import UnsafeLinkError, open_no_follow, refuse_links

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"
NETWORK_FS_TYPES = frozenset({"nfs", "nfs4", "lustre", "gpfs", "cifs", "smb3", "smbfs", "fuse.sshfs", "beegfs",
                              "ceph", "fuse.glusterfs", "9p"})

RECORD_BYTES = 512  # the lock record is padded to this size and rewritten in place: never truncated
HEARTBEAT_S = 30.0  # how often a holder renews its lease (the ``heartbeat`` time in the lock)
STALE_S = 300.0  # a lease not renewed for this long is stale: --force may take it from another host

# path -> (pid, fd, depth): locks this process holds; flock is per open file, so re-entry must reuse it
_HELD: dict[str, tuple[int, int, int]] = {}
_INFO: dict[str, dict[str, Any]] = {}  # path -> the record this process wrote (its heartbeat renewed)
_HELD_GUARD = threading.Lock()
_HEARTBEAT: dict[int, threading.Thread] = {}  # pid -> the thread renewing this process's leases


class RunLockedError(RuntimeError):
    """Another live process holds the lock; the message says who and what to do."""

    def __init__(self, message: str, holder: dict[str, Any]) -> None:
        super().__init__(message)
        self.holder = holder


def _utcnow() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def process_start(pid: int) -> int | None:
    """When process `pid` started, in clock ticks since boot (/proc/<pid>/stat field 22); None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def boot_id() -> str | None:
    """This boot of this machine (a PID and its start time mean nothing across a reboot); None if unknown."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def read_holder(lock_path: str | Path) -> dict[str, Any]:
    """What the lock file says about its (last) holder: ``{"host", "pid", "started", "what", "heartbeat"...}``
    or {} (empty, released, unreadable, or a link, which is never followed)."""
    try:
        fd = os.open(lock_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return {}
    try:
        with os.fdopen(fd, "rb") as fh:
            text = fh.read(64 * 1024).decode("utf-8").strip()
        data, _ = json.JSONDecoder().raw_decode(text) if text else ({}, 0)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def holder_alive(holder: dict[str, Any], lock_path: str | Path) -> str | None:
    """Why the holder named in a lock may still be running (a sentence), or None when it is surely gone.

    On this host (same host name and boot): alive while its PID runs with the start time it recorded. On
    another host: alive while its lease is fresh (heartbeat or file mtime within `STALE_S` seconds).
    """
    pid, host = holder.get("pid"), holder.get("host")
    same_boot = holder.get("boot_id") in (None, boot_id())
    if host == socket.gethostname() and same_boot and isinstance(pid, int):
        if not _pid_alive(pid):
            return None
        recorded, now = holder.get("pid_start"), process_start(pid)
        if recorded is not None and now is not None and recorded != now:
            return None  # the PID was reused by another process
        return f"PID {pid} on this host is still running"
    try:
        mtime = os.lstat(lock_path).st_mtime
    except OSError:
        mtime = 0.0
    beat = holder.get("heartbeat")
    last = max(mtime, float(beat) if isinstance(beat, (int, float)) else 0.0)
    age = time.time() - last
    if age < STALE_S:
        return (f"its lease on host {host} was renewed {max(age, 0):.0f} s ago (stale after {STALE_S:.0f} s "
                f"without a heartbeat)")
    return None


def _write_record(fd: int, info: dict[str, Any] | None) -> None:
    """Rewrite the lock record in place, padded with spaces (None: blank), without truncating the file."""
    data = (json.dumps(info) + "\n").encode() if info else b""
    size = max(RECORD_BYTES, len(data), os.fstat(fd).st_size)
    os.pwrite(fd, data + b" " * (size - len(data)), 0)


def renew_leases() -> int:
    """Rewrite the heartbeat time of every lock this process holds (the heartbeat thread calls this every
    `HEARTBEAT_S` seconds); returns how many were renewed."""
    renewed = 0
    with _HELD_GUARD:
        for key, (pid, fd, _) in _HELD.items():
            info = _INFO.get(key)
            if pid == os.getpid() and info is not None:
                info["heartbeat"] = time.time()
                with contextlib.suppress(OSError):
                    _write_record(fd, info)
                    renewed += 1
    return renewed


def _renew_forever() -> None:
    while True:
        time.sleep(HEARTBEAT_S)
        renew_leases()


def _start_heartbeat() -> None:
    with _HELD_GUARD:
        thread = _HEARTBEAT.get(os.getpid())
        if thread is None or not thread.is_alive():
            thread = threading.Thread(target=_renew_forever, name="robustperf-lock-heartbeat", daemon=True)
            thread.start()
            _HEARTBEAT[os.getpid()] = thread


class RunLock:
    """Exclusive lock on one directory (a run or a study), held by this process until `release`.

    Args:
        directory: the run directory (or any directory to own); created if missing.
        what: the verb for the message: "trained", "evaluated", "run" (studies).
        kind: "run" or "study", for the message.
        force: break a lock that is still reported as held (only once its holder is gone).
        lock_name: file name of the lock inside `directory`.
        name: what the message calls it (default: the directory's name, i.e. the run id).
    """

    def __init__(self, directory: str | Path, *, what: str = "trained", kind: str = "run", force: bool = False,
                 lock_name: str = LOCK_NAME, name: str | None = None) -> None:
        self.directory = Path(directory)
        self._name = name
        self.path = self.directory / lock_name
        self.what, self.kind, self.force = what, kind, force
        self._key = str(self.path.resolve()) if self.path.parent.exists() else str(self.path.absolute())
        self.held = False

    @property
    def name(self) -> str:
        """What the message calls the locked thing: the run id (its directory's name) or the study name."""
        return self._name or self.directory.name

    def acquire(self) -> RunLock:
        """Take the lock now or raise `RunLockedError` (never waits).

        Raises:
            RunLockedError: another live process holds it (or --force was refused: the holder is alive).
            UnsafeLinkError: the directory or the lock file is a link (planted in a shared runs directory).
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        refuse_links(self.directory)  # every write of the run goes into this directory under this lock
        self._key = str(self.path.resolve())
        with _HELD_GUARD:
            held = _HELD.get(self._key)
            if held is not None and held[0] == os.getpid():
                _HELD[self._key] = (held[0], held[1], held[2] + 1)
                self.held = True
                return self
        fd = self._open_and_lock()
        previous = read_holder(self.path)
        if previous and previous.get("pid") not in (None, os.getpid()):
            log.warning("%s %s: taking over the lock of PID %s on host %s (started %s), which is gone",
                        self.kind, self.name, previous.get("pid"), previous.get("host"), previous.get("started"))
        info = {"host": socket.gethostname(), "pid": os.getpid(), "started": _utcnow(), "what": self.what,
                "pid_start": process_start(os.getpid()), "boot_id": boot_id(), "heartbeat": time.time()}
        _write_record(fd, info)
        with _HELD_GUARD:
            _HELD[self._key] = (os.getpid(), fd, 1)
            _INFO[self._key] = info
        self.held = True
        _start_heartbeat()
        return self

    def _try_lock(self) -> int | None:
        """An fd holding the flock of the file now at `self.path`, or None if another process holds it.

        The lock file can be replaced (`force`, or the clean-up of a run that never started) between our
        open and our flock; a lock on a file that is no longer at the path excludes nobody, so check the
        inode after locking and try again if it changed.
        """
        while True:
            fd = open_no_follow(self.path, os.O_RDWR | os.O_CREAT)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                return None
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return fd
            os.close(fd)

    def _open_and_lock(self) -> int:
        fd = self._try_lock()
        if fd is not None:
            return fd
        holder = read_holder(self.path)
        if self.force:
            alive = holder_alive(holder, self.path)
            if alive is not None:
                pid, host = holder.get("pid", "?"), holder.get("host", "?")
                raise RunLockedError(f"{self.kind} {self.name}: --force refused: the holder (PID {pid} on host {host}, "
                                     f"started {holder.get('started', '?')}) is alive: {alive}; stop it first, or "
                                     "wait for it to finish", holder)
            log.warning("%s %s: --force breaks the lock of PID %s on host %s (started %s)", self.kind, self.name,
                        holder.get("pid"), holder.get("host"), holder.get("started"))
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            fd = self._try_lock()
            if fd is not None:
                return fd
            holder = read_holder(self.path)
        raise RunLockedError(self._message(holder), holder)

    def _message(self, holder: dict[str, Any]) -> str:
        pid, host, started = holder.get("pid", "?"), holder.get("host", "?"), holder.get("started", "?")
        what = holder.get("what") or self.what  # what the holder is doing, as it wrote it
        return (f"{self.kind} {self.name} is being {what} by PID {pid} on host {host} (started {started}); "
                "wait, or use --force after that process is gone")

    def release(self) -> None:
        """Give the lock up (the outermost release of a re-entered lock unlocks)."""
        if not self.held:
            return
        self.held = False
        with _HELD_GUARD:
            held = _HELD.get(self._key)
            if held is None or held[0] != os.getpid():
                return
            pid, fd, depth = held
            if depth > 1:
                _HELD[self._key] = (pid, fd, depth - 1)
                return
            del _HELD[self._key]
            _INFO.pop(self._key, None)
        with contextlib.suppress(OSError):
            _write_record(fd, None)  # a blank record: nobody to warn about next time (never truncated)
            if self.kind == "run" and {p.name for p in self.directory.iterdir()} == {self.path.name}:
                # the run never wrote anything (refused before it started): leave no empty directory behind
                self.path.unlink()
                self.directory.rmdir()
        os.close(fd)  # closing the last descriptor drops the flock

    def __enter__(self) -> RunLock:
        return self if self.held else self.acquire()  # `with hold_run(...)`: already acquired

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def is_locked(directory: str | Path, lock_name: str = LOCK_NAME) -> bool:
    """Whether another process holds the lock of `directory` now (this process's own locks: False)."""
    path = Path(directory) / lock_name
    if not path.exists():
        return False
    with _HELD_GUARD:
        held = _HELD.get(str(path.resolve()))
        if held is not None and held[0] == os.getpid():
            return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:  # gone, or a link (which nobody can hold as a lock of ours)
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def study_lock(runs_dir: str | Path, name: str, *, force: bool = False) -> RunLock:
    """The lock of study `name` in `runs_dir` (``runs_dir/studies/.<name>.lock``); not yet acquired."""
    return RunLock(Path(runs_dir) / "studies", what="run", kind="study", force=force, lock_name=f".{name}.lock",
                   name=name)


def filesystem_type(path: str | Path) -> str | None:
    """The type (``ext4``, ``nfs4``...) of the file system holding `path`, from /proc/mounts; None if unknown."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    target = os.path.realpath(path)
    best, fstype = "", None
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        mount = parts[1].replace("\\040", " ")
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) > len(best):
            best, fstype = mount, parts[2]
    return fstype


_WARNED: set[str] = set()


def warn_if_network_fs(runs_dir: str | Path) -> bool:
    """Log (once per directory) that run locks are unreliable when `runs_dir` is on a network file system."""
    fstype = filesystem_type(runs_dir)
    if fstype is None or fstype not in NETWORK_FS_TYPES:
        return False
    key = os.path.realpath(runs_dir)
    if key not in _WARNED:
        _WARNED.add(key)
        log.warning("%s is on %s: run locks there are only as reliable as its lock service; run one study per "
                    "runs directory at a time (docs/architecture.md, 'Concurrency')", runs_dir, fstype)
    return True


__all__ = ["HEARTBEAT_S", "LOCK_NAME", "STALE_S", "RunLock", "RunLockedError", "UnsafeLinkError", "boot_id",
           "filesystem_type", "holder_alive", "is_locked", "process_start", "read_holder", "renew_leases",
           "study_lock", "warn_if_network_fs"]
