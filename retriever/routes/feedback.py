"""`POST /v1/feedback`: which chunk answered (or failed to answer) which query."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response
from starlette.concurrency import run_in_threadpool

from ragctl.core.store.base import parse_physical
from ragctl.retriever.deps import MetricsDep, ServiceDep, WriteDep
from ragctl.retriever.error_handlers import FEEDBACK_RESPONSES
from ragctl.retriever.errors import InvalidRequestError
from ragctl.retriever.schemas import FeedbackRequest, FeedbackResponse

router = APIRouter(prefix="/v1", tags=["feedback"], dependencies=[WriteDep])


@router.post(
    "/feedback", response_model=FeedbackResponse, status_code=201, responses=FEEDBACK_RESPONSES
)
async def feedback(
    body: FeedbackRequest,
    service: ServiceDep,
    metrics: MetricsDep,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=255,
            pattern=r"^[!-~]+$",
            description="Same as the body's `idempotency_key`.",
        ),
    ] = None,
) -> FeedbackResponse:
    """Record a judgement of one chunk for a search (by `search_id`) or a bare `query`.

    The chunk's text and the serving model version are stored with it, durably, before the
    answer is sent. The chunk must exist in the collection the search used; it need not be
    among the search's results (`rank` is null then). Unknown `search_id` or `chunk_id`:
    404, nothing written. Without `search_id` the judgement is marked `free_text`.
    A retry with the same idempotency key (header or field) is stored once: the stored record
    is answered again with `Idempotent-Replayed: true`. With `search_id` the search's
    collection is used; without, `collection` (default: the configured one).
    """
    key = body.idempotency_key or idempotency_key
    if body.idempotency_key and idempotency_key and body.idempotency_key != idempotency_key:
        raise InvalidRequestError(
            "validation_error",
            "the Idempotency-Key header and the idempotency_key field differ; give one",
            field="idempotency_key",
        )
    outcome = await run_in_threadpool(
        service.record_feedback,
        chunk_id=body.chunk_id,
        label=body.label,
        search_id=body.search_id,
        query=body.query,
        idempotency_key=key,
        collection=body.collection,
    )
    if outcome.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    else:
        metrics.feedback.labels(_logical(outcome.event.collection), body.label).inc()
    event = outcome.event
    return FeedbackResponse(
        feedback_id=outcome.feedback_id,
        search_id=event.search_id,
        query=event.query,
        chunk_id=event.chunk_id,
        doc_id=event.doc_id,
        label=event.label,
        model_version=event.model_version,
        collection=event.collection,
        rank=event.rank,
        created_at=event.created_at,
        free_text=event.free_text,
    )


def _logical(physical: str) -> str:
    return parse_physical(physical)[0]
