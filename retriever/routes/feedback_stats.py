"""`GET /v1/feedback/stats` (read) and `GET /v1/feedback/export` (write): the judgements logged."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from ragctl.retriever.deps import (
    CollectionQuery,
    ReadDep,
    ServiceDep,
    WriteDep,
    resolve_collection,
)
from ragctl.retriever.error_handlers import KEYED_RESPONSES
from ragctl.retriever.errors import InvalidRequestError
from ragctl.retriever.feedback_log import LABELS, FeedbackLog, parse_since
from ragctl.retriever.schemas import DayCount, FeedbackStatsResponse

router = APIRouter(prefix="/v1/feedback", tags=["feedback"])

RECENT = 20


@router.get(
    "/stats",
    response_model=FeedbackStatsResponse,
    responses=KEYED_RESPONSES,
    dependencies=[ReadDep],
)
async def feedback_stats(
    service: ServiceDep,
    collection: CollectionQuery = None,
    days: Annotated[int, Query(ge=1, le=366, description="Days counted in `by_day`.")] = 30,
) -> FeedbackStatsResponse:
    """Judgements by label (ever) and by UTC day (the last `days`, zeros kept), searches in
    that window, and the newest judgements: how much training signal the tuner has."""
    name = resolve_collection(service, collection)
    return await run_in_threadpool(_stats, service.feedback_log, name, days)


def _stats(log: FeedbackLog, collection: str, days: int) -> FeedbackStatsResponse:
    today = datetime.now(timezone.utc).date()
    first = today - timedelta(days=days - 1)
    since = datetime(first.year, first.month, first.day, tzinfo=timezone.utc).isoformat(
        timespec="microseconds"
    )
    counted = log.daily_counts(since, collection=collection)
    by_day = []
    for offset in range(days):
        day = (first + timedelta(days=offset)).isoformat()
        by_day.append(DayCount(day=day, **counted.get(day, dict.fromkeys(LABELS, 0))))
    by_label = log.label_counts(collection=collection)
    return FeedbackStatsResponse(
        collection=collection,
        days=days,
        total=sum(by_label.values()),
        by_label=by_label,
        by_day=by_day,
        searches=log.count_searches(since, collection=collection),
        recent=log.recent_feedback(RECENT, collection=collection),
    )


@router.get(
    "/export",
    responses={
        **KEYED_RESPONSES,
        200: {
            "content": {"application/x-ndjson": {}},
            "description": "One JSON object per line, oldest first (as `ragctl feedback export`)",
        },
    },
    response_class=StreamingResponse,
    dependencies=[WriteDep],
)
async def feedback_export(
    service: ServiceDep,
    collection: CollectionQuery = None,
    since: Annotated[
        str | None,
        Query(max_length=64, description="Only judgements at or after this ISO date/time."),
    ] = None,
) -> StreamingResponse:
    """Every judgement of the collection as JSON lines, the rows `ragctl feedback export`
    writes (query, chunk_id, doc_id, label, chunk_text, model_version, ...). Needs a write key:
    it holds the training data."""
    name = resolve_collection(service, collection)
    try:
        since_ts = parse_since(since) if since else None
    except ValueError as exc:
        raise InvalidRequestError("validation_error", f"since: {exc}", field="since") from exc
    log = service.feedback_log

    def lines() -> Iterator[str]:
        for row in log.iter_feedback(since_ts, collection=name):
            yield json.dumps(row, ensure_ascii=False) + "\n"

    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="feedback-{name}.jsonl"'},
    )
