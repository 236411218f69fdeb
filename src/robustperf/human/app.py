"""The labelling web app (papers/001 Appendix G.1, Figure 16): one page per batch, per-answer commits.

Stack: Starlette (ASGI) served by uvicorn, jinja2 templates, SQLAlchemy Core over SQLite WAL (`db.py`).
Why this stack: Starlette is the small, mature core FastAPI is built on; we need a dozen server-rendered
routes, not an API framework, and Starlette gives routing, cookies, form parsing and an in-process
test client without more. uvicorn is the reference ASGI server and stops cleanly on SIGTERM.
Pages are plain HTML forms (no JavaScript needed to answer; ``app.js`` only adds keyboard
shortcuts), so a reload always shows the first unanswered item: resuming is the default behaviour.

Security model:
- a labeller signs in by opening their secret link ``/l/<token>``; the token goes into an HttpOnly,
  SameSite=Lax cookie (Lax, not Strict, so a link opened from a mail client still signs in) and the database keeps only its SHA-256;
- every page and answer is scoped to the signed-in labeller: no route returns another labeller's
  answers, and an answer for an image outside the labeller's batches is refused (403);
- image routes take an id that must match ``img<digits>`` and name a study image (404 otherwise), and
  clean images of a batch are served only after its adversarial images are labelled;
- answers are validated (known class index, confidence low/high, known image; 400/404);
- POSTs need the per-labeller form token (HMAC of a key in the database) and are refused when the
  browser says the request comes from another site (Origin / Sec-Fetch-Site): 403, nothing written;
- responses carry a strict Content-Security-Policy (scripts from this origin only), nosniff,
  frame-ancestors 'none' and no-store caching.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from robustperf.human.db import AnswerError, Labeller, StudyDB
from robustperf.human.study import IMAGE_ID, VERSIONS, Study

log = logging.getLogger(__name__)

LABELLER_COOKIE = "rp_labeller"
QUIZ_COOKIE = "rp_quiz"
TEMPLATES = Path(__file__).with_name("templates")
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self'; style-src 'self' 'unsafe-inline'; "
                                 b"script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),  # the secret link must not leak through Referer
    (b"cache-control", b"no-store"),
]  # fmt: skip


class _SecurityHeaders:
    """ASGI middleware adding `SECURITY_HEADERS` to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _image_size(study: Study) -> tuple[int, int]:
    from PIL import Image

    first = study.image_path(study.images[0].id, "adv")
    assert first is not None
    with Image.open(first) as img:
        return img.width, img.height


