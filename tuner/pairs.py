"""Training pairs from logged feedback, pair files and synthetic questions.

A pair is (query, positive chunk text[, negative text]). Pairs that point at a stored chunk
carry its chunk id, so they can be checked against the collection (a chunk that no longer
exists is dropped) and so hard-negative mining never picks a chunk marked relevant.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragctl.core.collections import BoundCollection
from ragctl.core.search import SearchParams
from ragctl.evalkit.sources.records import iter_table_records, text_field
from ragctl.tuner.errors import TunerError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingPair:
    """One training example."""

    query: str
    positive: str
    positive_id: str | None = None  # chunk id when the positive is a stored chunk
    negative: str | None = None
    origin: str = "pairs"  # feedback | pairs | synthetic


@dataclass
class PairSet:
    """Pairs plus what the loop must know about them."""

    pairs: list[TrainingPair] = field(default_factory=list)
    # query -> chunk ids some feedback marked relevant / not relevant
    relevant: dict[str, set[str]] = field(default_factory=dict)
    not_relevant: dict[str, set[str]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n


def normalize_query(text: str) -> str:
    """The form used to group and deduplicate queries (case and whitespace folded)."""
    return " ".join(text.split()).casefold()


def is_free_text(record: Mapping[str, Any]) -> bool:
    """True for feedback given without a search_id: its query is the client's own text.

    Such rows are marked `free_text` in the retriever's log; in older exports without the
    field, a missing `search_id` means the same.
    """
    if "free_text" in record:
        return bool(record["free_text"])
    return not record.get("search_id")


def add_feedback(pair_set: PairSet, records: Iterable[Mapping[str, Any]]) -> None:
    """Add feedback events: `relevant` -> a positive pair, `not_relevant` -> a known negative.

    Records are the retriever's export rows (`query`, `chunk_id`, `label`, `chunk_text`, ...).
    """
    for record in records:
        query = str(record.get("query") or "").strip()
        chunk = str(record.get("chunk_id") or "")
        label = record.get("label")
        if not query or not chunk or label not in ("relevant", "not_relevant"):
            pair_set.count("feedback_invalid")
            continue
        key = normalize_query(query)
        if label == "relevant":
            pair_set.relevant.setdefault(key, set()).add(chunk)
            text = str(record.get("chunk_text") or "")
            pair_set.pairs.append(TrainingPair(query, text, chunk, origin="feedback"))
            pair_set.count("feedback_relevant")
        else:
            pair_set.not_relevant.setdefault(key, set()).add(chunk)
            pair_set.count("feedback_not_relevant")


def read_pair_file(path: Path) -> list[TrainingPair]:
    """Pairs from JSON lines, CSV or Parquet with `anchor`, `positive`, optional `negative`.

    Raises:
        TunerError: The file is missing or a row lacks a field (naming file, line and field).
    """
    if not path.is_file():
        raise TunerError(f"pair file not found: {path}")
    pairs = []
    for loc, record in iter_table_records(path):
        anchor = text_field(record, "anchor", loc)
        positive = text_field(record, "positive", loc)
        negative = text_field(record, "negative", loc, required=False) or None
        pairs.append(TrainingPair(anchor, positive, None, negative, origin="pairs"))
    if not pairs:
        raise TunerError(f"pair file {path} has no rows")
    return pairs


def refresh_from_store(pair_set: PairSet, serving: BoundCollection) -> None:
    """Give chunk-backed pairs the stored text; drop those whose chunk no longer exists."""
    ids = sorted({p.positive_id for p in pair_set.pairs if p.positive_id})
    stored = {}
    for start in range(0, len(ids), 1000):
        stored.update(serving.store.get_chunks(serving.physical, ids[start : start + 1000]))
    kept = []
    for pair in pair_set.pairs:
        if pair.positive_id is None:
            kept.append(pair)
        elif pair.positive_id in stored:
            text = stored[pair.positive_id].text
            kept.append(
                TrainingPair(pair.query, text, pair.positive_id, pair.negative, pair.origin)
            )
        else:
            pair_set.count("dropped_missing_chunk")
    pair_set.pairs = kept


def deduplicate(pairs: Sequence[TrainingPair]) -> list[TrainingPair]:
    """Drop repeated (query, positive) pairs, keeping the first (and any negative it has)."""
    seen: set[tuple[str, str]] = set()
    unique = []
    for pair in pairs:
        key = (normalize_query(pair.query), pair.positive_id or pair.positive)
        if key in seen:
            continue
        seen.add(key)
        unique.append(pair)
    return unique


def pin_to_chunks(
    records: Sequence[Mapping[str, Any]], serving: BoundCollection
) -> list[dict[str, Any]]:
    """Feedback given per document (`query`, `doc_id`, `label`) pinned to the chunk of that
    document that best answers the query, as a RAG app logging chunk-level feedback would.

    Records naming a document with no stored chunks are dropped (and logged).
    """
    out: list[dict[str, Any]] = []
    vectors = serving.encoder.encode_queries([str(r["query"]) for r in records])
    for row, record in enumerate(records):
        params = SearchParams(k=1, filter={"doc_id": str(record["doc_id"])})
        query = vectors.embeddings_slice(slice(row, row + 1))
        hits = serving.store.search(serving.physical, query, params)
        if not hits:
            logger.warning("no stored chunk of document %r; feedback dropped", record["doc_id"])
            continue
        out.append({**record, "chunk_id": hits[0].chunk_id, "chunk_text": hits[0].text})
    return out


def pin_doc_level(
    records: Iterable[Mapping[str, Any]], serving: BoundCollection
) -> list[dict[str, Any]]:
    """Feedback records as they are, except those naming only a `doc_id`, which get pinned to
    that document's best chunk (see `pin_to_chunks`)."""
    records = list(records)
    doc_level = [r for r in records if not r.get("chunk_id") and r.get("doc_id") and r.get("query")]
    if not doc_level:
        return [dict(r) for r in records]
    pinned = pin_to_chunks(doc_level, serving)
    return [dict(r) for r in records if r.get("chunk_id")] + pinned


def read_eval_set(path: Path, serving: BoundCollection) -> list[TrainingPair]:
    """A golden eval set: a pair file (anchor, positive), or JSON lines of judged queries
    `{"text" or "query": ..., "relevant": [doc ids]}` pinned to the documents' best chunks."""
    if not path.is_file():
        raise TunerError(f"eval set not found: {path}")
    first = next(iter_table_records(path), None)
    if first is None:
        raise TunerError(f"eval set {path} is empty")
    if "relevant" not in first[1]:
        return read_pair_file(path)
    judged: list[dict[str, str]] = []
    for loc, record in iter_table_records(path):
        query = text_field(record, "text", loc, required=False) or text_field(record, "query", loc)
        docs = record.get("relevant")
        if not isinstance(docs, list) or not docs:
            raise TunerError(f"{loc}: field 'relevant' must be a non-empty list of doc ids")
        judged.extend({"query": query, "doc_id": str(d)} for d in docs)
    pinned = pin_to_chunks(judged, serving)
    return [TrainingPair(r["query"], r["chunk_text"], r["chunk_id"], origin="eval") for r in pinned]
