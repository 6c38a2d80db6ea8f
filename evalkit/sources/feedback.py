"""The retriever's feedback export: JSON lines of judged (query, chunk) pairs.

One record: `{"query", "chunk_id", "label": "relevant" | "not_relevant", "chunk_text",
"model_version", "ts"}`. Identical query texts are one query; relevant rows become qrels with
score 1, not_relevant rows score 0 (judged, not relevant); when a pair is judged twice the later
row wins. The corpus is every judged chunk, so not_relevant chunks serve as hard distractors.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ragctl.evalkit.errors import EvalError
from ragctl.evalkit.sources.records import RawDataset, id_field, iter_json_records, nonempty_text

logger = logging.getLogger(__name__)

LABELS: dict[str, int] = {"relevant": 1, "not_relevant": 0}
FEEDBACK_FIELDS: tuple[str, ...] = ("query", "chunk_id", "label", "chunk_text")


def looks_like_feedback(record: Mapping[str, Any]) -> bool:
    """True when a record has the feedback export's fields."""
    return all(name in record for name in ("query", "chunk_id", "label"))


def read_feedback_records(
    records: Iterable[tuple[str, Mapping[str, Any]]], *, source: str = "feedback"
) -> RawDataset:
    """Queries, judged chunks and qrels from feedback records.

    Raises:
        EvalError: A record misses a field or has an unknown label (the message names where).
    """
    raw = RawDataset()
    query_ids: dict[str, str] = {}
    rows = 0
    changed_chunks = 0
    for loc, record in records:
        rows += 1
        query = nonempty_text(record, "query", loc)
        chunk_id = id_field(record, "chunk_id", loc)
        label = record.get("label")
        if label not in LABELS:
            raise EvalError(
                f"{loc}: field 'label' must be one of {', '.join(LABELS)}, got {label!r}"
            )
        chunk_text = nonempty_text(record, "chunk_text", loc)
        qid = query_ids.setdefault(query, f"fq{len(query_ids)}")
        raw.queries[qid] = query
        known = raw.corpus.get(chunk_id)
        if known is not None and known != chunk_text:
            changed_chunks += 1  # the chunk was re-ingested with new text; keep the latest
        raw.corpus[chunk_id] = chunk_text
        raw.qrels.setdefault(qid, {})[chunk_id] = LABELS[str(label)]
    if rows == 0:
        raise EvalError(f"{source}: no feedback records")
    if changed_chunks:
        raw.notes.append(f"{changed_chunks} records changed a chunk's text (latest kept)")
    return raw


def read_feedback(path: Path) -> RawDataset:
    """Read a feedback export file (JSON lines).

    Raises:
        EvalError: The file is missing or malformed.
    """
    if not path.is_file():
        raise EvalError(f"feedback export not found: {path}")
    return read_feedback_records(iter_json_records(path), source=str(path))
