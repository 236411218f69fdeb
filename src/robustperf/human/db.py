"""The study database: labellers, their answers, and the public quiz, committed one answer at a time.

SQLAlchemy Core over SQLite in WAL mode by default (``STUDY/answers.sqlite``); any SQLAlchemy URL
(``postgresql+psycopg://...``) works through ``--db``. Every answer is its own transaction, so killing
the server loses nothing a labeller already saw acknowledged. SQLite runs with ``synchronous=FULL``:
WAL alone survives a killed process, FULL also survives a power cut, and one fsync per click is
cheap next to a human's seconds per image.

Secrets: a labeller's token is shown once by `invite` and stored only as its SHA-256; the CSRF key is
a random value kept in the ``meta`` table, so tokens stay valid across restarts.

Answering rules (what a careful organiser expects):
- an answer is keyed by (labeller, image, version): sending the same answer again is a no-op (clients
  may retry after a dropped connection), sending a different one corrects the labeller's own answer;
- a human labeller answers a batch's clean images only after all its adversarial ones, and cannot
  change an adversarial answer once they have seen a clean image of that batch (the clean version
  would give the answer away).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import json
import logging
import secrets
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from robustperf.human.study import CONFIDENCES, VERSIONS, Answer, Study

log = logging.getLogger(__name__)

KINDS = ("human", "machine")

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


class AnswerError(ValueError):
    """An answer was refused; ``status`` is the HTTP status the web app returns."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


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
    return hashlib.sha256(token.encode()).hexdigest()


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


