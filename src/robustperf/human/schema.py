"""The study database's tables and how a database is opened: SQLite pragmas, mode 0600, integrity check.

Kept apart from `db.py` (what the app does with the data) so the layout can be read in one place.
SQLite runs in WAL mode with ``synchronous=FULL`` and a busy timeout (see `db.py` for why); the file
holds the CSRF key and every answer, so it is created mode 0600; a database that fails ``PRAGMA
quick_check`` or cannot be read at all raises `StudyError` with the fix before anything is written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from robustperf.human.study import StudyError

metadata = sa.MetaData()
meta_table = sa.Table("meta", metadata, sa.Column("key", sa.String(64), primary_key=True),
                      sa.Column("value", sa.Text, nullable=False))
labellers = sa.Table(
    "labellers", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("token_sha256", sa.String(64), unique=True),
    sa.Column("batches", sa.Text),  # JSON list of batch numbers; NULL = every batch
    sa.Column("created_at", sa.String(32), nullable=False),
)  # fmt: skip
answers = sa.Table(
    "answers", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("labeller_id", sa.Integer, sa.ForeignKey("labellers.id"), nullable=False),
    sa.Column("image_id", sa.String(32), nullable=False),
    sa.Column("version", sa.String(8), nullable=False),
    sa.Column("label", sa.Integer, nullable=False),
    sa.Column("confidence", sa.String(8), nullable=False),
    sa.Column("answered_at", sa.String(32), nullable=False),
    sa.UniqueConstraint("labeller_id", "image_id", "version", name="one_answer_per_item"),
)  # fmt: skip
quiz_sessions = sa.Table(
    "quiz_sessions", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("sample", sa.Text, nullable=False),  # JSON list of image ids
    sa.Column("created_at", sa.String(32), nullable=False),
)  # fmt: skip
sessions = sa.Table(
    "sessions", metadata,
    sa.Column("id_sha256", sa.String(64), primary_key=True),
    sa.Column("labeller_id", sa.Integer, sa.ForeignKey("labellers.id"), nullable=False),
    sa.Column("expires_at", sa.String(32), nullable=False),
)  # fmt: skip
clean_views = sa.Table(
    "clean_views", metadata,
    sa.Column("labeller_id", sa.Integer, sa.ForeignKey("labellers.id"), primary_key=True),
    sa.Column("batch", sa.Integer, primary_key=True),
    sa.Column("viewed_at", sa.String(32), nullable=False),
)  # fmt: skip
quiz_answers = sa.Table(
    "quiz_answers", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("session_id", sa.String(64), sa.ForeignKey("quiz_sessions.id"), nullable=False),
    sa.Column("image_id", sa.String(32), nullable=False),
    sa.Column("label", sa.Integer, nullable=False),
    sa.Column("confidence", sa.String(8), nullable=False),
    sa.Column("answered_at", sa.String(32), nullable=False),
    sa.UniqueConstraint("session_id", "image_id", name="one_quiz_answer_per_item"),
)  # fmt: skip


def sqlite_path(url: str) -> Path | None:
    """The file of a file-backed SQLite URL, else None."""
    if not url.startswith("sqlite"):
        return None
    path = sa.engine.make_url(url).database
    return None if not path or path == ":memory:" else Path(path)


def private_file(path: Path) -> None:
    """Create `path` mode 0600 (it will hold the CSRF key and every answer) and tighten it if it exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if p.exists():
            os.chmod(p, 0o600)


def check_integrity(engine: Engine, url: str) -> None:
    """Raise `StudyError` (one line, with the fix) when the database cannot be read or fails quick_check."""
    where = sqlite_path(url) or url
    fix = ("restore it from a backup, or move it aside and re-invite (the answers in it are lost); "
           "`sqlite3 FILE .recover` may save some")
    try:
        with engine.connect() as conn:
            if url.startswith("sqlite"):
                rows = [str(r[0]) for r in conn.execute(sa.text("PRAGMA quick_check"))]
                if rows != ["ok"]:
                    raise StudyError(f"the answer database {where} is damaged ({rows[0][:80]}): {fix}")
            else:
                conn.execute(sa.text("SELECT 1"))
    except sa.exc.DatabaseError as exc:
        raise StudyError(f"the answer database {where} cannot be read ({str(exc.orig)[:80]}): {fix}") from None


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL, FULL sync, a busy timeout and foreign keys on every connection."""
    is_sqlite = url.startswith("sqlite")
    engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False} if is_sqlite else {})
    if is_sqlite:

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

    return engine


__all__ = ["answers", "check_integrity", "clean_views", "labellers", "make_engine", "meta_table", "metadata",
           "private_file", "quiz_answers", "quiz_sessions", "sessions", "sqlite_path"]
