"""`POST /v1/search` and `POST /v1/search/batch`: two-stage (or single-stage, sparse, hybrid)
search with the serving model of the collection named."""

from __future__ import annotations

import time

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from ragctl.core.records import Hit
from ragctl.retriever.deps import MetricsDep, ReadDep, ServiceDep
from ragctl.retriever.error_handlers import KEYED_RESPONSES
from ragctl.retriever.schemas import (
    BatchSearchItem,
    BatchSearchRequest,
    BatchSearchResponse,
    SearchRequest,
    SearchResponse,
    SearchResult,
)

router = APIRouter(prefix="/v1", tags=["search"], dependencies=[ReadDep])


@router.post("/search", response_model=SearchResponse, responses=KEYED_RESPONSES)
async def search(body: SearchRequest, service: ServiceDep, metrics: MetricsDep) -> SearchResponse:
    """Find the chunks that best answer `query` in `collection` (default: the configured one).

    One Qdrant query per search, in the collection's default mode or the requested one:
    dense (`shortlist` candidates on the Matryoshka shortlist vector, reranked with the full
    vector), sparse (BM25 over the lexical vectors) or hybrid (both branches fused). The query
    is embedded by the very model that embedded the collection searched (`model_version`).
    Every search is logged under its `search_id`. Unknown collection: 404
    `collection_not_found`.
    """
    started = time.perf_counter()
    outcome = await run_in_threadpool(service.search, body)
    took_ms = (time.perf_counter() - started) * 1000
    metrics.observe_search(outcome)
    return SearchResponse(
        search_id=outcome.search_id,
        model_version=outcome.serving.model_version,
        collection=outcome.serving.physical,
        mode=outcome.mode,
        took_ms=round(took_ms, 3),
        results=results(outcome.hits),
    )


@router.post("/search/batch", response_model=BatchSearchResponse, responses=KEYED_RESPONSES)
async def search_batch(
    body: BatchSearchRequest, service: ServiceDep, metrics: MetricsDep
) -> BatchSearchResponse:
    """Search many queries with the same parameters in one request.

    The queries are embedded in one model call and searched in one Qdrant call, all with the
    same (model, collection) pair; each is logged as its own search, with its own
    `search_id`. Answers come in the order of `queries`.
    """
    started = time.perf_counter()
    outcome = await run_in_threadpool(service.search_batch, body)
    took_ms = (time.perf_counter() - started) * 1000
    metrics.observe_search(outcome)
    return BatchSearchResponse(
        model_version=outcome.serving.model_version,
        collection=outcome.serving.physical,
        mode=outcome.mode,
        took_ms=round(took_ms, 3),
        searches=[
            BatchSearchItem(search_id=search_id, query=query, results=results(hits))
            for search_id, query, hits in outcome.searches
        ],
    )


def results(hits: list[Hit]) -> list[SearchResult]:
    """The response form of hits."""
    return [
        SearchResult(
            chunk_id=h.chunk_id,
            doc_id=h.doc_id,
            score=h.score,
            text=h.text,
            source=h.source,
            start=h.start,
            end=h.end,
            metadata=h.metadata,
        )
        for h in hits
    ]