class StudyDB:
    """Everything the web app, the machine labellers and the scoring read or write.

    Args:
        study: the study the answers belong to (answers are validated against it).
        url: SQLAlchemy URL (default: SQLite in the study directory).
    """

    def __init__(self, study: Study, url: str | None = None) -> None:
        self.study = study
        self.url = url or study.default_db_url
        self.engine = make_engine(self.url)
        metadata.create_all(self.engine)
        self._csrf_key = self._meta("csrf_key", lambda: secrets.token_hex(32)).encode()

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
        if not token:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(labellers).where(labellers.c.token_sha256 == _sha256(token))).first()
        return None if row is None else self._labeller(row)

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

    def check_csrf(self, subject: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(subject), str(token))

    # --- answers ---------------------------------------------------------------------------------

    def _check_label(self, label: Any, confidence: Any) -> int:
        """The class index of an answer, after checking it and its confidence against the study."""
        if confidence not in CONFIDENCES:
            raise AnswerError(f"confidence {confidence!r}: use one of {CONFIDENCES}")
        try:
            label_i = int(label)
        except (TypeError, ValueError):
            raise AnswerError(f"class {label!r} is not a class index") from None
        if not 0 <= label_i < len(self.study.classes):
            raise AnswerError(f"class {label_i} is not one of the study's {len(self.study.classes)} classes")
        return label_i

    def validate(self, labeller: Labeller, image_id: str, version: str, label: Any, confidence: Any) -> tuple[int, str]:
        """Check an answer against the study and the labeller's batches; returns (label, confidence)."""
        if version not in VERSIONS:
            raise AnswerError(f"version {version!r}: use one of {VERSIONS}")
        label_i = self._check_label(label, confidence)
        image = self.study.image(str(image_id))
        if image is None:
            raise AnswerError(f"image {image_id!r} is not in this study", status=404)
        if not labeller.has_batch(image.batch):
            raise AnswerError(f"image {image_id} is not in your batches", status=403)
        return label_i, str(confidence)

    def record_answer(self, labeller: Labeller, image_id: str, version: str, label: Any, confidence: Any) -> str:
        """Validate and commit one answer; returns "stored", "unchanged" or "updated"."""
        label_i, conf = self.validate(labeller, image_id, version, label, confidence)
        image = self.study.image(image_id)
        assert image is not None
        key = (answers.c.labeller_id == labeller.id) & (answers.c.image_id == image_id) & (answers.c.version == version)
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(answers.c.label, answers.c.confidence).where(key)).first()
            if row is not None and (row.label, row.confidence) == (label_i, conf):
                return "unchanged"
            ordered = labeller.kind == "human"  # the order rules protect what a person has seen
            if ordered and version == "clean" and row is None and not self._adv_done(conn, labeller, image.batch):
                raise AnswerError("label every adversarial image of this batch before the clean ones", status=409)
            if ordered and version == "adv" and row is not None and self._seen_clean(conn, labeller, image.batch):
                raise AnswerError("the clean images of this batch were shown already; adversarial answers are final",
                                  status=409)
            if row is None:
                try:
                    conn.execute(answers.insert().values(labeller_id=labeller.id, image_id=image_id, version=version,
                                                         label=label_i, confidence=conf, answered_at=_now()))
                except sa.exc.IntegrityError:  # the same answer raced in from a retry
                    return "unchanged"
                return "stored"
            conn.execute(answers.update().where(key).values(label=label_i, confidence=conf, answered_at=_now()))
            return "updated"

    def _seen_clean(self, conn: Any, labeller: Labeller, batch: int) -> bool:
        ids = [im.id for im in self.study.batch(batch)]
        q = sa.select(sa.func.count()).select_from(answers).where(
            (answers.c.labeller_id == labeller.id) & (answers.c.version == "clean") & answers.c.image_id.in_(ids))
        return bool(conn.execute(q).scalar())

    def _adv_done(self, conn: Any, labeller: Labeller, batch: int) -> bool:
        ids = [im.id for im in self.study.batch(batch)]
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
            q = q.where(answers.c.image_id.in_([im.id for im in self.study.batch(batch)]))
        with self.engine.connect() as conn:
            return {(r.image_id, r.version): (int(r.label), r.confidence) for r in conn.execute(q)}

    def next_item(self, labeller: Labeller, batch: int) -> tuple[int, str, str] | None:
        """(position 0..2n-1, image id, version) of the first unanswered item: adversarial first, then clean."""
        done = self.answered(labeller, batch)
        for pos, (image, version) in enumerate(batch_items(self.study, batch)):
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

    def new_quiz_session(self, size: int, rng: secrets.SystemRandom | None = None) -> str:
        """Start an anonymous quiz session over a random sample of `size` images; returns its id."""
        rng = rng or secrets.SystemRandom()
        ids = [im.id for im in self.study.images]
        sample = rng.sample(ids, min(size, len(ids)))
        sid = secrets.token_urlsafe(24)
        with self.engine.begin() as conn:
            conn.execute(quiz_sessions.insert().values(id=sid, sample=json.dumps(sample), created_at=_now()))
        return sid

    def quiz_sample(self, session_id: str | None) -> list[str] | None:
        if not session_id:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(quiz_sessions.c.sample).where(quiz_sessions.c.id == session_id)).first()
        return None if row is None else list(json.loads(row[0]))

    def quiz_answered(self, session_id: str) -> dict[str, tuple[int, str]]:
        q = sa.select(quiz_answers.c.image_id, quiz_answers.c.label, quiz_answers.c.confidence).where(
            quiz_answers.c.session_id == session_id)
        with self.engine.connect() as conn:
            return {r.image_id: (int(r.label), r.confidence) for r in conn.execute(q)}

    def record_quiz_answer(self, session_id: str, image_id: str, label: Any, confidence: Any) -> str:
        sample = self.quiz_sample(session_id)
        if sample is None:
            raise AnswerError("unknown quiz session; open /quiz to start one", status=403)
        if image_id not in sample:
            raise AnswerError(f"image {image_id!r} is not in your quiz", status=403)
        label_i = self._check_label(label, confidence)
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


def batch_items(study: Study, batch: int) -> list[tuple[str, str]]:
    """The items of a batch page in the order shown: every adversarial image, then every clean one."""
    ids = [im.id for im in study.batch(batch)]
    return [(i, "adv") for i in ids] + [(i, "clean") for i in ids]


__all__ = ["KINDS", "Answer", "AnswerError", "Labeller", "StudyDB", "batch_items", "make_engine"]
