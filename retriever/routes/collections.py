"""`GET /v1/collections`: the collections a client can name."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from ragctl.core.store.base import CollectionSpec
from ragctl.retriever.deps import ReadDep, ServiceDep
from ragctl.retriever.error_handlers import KEYED_RESPONSES
from ragctl.retriever.schemas import CollectionList, CollectionSummary
from ragctl.retriever.service import RetrieverService

router = APIRouter(prefix="/v1", tags=["search"], dependencies=[ReadDep])


@router.get("/collections", response_model=CollectionList, responses=KEYED_RESPONSES)
async def collections(service: ServiceDep) -> CollectionList:
    """Every collection (alias) of the store: what it serves now, its size, and whether this
    server has loaded it. Requests name one with `collection`."""
    listed = await run_in_threadpool(service.list_collections)
    return CollectionList(
        default=service.collections.default,
        collections=[
            summary(service, name, spec, points, loaded=loaded)
            for name, spec, points, loaded in listed
        ],
    )


def summary(
    service: RetrieverService, name: str, spec: CollectionSpec, points: int, *, loaded: bool
) -> CollectionSummary:
    """The public form of one collection."""
    return CollectionSummary(
        name=name,
        physical=spec.physical,
        model=spec.model,
        model_version=spec.version,
        points=points,
        default=name == service.collections.default,
        loaded=loaded,
    )