def build_app(study: Study, db: StudyDB, *, quiz: bool = False, quiz_size: int = 20) -> Starlette:
    """The ASGI app for one study.

    Args:
        study: the study directory's manifest.
        db: its answer database.
        quiz: also serve the anonymous public quiz at ``/quiz``.
        quiz_size: images per quiz visitor.
    """
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True)
    width, height = _image_size(study)
    shown = {"width": width * study.display_scale, "height": height * study.display_scale}

    def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = env.get_template(name).render(study=study, **shown, **context)
        return HTMLResponse(html, status_code=status)

    def refuse(request: Request, message: str, status: int) -> Response:
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse({"error": message}, status_code=status)
        return page("message.html", status=status, title="error", message=message, css="error", link=None)

    def signed_in(request: Request) -> Labeller | Response:
        token = request.cookies.get(LABELLER_COOKIE)
        if not token:
            return refuse(request, "not signed in: open the personal link the study organiser sent you", 401)
        labeller = db.labeller_by_token(token)
        if labeller is None:
            return refuse(request, "this link is not valid (revoked or mistyped); ask the study organiser", 403)
        return labeller

    def cross_site(request: Request) -> bool:
        if request.headers.get("sec-fetch-site") == "cross-site":
            return True
        origin = request.headers.get("origin")
        return bool(origin) and origin != "null" and urlsplit(origin).netloc != request.headers.get("host")

    def sign_in(request: Request) -> Response:
        token = request.path_params["token"]
        if db.labeller_by_token(token) is None:
            return refuse(request, "this link is not valid (revoked or mistyped); ask the study organiser", 403)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(LABELLER_COOKIE, token, httponly=True, samesite="lax", max_age=90 * 24 * 3600,
                            secure=request.url.scheme == "https")  # behind TLS the cookie never travels in clear
        return response

    def home(request: Request) -> Response:
        if quiz and not request.cookies.get(LABELLER_COOKIE):
            return RedirectResponse("/quiz", status_code=303)
        who = signed_in(request)
        if isinstance(who, Response):
            return who
        done_pairs = db.answered(who)
        rows = []
        for b in range(study.n_batches):
            if who.has_batch(b):
                ids = {im.id for im in study.batch(b)}
                rows.append({"number": b, "size": len(ids), "done": sum(1 for i, _ in done_pairs if i in ids)})
        return page("home.html", title="your batches", labeller=who, batches=rows)

    def batch_page(request: Request) -> Response:
        who = signed_in(request)
        if isinstance(who, Response):
            return who
        batch = int(request.path_params["batch"])
        if not 0 <= batch < study.n_batches:
            return refuse(request, f"there is no batch {batch}", 404)
        if not who.has_batch(batch):
            return refuse(request, f"batch {batch} is not one of your batches", 403)
        nxt = db.next_item(who, batch)
        size = len(study.batch(batch))
        if nxt is None:
            return page("batch.html", title=f"batch {batch}", batch=batch, item=None)
        pos, image_id, version = nxt
        return page("batch.html", title=f"batch {batch}", batch=batch, item=nxt, image_id=image_id, version=version,
                    position=pos % size + 1, size=size, action="/answer", image_url=f"/image/{version}/{image_id}",
                    csrf_token=db.csrf_token(f"labeller:{who.id}"))

    async def answer(request: Request) -> Response:
        who = await run_in_threadpool(signed_in, request)
        if isinstance(who, Response):
            return who
        form = await request.form()
        if cross_site(request) or not db.check_csrf(f"labeller:{who.id}", form.get("csrf_token")):  # type: ignore[arg-type]
            return refuse(request, "form token missing or wrong (cross-site request?); reload the page", 403)
        image_id, version = str(form.get("image_id", "")), str(form.get("version", ""))
        try:
            status = await run_in_threadpool(db.record_answer, who, image_id, version, form.get("label"),
                                             form.get("confidence"))
        except AnswerError as exc:
            return refuse(request, str(exc), exc.status)
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse({"status": status})
        image = study.image(image_id)
        assert image is not None
        return RedirectResponse(f"/batch/{image.batch}", status_code=303)

    def image(request: Request) -> Response:
        image_id, version = request.path_params["image_id"], request.path_params["version"]
        if version not in VERSIONS or not IMAGE_ID.match(image_id) or study.image(image_id) is None:
            return PlainTextResponse("no such image", status_code=404)
        item = study.image(image_id)
        assert item is not None
        quiz_sample = db.quiz_sample(request.cookies.get(QUIZ_COOKIE)) if quiz else None
        allowed = False
        if quiz_sample is not None and image_id in quiz_sample:
            allowed = version == "adv" or image_id in db.quiz_answered(request.cookies[QUIZ_COOKIE])
        if not allowed:
            who = signed_in(request)
            if isinstance(who, Response):
                return who
            if not who.has_batch(item.batch):
                return PlainTextResponse("not one of your images", status_code=403)
            if version == "clean" and not db.may_see_clean(who, item.batch):
                return PlainTextResponse("clean images come after the batch's adversarial images", status_code=403)
        path = study.image_path(image_id, version)
        assert path is not None
        return FileResponse(path, media_type="image/png")

    def static_js(request: Request) -> Response:
        return FileResponse(TEMPLATES / "app.js", media_type="text/javascript")

    def quiz_page(request: Request) -> Response:
        sid = request.cookies.get(QUIZ_COOKIE)
        sample = db.quiz_sample(sid)
        if sid is None or sample is None:
            sid = db.new_quiz_session(quiz_size)
            response = RedirectResponse("/quiz", status_code=303)
            response.set_cookie(QUIZ_COOKIE, sid, httponly=True, samesite="lax", max_age=30 * 24 * 3600,
                                secure=request.url.scheme == "https")
            return response
        done = db.quiz_answered(sid)
        todo = [i for i in sample if i not in done]
        if not todo:
            truth = {im.id: im.label for im in study.images}
            n_right = sum(1 for i, (label, _) in done.items() if truth[i] == label)
            return page("message.html", title="quiz", css="progress", link=None,
                        message=f"You classified {n_right} of {len(done)} attacked images correctly. Thank you!")
        return page("batch.html", title="quiz", batch="quiz", item=todo[0], image_id=todo[0], version="adv",
                    position=len(done) + 1, size=len(sample), action="/quiz/answer", image_url=f"/image/adv/{todo[0]}",
                    csrf_token=db.csrf_token(f"quiz:{sid}"))

    async def quiz_answer(request: Request) -> Response:
        sid = request.cookies.get(QUIZ_COOKIE)
        form = await request.form()
        if not sid or cross_site(request) or not db.check_csrf(f"quiz:{sid}", form.get("csrf_token")):  # type: ignore[arg-type]
            return refuse(request, "form token missing or wrong (cross-site request?); reload the page", 403)
        image_id = str(form.get("image_id", ""))
        try:
            await run_in_threadpool(db.record_quiz_answer, sid, image_id, form.get("label"), form.get("confidence"))
        except AnswerError as exc:
            return refuse(request, str(exc), exc.status)
        return RedirectResponse(f"/quiz/feedback/{image_id}", status_code=303)

    def quiz_feedback(request: Request) -> Response:
        sid = request.cookies.get(QUIZ_COOKIE)
        image_id = request.path_params["image_id"]
        sample = db.quiz_sample(sid) or []
        done = db.quiz_answered(sid) if sid else {}
        item = study.image(image_id)
        if item is None or image_id not in sample or image_id not in done:
            return refuse(request, "answer this image first", 403)
        label, confidence = done[image_id]
        return page("quiz_feedback.html", title="quiz", image_id=image_id, given=study.classes[label],
                    confidence=confidence, truth=study.classes[item.label], model=study.classes[item.model_pred],
                    position=len(done), size=len(sample))

    def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    routes = [
        Route("/", home), Route("/healthz", health), Route("/l/{token}", sign_in),
        Route("/batch/{batch:int}", batch_page), Route("/answer", answer, methods=["POST"]),
        Route("/image/{version}/{image_id}", image), Route("/static/app.js", static_js),
    ]  # fmt: skip
    if quiz:
        routes += [Route("/quiz", quiz_page), Route("/quiz/answer", quiz_answer, methods=["POST"]),
                   Route("/quiz/feedback/{image_id}", quiz_feedback)]
    app = Starlette(routes=routes)
    app.add_middleware(_SecurityHeaders)
    return app


def is_loopback(host: str) -> bool:
    return host in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")


def serve(study: Study, db: StudyDB, *, host: str = "127.0.0.1", port: int = 8000, quiz: bool = False,
          quiz_size: int = 20) -> None:
    """Run the app under uvicorn until SIGINT/SIGTERM (every answer is already committed)."""
    import uvicorn

    if not is_loopback(host):
        log.warning("serving on %s: anyone who can reach this address can open the quiz and try links; "
                    "put it behind HTTPS (a reverse proxy) before sending links over the internet", host)
    uvicorn.run(build_app(study, db, quiz=quiz, quiz_size=quiz_size), host=host, port=port, log_level="warning",
                access_log=False)


__all__ = ["LABELLER_COOKIE", "QUIZ_COOKIE", "build_app", "is_loopback", "serve"]
