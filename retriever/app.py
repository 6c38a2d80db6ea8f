"""The FastAPI app factory: `create_app(settings, *, encoder=None, store=None)`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from ragctl.core.errors import RagctlError
from ragctl.retriever.auth import AccessPolicy, Role
from ragctl.retriever.console import install_console
from ragctl.retriever.docs_ui import install_docs
from ragctl.retriever.error_handlers import install_error_handlers
from ragctl.retriever.metrics import Metrics
from ragctl.retriever.middleware import (
    BodyLimitMiddleware,
    MetricsMiddleware,
    OneLineStartupFailure,
)
from ragctl.retriever.routes import (
    access,
    admin,
    collections,
    documents,
    embeddings,
    feedback,
    feedback_stats,
    health,
    models,
    reports,
    retune,
    search,
)
from ragctl.retriever.service import RetrieverService

if TYPE_CHECKING:
    from ragctl.core.encoder import Encoder
    from ragctl.core.settings import Settings
    from ragctl.core.store.base import VectorStore

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    *,
    encoder: Encoder | None = None,
    store: VectorStore | None = None,
    open_in_background: bool = False,
) -> FastAPI:
    """Build the retriever app; nothing is opened until the app starts (its lifespan).

    Args:
        settings: Everything configurable; `retriever.*` and `feedback.*` are read here.
        encoder: An already-loaded encoder (tests pass a fake); used when it is the model that
            embedded the serving collection, else that model is loaded.
        store: An open store to use (and leave open); default: `open_store(settings)`,
            closed at shutdown.
        open_in_background: Start answering at once and open the service (load the model)
            meanwhile: until it is open, `/v1/ready` and every route that needs it answer 503
            `not_ready` (with Retry-After). If opening fails, the error is logged as one line
            and `app.state.stop_serving` (set by `server.run`) is called. False: the app
            starts once the service is open (a failure fails the startup).
    """

    def opened(app: FastAPI, service: RetrieverService) -> None:
        app.state.service = service
        for served in service.collections.loaded():
            metrics.set_serving(served.current())

    async def open_service(app: FastAPI) -> None:
        try:
            service = await run_in_threadpool(
                RetrieverService.open, settings, encoder=encoder, store=store
            )
        except Exception as exc:
            app.state.startup_error = exc
            if isinstance(exc, RagctlError):
                logger.error("retriever cannot start: %s", exc)  # one line: not a bug
            else:
                logger.exception("retriever cannot start")
            stop: Callable[[], None] | None = getattr(app.state, "stop_serving", None)
            if stop is not None:
                stop()
            return
        opened(app, service)
        logger.info("retriever ready")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if open_in_background:
            # A task the loop keeps a reference to in app.state (it must not be collected).
            app.state.opening = asyncio.create_task(open_service(app))
        else:
            try:
                opened(
                    app,
                    await run_in_threadpool(
                        RetrieverService.open, settings, encoder=encoder, store=store
                    ),
                )
            except RagctlError as exc:
                # Reported as one line by `OneLineStartupFailure` (no traceback: not a bug).
                app.state.startup_error = exc
                raise
        try:
            yield
        finally:
            if open_in_background:
                await app.state.opening  # a model half loaded in a thread cannot be cancelled
            service: RetrieverService | None = app.state.service
            app.state.service = None
            if service is not None:
                await run_in_threadpool(service.close)

    metrics = Metrics()
    app = FastAPI(
        title="ragctl retriever",
        summary="Two-stage Matryoshka search over Qdrant, with feedback logging for tuning.",
        version=_version(),
        lifespan=lifespan,
        docs_url=None,  # served from local files by install_docs
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.access = AccessPolicy.from_settings(settings.retriever)
    app.state.metrics = metrics
    app.state.service = None
    install_error_handlers(app)
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=int(settings.retriever.max_body_mib * 1024 * 1024)
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # sees every answer
    app.add_middleware(OneLineStartupFailure)
    routers = [
        m.router
        for m in (
            search,
            collections,
            feedback,
            feedback_stats,
            documents,
            embeddings,
            models,
            retune,
            reports,
            health,
            access,
            admin,
        )
    ]
    for router in routers:
        app.include_router(router)
    install_docs(app)
    install_console(app)
    _document_access(app, app.state.access, routers)
    return app


def _document_access(app: FastAPI, policy: AccessPolicy, routers: list[APIRouter]) -> None:
    """Mark the key as optional in the OpenAPI schema where this app's policy lets a request
    through without one (reads without read keys, writes on a loopback bind without keys)."""
    generate = app.openapi
    open_checks = set()
    if not policy.configured(Role.READ):
        open_checks.add(f"require_{Role.READ.label}")
    if policy.anonymous_writes:
        open_checks.add(f"require_{Role.WRITE.label}")
    open_operations: set[tuple[str, str]] = set()
    for route in (r for router in routers for r in router.routes):
        if isinstance(route, APIRoute):
            checks = {getattr(d.dependency, "__name__", "") for d in route.dependencies}
            if checks & open_checks:
                open_operations.update((route.path_format, m.lower()) for m in route.methods or ())

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for path, operations in schema.get("paths", {}).items():
                for method, operation in operations.items():
                    if "security" in operation and (path, method) in open_operations:
                        operation["security"] = [{}, *operation["security"]]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ragctl")
    except PackageNotFoundError:
        return "0+unknown"
