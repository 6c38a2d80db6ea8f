"""`POST /v1/search`: two-stage (or single-stage) search with the serving model."""

from __future__ import annotations

import time

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from ragctl.retriever.deps import MetricsDep, ReadDep, ServiceDep
from ragctl.retriever.error_handlers import KEYED_RESPONSES
from ragctl.retriever.schemas import SearchRequest, SearchResponse, SearchResult

router = APIRouter(prefix="/v1", tags=["search"], dependencies=[ReadDep])


@router.post("/search", response_model=SearchResponse, responses=KEYED_RESPONSES)
async def search(body: SearchRequest, service: ServiceDep, metrics: MetricsDep) -> SearchResponse:
    """Find the chunks that best answer `query`.

    One Qdrant query per search, in the collection's default mode or the requested one:
    dense (`shortlist` candidates on the Matryoshka shortlist vector, reranked with the full
    vector), sparse (BM25 over the lexical vectors) or hybrid (both branches fused). The query
    is embedded by the very model that embedded the collection searched (`model_version`).
    Every search is logged under its `search_id`.
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
        results=[
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
            for h in outcome.hits
        ],
    )
