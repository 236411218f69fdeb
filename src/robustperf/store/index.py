"""The run index: a disposable SQLite table rebuilt from run directories.

One process (the CLI, or a sweep at its end) scans ``runs_dir/*/`` and writes
``runs_dir/index.sqlite``: one row per run with flattened config and result
columns (``config.model.name``, ``final.robust_acc``, ``cost.energy_kwh``...).
The directories stay the source of truth; deleting the index loses nothing.

Any number of processes may rebuild and read it at once (a study's end, `robustperf runs list`, a
report): a rebuild holds ``runs_dir/.index.lock`` (rebuilders queue on it; readers never wait for it),
removes temp files of rebuilds killed midway, writes its own uniquely named temp file and swaps it in
with ``os.replace``; connections use a busy timeout, so a reader sees either the old or the new index, never a half-written one. The
file is never changed in place, so there is no journal to share and WAL mode would add nothing (its
``-wal`` file would outlive the file it belongs to after a swap).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from robustperf.store import schema
from robustperf.store.io import file_mode, open_no_follow
from robustperf.store.record import RunDir, RunStatus
from robustperf.store.robust import robust_columns

log = logging.getLogger(__name__)

INDEX_NAME = "index.sqlite"
BUSY_TIMEOUT_S = 30.0  # how long a connection waits for another one's write lock before "database is locked"


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists are kept as JSON text."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            out[name] = json.dumps(value)
        else:
            out[name] = value
    return out


def iter_run_dirs(runs_dir: str | Path) -> list[RunDir]:
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    return [RunDir(p) for p in sorted(root.iterdir()) if p.is_dir() and (p / "config.json").exists()]


def collect_rows(runs_dir: str | Path) -> list[dict[str, Any]]:
    """One flat row per run directory (unreadable directories are reported as status 'corrupt').

    The columns, in this order, are those of `robustperf.store.schema`: the run's id and path, every key of
    its config, its status, kind and failure reason, the typed blocks and evaluations (`schema.SECTIONS`),
    the one robust accuracy, and when it started and ended.
    """
    rows = []
    for rd in iter_run_dirs(runs_dir):
        row: dict[str, Any] = {schema.RUN_ID: rd.run_id, schema.PATH: str(rd.path)}
        try:
            row.update(flatten(rd.read_config(), schema.CONFIG_PREFIX))
            result = rd.read_result_dict()  # checked against the record's shape: a wrong one is `corrupt`
            if result is not None:
                row[schema.STATUS] = result.get("status", RunStatus.PENDING.value)
                row[schema.KIND] = result.get("kind", "train")
                row[schema.FAILURE_REASON] = result.get("failure_reason")
                for section in schema.SECTIONS:
                    row.update(flatten(result.get(section) or {}, f"{section}."))
                row.update(robust_columns(row))  # the run's one robust accuracy (issue 27)
                row[schema.STARTED_AT] = result.get("started_at")
                row[schema.ENDED_AT] = result.get("ended_at")
            else:
                row[schema.STATUS] = RunStatus.PENDING.value
        except (OSError, ValueError) as exc:  # DamagedFileError is a ValueError: it names the file and the fix
            row = {schema.RUN_ID: rd.run_id, schema.PATH: str(rd.path), schema.STATUS: RunStatus.CORRUPT.value,
                   schema.FAILURE_REASON: f"unreadable run directory: {exc}"}
        rows.append(row)
    return rows


def rebuild_index(runs_dir: str | Path) -> Path:
    """Rebuild ``index.sqlite`` from the run directories (atomically replaced)."""
    root = Path(runs_dir)
    root.mkdir(parents=True, exist_ok=True)
    with _index_lock(root):  # one writer at a time, scanning too: a later rebuild never swaps in an older scan
        rows = collect_rows(root)
        columns: list[str] = []
        for row in rows:
            for key in row:
                if key not in columns:
                    columns.append(key)
        for stale in root.glob(f".{INDEX_NAME}.*.tmp"):  # left by a writer killed mid-rebuild
            stale.unlink(missing_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=root, prefix=f".{INDEX_NAME}.", suffix=".tmp")  # unique per writer
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            _write_table(tmp, columns, rows)
            os.chmod(tmp, file_mode())  # mkstemp gives 0600; the index is as readable as the runs
            tmp.replace(root / INDEX_NAME)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return root / INDEX_NAME


@contextlib.contextmanager
def _index_lock(root: Path) -> Iterator[None]:
    """Blocking exclusive lock of the index (``runs_dir/.index.lock``)."""
    fd = open_no_follow(root / ".index.lock", os.O_RDWR | os.O_CREAT)  # a planted link is refused
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)


def _write_table(tmp: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    con = _connect(tmp)
    try:
        cols_sql = ", ".join(f'"{c}"' for c in columns) or f'"{schema.RUN_ID}"'
        con.execute(f"CREATE TABLE runs ({cols_sql})")
        if rows and columns:
            placeholders = ", ".join("?" for _ in columns)
            con.executemany(
                f"INSERT INTO runs VALUES ({placeholders})",
                [[_sql_value(r.get(c)) for c in columns] for r in rows],
            )
        con.commit()
    finally:
        con.close()


def _sql_value(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return value


def load_index(runs_dir: str | Path, rebuild: bool = True) -> list[dict[str, Any]]:
    """Rows of the index as dicts (rebuilt first unless `rebuild=False` and it exists)."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    path = root / INDEX_NAME
    if rebuild or not path.exists():
        try:
            path = rebuild_index(root)
        except OSError as exc:  # a read-only or full runs directory can still be listed, without its index
            if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC):
                raise
            log.warning("cannot write the index in %s (%s): reading the run directories without it", root,
                        exc.strerror)
            return sorted(collect_rows(root), key=lambda r: str(r[schema.RUN_ID]))
    try:
        return _read_rows(path)
    except sqlite3.DatabaseError:  # not our table (damaged or planted): the directories are the truth
        if rebuild:
            raise
        return _read_rows(rebuild_index(root))


def _read_rows(path: Path) -> list[dict[str, Any]]:
    con = _connect(path)
    con.row_factory = sqlite3.Row
    try:
        rows = [dict(r) for r in con.execute(f'SELECT * FROM runs ORDER BY "{schema.RUN_ID}"')]
    finally:
        con.close()
    if rows and not {schema.RUN_ID, schema.STATUS} <= set(rows[0]):
        raise sqlite3.DatabaseError(f"{path} has no run_id/status columns")
    return rows


def load_index_frame(runs_dir: str | Path, rebuild: bool = True):  # -> pandas.DataFrame
    """The index as a pandas DataFrame (pandas imported lazily)."""
    import pandas as pd

    return pd.DataFrame(load_index(runs_dir, rebuild=rebuild))
