"""Running the retriever on uvicorn: deadlines for slow clients, and settings for workers.

Slow clients: uvicorn closes idle keep-alive connections (`timeout_keep_alive`) but has no
deadline for reading a request, so a client that sends its headers (or its body) a byte at a
time holds a connection open for as long as it likes. `GuardedHttpProtocol` (uvicorn's
httptools protocol, passed as `http=`) arms a timer when a connection opens or a request's
first byte arrives and cancels it when the head (request line and headers) is complete, arms
another for the body until the request is complete, and answers 408 and closes when one
fires; a head larger than `MAX_HEAD_BYTES` is answered 431 and closed.

Workers: `--workers N` runs N processes that re-import the app. Their settings (API keys
included) travel inside uvicorn's `Config`, which multiprocessing pickles to each worker over
its spawn pipe: never through the environment, never through a file.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

if TYPE_CHECKING:
    import asyncio

    from fastapi import FastAPI

    from ragctl.core.settings import Settings

logger = logging.getLogger(__name__)

WORKER_APP = "ragctl.retriever.server:worker_app"
MAX_HEAD_BYTES = 64 * 1024
"""Largest request line plus headers; more is answered 431."""

REFUSAL_LINGER_S = 1.0
"""After a 408/431 the server stops sending and drops what still arrives for this long before
it closes: closing with unread bytes would reset the connection, and a reset can discard the
answer before the client reads it."""

# The settings of this worker process, set by `ServeConfig.load` before the app is imported.
_worker_settings: Settings | None = None


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with deadlines for the request head and body."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self._head_timeout_s = float(getattr(config, "header_timeout_s", 10.0))
        self._body_timeout_s = float(getattr(config, "body_timeout_s", 60.0))
        self._deadline: asyncio.TimerHandle | None = None
        self._reading_head = True
        self._head_bytes = 0
        self._refused = False

    # --- connection and parser callbacks ---
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self._head_timeout_s, "request headers")

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # answered and closing: drop what the client still sends
        reading_head = self._reading_head
        if reading_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if reading_head and self._reading_head and self._head_bytes > MAX_HEAD_BYTES:
            self._refuse(
                431,
                "request_header_fields_too_large",
                f"request line and headers over {MAX_HEAD_BYTES // 1024} KiB",
            )

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_head = True
        if self._deadline is None:  # a keep-alive connection's next request
            self._head_bytes = 0
            self._arm(self._head_timeout_s, "request headers")

    def on_headers_complete(self) -> None:
        self._reading_head = False
        super().on_headers_complete()
        self._arm(self._body_timeout_s, "request body")

    def on_message_complete(self) -> None:
        self._cancel()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    # --- deadlines ---
    def _arm(self, seconds: float, what: str) -> None:
        self._cancel()
        self._deadline = self.loop.call_later(seconds, self._expired, what, seconds)

    def _cancel(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, what: str, seconds: float) -> None:
        self._deadline = None
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "unknown"
        logger.info(
            "closing the connection from %s: %s not received within %g s", client, what, seconds
        )
        self._refuse(408, "request_timeout", f"{what} not received within {seconds:g} s")

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer `status` with the API's JSON error body (when nothing was answered) and close."""
        self._cancel()
        if self._refused or self.transport is None or self.transport.is_closing():
            return
        self._refused = True
        cycle = self.cycle
        answered = cycle is not None and cycle.response_started and not cycle.response_complete
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app's own answer, if any comes, is dropped
        if not answered:
            body = json.dumps({"error": {"code": code, "message": message, "field": None}})
            reason = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}[status]
            self.transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\nconnection: close\r\n"
                b"content-length: %d\r\n\r\n%s" % (status, reason, len(body), body.encode("ascii"))
            )
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(REFUSAL_LINGER_S, self.transport.close)
        else:
            self.transport.close()


class ServeConfig(uvicorn.Config):
    """uvicorn's Config plus the request deadlines and the settings handed to workers.

    Pickled to each worker process by multiprocessing (spawn), attributes included.
    """

    def __init__(
        self,
        app: Any,
        *,
        header_timeout_s: float,
        body_timeout_s: float,
        worker_settings: Settings | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, http=GuardedHttpProtocol, **kwargs)
        self.header_timeout_s = header_timeout_s
        self.body_timeout_s = body_timeout_s
        self.worker_settings = worker_settings

    def load(self) -> None:
        global _worker_settings
        if self.worker_settings is not None:
            _worker_settings = self.worker_settings
        super().load()


def worker_app() -> FastAPI:
    """The app of one uvicorn worker process (`--workers N`), from the settings it was handed."""
    from ragctl.retriever.app import create_app

    if _worker_settings is None:
        raise RuntimeError("worker_app is started by `ragctl serve --workers N` only")
    configure_torch(_worker_settings)
    return create_app(_worker_settings)


def configure_torch(settings: Settings) -> None:
    """Intra-op threads of the encoders this serving process loads (`retriever.torch_threads`,
    for torch and onnxruntime alike); imports neither here."""
    from ragctl.core.encoder_loader import set_threads

    set_threads(settings.retriever.torch_threads)


def build_config(
    settings: Settings, *, app: FastAPI | None = None, log_level: str = "info"
) -> ServeConfig:
    """The uvicorn config `ragctl serve` runs: `app` in this process, or `--workers N`."""
    server = settings.retriever
    common: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "log_level": log_level,
        "timeout_keep_alive": server.keep_alive_timeout_s,
        "header_timeout_s": server.header_timeout_s,
        "body_timeout_s": server.body_timeout_s,
    }
    if app is not None:
        return ServeConfig(app, workers=1, **common)
    return ServeConfig(
        WORKER_APP, factory=True, workers=server.workers, worker_settings=settings, **common
    )


def run(config: ServeConfig) -> bool:
    """Serve until stopped (Ctrl-C, SIGTERM); False when the app failed to start."""
    from uvicorn.supervisors import Multiprocess

    server = uvicorn.Server(config)
    if config.workers > 1:
        sock = config.bind_socket()
        Multiprocess(config, sockets=[sock]).run()
        return True
    state = getattr(config.app, "state", None)  # the app itself when it runs in this process
    if state is not None:
        # An app opening its service in the background stops the server when that fails.
        state.stop_serving = lambda: setattr(server, "should_exit", True)
    try:
        server.run()
    except KeyboardInterrupt:  # pragma: no cover - the server handles SIGINT itself
        pass
    return server.started and getattr(state, "startup_error", None) is None
