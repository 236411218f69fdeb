"""Hostile traffic and damaged studies: every case a 4xx with the security headers, or a one-line error."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient
from typer.testing import CliRunner

from robustperf.cli.app import app as cli
from robustperf.human.app import LABELLER_COOKIE, build_app
from robustperf.human.db import StudyDB, quiz_sessions
from robustperf.human.study import Study, StudyError

BASE = "http://127.0.0.1:8000"
FIELD = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)"')
runner = CliRunner()


@pytest.fixture
def lab(quiz_study: Study):
    db = StudyDB(quiz_study)
    token = db.invite("alice")
    app = build_app(quiz_study, db, quiz=True, quiz_size=3)
    alice = TestClient(app, base_url=BASE)
    alice.get(f"/l/{token}")
    fields = dict(FIELD.findall(alice.get("/batch/0").text))
    return quiz_study, db, token, app, alice, fields


def has_headers(r) -> bool:
    return "frame-ancestors 'none'" in r.headers.get("content-security-policy", "") and \
        r.headers.get("x-content-type-options") == "nosniff"


def test_oversized_bodies_are_413_before_parsing(lab) -> None:
    _, db, _, app, alice, fields = lab
    anon = TestClient(app, base_url=BASE)
    big = b"a=" + b"x" * 1_000_000
    for client, path in ((anon, "/quiz/answer"), (anon, "/answer"), (alice, "/answer")):
        r = client.post(path, content=big, headers={"content-type": "application/x-www-form-urlencoded"})
        assert r.status_code == 413 and has_headers(r)

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(100):
            yield b"x" * 10_000

    r = alice.post("/answer", content=chunks(), headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413 and has_headers(r)
    assert db.count_answers() == 0


def test_cookieless_visits_create_no_rows(lab) -> None:
    _, db, _, app, _, _ = lab
    for _ in range(50):
        r = TestClient(app, base_url=BASE).get("/quiz", follow_redirects=False)
        assert r.status_code == 303
    with db.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(quiz_sessions)).scalar() == 0


@pytest.mark.parametrize("label", [" 1", "1 ", "\u0661", "0_1", "+1", "1\n", "01x", "9" * 30])
def test_labels_are_ascii_digits_in_range(lab, label: str) -> None:
    _, db, _, _, alice, fields = lab
    r = alice.post("/answer", data=fields | {"label": label, "confidence": "low"})
    assert r.status_code == 400 and has_headers(r)
    assert db.count_answers() == 0


@pytest.mark.parametrize("token", ["%C3%A9" * 64, "%FF%FE", "x" * 5000, "%00"])
def test_odd_form_tokens_are_403_not_500(lab, token: str) -> None:
    _, db, _, _, alice, fields = lab
    body = "&".join(f"{k}={v}" for k, v in (fields | {"label": "1", "confidence": "low"}).items() if k != "csrf_token")
    r = alice.post("/answer", content=f"{body}&csrf_token={token}",
                   headers={"content-type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert r.status_code == 403 and has_headers(r)
    assert db.count_answers() == 0


def test_a_server_error_still_carries_the_security_headers(lab, monkeypatch) -> None:
    _, db, _, _, alice, _ = lab
    monkeypatch.setattr(db, "answered", lambda *a, **k: 1 / 0)
    r = alice.get("/")
    assert r.status_code == 500 and has_headers(r) and "ZeroDivision" not in r.text


@pytest.mark.parametrize("headers", [{"origin": "null"}, {"origin": "http://evil.example"},
                                     {"origin": "http://evil.example", "host": "evil.example"},
                                     {"sec-fetch-site": "same-site"}, {"sec-fetch-site": "cross-site"}])  # fmt: skip
def test_origin_is_checked_against_the_public_origin(lab, headers: dict[str, str]) -> None:
    _, db, _, _, alice, fields = lab
    data = fields | {"label": "1", "confidence": "low"}
    r = alice.post("/answer", data=data, headers=headers, follow_redirects=False)
    assert r.status_code == 403 and has_headers(r)
    assert db.count_answers() == 0
    ok = alice.post("/answer", data=data, headers={"origin": BASE, "sec-fetch-site": "same-origin"},
                    follow_redirects=False)  # fmt: skip
    assert ok.status_code == 303 and db.count_answers() == 1


def test_session_cookie_is_not_the_token_and_revoke_ends_link_and_sessions(lab, quiz_study: Study) -> None:
    _, db, token, app, alice, _ = lab
    cookie = alice.cookies.get(LABELLER_COOKIE)
    assert cookie and cookie != token and token not in cookie
    assert alice.get("/batch/0").status_code == 200
    r = runner.invoke(cli, ["human", "revoke", str(quiz_study.root), "alice"])
    assert r.exit_code == 0 and "revoked" in r.output
    assert alice.get("/batch/0").status_code == 403
    assert TestClient(app, base_url=BASE).get(f"/l/{token}").status_code == 403
    r = runner.invoke(cli, ["human", "revoke", str(quiz_study.root), "nobody"])
    assert r.exit_code == 2 and "no labeller 'nobody'" in r.output


def test_answer_database_is_private(study: Study) -> None:
    StudyDB(study).invite("alice")
    mode = stat.S_IMODE((study.root / "answers.sqlite").stat().st_mode)
    assert mode == 0o600


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_database_is_refused_with_one_line(study: Study, damage: str) -> None:
    db = StudyDB(study)
    for k in range(40):
        db.invite(f"l{k}")
    db.close()
    path = study.root / "answers.sqlite"
    for side in ("-wal", "-shm"):
        Path(str(path) + side).unlink(missing_ok=True)
    data = path.read_bytes()
    path.write_bytes(b"not a database at all" * 200 if damage == "garbage" else data[: len(data) // 2])
    with pytest.raises(StudyError, match="restore it from a backup"):
        StudyDB(study)
    r = runner.invoke(cli, ["human", "serve", str(study.root), "--port", "1"])
    assert r.exit_code == 2 and "answers.sqlite" in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) <= 3  # one message (rich may wrap it)


def test_missing_images_are_named_and_404(study: Study) -> None:
    token = StudyDB(study).invite("alice")
    gone = study.images[0]  # the first image: the app used to crash at start reading its size
    (study.root / "images" / "adv" / f"{gone.id}.png").unlink()
    assert study.missing_images() == [f"adv/{gone.id}"]
    db = StudyDB(study)  # what `serve` opens: it names the missing file and skips the image
    assert db.skipped == {gone.id}
    alice = TestClient(build_app(study, db), base_url=BASE)
    alice.get(f"/l/{token}")
    r = alice.get(f"/image/adv/{gone.id}")
    assert r.status_code == 404 and has_headers(r) and "missing" in r.text
    assert alice.get(f"/image/adv/{study.images[1].id}").status_code == 200
    # the batch is labelled without it: never shown, never required before the clean images
    shown = []
    while True:
        fields = dict(FIELD.findall(alice.get(f"/batch/{gone.batch}").text))
        if "image_id" not in fields:
            break
        shown.append((fields["image_id"], fields["version"]))
        assert alice.post("/answer", data=fields | {"label": "1", "confidence": "low"}).status_code == 200
    others = [im.id for im in study.batch(gone.batch) if im.id != gone.id]
    assert shown == [(i, "adv") for i in others] + [(i, "clean") for i in others]
    r = alice.post("/answer", data=fields | {"image_id": gone.id, "version": "adv", "label": "1", "confidence": "low",
                                             "csrf_token": db.csrf_token(f"labeller:{db.labeller_by_name('alice').id}")})
    assert r.status_code == 404 and "missing" in r.text


def test_score_writes_nothing_when_a_step_fails(study: Study, monkeypatch) -> None:
    db = StudyDB(study)
    db.invite("alice")
    alice = db.labeller_by_name("alice")
    for im in study.images:
        db.record_answer(alice, im.id, "adv", im.label, "high")

    def broken(*args, **kwargs):
        raise OSError("disk full while drawing")

    monkeypatch.setattr("robustperf.human.report.render_study_report", broken)
    r = runner.invoke(cli, ["human", "score", str(study.root)])
    assert r.exit_code == 2 and "disk full" in r.output
    assert not (study.root / "score.json").exists() and not (study.root / "report.html").exists()


def test_serve_refuses_a_quiz_without_its_own_pool(study: Study) -> None:
    r = runner.invoke(cli, ["human", "serve", str(study.root), "--quiz", "--port", "1"])
    assert r.exit_code == 2 and "--quiz-pool" in " ".join(r.output.split())
