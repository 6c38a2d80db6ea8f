"""`GET /v1/models` and `GET /v1/models/{version}`: the model registry, read-only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from starlette.concurrency import run_in_threadpool

from ragctl.core.registry import ModelRecord, ModelRegistry
from ragctl.evalkit.gate_view import comparison_rows, reason_lines
from ragctl.retriever.deps import CollectionQuery, ReadDep, ServiceDep, resolve_collection
from ragctl.retriever.error_handlers import KEYED_RESPONSES
from ragctl.retriever.schemas import (
    GateLine,
    ModelDetail,
    ModelOut,
    ModelsResponse,
    ServingProfileOut,
)

router = APIRouter(prefix="/v1", tags=["models"], dependencies=[ReadDep])


@router.get("/models", response_model=ModelsResponse, responses=KEYED_RESPONSES)
async def list_models(service: ServiceDep, collection: CollectionQuery = None) -> ModelsResponse:
    """Every model version (oldest first) with parent, status, gate decision and best search
    mode; which one serves the collection, the versions that served it, and its profile."""
    name = resolve_collection(service, collection)
    registry = ModelRegistry(service.settings.data_dir)
    records, serving, history = await run_in_threadpool(
        lambda: (registry.records(), registry.serving(name), registry.history(name))
    )
    current = await run_in_threadpool(service.current, name)  # loads it on first use
    profile = ServingProfileOut(
        physical=current.physical,
        model_version=current.model_version,
        mode=str(current.profile.mode),
        fusion=current.profile.fusion.model_dump(mode="json"),
        source=current.profile.source,
    )
    return ModelsResponse(
        collection=name,
        serving=serving if serving is not None else current.model_version,
        history=history,
        profile=profile,
        models=[ModelOut(**_summary(r)) for r in records],
    )


@router.get("/models/{version}", response_model=ModelDetail, responses=KEYED_RESPONSES)
async def get_model(
    service: ServiceDep,
    version: Annotated[int, Path(ge=1, le=1_000_000, description="Model version N")],
) -> ModelDetail:
    """One version with everything recorded: training, gate (reason as lines, and the numbers
    compared, with confidence intervals when the reports have per-query values) and the eval
    reports of serving and candidate on the held-out queries. 404 `model_not_found`."""
    registry = ModelRegistry(service.settings.data_dir)
    record = await run_in_threadpool(registry.get, version)
    evaluation = record.evaluation or {}
    rows = await run_in_threadpool(
        comparison_rows, evaluation.get("serving"), evaluation.get("candidate"), gate=record.gate
    )
    return ModelDetail(
        **_summary(record),
        evaluation=record.evaluation,
        gate_reason_lines=reason_lines((record.gate or {}).get("reason")),
        comparisons=[GateLine(**row) for row in rows],
    )


def _summary(record: ModelRecord) -> dict[str, Any]:
    return record.model_dump(mode="json", exclude={"evaluation"})
