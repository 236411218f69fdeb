"""The anonymous public quiz (``--quiz``): its own image pool, a signed cookie, no database row per visit."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from robustperf.human.db import AnswerError
from robustperf.human.routes.context import QUIZ_COOKIE, AppContext
from robustperf.human.study import VERSIONS


class Quiz:
    """The quiz pages; truth and prediction are shown only for the visitor's own quiz images, once answered."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def routes(self) -> list[Route]:
        return [Route("/quiz", self.page), Route("/quiz/answer", self.answer, methods=["POST"]),
                Route("/quiz/feedback/{image_id}", self.feedback),
                Route("/quiz/image/{version}/{image_id}", self.image)]

    def page(self, request: Request) -> Response:
        """The next quiz image (a visitor without a valid cookie gets one), or the score at the end."""
        ctx = self.ctx
        sid = request.cookies.get(QUIZ_COOKIE)
        sample = ctx.db.quiz_sample(sid, ctx.quiz_size)
        if sid is None or sample is None:  # a signed cookie, no database row
            response = RedirectResponse("/quiz", status_code=303)
            response.set_cookie(QUIZ_COOKIE, ctx.db.new_quiz_session(), httponly=True, samesite="lax",
                                max_age=30 * 24 * 3600, secure=request.url.scheme == "https")
            return response
        done = ctx.db.quiz_answered(sid)
        todo = [i for i in sample if i not in done]
        if not todo:
            truth = {im.id: im.label for im in ctx.study.quiz}
            n_right = sum(1 for i, (label, _) in done.items() if truth.get(i) == label)
            return ctx.page("message.html", title="quiz", css="progress", link=None,
                            message=f"You classified {n_right} of {len(done)} attacked images correctly. Thank you!")
        return ctx.page("batch.html", title="quiz", batch="quiz", item=todo[0], image_id=todo[0], version="adv",
                        position=len(done) + 1, size=len(sample), action="/quiz/answer",
                        image_url=f"/quiz/image/adv/{todo[0]}", csrf_token=ctx.db.csrf_token(f"quiz:{sid}"))

    def visitor(self, request: Request) -> tuple[str, list[str]] | Response:
        """The visitor's session id and image sample, or 403 without a valid quiz cookie."""
        sid = request.cookies.get(QUIZ_COOKIE)
        sample = self.ctx.db.quiz_sample(sid, self.ctx.quiz_size)
        if sid is None or sample is None:
            return self.ctx.refuse(request, "no quiz session; open /quiz to start one", 403)
        return sid, sample

    def image(self, request: Request) -> Response:
        visitor = self.visitor(request)
        if isinstance(visitor, Response):
            return visitor
        sid, sample = visitor
        image_id, version = request.path_params["image_id"], request.path_params["version"]
        if version not in VERSIONS or image_id not in sample:
            return PlainTextResponse("this image is not in your quiz", status_code=403)
        if version == "clean" and image_id not in self.ctx.db.quiz_answered(sid):
            return PlainTextResponse("the original is shown after you answer", status_code=403)
        return self.ctx.image_file(self.ctx.study.quiz_image_path(image_id, version), f"quiz/{version}/{image_id}")

    async def answer(self, request: Request) -> Response:
        ctx = self.ctx
        visitor = self.visitor(request)  # before the body is parsed
        if isinstance(visitor, Response):
            return visitor
        sid, _ = visitor
        if ctx.cross_site(request):
            return ctx.refuse(request, "cross-site request refused; answer from the quiz page", 403)
        form = await request.form()
        if not ctx.db.check_csrf(f"quiz:{sid}", form.get("csrf_token")):
            return ctx.refuse(request, "form token missing or wrong (cross-site request?); reload the page", 403)
        image_id = str(form.get("image_id", ""))
        try:
            await run_in_threadpool(ctx.db.record_quiz_answer, sid, ctx.quiz_size, image_id, form.get("label"),
                                    form.get("confidence"))
        except AnswerError as exc:
            return ctx.refuse(request, str(exc), exc.status)
        return RedirectResponse(f"/quiz/feedback/{image_id}", status_code=303)

    def feedback(self, request: Request) -> Response:
        ctx = self.ctx
        visitor = self.visitor(request)
        if isinstance(visitor, Response):
            return visitor
        sid, sample = visitor
        image_id = request.path_params["image_id"]
        done = ctx.db.quiz_answered(sid)
        item = ctx.study.quiz_image(image_id)
        if item is None or image_id not in sample or image_id not in done:
            return ctx.refuse(request, "answer this image first", 403)
        label, confidence = done[image_id]
        return ctx.page("quiz_feedback.html", title="quiz", image_id=image_id, given=ctx.study.classes[label],
                        confidence=confidence, truth=ctx.study.classes[item.label],
                        model=ctx.study.classes[item.model_pred], position=len(done), size=len(sample))
