"""The labelling app's route modules: each works on its own with the `AppContext` it is handed, the app is
their union, and a request the handlers cannot serve is a 4xx answer, never an assertion (a 500)."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from starlette.applications import Starlette
from starlette.testclient import TestClient

from robustperf.human.app import app_context, build_app
from robustperf.human.db import StudyDB
from robustperf.human.routes import admin
from robustperf.human.routes.images import Images
from robustperf.human.routes.labelling import Labelling
from robustperf.human.routes.quiz import Quiz

BASE = "http://127.0.0.1:8000"


def _paths(app: Any) -> list[str]:
    return sorted(route.path for route in app.routes)


def test_the_app_is_the_union_of_the_route_modules(quiz_study) -> None:
    db = StudyDB(quiz_study)
    ctx = app_context(quiz_study, db)
    parts = [*Labelling(ctx).routes(), *admin.routes(), *Images(ctx).routes()]
    assert _paths(build_app(quiz_study, db).app) == sorted(r.path for r in parts)
    with_quiz = build_app(quiz_study, db, quiz=True).app
    assert _paths(with_quiz) == sorted(r.path for r in [*parts, *Quiz(ctx).routes()])
    assert {"/", "/l/{token}", "/batch/{batch:int}", "/answer", "/image/{version}/{image_id}", "/static/app.js",
            "/healthz", "/quiz", "/quiz/answer", "/quiz/feedback/{image_id}",
            "/quiz/image/{version}/{image_id}"} == set(_paths(with_quiz))


def test_a_route_module_serves_alone_with_the_context_it_is_handed(study) -> None:
    db = StudyDB(study)
    token = db.invite("alice")
    ctx = app_context(study, db)
    images = TestClient(Starlette(routes=Images(ctx).routes()), base_url=BASE)
    image_id = study.images[0].id
    assert images.get(f"/image/adv/{image_id}").status_code == 401  # no session: nothing is looked up
    labelling = TestClient(Starlette(routes=[*Labelling(ctx).routes(), *Images(ctx).routes()]), base_url=BASE)
    assert labelling.get(f"/l/{token}").status_code == 200
    page = labelling.get("/batch/0").text
    shown = re.search(r'name="image_id" value="([^"]+)"', page).group(1)
    assert labelling.get(f"/image/adv/{shown}").headers["content-type"] == "image/png"


class _Forgetful:
    """The study as the routes see it, except that it no longer knows any image (the database still does)."""

    def __init__(self, study: Any) -> None:
        self._study = study

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def image(self, image_id: str) -> None:
        return None


def test_an_answer_whose_image_the_routes_cannot_find_is_a_403_not_a_500(study) -> None:
    db = StudyDB(study)
    token = db.invite("alice")
    ctx = dataclasses.replace(app_context(study, db), study=_Forgetful(study))
    c = TestClient(Starlette(routes=Labelling(ctx).routes()), base_url=BASE, raise_server_exceptions=False)
    assert c.get(f"/l/{token}").status_code == 200
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', c.get("/batch/0").text))
    r = c.post("/answer", data={**fields, "label": 0, "confidence": "high"}, follow_redirects=False)
    assert r.status_code == 403 and "not one of yours" in r.text
