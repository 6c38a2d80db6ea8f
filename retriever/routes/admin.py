"""Admin routes behind `Authorization: Bearer <retriever.admin_api_key>`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.concurrency import run_in_threadpool

from ragctl.retriever.deps import AdminDep, MetricsDep, ServiceDep
from ragctl.retriever.error_handlers import ADMIN_RESPONSES
from ragctl.retriever.schemas import CollectionOut, CollectionsResponse, ReloadResponse
from ragctl.retriever.service import ReloadOutcome

router = APIRouter(
    prefix="/v1/admin", tags=["admin"], dependencies=[AdminDep], responses=ADMIN_RESPONSES
)


@router.get("/collections", response_model=CollectionsResponse)
async def collections(service: ServiceDep) -> CollectionsResponse:
    """Every physical collection: model, dims, points, aliases, and which one is served."""
    infos = await run_in_threadpool(service.store.collections)
    serving = service.current().physical
    return CollectionsResponse(
        collections=[
            CollectionOut(
                physical=i.spec.physical,
                name=i.spec.name,
                version=i.spec.version,
                model=i.spec.model,
                dim=i.spec.dim,
                shortlist_dims=list(i.spec.shortlist_dims),
                points=i.points,
                aliases=list(i.aliases),
                serving=i.spec.physical == serving,
                created_at=i.spec.created_at,
            )
            for i in infos
        ]
    )


@router.post("/reload", response_model=ReloadResponse)
async def reload(service: ServiceDep, metrics: MetricsDep) -> ReloadResponse:
    """Serve the collection the alias points at now (after a promotion by another process).

    The new model loads while the old pair keeps serving; the switch is one atomic swap.
    """
    outcome = await run_in_threadpool(service.reload)
    metrics.set_serving(outcome.current)
    return ReloadResponse(
        changed=outcome.changed,
        previous=outcome.previous.physical,
        current=outcome.current.physical,
        model_version=outcome.current.model_version,
    )


@router.post("/models/{version}/activate", response_model=ReloadResponse)
async def activate(
    service: ServiceDep,
    metrics: MetricsDep,
    version: Annotated[int, Path(ge=1, le=1_000_000, description="Model version N (NAME__vN)")],
    force: Annotated[bool, Query(description="Serve a version the gate rejected")] = False,
) -> ReloadResponse:
    """Serve model VERSION: re-embed the collection with it (resumable), then swap atomically.

    Searches keep being answered by the old (model, collection) pair until the swap; every
    response's model_version matches the collection it searched.
    """
    outcome = await run_in_threadpool(service.activate, version, force=force)
    metrics.set_serving(outcome.current)
    return _reload_response(outcome)


@router.post("/rollback", response_model=ReloadResponse)
async def rollback(
    service: ServiceDep,
    metrics: MetricsDep,
    force: Annotated[
        bool, Query(description="Roll back onto a version the gate rejected (it was forced)")
    ] = False,
) -> ReloadResponse:
    """Serve the version that served before the current one (kept; nothing is re-embedded).

    Rollback only goes back through what served: a second rollback goes further back, and
    with nothing earlier it is a 409 `nothing_to_roll_back`.
    """
    outcome = await run_in_threadpool(service.rollback, force=force)
    metrics.set_serving(outcome.current)
    return _reload_response(outcome)


def _reload_response(outcome: ReloadOutcome) -> ReloadResponse:
    return ReloadResponse(
        changed=outcome.changed,
        previous=outcome.previous.physical,
        current=outcome.current.physical,
        model_version=outcome.current.model_version,
    )
