"""The organiser's routes: the health check a proxy or a supervisor polls."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route


def health(request: Request) -> Response:
    return PlainTextResponse("ok")


def routes() -> list[Route]:
    return [Route("/healthz", health)]
