"""The answer database: per-answer commits that survive kill -9, idempotent retries, ordering rules, hashed tokens."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from robustperf.human.db import AnswerError, StudyDB


def test_sqlite_runs_in_wal_mode_and_tokens_are_stored_hashed(study) -> None:
    db = StudyDB(study)
    token = db.invite("alice")
    with db.engine.connect() as conn:
        assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
    db.close()
    raw = b"".join(p.read_bytes() for p in study.root.glob("answers.sqlite*"))
    assert token.encode() not in raw  # only the SHA-256 is kept
    assert StudyDB(study).labeller_by_token(token).name == "alice"
    assert StudyDB(study).labeller_by_token(token + "x") is None


def test_answer_semantics(study) -> None:
    db = StudyDB(study)
    db.invite("alice")
    alice = db.labeller_by_name("alice")
    batch0 = [im.id for im in study.batch(0)]
    assert db.record_answer(alice, batch0[0], "adv", 1, "low") == "stored"
    assert db.record_answer(alice, batch0[0], "adv", 1, "low") == "unchanged"  # a retried request
    assert db.record_answer(alice, batch0[0], "adv", 2, "high") == "updated"  # her own correction
    with pytest.raises(AnswerError, match="before the clean") as err:
        db.record_answer(alice, batch0[0], "clean", 1, "low")
    assert err.value.status == 409
    for image in batch0[1:]:
        db.record_answer(alice, image, "adv", 0, "high")
    assert db.next_item(alice, 0) == (4, batch0[0], "clean")  # adversarial first, then clean: 4 of 8 done
    db.record_answer(alice, batch0[0], "clean", 0, "high")
    with pytest.raises(AnswerError, match="final") as err:
        db.record_answer(alice, batch0[1], "adv", 2, "low")  # she has seen a clean image of this batch
    assert err.value.status == 409
    assert db.count_answers() == 5
    with pytest.raises(ValueError, match="already exists"):
        db.invite("alice")
    with pytest.raises(ValueError, match="do not exist"):
        db.invite("bob", batches=[7])


def test_machine_labellers_skip_the_viewing_order(study) -> None:
    db = StudyDB(study)
    gpt = db.machine_labeller("gpt")
    assert db.record_answer(gpt, study.images[0].id, "clean", 0, "low") == "stored"
    assert db.machine_labeller("gpt") == gpt
    db.invite("carol")
    with pytest.raises(ValueError, match="human labeller"):
        db.machine_labeller("carol")


KILL_SCRIPT = """
import os, signal, sys
from robustperf.human.db import StudyDB
from robustperf.human.study import load_study
study = load_study(sys.argv[1])
db = StudyDB(study)
alice = db.labeller_by_name("alice")
for image in study.batch(0):
    db.record_answer(alice, image.id, "adv", 1, "high")
print("committed", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_answers_survive_kill_9(study) -> None:
    db = StudyDB(study)
    db.invite("alice")
    db.close()
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(study.root)], env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert "committed" in proc.stdout
    answers = StudyDB(study).all_answers()
    assert sorted(a.image_id for a in answers) == sorted(im.id for im in study.batch(0))
