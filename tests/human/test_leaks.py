"""Issue 26's leaks, each as a test that failed on the code before the fix: the quiz as an oracle, ids that
are evaluation indices, adversarial answers changed after the clean page, raced submits misreported."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from tests.human.conftest import CLASSES, write_export

from robustperf.human.app import build_app
from robustperf.human.db import StudyDB
from robustperf.human.study import Study, StudyError, create_study

BASE = "http://127.0.0.1:8000"
FIELD = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)"')


def run_quiz(app, n_sessions: int) -> tuple[set[str], str]:
    """Play the quiz to the end in `n_sessions` fresh browsers: (image ids shown, every page's text)."""
    shown, pages = set(), []
    for _ in range(n_sessions):
        visitor = TestClient(app, base_url=BASE)
        while True:
            page = visitor.get("/quiz")
            pages.append(page.text)
            fields = dict(FIELD.findall(page.text))
            if "image_id" not in fields:
                break
            shown.add(fields["image_id"])
            feedback = visitor.post("/quiz/answer", data=fields | {"label": "0", "confidence": "low"})
            pages.append(feedback.text)
    return shown, "\n".join(pages)


def test_quiz_is_refused_on_a_study_without_its_own_pool_or_never_shows_study_images(study: Study) -> None:
    db = StudyDB(study)
    try:
        app = build_app(study, db, quiz=True, quiz_size=5)
    except StudyError as exc:
        assert "quiz pool" in str(exc)
        return
    shown, _ = run_quiz(app, 10)  # before the fix: every quiz item was a study image, truth and prediction shown
    assert not shown & {im.id for im in study.images}


def test_quiz_sessions_reveal_no_study_label_or_prediction(tmp_path: Path) -> None:
    export = write_export(tmp_path / "export.npz", n_fooled=16, n_evaluated=44)
    study = create_study(export, tmp_path / "study", CLASSES, batch_size=4, quiz_pool=4)
    db = StudyDB(study)
    app = build_app(study, db, quiz=True, quiz_size=4)
    shown, text = run_quiz(app, 8)
    study_ids = {im.id for im in study.images}
    assert shown == {im.id for im in study.quiz} and not shown & study_ids
    assert not any(i in text for i in study_ids)
    assert study.n_evaluated == 40 and len(study.images) == 12  # the pool left the evaluated set
    # a quiz cookie opens no study image, adversarial or clean
    visitor = TestClient(app, base_url=BASE)
    visitor.get("/quiz")
    for im in study.images[:4]:
        for version in ("adv", "clean"):
            assert visitor.get(f"/image/{version}/{im.id}").status_code == 401
            assert visitor.get(f"/quiz/image/{version}/{im.id}").status_code == 403


def test_image_ids_carry_no_index(study: Study) -> None:
    for im in study.images:
        assert re.fullmatch(r"x[0-9a-f]{20}", im.id), im.id
    files = {p.stem for p in (study.root / "images" / "adv").glob("*.png")}
    assert files == {im.id for im in study.images}  # the file names are the opaque ids too


def test_unknown_and_foreign_images_are_refused_alike_before_and_after_sign_in(study: Study) -> None:
    db = StudyDB(study)
    token = db.invite("bob", batches=[1])
    app = build_app(study, db)
    anon = TestClient(app, base_url=BASE)
    foreign, unknown = study.batch(0)[0].id, "x" + "0" * 20
    assert {anon.get(f"/image/adv/{i}").status_code for i in (foreign, unknown, "img00025")} == {401}
    bob = TestClient(app, base_url=BASE)
    bob.get(f"/l/{token}")
    replies = [bob.get(f"/image/adv/{i}") for i in (foreign, unknown, "img00025")]
    assert {(r.status_code, r.text) for r in replies} == {(403, "this image is not one of yours")}


def answer_batch(client: TestClient, batch: int, label: str = "0") -> dict[str, str]:
    """Answer every adversarial item of `batch`; returns the first clean item's form."""
    while True:
        fields = dict(FIELD.findall(client.get(f"/batch/{batch}").text))
        if fields["version"] == "clean":
            return fields
        client.post("/answer", data=fields | {"label": label, "confidence": "low"})


def test_adversarial_answer_after_the_clean_page_is_409(study: Study) -> None:
    db = StudyDB(study)
    token = db.invite("alice")
    alice = TestClient(build_app(study, db), base_url=BASE)
    alice.get(f"/l/{token}")
    clean_form = answer_batch(alice, 0, label="0")  # the clean page of batch 0 is now shown
    first = study.batch(0)[0].id
    r = alice.post("/answer", data=clean_form | {"image_id": first, "version": "adv", "label": "2",
                                                 "confidence": "high"}, headers={"accept": "application/json"})
    assert r.status_code == 409 and "final" in r.json()["error"]
    assert {(a.image_id, a.label) for a in db.all_answers() if a.image_id == first} == {(first, 0)}


def test_adversarial_answer_after_the_clean_image_was_fetched_is_409(study: Study) -> None:
    db = StudyDB(study)
    token = db.invite("alice")
    alice = TestClient(build_app(study, db), base_url=BASE)
    alice.get(f"/l/{token}")
    for im in study.batch(0):
        db.record_answer(db.labeller_by_name("alice"), im.id, "adv", 0, "low")
    assert alice.get(f"/image/clean/{study.batch(0)[1].id}").status_code == 200  # fetched without the page
    with pytest.raises(Exception, match="final"):
        db.record_answer(db.labeller_by_name("alice"), study.batch(0)[0].id, "adv", 1, "low")


def test_concurrent_submits_report_what_was_stored(study: Study) -> None:
    """Six writers (separate engines, as separate server processes would be) send six different answers to the
    same item at once; a reply of "unchanged" would claim a label that was discarded."""
    dbs = [StudyDB(study) for _ in range(6)]
    dbs[0].invite("alice")
    alice = dbs[0].labeller_by_name("alice")
    choices = [(label, conf) for label in range(len(CLASSES)) for conf in ("low", "high")]
    replies: list[tuple[str, int, str]] = []
    for im in study.images:
        barrier = threading.Barrier(len(dbs))

        def send(db: StudyDB, label: int, conf: str, image_id: str = im.id, gate: threading.Barrier = barrier) -> None:
            gate.wait()
            replies.append((db.record_answer(alice, image_id, "adv", label, conf), label, conf))

        threads = [threading.Thread(target=send, args=(db, *choice)) for db, choice in zip(dbs, choices, strict=True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    statuses = [status for status, _, _ in replies]
    assert "unchanged" not in statuses  # every writer sent a different answer: none was already stored
    assert statuses.count("stored") == len(study.images)


def test_submits_in_one_server_are_serialised_per_item(study: Study) -> None:
    db = StudyDB(study)
    db.invite("bob")
    bob = db.labeller_by_name("bob")
    image_id = study.images[0].id
    barrier = threading.Barrier(6)
    results = []

    def send(label: int, conf: str) -> None:
        barrier.wait()
        results.append(db.submit(bob, image_id, "adv", label, conf))

    threads = [threading.Thread(target=send, args=(label, conf)) for label in range(3) for conf in ("low", "high")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status for r in results) == ["stored"] + ["updated"] * 5
    stored = [(a.label, a.confidence) for a in db.all_answers()]
    assert len(stored) == 1 and stored[0] in {(r.label, r.confidence) for r in results}
    assert db._locks == {}  # no lock is kept for an item once its submits are done
