"""The run index: a disposable SQLite table rebuilt from run directories.

One process (the CLI, or a sweep at its end) scans ``runs_dir/*/`` and writes
``runs_dir/index.sqlite``: one row per run with flattened config and result
columns (``config.model.name``, ``final.robust_acc``, ``cost.energy_kwh``...).
The directories stay the source of truth; deleting the index loses nothing.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from robustperf.store.io import read_json
from robustperf.store.record import RunDir

INDEX_NAME = "index.sqlite"


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
    """One flat row per run directory (unreadable directories are reported as status 'corrupt')."""
    rows = []
    for rd in iter_run_dirs(runs_dir):
        row: dict[str, Any] = {"run_id": rd.run_id, "path": str(rd.path)}
        try:
            row.update(flatten(rd.read_config(), "config."))
            if rd.result_path.exists():
                result = read_json(rd.result_path)
                row["status"] = result.get("status")
                row["kind"] = result.get("kind", "train")
                row["failure_reason"] = result.get("failure_reason")
                for section in ("final", "best", "cost", "evaluations"):
                    row.update(flatten(result.get(section) or {}, f"{section}."))
                row["started_at"] = result.get("started_at")
                row["ended_at"] = result.get("ended_at")
            else:
                row["status"] = "pending"
        except (OSError, ValueError) as exc:
            row["status"] = "corrupt"
            row["failure_reason"] = f"unreadable run directory: {exc}"
        rows.append(row)
    return rows


def rebuild_index(runs_dir: str | Path) -> Path:
    """Rebuild ``index.sqlite`` from the run directories (atomically replaced)."""
    root = Path(runs_dir)
    root.mkdir(parents=True, exist_ok=True)
    rows = collect_rows(root)
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    tmp = root / f".{INDEX_NAME}.tmp"
    tmp.unlink(missing_ok=True)
    con = sqlite3.connect(tmp)
    try:
        cols_sql = ", ".join(f'"{c}"' for c in columns) or '"run_id"'
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
    target = root / INDEX_NAME
    tmp.replace(target)
    return target


def _sql_value(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return value


def load_index(runs_dir: str | Path, rebuild: bool = True) -> list[dict[str, Any]]:
    """Rows of the index as dicts (rebuilt first unless `rebuild=False` and it exists)."""
    root = Path(runs_dir)
    path = root / INDEX_NAME
    if rebuild or not path.exists():
        path = rebuild_index(root)
    con = sqlite3.connect(path)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM runs ORDER BY run_id")]
    finally:
        con.close()


def load_index_frame(runs_dir: str | Path, rebuild: bool = True):  # -> pandas.DataFrame
    """The index as a pandas DataFrame (pandas imported lazily)."""
    import pandas as pd

    return pd.DataFrame(load_index(runs_dir, rebuild=rebuild))
