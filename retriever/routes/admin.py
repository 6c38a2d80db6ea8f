"""Admin routes behind `Authorization: Bearer <retriever.admin_api_key>`; each acts on the
collection named by the `collection` query parameter (default: the configured one)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.concurrency import run_in_threadpool

from ragctl.core.limits import COLLECTION_NAME_PATTERN
from ragctl.retriever.deps import AdminDep, MetricsDep, ServiceDep
from ragctl.retriever.error_handlers import ADMIN_RESPONSES
from ragctl.retriever.routes.collections import summary
from ragctl.retriever.schemas import (
    CollectionOut,
    CollectionsResponse,
    CollectionSummary,
    CreateCollectionRequest,
    ReloadResponse,
)
from ragctl.retriever.service import ReloadOutcome

router = APIRouter(
    prefix="/v1/admin", tags=["admin"], dependencies=[AdminDep], responses=ADMIN_RESPONSES
)

CollectionQuery = Annotated[
    str | None,
    Query(
        pattern=COLLECTION_NAME_PATTERN,
        description="The collection (alias name) to act on; default: the configured one.",
    ),
]


@router.get("/collections", response_model=CollectionsResponse)
async def collections(service: ServiceDep) -> CollectionsResponse:
    """Every physical collection: model, dims, points, aliases, and which ones are served."""
    infos = await run_in_threadpool(service.store.collections)
    serving = await run_in_threadpool(service.serving_physicals)
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
                serving=i.spec.physical in serving,
                created_at=i.spec.created_at,
            )
            for i in infos
        ]
    )


@router.post("/collections", response_model=CollectionSummary, status_code=201)
async def create_collection(
    body: CreateCollectionRequest, service: ServiceDep, metrics: MetricsDep
) -> CollectionSummary:
    """Create an empty collection `name` (`NAME__v1`), embedded by the configured model, and
    load it; 409 `collection_exists` if there is one."""
    served = await run_in_threadpool(service.create_collection, body.name)
    metrics.set_serving(served.current())
    serving = served.current()
    return summary(service, served.name, serving.spec, 0, loaded=True)


@router.post("/reload", response_model=ReloadResponse)
async def reload(
    service: ServiceDep, metrics: MetricsDep, collection: CollectionQuery = None
) -> ReloadResponse:
    """Serve the collection the alias points at now (after a promotion by another process).

    The new model loads while the old pair keeps serving; the switch is one atomic swap.
    """
    outcome = await run_in_threadpool(service.reload, collection)
    metrics.set_serving(outcome.current)
    return _reload_response(outcome)


@router.post("/models/{version}/activate", response_model=ReloadResponse)
async def activate(
    service: ServiceDep,
    metrics: MetricsDep,
    version: Annotated[int, Path(ge=1, le=1_000_000, description="Model version N (NAME__vN)")],
    force: Annotated[bool, Query(description="Serve a version the gate rejected")] = False,
    collection: CollectionQuery = None,
) -> ReloadResponse:
    """Serve model VERSION in the collection: re-embed it with that model (resumable), then
    swap atomically.

    Searches keep being answered by the old (model, collection) pair until the swap; every
    response's model_version matches the collection it searched. Other collections are
    untouched.
    """
    outcome = await run_in_threadpool(
        lambda: service.activate(version, force=force, collection=collection)
    )
    metrics.set_serving(outcome.current)
    return _reload_response(outcome)


@router.post("/rollback", response_model=ReloadResponse)
async def rollback(
    service: ServiceDep,
    metrics: MetricsDep,
    force: Annotated[
        bool, Query(description="Roll back onto a version the gate rejected (it was forced)")
    ] = False,
    collection: CollectionQuery = None,
) -> ReloadResponse:
    """Serve the version that served the collection before the current one (kept; nothing
    is re-embedded).

    Rollback only goes back through what served: a second rollback goes further back, and
    with nothing earlier it is a 409 `nothing_to_roll_back`.
    """
    outcome = await run_in_threadpool(lambda: service.rollback(force=force, collection=collection))
    metrics.set_serving(outcome.current)
    return _reload_response(outcome)


def _reload_response(outcome: ReloadOutcome) -> ReloadResponse:
    return ReloadResponse(
        changed=outcome.changed,
        previous=outcome.previous.physical,
        current=outcome.current.physical,
        model_version=outcome.current.model_version,
    )
