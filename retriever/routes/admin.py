"""Admin routes behind `Authorization: Bearer <retriever.admin_api_key>`."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from retriever.deps import AdminDep, MetricsDep, ServiceDep
from retriever.error_handlers import ADMIN_RESPONSES
from retriever.schemas import CollectionOut, CollectionsResponse, ReloadResponse

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
