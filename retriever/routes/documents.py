"""Documents of a collection: upsert (`POST`), list and read (`GET`), delete (`DELETE`)."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from starlette.concurrency import run_in_threadpool

from ragctl.core.limits import COLLECTION_NAME_PATTERN, MAX_DOC_ID_CHARS
from ragctl.core.records import Document
from ragctl.core.store.base import parse_physical
from ragctl.retriever.deps import MetricsDep, ReadDep, ServiceDep, WriteDep
from ragctl.retriever.error_handlers import KEYED_RESPONSES, UPSERT_RESPONSES
from ragctl.retriever.errors import InvalidRequestError
from ragctl.retriever.schemas import (
    MAX_DOCUMENTS_PAGE,
    DeleteResponse,
    DocumentChunk,
    DocumentDetail,
    DocumentsPage,
    DocumentsRequest,
    DocumentsResponse,
    DocumentSummary,
)

router = APIRouter(prefix="/v1", tags=["documents"])

API_SOURCE = "api"

CollectionQuery = Annotated[
    str | None,
    Query(
        pattern=COLLECTION_NAME_PATTERN,
        description="The collection (alias name); default: the configured `collection`.",
    ),
]
DocIdPath = Annotated[str, Path(min_length=1, max_length=MAX_DOC_ID_CHARS)]


@router.post(
    "/documents",
    response_model=DocumentsResponse,
    responses=UPSERT_RESPONSES,
    dependencies=[WriteDep],
)
async def upsert_documents(
    body: DocumentsRequest, service: ServiceDep, metrics: MetricsDep
) -> DocumentsResponse:
    """Chunk, embed and store documents in `collection`, exactly like `ragctl ingest`.

    Chunk ids hash (document id, chunk index, text): re-posting an unchanged document writes
    nothing; a changed one replaces exactly its changed chunks. A later document with the same
    id in one request wins.
    """
    documents = [
        Document(doc_id=d.id, text=d.text, source=d.source or API_SOURCE, metadata=d.metadata)
        for d in body.documents
    ]
    started = time.perf_counter()
    serving, report = await run_in_threadpool(service.upsert_documents, documents, body.collection)
    metrics.chunks_written.labels(serving.spec.name).inc(report.chunks_written)
    metrics.chunks_deleted.labels(serving.spec.name).inc(report.chunks_deleted)
    return DocumentsResponse(
        collection=serving.physical,
        model_version=serving.model_version,
        documents=report.documents,
        unchanged=report.unchanged,
        chunks_written=report.chunks_written,
        chunks_deleted=report.chunks_deleted,
        took_ms=round((time.perf_counter() - started) * 1000, 3),
    )


@router.get(
    "/documents", response_model=DocumentsPage, responses=KEYED_RESPONSES, dependencies=[ReadDep]
)
async def list_documents(
    service: ServiceDep,
    collection: CollectionQuery = None,
    prefix: Annotated[
        str | None,
        Query(max_length=MAX_DOC_ID_CHARS, description="Only ids starting with this."),
    ] = None,
    filter: Annotated[
        str | None,
        Query(
            max_length=16_384,
            description="A JSON object in the search filter language (`doc_id`, `source`, "
            "`metadata.FIELD`, ranges, `must_not`): documents with a chunk matching it.",
            examples=['{"metadata.lang": "en"}'],
        ),
    ] = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_DOCUMENTS_PAGE)] = 50,
) -> DocumentsPage:
    """One page of the documents of a collection, sorted by doc_id, with their chunk counts."""
    payload_filter = _parse_json_filter(filter)
    physical, documents = await run_in_threadpool(
        service.list_documents, collection, prefix=prefix, payload_filter=payload_filter
    )
    page = documents[offset : offset + limit]
    following = offset + limit
    return DocumentsPage(
        collection=physical,
        documents=[
            DocumentSummary(doc_id=d.doc_id, source=d.source, chunks=d.chunks, metadata=d.metadata)
            for d in page
        ],
        offset=offset,
        limit=limit,
        next_offset=following if following < len(documents) else None,
        total=len(documents),
    )


@router.get(
    "/documents/{doc_id:path}",
    response_model=DocumentDetail,
    responses=KEYED_RESPONSES,
    dependencies=[ReadDep],
)
async def get_document(
    doc_id: DocIdPath, service: ServiceDep, collection: CollectionQuery = None
) -> DocumentDetail:
    """One document and its chunks, by index (ids may contain `/`); 404 if it has none."""
    physical, chunks = await run_in_threadpool(service.get_document, doc_id, collection)
    first = chunks[0]
    return DocumentDetail(
        collection=physical,
        doc_id=doc_id,
        source=first.source,
        metadata=first.metadata,
        chunks=[
            DocumentChunk(chunk_id=c.chunk_id, index=c.index, text=c.text, start=c.start, end=c.end)
            for c in chunks
        ],
    )


@router.delete(
    "/documents/{doc_id:path}",
    response_model=DeleteResponse,
    responses=KEYED_RESPONSES,
    dependencies=[WriteDep],
)
async def delete_document(
    doc_id: DocIdPath, service: ServiceDep, metrics: MetricsDep, collection: CollectionQuery = None
) -> DeleteResponse:
    """Delete every chunk of one document (ids may contain `/`); 404 if it has none."""
    physical, deleted = await run_in_threadpool(service.delete_document, doc_id, collection)
    metrics.chunks_deleted.labels(parse_physical(physical)[0]).inc(deleted)
    return DeleteResponse(collection=physical, doc_id=doc_id, chunks_deleted=deleted)


def _parse_json_filter(text: str | None) -> dict[str, Any] | None:
    if text is None or not text.strip():
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidRequestError(
            "validation_error", f"filter: not JSON ({exc})", field="filter"
        ) from exc
    if not isinstance(value, dict):
        raise InvalidRequestError(
            "validation_error",
            f"filter: a JSON object of KEY: value(s), got {type(value).__name__}",
            field="filter",
        )
    return value
