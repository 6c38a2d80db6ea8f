"""Plain ASGI middleware: request metrics per route template, a request body size limit, and
one-line startup failures."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from fastapi import HTTPException

from ragctl.retriever.metrics import UNMATCHED_ROUTE

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from ragctl.retriever.metrics import Metrics


class MetricsMiddleware:
    """Counts requests and their latency by route template (`/v1/documents/{doc_id:path}`).

    Unknown paths are counted as one `<unmatched>` route, so scanners cannot blow up the
    number of time series.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED_ROUTE
            self.metrics.observe_request(
                scope["method"], template, status, time.perf_counter() - started
            )


class BodyLimitMiddleware:
    """Refuses request bodies over `max_bytes` with 413 (`payload_too_large`).

    Checks `Content-Length` up front and counts streamed bytes too, so a chunked upload cannot
    get around it.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        declared = _content_length(scope)
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            if declared is not None and declared > limit:
                raise _too_large(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _too_large(limit)
            return message

        await self.app(scope, limited_receive, send)


def _too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"request body over the limit of {limit} bytes")


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class OneLineStartupFailure:
    """A startup failure caused by ragctl's own errors (a held store, a model that cannot load)
    is reported to the server as one line, not as the traceback Starlette sends.

    The lifespan records such an error in `app.state.startup_error`; anything else (a bug) keeps
    its traceback.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_one_line(message: Message) -> None:
            if message["type"] == "lifespan.startup.failed":
                error = getattr(scope["app"].state, "startup_error", None)
                if error is not None:
                    message = {**message, "message": f"retriever cannot start: {error}"}
            await send(message)

        await self.app(scope, receive, send_one_line)
