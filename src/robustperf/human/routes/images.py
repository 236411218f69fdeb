"""The images a labeller may see, and the page's one script."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

from robustperf.human.routes.context import NOT_YOURS, TEMPLATES, AppContext
from robustperf.human.study import IMAGE_ID, VERSIONS


class Images:
    """``/image/<version>/<id>``: 401/403 before any lookup; clean images only after the adversarial answers."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def routes(self) -> list[Route]:
        return [Route("/image/{version}/{image_id}", self.image), Route("/static/app.js", self.static_js)]

    def image(self, request: Request) -> Response:
        ctx = self.ctx
        who = ctx.signed_in(request)  # 401 / 403 before any lookup
        if isinstance(who, Response):
            return who
        image_id, version = request.path_params["image_id"], request.path_params["version"]
        item = ctx.study.image(image_id) if version in VERSIONS and IMAGE_ID.fullmatch(image_id) else None
        if item is None or not who.has_batch(item.batch):
            return PlainTextResponse(NOT_YOURS, status_code=403)
        if version == "clean":
            if not ctx.db.may_see_clean(who, item.batch):
                return PlainTextResponse("clean images come after the batch's adversarial images", status_code=403)
            ctx.db.mark_clean_served(who, item.batch)
        return ctx.image_file(ctx.study.image_path(image_id, version), f"{version}/{image_id}")

    def static_js(self, request: Request) -> Response:
        return FileResponse(TEMPLATES / "app.js", media_type="text/javascript")
