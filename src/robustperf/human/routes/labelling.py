"""A labeller's routes: sign in with the secret link, the batch list, a batch's next item, an answer."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from robustperf.human.db import SESSION_DAYS, AnswerError
from robustperf.human.routes.context import LABELLER_COOKIE, NOT_YOURS, AppContext


class Labelling:
    """The labelling pages of one app; `quiz` sends a visitor without a session to the public quiz."""

    def __init__(self, ctx: AppContext, quiz: bool = False) -> None:
        self.ctx, self.quiz = ctx, quiz

    def routes(self) -> list[Route]:
        return [Route("/", self.home), Route("/l/{token}", self.sign_in), Route("/batch/{batch:int}", self.batch),
                Route("/answer", self.answer, methods=["POST"])]

    def sign_in(self, request: Request) -> Response:
        """``/l/<token>``: a new session (its id, never the token, is the cookie), then the batch list."""
        ctx = self.ctx
        labeller = ctx.db.labeller_by_token(request.path_params["token"])
        if labeller is None:
            return ctx.refuse(request, "this link is not valid (revoked or mistyped); ask the study organiser", 403)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(LABELLER_COOKIE, ctx.db.new_session(labeller), httponly=True, samesite="lax",
                            max_age=SESSION_DAYS * 24 * 3600,
                            secure=request.url.scheme == "https")  # behind TLS the cookie never travels in clear
        return response

    def home(self, request: Request) -> Response:
        """The labeller's batches and how far each is answered."""
        ctx = self.ctx
        if self.quiz and not request.cookies.get(LABELLER_COOKIE):
            return RedirectResponse("/quiz", status_code=303)
        who = ctx.signed_in(request)
        if isinstance(who, Response):
            return who
        done_pairs = ctx.db.answered(who)
        rows = []
        for b in range(ctx.study.n_batches):
            if who.has_batch(b):
                ids = set(ctx.db.batch_ids(b))
                rows.append({"number": b, "size": len(ids), "done": sum(1 for i, _ in done_pairs if i in ids)})
        return ctx.page("home.html", title="your batches", labeller=who, batches=rows)

    def batch(self, request: Request) -> Response:
        """The batch's first unanswered item (a reload resumes); serving a clean image makes the batch's
        adversarial answers final."""
        ctx = self.ctx
        who = ctx.signed_in(request)
        if isinstance(who, Response):
            return who
        batch = int(request.path_params["batch"])
        if not (0 <= batch < ctx.study.n_batches and who.has_batch(batch)):
            return ctx.refuse(request, f"batch {batch} is not one of your batches", 403)
        nxt = ctx.db.next_item(who, batch)
        size = len(ctx.db.batch_ids(batch))
        if nxt is None:
            return ctx.page("batch.html", title=f"batch {batch}", batch=batch, item=None)
        pos, image_id, version = nxt
        if version == "clean":
            ctx.db.mark_clean_served(who, batch)  # the page shows the clean image: adversarial answers are final
        return ctx.page("batch.html", title=f"batch {batch}", batch=batch, item=nxt, image_id=image_id,
                        version=version, position=pos % size + 1, size=size, action="/answer",
                        image_url=f"/image/{version}/{image_id}", csrf_token=ctx.db.csrf_token(f"labeller:{who.id}"))

    async def answer(self, request: Request) -> Response:
        """One answer, committed at once: session first, then same-site and form token, then the answer's checks."""
        ctx = self.ctx
        who = await run_in_threadpool(ctx.signed_in, request)  # before the body is parsed
        if isinstance(who, Response):
            return who
        if ctx.cross_site(request):
            return ctx.refuse(request, "cross-site request refused; answer from the study's own page", 403)
        form = await request.form()
        if not ctx.db.check_csrf(f"labeller:{who.id}", form.get("csrf_token")):
            return ctx.refuse(request, "form token missing or wrong (cross-site request?); reload the page", 403)
        image_id, version = str(form.get("image_id", "")), str(form.get("version", ""))
        try:
            stored = await run_in_threadpool(ctx.db.submit, who, image_id, version, form.get("label"),
                                             form.get("confidence"))
        except AnswerError as exc:
            return ctx.refuse(request, str(exc), exc.status)
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse({"status": stored.status, "label": stored.label, "confidence": stored.confidence})
        image = ctx.study.image(image_id)
        if image is None:  # the database took it, so it is a study image; never a 500 if that ever changes
            return ctx.refuse(request, NOT_YOURS, 403)
        return RedirectResponse(f"/batch/{image.batch}", status_code=303)
