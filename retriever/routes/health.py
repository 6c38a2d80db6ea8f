"""`GET /v1/health`, `GET /v1/ready` and `GET /metrics`."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from ragctl.retriever.deps import MetricsDep
from ragctl.retriever.errors import NotReadyError
from ragctl.retriever.schemas import (
    ErrorResponse,
    HealthResponse,
    ReadyCollection,
    ReadyResponse,
)
from ragctl.retriever.service import RetrieverService

router = APIRouter(tags=["operations"])


@router.get("/v1/health", response_model=HealthResponse)
async def health() -> HealthResponse:
    """The process is up (liveness); says nothing about the model or the store."""
    return HealthResponse()


@router.get(
    "/v1/ready",
    response_model=ReadyResponse,
    responses={503: {"model": ErrorResponse, "description": "Not ready, with the reason"}},
)
async def ready(request: Request) -> ReadyResponse:
    """Ready to search the default collection: model loaded, store reachable, alias resolved.

    `collections` lists every collection this server has loaded (the default, and each one a
    request has named), with its own state; only the default's decides the status.
    """
    service: RetrieverService | None = getattr(request.app.state, "service", None)
    if service is None:
        failed = getattr(request.app.state, "startup_error", None)
        if failed is not None:
            raise NotReadyError("not_ready", f"the retriever could not start: {failed}")
        raise NotReadyError("not_ready", "model not loaded: the retriever is starting up")
    readiness = await run_in_threadpool(service.readiness)
    if not readiness.ready:
        raise NotReadyError("not_ready", readiness.reason)
    serving = service.current()
    return ReadyResponse(
        collection=serving.physical,
        model=serving.spec.model,
        model_version=serving.model_version,
        detail=readiness.reason,
        collections=[
            ReadyCollection(
                name=state.served.name,
                physical=state.served.current().physical,
                model=state.served.current().spec.model,
                model_version=state.served.current().model_version,
                ready=state.ready,
                detail=state.reason,
            )
            for state in readiness.collections
        ],
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def metrics(request: Request, metrics: MetricsDep) -> Response:
    """Prometheus metrics: requests, latency per route, search stages, feedback, model version."""
    service: RetrieverService | None = getattr(request.app.state, "service", None)
    if service is not None:
        for served in service.collections.loaded():
            metrics.set_serving(served.current())
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
