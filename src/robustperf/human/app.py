"""The labelling web app (papers/001 Appendix G.1, Figure 16): one page per batch, per-answer commits.

Stack: Starlette (ASGI) served by uvicorn, jinja2 templates, SQLAlchemy Core over SQLite WAL (`db.py`).
Why this stack: Starlette is the small, mature core FastAPI is built on; we need a dozen server-rendered
routes, not an API framework, and Starlette gives routing, cookies, form parsing and an in-process
test client without more. uvicorn is the reference ASGI server and stops cleanly on SIGTERM.
Pages are plain HTML forms (no JavaScript needed to answer; ``app.js`` only adds keyboard
shortcuts), so a reload always shows the first unanswered item: resuming is the default behaviour.

Security model (nothing a labeller or visitor can reach reveals a label or a prediction early):
- a labeller signs in by opening their secret link ``/l/<token>``; that starts a server-side session
  (random id, stored hashed, 30 days) whose id is the HttpOnly, SameSite=Lax cookie - never the
  invite token itself; `human revoke` ends the link and its sessions;
- every route checks the session first: no cookie is 401, a bad one 403, and an image that is not the
  labeller's is 403 whatever the id (unknown, another batch): nothing is looked up for a stranger;
- image ids are opaque random strings (`study.py`); clean images of a batch are served only after
  the labeller's adversarial answers for it are complete, and serving one makes them final (409 after);
- the public quiz (``--quiz``) uses its own image pool, never a study image, keeps no row for a visit
  (a signed cookie) and shows truth and prediction only of its own images;
- answers are validated (class index in ASCII digits, confidence low/high; 400/403);
- POSTs need the per-labeller form token (HMAC of a key in the database, compared as bytes) and are
  refused when the browser says the request comes from another site: Sec-Fetch-Site other than
  same-origin/none, or an Origin other than the configured public origin (``null`` included): 403;
- every request body is capped before parsing (413) and every response, errors and 500s included,
  carries a strict Content-Security-Policy, nosniff, frame-ancestors 'none' and no-store caching.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from robustperf.human.db import SESSION_DAYS, AnswerError, Labeller, StudyDB
from robustperf.human.study import IMAGE_ID, VERSIONS, Study, StudyError

log = logging.getLogger(__name__)

LABELLER_COOKIE = "rp_labeller"
QUIZ_COOKIE = "rp_quiz"
TEMPLATES = Path(__file__).with_name("templates")
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self'; style-src 'self' 'unsafe-inline'; "
                                 b"script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    # the secret link must not leak through Referer to another site; "same-origin" (not "no-referrer", under which
    # Chromium sends "Origin: null" on the study's own form POSTs, refused as cross-site) keeps it on this server
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]  # fmt: skip


class _Guard:
    """Outermost ASGI wrapper: the body cap (413), `SECURITY_HEADERS` on every response, and a 500 with those
    headers for any exception (it sits outside Starlette's own error handler, whose 500s skip inner middleware)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app, self.max_body_bytes = app, max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": list(message.get("headers", [])) + SECURITY_HEADERS}
            await send(message)

        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            await PlainTextResponse("request body too large", status_code=413)(scope, receive, send_with_headers)
            return
        received = 0

        async def capped_receive() -> Message:  # a chunked body is counted as it arrives
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body_bytes:
                raise HTTPException(413, "request body too large")
            return message

        try:
            await self.app(scope, capped_receive, send_with_headers)
        except Exception:
            log.exception("error serving %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await PlainTextResponse("internal error", status_code=500)(scope, receive, send_with_headers)


def _origin(url: str) -> str:
    parts = urlsplit(url.strip().rstrip("/"))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"public origin {url!r}: use scheme://host[:port], e.g. https://label.example.org")
    return f"{parts.scheme}://{parts.netloc}".lower()


def _image_size(study: Study) -> tuple[int, int]:
    from PIL import Image

    files = [study.image_path(im.id, "adv") for im in study.images] + [study.quiz_image_path(im.id, "adv")
                                                                        for im in study.quiz]
    first = next((f for f in files if f is not None and f.is_file()), None)
    if first is None:
        raise StudyError(f"{study.root / 'images'} holds none of the study's images; recreate the study")
    with Image.open(first) as img:
        return img.width, img.height


def build_app(study: Study, db: StudyDB, *, quiz: bool = False, quiz_size: int = 20,
              public_origin: str = "http://127.0.0.1:8000", max_body_bytes: int = 16 * 1024) -> ASGIApp:
    """The ASGI app for one study.

    Args:
        study: the study directory's manifest.
        db: its answer database.
        quiz: also serve the anonymous public quiz at ``/quiz`` (needs the study's quiz pool).
        quiz_size: images per quiz visitor.
        public_origin: the scheme://host[:port] labellers' browsers use; a POST whose Origin differs is refused.
        max_body_bytes: cap on any request body (an answer form is ~150 bytes).
    """
    if quiz and not study.quiz:
        raise StudyError(f"{study.root} has no quiz pool, and the quiz must never show study images; recreate the "
                         "study with `robustperf human create ... --quiz-pool 20` or serve without --quiz")
    origin = _origin(public_origin)
    missing = set(study.missing_images())
    if missing:
        log.warning("%d image files are missing and will answer 404: %s", len(missing), ", ".join(sorted(missing)))
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True)
    width, height = _image_size(study)
    shown = {"width": width * study.display_scale, "height": height * study.display_scale}
    not_yours = "this image is not one of yours"

    def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = env.get_template(name).render(study=study, **shown, **context)
        return HTMLResponse(html, status_code=status)

    def refuse(request: Request, message: str, status: int) -> Response:
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse({"error": message}, status_code=status)
        return page("message.html", status=status, title="error", message=message, css="error", link=None)

    def signed_in(request: Request) -> Labeller | Response:
        sid = request.cookies.get(LABELLER_COOKIE)
        if not sid:
            return refuse(request, "not signed in: open the personal link the study organiser sent you", 401)
        labeller = db.labeller_by_session(sid)
        if labeller is None:
            return refuse(request, "this session is not valid (expired or revoked); open your link again or ask "
                          "the study organiser", 403)
        return labeller

    def cross_site(request: Request) -> bool:
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return True
        given = request.headers.get("origin")
        return given is not None and given.strip().rstrip("/").lower() != origin  # "null" included

    def image_file(path: Any, name: str) -> Response:
        if path is None or name in missing or not path.is_file():
            log.warning("image file %s is missing", name)
            return PlainTextResponse("this image file is missing; tell the study organiser", status_code=404)
        return FileResponse(path, media_type="image/png")

    def sign_in(request: Request) -> Response:
        labeller = db.labeller_by_token(request.path_params["token"])
        if labeller is None:
            return refuse(request, "this link is not valid (revoked or mistyped); ask the study organiser", 403)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(LABELLER_COOKIE, db.new_session(labeller), httponly=True, samesite="lax",
                            max_age=SESSION_DAYS * 24 * 3600,
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
                ids = set(db.batch_ids(b))
                rows.append({"number": b, "size": len(ids), "done": sum(1 for i, _ in done_pairs if i in ids)})
        return page("home.html", title="your batches", labeller=who, batches=rows)

    def batch_page(request: Request) -> Response:
        who = signed_in(request)
        if isinstance(who, Response):
            return who
        batch = int(request.path_params["batch"])
        if not (0 <= batch < study.n_batches and who.has_batch(batch)):
            return refuse(request, f"batch {batch} is not one of your batches", 403)
        nxt = db.next_item(who, batch)
        size = len(db.batch_ids(batch))
        if nxt is None:
            return page("batch.html", title=f"batch {batch}", batch=batch, item=None)
        pos, image_id, version = nxt
        if version == "clean":
            db.mark_clean_served(who, batch)  # the page shows the clean image: adversarial answers are final
        return page("batch.html", title=f"batch {batch}", batch=batch, item=nxt, image_id=image_id, version=version,
                    position=pos % size + 1, size=size, action="/answer", image_url=f"/image/{version}/{image_id}",
                    csrf_token=db.csrf_token(f"labeller:{who.id}"))

    async def answer(request: Request) -> Response:
        who = await run_in_threadpool(signed_in, request)  # before the body is parsed
        if isinstance(who, Response):
            return who
        if cross_site(request):
            return refuse(request, "cross-site request refused; answer from the study's own page", 403)
        form = await request.form()
        if not db.check_csrf(f"labeller:{who.id}", form.get("csrf_token")):
            return refuse(request, "form token missing or wrong (cross-site request?); reload the page", 403)
        image_id, version = str(form.get("image_id", "")), str(form.get("version", ""))
        try:
            stored = await run_in_threadpool(db.submit, who, image_id, version, form.get("label"),
                                             form.get("confidence"))
        except AnswerError as exc:
            return refuse(request, str(exc), exc.status)
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse({"status": stored.status, "label": stored.label, "confidence": stored.confidence})
        image = study.image(image_id)
        assert image is not None
        return RedirectResponse(f"/batch/{image.batch}", status_code=303)

    def image(request: Request) -> Response:
        who = signed_in(request)  # 401 / 403 before any lookup
        if isinstance(who, Response):
            return who
        image_id, version = request.path_params["image_id"], request.path_params["version"]
        item = study.image(image_id) if version in VERSIONS and IMAGE_ID.fullmatch(image_id) else None
        if item is None or not who.has_batch(item.batch):
            return PlainTextResponse(not_yours, status_code=403)
        if version == "clean":
            if not db.may_see_clean(who, item.batch):
                return PlainTextResponse("clean images come after the batch's adversarial images", status_code=403)
            db.mark_clean_served(who, item.batch)
        return image_file(study.image_path(image_id, version), f"{version}/{image_id}")

    def static_js(request: Request) -> Response:
        return FileResponse(TEMPLATES / "app.js", media_type="text/javascript")

    def quiz_page(request: Request) -> Response:
        sid = request.cookies.get(QUIZ_COOKIE)
        sample = db.quiz_sample(sid, quiz_size)
        if sid is None or sample is None:  # a signed cookie, no database row
            response = RedirectResponse("/quiz", status_code=303)
            response.set_cookie(QUIZ_COOKIE, db.new_quiz_session(), httponly=True, samesite="lax",
                                max_age=30 * 24 * 3600, secure=request.url.scheme == "https")
            return response
        done = db.quiz_answered(sid)
        todo = [i for i in sample if i not in done]
        if not todo:
            truth = {im.id: im.label for im in study.quiz}
            n_right = sum(1 for i, (label, _) in done.items() if truth.get(i) == label)
            return page("message.html", title="quiz", css="progress", link=None,
                        message=f"You classified {n_right} of {len(done)} attacked images correctly. Thank you!")
        return page("batch.html", title="quiz", batch="quiz", item=todo[0], image_id=todo[0], version="adv",
                    position=len(done) + 1, size=len(sample), action="/quiz/answer",
                    image_url=f"/quiz/image/adv/{todo[0]}", csrf_token=db.csrf_token(f"quiz:{sid}"))

    def quiz_visitor(request: Request) -> tuple[str, list[str]] | Response:
        sid = request.cookies.get(QUIZ_COOKIE)
        sample = db.quiz_sample(sid, quiz_size)
        if sid is None or sample is None:
            return refuse(request, "no quiz session; open /quiz to start one", 403)
        return sid, sample

    def quiz_image(request: Request) -> Response:
        visitor = quiz_visitor(request)
        if isinstance(visitor, Response):
            return visitor
        sid, sample = visitor
        image_id, version = request.path_params["image_id"], request.path_params["version"]
        if version not in VERSIONS or image_id not in sample:
            return PlainTextResponse("this image is not in your quiz", status_code=403)
        if version == "clean" and image_id not in db.quiz_answered(sid):
            return PlainTextResponse("the original is shown after you answer", status_code=403)
        return image_file(study.quiz_image_path(image_id, version), f"quiz/{version}/{image_id}")

    async def quiz_answer(request: Request) -> Response:
        visitor = quiz_visitor(request)  # before the body is parsed
        if isinstance(visitor, Response):
            return visitor
        sid, _ = visitor
        if cross_site(request):
            return refuse(request, "cross-site request refused; answer from the quiz page", 403)
        form = await request.form()
        if not db.check_csrf(f"quiz:{sid}", form.get("csrf_token")):
            return refuse(request, "form token missing or wrong (cross-site request?); reload the page", 403)
        image_id = str(form.get("image_id", ""))
        try:
            await run_in_threadpool(db.record_quiz_answer, sid, quiz_size, image_id, form.get("label"),
                                    form.get("confidence"))
        except AnswerError as exc:
            return refuse(request, str(exc), exc.status)
        return RedirectResponse(f"/quiz/feedback/{image_id}", status_code=303)

    def quiz_feedback(request: Request) -> Response:
        visitor = quiz_visitor(request)
        if isinstance(visitor, Response):
            return visitor
        sid, sample = visitor
        image_id = request.path_params["image_id"]
        done = db.quiz_answered(sid)
        item = study.quiz_image(image_id)
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
                   Route("/quiz/feedback/{image_id}", quiz_feedback),
                   Route("/quiz/image/{version}/{image_id}", quiz_image)]  # fmt: skip
    return _Guard(Starlette(routes=routes), max_body_bytes)


def is_loopback(host: str) -> bool:
    return host in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")


def serve(study: Study, db: StudyDB, *, host: str = "127.0.0.1", port: int = 8000, quiz: bool = False,
          quiz_size: int = 20, public_origin: str | None = None) -> None:
    """Run the app under uvicorn until SIGINT/SIGTERM (every answer is already committed).

    `public_origin` (default ``http://HOST:PORT``) is the address labellers' browsers use; behind a proxy,
    pass the proxy's ``https://...`` origin or every browser POST is refused as cross-site.
    """
    import uvicorn

    if not is_loopback(host):
        log.warning("serving on %s: anyone who can reach this address can open the quiz and try links; "
                    "put it behind HTTPS (a reverse proxy) before sending links over the internet", host)
    origin = public_origin or f"http://{f'[{host}]' if ':' in host else host}:{port}"
    uvicorn.run(build_app(study, db, quiz=quiz, quiz_size=quiz_size, public_origin=origin), host=host, port=port,
                log_level="warning", access_log=False)


__all__ = ["LABELLER_COOKIE", "QUIZ_COOKIE", "build_app", "is_loopback", "serve"]
