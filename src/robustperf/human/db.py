"""The study database: labellers, their answers, and the public quiz, committed one answer at a time.

SQLAlchemy Core over SQLite in WAL mode by default (``STUDY/answers.sqlite``); any SQLAlchemy URL
(``postgresql+psycopg://...``) works through ``--db``. Every answer is its own transaction, so killing
the server loses nothing a labeller already saw acknowledged. SQLite runs with ``synchronous=FULL``:
WAL alone survives a killed process, FULL also survives a power cut, and one fsync per click is
cheap next to a human's seconds per image.

Secrets: a labeller's invite token is shown once by `invite` and stored only as its SHA-256; opening
the link starts a session whose random id (again stored hashed, expiring) is what the cookie holds, so
the invite link is never a long-lived cookie. `revoke` clears the token and ends every session. The
CSRF key is a random value kept in the ``meta`` table, so form tokens stay valid across restarts; the
SQLite file holding it is created mode 0600.

Tables and opening (mode 0600, ``PRAGMA quick_check``) live in `schema.py`: a damaged file raises `StudyError` with
the fix instead of a traceback, and nothing is written into it.

Answering rules (what a careful organiser expects):
- an answer is keyed by (labeller, image, version): sending the same answer again is a no-op (clients
  may retry after a dropped connection), sending a different one corrects the labeller's own answer;
- a human labeller answers a batch's clean images only after all its adversarial ones, and cannot
  change an adversarial answer once a clean image of that batch was *served* to them (recorded in
  ``clean_views`` before the bytes leave the server; the clean version would give the answer away): 409;
- submits for one (labeller, image, version) are serialised in the server process and retried on a
  lost insert race, and the reply says what is stored (`Stored`).

The public quiz keeps no server state for a visitor until they answer: the quiz cookie is a random id
signed with the CSRF key, and the visitor's sample is derived from it (`quiz_sample`).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import json
import logging
import random
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from robustperf.human.schema import (
    answers,
    check_integrity,
    clean_views,
    labellers,
    make_engine,
    meta_table,
    metadata,
    private_file,
    quiz_answers,
    quiz_sessions,
    sessions,
    sqlite_path,
)
from robustperf.human.study import CONFIDENCES, IMAGE_ID, VERSIONS, Answer, Study, StudyError

log = logging.getLogger(__name__)

KINDS = ("human", "machine")
SESSION_DAYS = 30
LABEL = re.compile(r"[0-9]{1,4}")  # ASCII digits only (int() also takes " 3", "٣" and "0_1")

class AnswerError(ValueError):
    """An answer was refused; ``status`` is the HTTP status the web app returns."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Stored:
    """What one submit left in the database: "stored", "unchanged" or "updated", and the stored answer."""

    status: str
    label: int
    confidence: str


@dataclass(frozen=True)
class Labeller:
    id: int
    name: str
    kind: str
    batches: tuple[int, ...] | None  # None: every batch

    def has_batch(self, batch: int) -> bool:
        return self.batches is None or batch in self.batches


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


