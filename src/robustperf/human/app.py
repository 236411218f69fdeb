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
from urllib.parse import urlsplit

import jinja2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from robustperf.human.db import StudyDB
from robustperf.human.routes import admin
from robustperf.human.routes.context import LABELLER_COOKIE, QUIZ_COOKIE, TEMPLATES, AppContext
from robustperf.human.routes.images import Images
from robustperf.human.routes.labelling import Labelling
from robustperf.human.routes.quiz import Quiz
from robustperf.human.study import Study, StudyError

log = logging.getLogger(__name__)

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
    """The ASGI app for one study: the route modules of `robustperf.human.routes`, each handed the shared
    `AppContext`, behind the guard.

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
    ctx = app_context(study, db, public_origin=public_origin, quiz_size=quiz_size)
    routes = [*Labelling(ctx, quiz=quiz).routes(), *admin.routes(), *Images(ctx).routes()]
    if quiz:
        routes += Quiz(ctx).routes()
    return _Guard(Starlette(routes=routes), max_body_bytes)


def app_context(study: Study, db: StudyDB, *, public_origin: str = "http://127.0.0.1:8000",
                quiz_size: int = 20) -> AppContext:
    """What the routes share: the study and its database, the templates, the public origin, the image size.

    Raises:
        ValueError: `public_origin` is not scheme://host[:port].
        StudyError: none of the study's image files exists.
    """
    origin = _origin(public_origin)
    missing = frozenset(study.missing_images())
    if missing:
        log.warning("%d image files are missing and will answer 404: %s", len(missing), ", ".join(sorted(missing)))
    width, height = _image_size(study)
    return AppContext(study=study, db=db, origin=origin,
                      env=jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True),
                      shown={"width": width * study.display_scale, "height": height * study.display_scale},
                      missing=missing, quiz_size=quiz_size)


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


__all__ = ["LABELLER_COOKIE", "QUIZ_COOKIE", "TEMPLATES", "app_context", "build_app", "is_loopback", "serve"]
