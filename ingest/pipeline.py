"""Ingest: documents -> chunks -> only the new chunks embedded -> upserted; stale chunks removed.

Idempotent by construction: chunk ids hash (doc id, index, text), so an unchanged document
finds all its chunks stored and costs one lookup, no encoding and no writes. A changed document
gets its new chunks written first and only then its stale ones deleted, so a crash in between
leaves extra chunks (fixed by the next run), never missing ones.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ragctl.core.collections import BoundCollection
from ragctl.core.encoder import Encoder
from ragctl.core.records import Chunk, Document
from ragctl.core.store.base import VectorStore
from ragctl.ingest.chunker import Chunker
from ragctl.ingest.loaders import Skipped, iter_documents
from ragctl.ingest.streaming import ingest_long_document

logger = logging.getLogger(__name__)

# Encode in calls of at least this many chunks: the model sorts each call by length, so
# bigger calls waste less padding.
_ENCODE_MIN_CHUNKS = 512
# Progress is reported after every this many chunks embedded and written; a part is sorted by
# length first, so slicing it costs no more padding than one call would.
_PROGRESS_CHUNKS = 128


@dataclass
class IngestReport:
    """What one ingest run did."""

    collection: str
    documents: int = 0
    unchanged: int = 0
    chunks_written: int = 0
    chunks_deleted: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    seconds: float = 0.0
    encode_seconds: float = 0.0
    # Chunks found new and queued for embedding so far (grows batch by batch): with
    # chunks_written, what a progress bar shows while the work happens.
    chunks_planned: int = 0


@dataclass(frozen=True)
class _Plan:
    """Per batch: which chunks to embed and write, and which stored ones to delete."""

    to_write: list[Chunk]
    to_delete: list[str]
    unchanged_docs: int


def make_chunker(encoder: Encoder, size_tokens: int, overlap_tokens: int) -> Chunker:
    """A chunker that counts with `encoder`'s tokenizer and respects its sequence limit."""
    return Chunker(
        encoder.tokenizer,
        chunk_size_tokens=size_tokens,
        overlap_tokens=overlap_tokens,
        max_seq_length=encoder.max_seq_length,
        reserved_tokens=encoder.document_prompt_tokens,
    )


def ingest_documents(
    items: Iterable[Document | Skipped],
    target: BoundCollection,
    chunker: Chunker,
    *,
    upsert_batch_size: int = 256,
    on_progress: Callable[[IngestReport], None] | None = None,
) -> IngestReport:
    """Chunk, embed (with the target's encoder) and store documents into `target`.

    Args:
        items: Documents to store and Skipped inputs to report (as `iter_documents` yields).
        chunker: Made for the target's encoder (`make_chunker`).
        on_progress: Called after each written batch (for a document longer than one chunker
            segment, after each part of its chunks) with the running report.
    """
    store, physical, encoder = target.store, target.physical, target.encoder
    report = IngestReport(collection=physical)
    started = time.perf_counter()
    seen: dict[str, str] = {}
    for batch in _document_batches(items, report, seen, chunker.segment_chars):
        if len(batch) == 1 and len(batch[0].text) > chunker.segment_chars:
            ingest_long_document(
                batch[0],
                target,
                chunker,
                report=report,
                upsert_batch_size=upsert_batch_size,
                on_progress=on_progress,
                started=started,
            )
            continue
        plan = _plan(store, physical, batch, chunker)
        report.documents += len(batch)
        report.unchanged += plan.unchanged_docs
        report.chunks_planned += len(plan.to_write)
        if on_progress is not None and plan.to_write:
            on_progress(report)
        by_length = sorted(plan.to_write, key=lambda c: len(c.text), reverse=True)
        for start in range(0, len(by_length), _PROGRESS_CHUNKS):
            part = by_length[start : start + _PROGRESS_CHUNKS]
            encode_started = time.perf_counter()
            embeddings = encoder.encode_documents([c.text for c in part])
            report.encode_seconds += time.perf_counter() - encode_started
            for offset in range(0, len(part), upsert_batch_size):
                rows = slice(offset, offset + upsert_batch_size)
                sub = embeddings.embeddings_slice(rows)
                store.upsert(physical, part[rows], sub)
            report.chunks_written += len(part)
            if on_progress is not None and start + len(part) < len(by_length):
                report.seconds = time.perf_counter() - started
                on_progress(report)
        store.delete_chunks(physical, plan.to_delete)
        report.chunks_deleted += len(plan.to_delete)
        report.seconds = time.perf_counter() - started
        if on_progress is not None:
            on_progress(report)
    report.seconds = time.perf_counter() - started
    return report


def ingest_paths(
    paths: Sequence[Path],
    target: BoundCollection,
    chunker: Chunker,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    max_file_bytes: int = 50 * 1024 * 1024,
    base_dir: Path | None = None,
    upsert_batch_size: int = 256,
    on_progress: Callable[[IngestReport], None] | None = None,
    follow_symlinks: bool = False,
) -> IngestReport:
    """Load files and folders (see `ingest.loaders.iter_documents`) and ingest them."""
    items = iter_documents(
        paths,
        include=include,
        exclude=exclude,
        max_file_bytes=max_file_bytes,
        base_dir=base_dir,
        follow_symlinks=follow_symlinks,
    )
    return ingest_documents(
        items, target, chunker, upsert_batch_size=upsert_batch_size, on_progress=on_progress
    )


def _document_batches(
    items: Iterable[Document | Skipped],
    report: IngestReport,
    seen: dict[str, str],
    long_chars: int,
) -> Iterator[list[Document]]:
    """Group documents so each batch holds about `_ENCODE_MIN_CHUNKS` worth of text.

    A document longer than `long_chars` comes alone, to be streamed part by part.
    """
    batch: list[Document] = []
    chars = 0
    for item in items:
        if isinstance(item, Skipped):
            logger.warning("skipped %s: %s", item.source, item.reason)
            report.skipped.append(item)
            continue
        if item.doc_id in seen:
            # Two inputs with one id: the later one wins, as a re-ingest would.
            logger.warning(
                "document id %r from %s was already read from %s; the later one wins",
                item.doc_id,
                item.source,
                seen[item.doc_id],
            )
            if any(d.doc_id == item.doc_id for d in batch):
                batch = [d for d in batch if d.doc_id != item.doc_id]
        seen[item.doc_id] = item.source
        if len(item.text) > long_chars:  # streamed alone, part by part (ingest.streaming)
            if batch:
                yield batch
                batch, chars = [], 0
            yield [item]
            continue
        batch.append(item)
        chars += len(item.text)
        if chars >= _ENCODE_MIN_CHUNKS * 1000 or len(batch) >= _ENCODE_MIN_CHUNKS:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


def _plan(store: VectorStore, physical: str, batch: list[Document], chunker: Chunker) -> _Plan:
    chunks_by_doc = {doc.doc_id: chunker.chunk(doc) for doc in batch}
    stored = store.chunk_ids_of(physical, list(chunks_by_doc))
    to_write: list[Chunk] = []
    to_delete: list[str] = []
    unchanged = 0
    for doc_id, chunks in chunks_by_doc.items():
        old = stored.get(doc_id, set())
        new_ids = {c.chunk_id for c in chunks}
        fresh = [c for c in chunks if c.chunk_id not in old]
        stale = sorted(old - new_ids)
        if not fresh and not stale:
            unchanged += 1
        to_write.extend(fresh)
        to_delete.extend(stale)
    return _Plan(to_write, to_delete, unchanged)