class StudyDB:
    """Everything the web app, the machine labellers and the scoring read or write.

    Args:
        study: the study the answers belong to (answers are validated against it).
        url: SQLAlchemy URL (default: SQLite in the study directory).
    """

    def __init__(self, study: Study, url: str | None = None) -> None:
        self.study = study
        self.url = url or study.default_db_url
        path = sqlite_path(self.url)
        if path is not None:
            private_file(path)
        self.engine = make_engine(self.url)
        try:
            check_integrity(self.engine, self.url)
        except StudyError:
            self.engine.dispose()
            raise
        metadata.create_all(self.engine)
        self._csrf_key = self._meta("csrf_key", lambda: secrets.token_hex(32)).encode()
        self._locks: dict[tuple[int, str, str], list[Any]] = {}  # key -> [lock, holders]; only keys in flight
        self._locks_guard = threading.Lock()
        self._clean_marked: set[tuple[int, int]] = set()  # (labeller, batch) already in clean_views
        # study images whose adv or clean file is missing: named at start, never shown, never required
        self.skipped = frozenset(m.rsplit("/", 1)[1] for m in study.missing_images() if not m.startswith("quiz/"))
        if self.skipped:
            log.warning("%d study images lack a file and are skipped: %s", len(self.skipped), sorted(self.skipped))

    def close(self) -> None:
        self.engine.dispose()

    def _meta(self, key: str, default: Any) -> str:
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(meta_table.c.value).where(meta_table.c.key == key)).first()
            if row is not None:
                return str(row[0])
            value = default()
            try:
                conn.execute(meta_table.insert().values(key=key, value=value))
            except sa.exc.IntegrityError:  # another process created it first
                return self._meta(key, default)
            return str(value)

    # --- labellers -------------------------------------------------------------------------------

    def invite(self, name: str, *, kind: str = "human", batches: list[int] | None = None) -> str:
        """Add a labeller and return their secret token (shown once; only its hash is stored)."""
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r}: use one of {KINDS}")
        if not name or len(name) > 128 or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ValueError(f"labeller name {name!r}: use letters, digits, '-', '_' or '.' (at most 128)")
        if batches is not None:
            bad = [b for b in batches if not 0 <= b < self.study.n_batches]
            if bad:
                raise ValueError(f"batches {bad} do not exist: the study has batches 0..{self.study.n_batches - 1}")
        token = secrets.token_urlsafe(24)
        try:
            with self.engine.begin() as conn:
                conn.execute(labellers.insert().values(
                    name=name, kind=kind, token_sha256=_sha256(token) if kind == "human" else None,
                    batches=None if batches is None else json.dumps(sorted(set(batches))), created_at=_now()))
        except sa.exc.IntegrityError:
            raise ValueError(f"labeller {name!r} already exists in this study; pick another name") from None
        return token

    def machine_labeller(self, name: str) -> Labeller:
        """The machine labeller called `name`, created on first use."""
        found = self.labeller_by_name(name)
        if found is None:
            self.invite(name, kind="machine")
            found = self.labeller_by_name(name)
        assert found is not None
        if found.kind != "machine":
            raise ValueError(f"{name!r} is a human labeller; give the machine labeller another --name")
        return found

    @staticmethod
    def _labeller(row: Any) -> Labeller:
        batches = None if row.batches is None else tuple(json.loads(row.batches))
        return Labeller(id=int(row.id), name=row.name, kind=row.kind, batches=batches)

    def labeller_by_token(self, token: str | None) -> Labeller | None:
        """The labeller whose invite token this is (None when unknown or revoked)."""
        if not token:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(labellers).where(labellers.c.token_sha256 == _sha256(token))).first()
        return None if row is None else self._labeller(row)

    def new_session(self, labeller: Labeller, days: int = SESSION_DAYS) -> str:
        """Start a session for a labeller who opened their link; returns the cookie value (stored hashed)."""
        sid = secrets.token_urlsafe(32)
        expires = (_dt.datetime.now(_dt.timezone.utc) + _dt.timedelta(days=days)).isoformat(timespec="seconds")
        with self.engine.begin() as conn:
            conn.execute(sessions.insert().values(id_sha256=_sha256(sid), labeller_id=labeller.id, expires_at=expires))
        return sid

    def labeller_by_session(self, sid: str | None) -> Labeller | None:
        """The labeller of a live session cookie (None when unknown, expired or revoked)."""
        if not sid or len(sid) > 128:
            return None
        q = sa.select(labellers).join_from(sessions, labellers).where(
            (sessions.c.id_sha256 == _sha256(sid)) & (sessions.c.expires_at > _now()))
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        return None if row is None else self._labeller(row)

    def revoke(self, name: str) -> int:
        """Disable a labeller's link and end their sessions (their answers stay); returns sessions ended."""
        found = self.labeller_by_name(name)
        if found is None:
            raise ValueError(f"no labeller {name!r} in this study; list them with `robustperf human score`")
        with self.engine.begin() as conn:
            conn.execute(labellers.update().where(labellers.c.id == found.id).values(token_sha256=None))
            return int(conn.execute(sessions.delete().where(sessions.c.labeller_id == found.id)).rowcount or 0)

    def labeller_by_name(self, name: str) -> Labeller | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(labellers).where(labellers.c.name == name)).first()
        return None if row is None else self._labeller(row)

    def list_labellers(self) -> list[Labeller]:
        with self.engine.connect() as conn:
            return [self._labeller(r) for r in conn.execute(sa.select(labellers).order_by(labellers.c.id))]

    def csrf_token(self, subject: str) -> str:
        """The form token for one labeller ("labeller:<id>") or quiz session ("quiz:<id>")."""
        return hmac.new(self._csrf_key, subject.encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, subject: str, token: Any) -> bool:
        """Constant-time check of a form token; compared as bytes, so any input gives True or False."""
        if not isinstance(token, str) or not token:
            return False
        given = token.encode("utf-8", "surrogateescape")
        return hmac.compare_digest(self.csrf_token(subject).encode(), given)

    # --- answers ---------------------------------------------------------------------------------

    def _check_label(self, label: Any, confidence: Any) -> int:
        """The class index of an answer, after checking it and its confidence against the study."""
        if confidence not in CONFIDENCES:
            raise AnswerError(f"confidence {confidence!r}: use one of {CONFIDENCES}")
        if isinstance(label, int) and not isinstance(label, bool):
            label_i = label
        elif isinstance(label, str) and LABEL.fullmatch(label):
            label_i = int(label)
        else:
            raise AnswerError(f"class {str(label)[:20]!r} is not a class index (ASCII digits)")
        if not 0 <= label_i < len(self.study.classes):
            raise AnswerError(f"class {label_i} is not one of the study's {len(self.study.classes)} classes")
        return label_i

    def validate(self, labeller: Labeller, image_id: str, version: str, label: Any, confidence: Any) -> tuple[int, str]:
        """Check an answer against the study and the labeller's batches; returns (label, confidence)."""
        if version not in VERSIONS:
            raise AnswerError(f"version {version!r}: use one of {VERSIONS}")
        label_i = self._check_label(label, confidence)
        image = self.study.image(str(image_id)) if IMAGE_ID.fullmatch(str(image_id)) else None
        if image is None or not labeller.has_batch(image.batch):  # one answer for both: ids are not probed
            raise AnswerError("this image is not one of yours", status=403)
        if image.id in self.skipped:
            raise AnswerError("this image's file is missing, so it is skipped; tell the study organiser", status=404)
        return label_i, str(confidence)

    def record_answer(self, labeller: Labeller, image_id: str, version: str, label: Any, confidence: Any) -> str:
        """Validate and commit one answer; returns "stored", "unchanged" or "updated" (see `submit`)."""
        return self.submit(labeller, image_id, version, label, confidence).status

    @contextmanager
    def _serialised(self, key: tuple[int, str, str]) -> Iterator[None]:
        """Hold the lock of one (labeller, image, version); the entry is dropped when nobody waits on it."""
        with self._locks_guard:
            entry = self._locks.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._locks_guard:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._locks[key]

    def submit(self, labeller: Labeller, image_id: str, version: str, label: Any, confidence: Any) -> Stored:
        """Validate and commit one answer; the result says what the database holds afterwards.

        Submits for the same (labeller, image, version) run one at a time in this process; an insert
        that loses a race with another process is retried as an update, so no reply reports a label
        that was discarded.
        """
        label_i, conf = self.validate(labeller, image_id, version, label, confidence)
        with self._serialised((labeller.id, image_id, version)):
            for _ in range(3):
                try:
                    return self._write(labeller, image_id, version, label_i, conf)
                except sa.exc.IntegrityError:  # another process inserted it between our read and write
                    continue
        raise AnswerError("the answer could not be stored (too many concurrent writes); retry", status=503)

    def _write(self, labeller: Labeller, image_id: str, version: str, label: int, conf: str) -> Stored:
        image = self.study.image(image_id)
        assert image is not None
        key = (answers.c.labeller_id == labeller.id) & (answers.c.image_id == image_id) & (answers.c.version == version)
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(answers.c.label, answers.c.confidence).where(key)).first()
            if row is not None and (row.label, row.confidence) == (label, conf):
                return Stored("unchanged", label, conf)
            ordered = labeller.kind == "human"  # the order rules protect what a person has seen
            if ordered and version == "clean" and row is None and not self._adv_done(conn, labeller, image.batch):
                raise AnswerError("label every adversarial image of this batch before the clean ones", status=409)
            if ordered and version == "adv" and row is not None and self._seen_clean(conn, labeller, image.batch):
                raise AnswerError("the clean images of this batch were shown already; adversarial answers are final "
                                  f"(your stored answer is class {row.label})", status=409)
            if row is None:
                conn.execute(answers.insert().values(labeller_id=labeller.id, image_id=image_id, version=version,
                                                     label=label, confidence=conf, answered_at=_now()))
                return Stored("stored", label, conf)
            conn.execute(answers.update().where(key).values(label=label, confidence=conf, answered_at=_now()))
            return Stored("updated", label, conf)

    def mark_clean_served(self, labeller: Labeller, batch: int) -> None:
        """Record that a clean image of `batch` is about to reach this labeller (their adv answers become final)."""
        if (labeller.id, batch) in self._clean_marked:  # one write per labeller and batch, not per page
            return
        try:
            with self.engine.begin() as conn:
                conn.execute(clean_views.insert().values(labeller_id=labeller.id, batch=batch, viewed_at=_now()))
        except sa.exc.IntegrityError:
            pass  # already recorded
        self._clean_marked.add((labeller.id, batch))

    def batch_ids(self, batch: int) -> list[str]:
        """The ids a labeller sees in `batch`, in order: every study image of it whose files exist."""
        return [im.id for im in self.study.batch(batch) if im.id not in self.skipped]

    def _seen_clean(self, conn: Any, labeller: Labeller, batch: int) -> bool:
        viewed = sa.select(sa.func.count()).select_from(clean_views).where(
            (clean_views.c.labeller_id == labeller.id) & (clean_views.c.batch == batch))
        if conn.execute(viewed).scalar():
            return True
        ids = self.batch_ids(batch)
        q = sa.select(sa.func.count()).select_from(answers).where(
            (answers.c.labeller_id == labeller.id) & (answers.c.version == "clean") & answers.c.image_id.in_(ids))
        return bool(conn.execute(q).scalar())

    def _adv_done(self, conn: Any, labeller: Labeller, batch: int) -> bool:
        ids = self.batch_ids(batch)
        q = sa.select(sa.func.count()).select_from(answers).where(
            (answers.c.labeller_id == labeller.id) & (answers.c.version == "adv") & answers.c.image_id.in_(ids))
        return int(conn.execute(q).scalar() or 0) == len(ids)

    def may_see_clean(self, labeller: Labeller, batch: int) -> bool:
        """Clean images of a batch are shown only once all its adversarial images are labelled."""
        with self.engine.connect() as conn:
            return self._adv_done(conn, labeller, batch)

    def answered(self, labeller: Labeller, batch: int | None = None) -> dict[tuple[str, str], tuple[int, str]]:
        """This labeller's own answers: (image_id, version) -> (label, confidence)."""
        q = sa.select(answers.c.image_id, answers.c.version, answers.c.label, answers.c.confidence).where(
            answers.c.labeller_id == labeller.id)
        if batch is not None:
            q = q.where(answers.c.image_id.in_(self.batch_ids(batch)))
        with self.engine.connect() as conn:
            return {(r.image_id, r.version): (int(r.label), r.confidence) for r in conn.execute(q)}

    def next_item(self, labeller: Labeller, batch: int) -> tuple[int, str, str] | None:
        """(position 0..2n-1, image id, version) of the first unanswered item: adversarial first, then clean."""
        done = self.answered(labeller, batch)
        ids = self.batch_ids(batch)
        for pos, (image, version) in enumerate([(i, "adv") for i in ids] + [(i, "clean") for i in ids]):
            if (image, version) not in done:
                return pos, image, version
        return None

    def all_answers(self) -> list[Answer]:
        """Every invited/machine labeller's answers (quiz answers are kept apart: `quiz_results`)."""
        q = sa.select(labellers.c.name, labellers.c.kind, answers.c.image_id, answers.c.version, answers.c.label,
                      answers.c.confidence, answers.c.answered_at).join_from(answers, labellers).order_by(answers.c.id)
        with self.engine.connect() as conn:
            return [Answer(r.name, r.kind, r.image_id, r.version, int(r.label), r.confidence, r.answered_at)
                    for r in conn.execute(q)]

    def count_answers(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(answers)).scalar() or 0)

    # --- public quiz -----------------------------------------------------------------------------

    def new_quiz_session(self) -> str:
        """A signed anonymous quiz id for a cookie; nothing is stored until the visitor answers."""
        sid = secrets.token_urlsafe(18)
        return f"{sid}.{self.csrf_token('quiz-id:' + sid)[:32]}"

    def quiz_sample(self, session_id: str | None, size: int) -> list[str] | None:
        """The quiz-pool ids a signed quiz session shows, derived from its id (None for a forged or empty id)."""
        if not session_id or len(session_id) > 80 or session_id.count(".") != 1:
            return None
        sid, sig = session_id.split(".")
        if not hmac.compare_digest(self.csrf_token("quiz-id:" + sid)[:32].encode(), sig.encode("utf-8", "replace")):
            return None
        pool = [im.id for im in self.study.quiz]
        seed = int(self.csrf_token("quiz-sample:" + sid)[:16], 16)
        return random.Random(seed).sample(pool, min(size, len(pool)))

    def quiz_answered(self, session_id: str) -> dict[str, tuple[int, str]]:
        q = sa.select(quiz_answers.c.image_id, quiz_answers.c.label, quiz_answers.c.confidence).where(
            quiz_answers.c.session_id == session_id)
        with self.engine.connect() as conn:
            return {r.image_id: (int(r.label), r.confidence) for r in conn.execute(q)}

    def record_quiz_answer(self, session_id: str, size: int, image_id: str, label: Any, confidence: Any) -> str:
        sample = self.quiz_sample(session_id, size)
        if sample is None:
            raise AnswerError("unknown quiz session; open /quiz to start one", status=403)
        if image_id not in sample:
            raise AnswerError("this image is not in your quiz", status=403)
        label_i = self._check_label(label, confidence)
        with self.engine.begin() as conn:  # the session row appears with its first answer, never on a visit
            exists = conn.execute(sa.select(quiz_sessions.c.id).where(quiz_sessions.c.id == session_id)).first()
            if exists is None:
                conn.execute(quiz_sessions.insert().values(id=session_id, sample=json.dumps(sample), created_at=_now()))
        try:
            with self.engine.begin() as conn:
                conn.execute(quiz_answers.insert().values(session_id=session_id, image_id=image_id, label=label_i,
                                                          confidence=confidence, answered_at=_now()))
        except sa.exc.IntegrityError:
            return "unchanged"  # the quiz shows the answer after one try: the first answer counts
        return "stored"

    def quiz_results(self) -> list[dict[str, Any]]:
        q = sa.select(quiz_answers).order_by(quiz_answers.c.id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]


__all__ = ["KINDS", "Answer", "AnswerError", "Labeller", "Stored", "StudyDB", "check_integrity",
           "make_engine", "quiz_sessions"]
