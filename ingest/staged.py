"""Ingest in two steps for a server that must not hold its writer lock while a model runs.

`prepare_documents` does the slow part with no lock held: chunking and embedding every chunk
not stored yet. `commit_prepared` does the short part under the caller's lock: it looks up
what is stored *now*, writes the chunks still missing (embedding on the spot only chunks that
were deleted in between, which is rare) and deletes each document's stale chunks after its new
ones are written. Two upserts of one document racing each other both commit whole: the later
commit re-plans against the earlier one's result, so the later text wins, as it would with
one lock around everything.

The result equals `ingest.pipeline.ingest_documents` on the same documents.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ragctl.core.encoder import Embeddings
from ragctl.ingest.pipeline import IngestReport

if TYPE_CHECKING:
    from ragctl.core.collections import BoundCollection
    from ragctl.core.encoder import Encoder
    from ragctl.core.records import Chunk, Document
    from ragctl.ingest.chunker import Chunker

_ENCODE_PART = 2048  # chunks per model call, as the pipeline does


@dataclass
class PreparedDocuments:
    """Chunks of each document and the vectors of those that were not stored when prepared."""

    physical: str
    chunks_by_doc: dict[str, list[Chunk]]
    rows: dict[str, int] = field(default_factory=dict)  # chunk id -> row in `vectors`
    vectors: Embeddings | None = None
    encode_seconds: float = 0.0


def prepare_documents(
    documents: Sequence[Document], target: BoundCollection, chunker: Chunker
) -> PreparedDocuments:
    """Chunk `documents` and embed their chunks not stored in `target` yet (no lock needed).

    A later document with the same id as an earlier one replaces it.
    """
    physical = target.physical
    chunks_by_doc = {doc.doc_id: chunker.chunk(doc) for doc in documents}
    stored = target.store.chunk_ids_of(physical, list(chunks_by_doc))
    fresh = [
        chunk
        for doc_id, chunks in chunks_by_doc.items()
        for chunk in chunks
        if chunk.chunk_id not in stored.get(doc_id, set())
    ]
    prepared = PreparedDocuments(physical=physical, chunks_by_doc=chunks_by_doc)
    if fresh:
        started = time.perf_counter()
        prepared.vectors = _encode(target.encoder, fresh)
        prepared.encode_seconds = time.perf_counter() - started
        prepared.rows = {chunk.chunk_id: row for row, chunk in enumerate(fresh)}
    return prepared


def commit_prepared(
    prepared: PreparedDocuments, target: BoundCollection, *, upsert_batch_size: int = 256
) -> IngestReport:
    """Write what `prepare_documents` embedded, re-planned against the store as it is now.

    Call it under the lock that serializes writers, with the target it was prepared for.
    """
    started = time.perf_counter()
    store, encoder = target.store, target.encoder
    physical = prepared.physical
    report = IngestReport(collection=physical, encode_seconds=prepared.encode_seconds)
    stored = store.chunk_ids_of(physical, list(prepared.chunks_by_doc))
    to_write: list[Chunk] = []
    to_delete: list[str] = []
    for doc_id, chunks in prepared.chunks_by_doc.items():
        old = stored.get(doc_id, set())
        fresh = [c for c in chunks if c.chunk_id not in old]
        stale = sorted(old - {c.chunk_id for c in chunks})
        if not fresh and not stale:
            report.unchanged += 1
        to_write.extend(fresh)
        to_delete.extend(stale)
    report.documents = len(prepared.chunks_by_doc)
    if to_write:
        vectors = _vectors_for(to_write, prepared, encoder, report)
        for offset in range(0, len(to_write), upsert_batch_size):
            rows = slice(offset, offset + upsert_batch_size)
            store.upsert(physical, to_write[rows], vectors.embeddings_slice(rows))
    store.delete_chunks(physical, to_delete)
    report.chunks_written = len(to_write)
    report.chunks_deleted = len(to_delete)
    report.seconds = time.perf_counter() - started
    return report


def _vectors_for(
    chunks: list[Chunk], prepared: PreparedDocuments, encoder: Encoder, report: IngestReport
) -> Embeddings:
    """Vectors of `chunks` in order: the prepared rows, plus any chunk not prepared (embedded
    now: it was stored when prepared and has been deleted since)."""
    missing = [c for c in chunks if c.chunk_id not in prepared.rows]
    pool = prepared.vectors
    offset = len(pool) if pool is not None else 0
    if missing:
        started = time.perf_counter()
        extra = _encode(encoder, missing)
        report.encode_seconds += time.perf_counter() - started
        pool = extra if pool is None else _concat([pool, extra])
    assert pool is not None  # chunks is not empty, so one of the two holds its rows
    extra_rows = {c.chunk_id: offset + row for row, c in enumerate(missing)}
    index = [prepared.rows.get(c.chunk_id, extra_rows.get(c.chunk_id, -1)) for c in chunks]
    return Embeddings(
        full=pool.full[index], shortlist={d: v[index] for d, v in pool.shortlist.items()}
    )


def _encode(encoder: Encoder, chunks: list[Chunk]) -> Embeddings:
    parts = [
        encoder.encode_documents([c.text for c in chunks[start : start + _ENCODE_PART]])
        for start in range(0, len(chunks), _ENCODE_PART)
    ]
    return parts[0] if len(parts) == 1 else _concat(parts)


def _concat(parts: list[Embeddings]) -> Embeddings:
    return Embeddings(
        full=np.concatenate([p.full for p in parts]),
        shortlist={d: np.concatenate([p.shortlist[d] for p in parts]) for d in parts[0].shortlist},
    )
