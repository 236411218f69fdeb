"""What every route of the labelling app shares, passed to each route module explicitly (no closures)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response

from robustperf.human.db import Labeller, StudyDB
from robustperf.human.study import Study

log = logging.getLogger(__name__)

LABELLER_COOKIE = "rp_labeller"
QUIZ_COOKIE = "rp_quiz"
TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
NOT_YOURS = "this image is not one of yours"


@dataclass(frozen=True)
class AppContext:
    """The study, its database and the settings of one app; the helpers its routes share.

    Attributes:
        study: the study directory's manifest.
        db: its answer database.
        origin: the public scheme://host[:port]; a POST whose Origin differs is refused.
        env: the autoescaping templates of ``human/templates``.
        shown: the images' displayed width and height (template variables).
        missing: image names (``version/id``) whose files are missing: they answer 404.
        quiz_size: images per quiz visitor.
    """

    study: Study
    db: StudyDB
    origin: str
    env: jinja2.Environment
    shown: dict[str, int]
    missing: frozenset[str]
    quiz_size: int = 20

    def page(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        """A template rendered with the study and the image size."""
        html = self.env.get_template(name).render(study=self.study, **self.shown, **context)
        return HTMLResponse(html, status_code=status)

    def refuse(self, request: Request, message: str, status: int) -> Response:
        """An error: JSON when the client asks for it, else the message page."""
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse({"error": message}, status_code=status)
        return self.page("message.html", status=status, title="error", message=message, css="error", link=None)

    def signed_in(self, request: Request) -> Labeller | Response:
        """The labeller of the request's session cookie, or the refusal: 401 without one, 403 for a bad one."""
        sid = request.cookies.get(LABELLER_COOKIE)
        if not sid:
            return self.refuse(request, "not signed in: open the personal link the study organiser sent you", 401)
        labeller = self.db.labeller_by_session(sid)
        if labeller is None:
            return self.refuse(request, "this session is not valid (expired or revoked); open your link again or "
                               "ask the study organiser", 403)
        return labeller

    def cross_site(self, request: Request) -> bool:
        """Whether the browser says the request comes from another site (Sec-Fetch-Site, or a foreign Origin)."""
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return True
        given = request.headers.get("origin")
        return given is not None and given.strip().rstrip("/").lower() != self.origin  # "null" included

    def image_file(self, path: Path | None, name: str) -> Response:
        """An image's PNG, or 404 naming the missing file to the organiser's log."""
        if path is None or name in self.missing or not path.is_file():
            log.warning("image file %s is missing", name)
            return PlainTextResponse("this image file is missing; tell the study organiser", status_code=404)
        return FileResponse(path, media_type="image/png")
