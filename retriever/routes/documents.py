"""`POST /v1/documents` (upsert) and `DELETE /v1/documents/{doc_id}`."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Path
from starlette.concurrency import run_in_threadpool

from ragctl.core.limits import MAX_DOC_ID_CHARS
from ragctl.core.records import Document
from ragctl.retriever.deps import MetricsDep, ServiceDep, WriteDep
from ragctl.retriever.error_handlers import KEYED_RESPONSES, UPSERT_RESPONSES
from ragctl.retriever.schemas import DeleteResponse, DocumentsRequest, DocumentsResponse

router = APIRouter(prefix="/v1", tags=["documents"], dependencies=[WriteDep])

API_SOURCE = "api"


@router.post("/documents", response_model=DocumentsResponse, responses=UPSERT_RESPONSES)
async def upsert_documents(
    body: DocumentsRequest, service: ServiceDep, metrics: MetricsDep
) -> DocumentsResponse:
    """Chunk, embed and store documents, exactly like `ragctl ingest`.

    Chunk ids hash (document id, chunk index, text): re-posting an unchanged document writes
    nothing; a changed one replaces exactly its changed chunks. A later document with the same
    id in one request wins.
    """
    documents = [
        Document(doc_id=d.id, text=d.text, source=d.source or API_SOURCE, metadata=d.metadata)
        for d in body.documents
    ]
    started = time.perf_counter()
    serving, report = await run_in_threadpool(service.upsert_documents, documents)
    metrics.chunks_written.inc(report.chunks_written)
    metrics.chunks_deleted.inc(report.chunks_deleted)
    return DocumentsResponse(
        collection=serving.physical,
        model_version=serving.model_version,
        documents=report.documents,
        unchanged=report.unchanged,
        chunks_written=report.chunks_written,
        chunks_deleted=report.chunks_deleted,
        took_ms=round((time.perf_counter() - started) * 1000, 3),
    )


@router.delete("/documents/{doc_id:path}", response_model=DeleteResponse, responses=KEYED_RESPONSES)
async def delete_document(
    doc_id: Annotated[str, Path(min_length=1, max_length=MAX_DOC_ID_CHARS)],
    service: ServiceDep,
    metrics: MetricsDep,
) -> DeleteResponse:
    """Delete every chunk of one document (ids may contain `/`); 404 if it has none."""
    serving, deleted = await run_in_threadpool(service.delete_document, doc_id)
    metrics.chunks_deleted.inc(deleted)
    return DeleteResponse(collection=serving.physical, doc_id=doc_id, chunks_deleted=deleted)
