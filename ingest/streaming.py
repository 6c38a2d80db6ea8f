"""One long document streamed through chunker, encoder and store, with progress.

A document longer than one chunker segment (`ingest.chunker.SEGMENT_CHARS`) is not chunked
whole before anything is embedded: its chunks are embedded and written part by part as the
chunker produces them, and the caller's progress callback runs after every part. Memory holds
the text and one part of chunks and vectors, not every chunk of a 50 MB file at once.

The outcome is the one `ingest_documents` gives: chunks already stored are not embedded
again, new ones are written first and the document's stale chunks are deleted only after all
new ones are stored (a crash in between leaves extra chunks, never missing ones).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ragctl.core.collections import BoundCollection
    from ragctl.core.records import Chunk, Document
    from ragctl.ingest.chunker import Chunker
    from ragctl.ingest.pipeline import IngestReport

PART_CHUNKS = 512
"""Chunks embedded and written together (one progress step)."""


def ingest_long_document(
    document: Document,
    target: BoundCollection,
    chunker: Chunker,
    *,
    report: IngestReport,
    upsert_batch_size: int,
    on_progress: Callable[[IngestReport], None] | None = None,
    started: float | None = None,
) -> None:
    """Ingest `document` into `target` part by part, updating `report` as it goes."""
    started = time.perf_counter() if started is None else started
    store, physical = target.store, target.physical
    stored = store.chunk_ids_of(physical, [document.doc_id]).get(document.doc_id, set())
    seen: set[str] = set()
    part: list[Chunk] = []
    written = 0

    def flush() -> None:
        nonlocal part, written
        if part:
            _write(part, target, report, upsert_batch_size)
            written += len(part)
            part = []
        report.seconds = time.perf_counter() - started
        if on_progress is not None:
            on_progress(report)

    for chunk in chunker.iter_chunks(document):
        seen.add(chunk.chunk_id)
        if chunk.chunk_id not in stored:
            part.append(chunk)
            if len(part) >= PART_CHUNKS:
                flush()
    if part:
        _write(part, target, report, upsert_batch_size)
        written += len(part)
        part = []
    stale = sorted(stored - seen)  # deleted only once every new chunk is stored
    store.delete_chunks(physical, stale)
    report.chunks_deleted += len(stale)
    report.documents += 1
    if not written and not stale:
        report.unchanged += 1
    flush()


def _write(
    chunks: list[Chunk], target: BoundCollection, report: IngestReport, upsert_batch_size: int
) -> None:
    report.chunks_planned += len(chunks)
    encode_started = time.perf_counter()
    embeddings = target.encoder.encode_documents([c.text for c in chunks])
    report.encode_seconds += time.perf_counter() - encode_started
    for offset in range(0, len(chunks), upsert_batch_size):
        rows = slice(offset, offset + upsert_batch_size)
        target.store.upsert(target.physical, chunks[rows], embeddings.embeddings_slice(rows))
    report.chunks_written += len(chunks)
