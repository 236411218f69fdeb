"""The labelling app over Starlette's in-process client: the flow, resume, security refusals, the public quiz."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from robustperf.human.app import LABELLER_COOKIE, build_app, is_loopback
from robustperf.human.db import StudyDB
from robustperf.human.scoring import quiz_summary

BASE = "http://127.0.0.1:8000"


@pytest.fixture
def setup(quiz_study):
    study = quiz_study
    db = StudyDB(study)
    tokens = {"alice": db.invite("alice"), "bob": db.invite("bob", batches=[1])}
    app = build_app(study, db, quiz=True, quiz_size=3)
    return study, db, tokens, app


def client(app, token: str | None = None) -> TestClient:
    c = TestClient(app, base_url=BASE)
    if token is not None:
        assert c.get(f"/l/{token}").status_code == 200  # 303 to / then the home page
    return c


def form(page: str) -> dict[str, str]:
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', page))
    fields["progress"] = re.search(r'id="progress">([^<]*)<', page).group(1)
    return fields


def answer(c: TestClient, page_fields: dict[str, str], label: int | str = 0, confidence: str = "high", **over):
    data = {k: v for k, v in page_fields.items() if k != "progress"} | {"label": label, "confidence": confidence}
    return c.post("/answer", data=data | over, follow_redirects=False)


def test_labelling_flow_progress_resume_and_order(setup) -> None:
    study, db, tokens, app = setup
    c = client(app, tokens["alice"])
    page = c.get("/batch/0")
    assert "Instructions" in page.text and page.text.count('type="radio"') == 3
    f = form(page.text)
    assert f["progress"] == "1 / 4" and f["version"] == "adv"
    assert c.get(f"/image/adv/{f['image_id']}").headers["content-type"] == "image/png"
    assert c.get(f"/image/clean/{f['image_id']}").status_code == 403  # not before the batch's adversarial images
    r = answer(c, f, label=2, confidence="low")
    assert r.status_code == 303 and r.headers["location"] == "/batch/0"
    # a fresh browser with the same link resumes at the second image
    c2 = client(app, tokens["alice"])
    f2 = form(c2.get("/batch/0").text)
    assert f2["progress"] == "2 / 4" and f2["image_id"] != f["image_id"]
    for _ in range(3):
        f2 = form(c2.get("/batch/0").text)
        answer(c2, f2)
    f3 = form(c2.get("/batch/0").text)
    assert (f3["version"], f3["progress"], f3["image_id"]) == ("clean", "1 / 4", f["image_id"])
    assert c2.get(f"/image/clean/{f['image_id']}").status_code == 200
    r = c2.post("/answer", data={k: v for k, v in f3.items() if k != "progress"} | {"label": 0, "confidence": "low"},
                headers={"accept": "application/json"})  # fmt: skip
    assert r.json() == {"status": "stored", "label": 0, "confidence": "low"}
    assert db.count_answers() == 5
    assert "2 / 4" in c2.get("/batch/0").text


def test_security_headers(setup) -> None:
    _, _, tokens, app = setup
    r = client(app, tokens["alice"]).get("/batch/0")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["referrer-policy"] == "same-origin"
    cookie = client(app).get(f"/l/{tokens['alice']}", follow_redirects=False).headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie  # plain http on loopback
    tls = TestClient(app, base_url="https://lab.example").get(f"/l/{tokens['alice']}", follow_redirects=False)
    assert "secure" in tls.headers["set-cookie"].lower()


def test_missing_or_wrong_token_is_refused(setup) -> None:
    study, db, tokens, app = setup
    anon = TestClient(app, base_url=BASE)
    assert anon.get("/batch/0").status_code == 401
    assert anon.get(f"/image/adv/{study.images[0].id}").status_code == 401
    assert anon.get("/l/not-a-token").status_code == 403
    forged = TestClient(app, base_url=BASE, cookies={LABELLER_COOKIE: tokens["alice"] + "x"})
    assert forged.get("/batch/0").status_code == 403
    data = {"image_id": study.images[0].id, "version": "adv", "label": 0, "confidence": "high", "csrf_token": "x"}
    assert anon.post("/answer", data=data).status_code == 401
    assert forged.post("/answer", data=data).status_code == 403
    assert db.count_answers() == 0


def test_another_labellers_batch_and_answers_are_out_of_reach(setup) -> None:
    study, db, tokens, app = setup
    alice, bob = client(app, tokens["alice"]), client(app, tokens["bob"])
    f = form(alice.get("/batch/0").text)
    answer(alice, f, label=1)
    assert bob.get("/batch/0").status_code == 403  # bob was invited for batch 1 only
    assert bob.get(f"/image/adv/{f['image_id']}").status_code == 403
    # bob replays alice's form (her image, her form token) with his own cookie: refused, her answer intact
    assert answer(bob, f, label=2).status_code == 403
    bob_form = form(bob.get("/batch/1").text)
    assert answer(bob, {**f, "csrf_token": bob_form["csrf_token"]}, label=2).status_code == 403  # not his batch
    assert [(a.labeller, a.label) for a in db.all_answers()] == [("alice", 1)]
    # bob's pages show his own progress only, never alice's answers
    assert bob_form["progress"] == "1 / 4"
    assert "alice" not in bob.get("/").text


@pytest.mark.parametrize("image_id", ["../manifest.json", "..%2F..%2Fmanifest.json", "%2Fetc%2Fpasswd",
                                      "img00025%2F..%2F..%2Fmanifest.json", "img99999", "manifest"])  # fmt: skip
def test_image_routes_take_ids_only(setup, image_id: str) -> None:
    study, db, tokens, app = setup
    c = client(app, tokens["alice"])
    assert c.get(f"/image/adv/{image_id}").status_code in (403, 404)  # 404: the path is not a route at all
    f = form(c.get("/batch/0").text)
    assert answer(c, {**f, "image_id": image_id.replace("%2F", "/")}).status_code == 403
    assert c.get(f"/image/..%2F{study.images[0].id}").status_code == 403  # version ".." is not one of yours
    assert db.count_answers() == 0


@pytest.mark.parametrize("field,value", [("label", "7"), ("label", "-1"), ("label", "bird"), ("label", ""),
                                         ("confidence", "medium"), ("confidence", ""), ("version", "raw")])  # fmt: skip
def test_invalid_answers_are_refused(setup, field: str, value: str) -> None:
    _, db, tokens, app = setup
    c = client(app, tokens["alice"])
    f = form(c.get("/batch/0").text)
    r = answer(c, f, **{field: value})
    assert r.status_code == 400
    assert db.count_answers() == 0


def test_cross_site_posts_are_refused(setup) -> None:
    _, db, tokens, app = setup
    c = client(app, tokens["alice"])
    f = form(c.get("/batch/0").text)
    no_token = {k: v for k, v in f.items() if k not in ("csrf_token", "progress")} | {"label": 0, "confidence": "high"}
    assert c.post("/answer", data=no_token).status_code == 403  # the cookie alone is not enough
    assert answer(c, f, csrf_token="0" * 64).status_code == 403
    assert c.post("/answer", data=no_token | {"csrf_token": f["csrf_token"]},
                  headers={"origin": "http://evil.example"}).status_code == 403  # fmt: skip
    assert c.post("/answer", data=no_token | {"csrf_token": f["csrf_token"]},
                  headers={"sec-fetch-site": "cross-site"}).status_code == 403  # fmt: skip
    assert db.count_answers() == 0
    assert answer(c, f, origin_ok="1").status_code == 303  # the same form from the page itself is accepted
    assert db.count_answers() == 1


def test_public_quiz_is_anonymous_and_stored_apart(setup) -> None:
    study, db, tokens, app = setup
    visitor = TestClient(app, base_url=BASE)
    page = visitor.get("/")  # no labeller cookie: the quiz
    f = form(page.text)
    assert f["progress"] == "1 / 3" and f["version"] == "adv"
    truth = study.quiz_image(f["image_id"])
    assert truth is not None and study.image(f["image_id"]) is None  # a quiz-pool image, not a study image
    assert visitor.get(f"/quiz/image/adv/{f['image_id']}").headers["content-type"] == "image/png"
    assert visitor.get(f"/quiz/image/clean/{f['image_id']}").status_code == 403  # no clean image before answering
    r = visitor.post("/quiz/answer", data={k: v for k, v in f.items() if k != "progress"}
                     | {"label": truth.label, "confidence": "high"})  # fmt: skip
    assert r.status_code == 200 and "correct" in r.text and study.classes[truth.label] in r.text
    assert visitor.get(f"/quiz/image/clean/{f['image_id']}").status_code == 200  # now the clean version is shown
    forged = visitor.post("/quiz/answer", data={"image_id": f["image_id"], "label": 0, "confidence": "low"})
    assert forged.status_code == 403  # no form token
    for _ in range(2):
        g = form(visitor.get("/quiz").text)
        visitor.post("/quiz/answer", data={k: v for k, v in g.items() if k != "progress"} | {"label": 0, "confidence": "low"})
    assert "of 3 attacked images correctly" in visitor.get("/quiz").text
    assert len(db.quiz_results()) == 3 and db.count_answers() == 0  # kept apart from invited labellers
    pool = {im.id: im for im in study.quiz}
    summary = quiz_summary(study, db.quiz_results())
    first_right = 1  # the first answer was the true class with high confidence; the other two said class 0
    others_right = sum(pool[r["image_id"]].label == 0 for r in db.quiz_results()[1:])
    assert (summary["visitors"], summary["answers"], summary["n_high"]) == (1, 3, 1)
    assert summary["acc_any"] == pytest.approx((first_right + others_right) / 3) and summary["acc_high"] == 1.0
    # quiz visitors have no access to the labellers' pages
    assert visitor.get("/batch/0").status_code == 401
    off = TestClient(build_app(study, db, quiz=False), base_url=BASE)
    assert off.get("/quiz").status_code == 404


def test_loopback_detection() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
