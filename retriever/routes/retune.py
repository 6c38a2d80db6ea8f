"""`GET /v1/retune/status`: the latest `ragctl retune` of the collection, running or not."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from ragctl.retriever.deps import CollectionQuery, ReadDep, ServiceDep, resolve_collection
from ragctl.retriever.error_handlers import KEYED_RESPONSES
from ragctl.retriever.schemas import RetuneStatusResponse
from ragctl.tuner.status import read_status

router = APIRouter(prefix="/v1/retune", tags=["models"], dependencies=[ReadDep])


@router.get("/status", response_model=RetuneStatusResponse, responses=KEYED_RESPONSES)
async def retune_status(
    service: ServiceDep, collection: CollectionQuery = None
) -> RetuneStatusResponse:
    """What the latest retune of the collection is doing or did: `running` (with its current
    step), `finished` (with the gate's verdict), `failed` (with the error) or `interrupted`
    (its process is gone). `ragctl retune` writes it to data_dir/retune/COLLECTION.json."""
    name = resolve_collection(service, collection)
    status = await run_in_threadpool(read_status, service.settings.data_dir, name)
    return RetuneStatusResponse(collection=name, status=status)
