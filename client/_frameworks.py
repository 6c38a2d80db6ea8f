"""What the LangChain and LlamaIndex retrievers share: the metadata a result carries, the
feedback fields read back from it, and the search options they forward. No framework imports."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ragctl.client._calls import Label
from ragctl.core.api import SearchResponse, SearchResult

RAGCTL_METADATA_KEYS = (
    "chunk_id",
    "doc_id",
    "source",
    "start",
    "end",
    "score",
    "search_id",
    "model_version",
    "collection",
)
"""The keys ragctl sets in every result's metadata (over the document's own)."""
SEARCH_OPTIONS = ("k", "collection", "filter", "mode", "score_threshold")
"""The search arguments a framework retriever forwards to `Client.search`."""


def hit_metadata(answer: SearchResponse, hit: SearchResult) -> dict[str, Any]:
    """The document's own metadata plus `RAGCTL_METADATA_KEYS` (which win over same-named
    keys)."""
    return {
        **hit.metadata,
        "chunk_id": hit.chunk_id,
        "doc_id": hit.doc_id,
        "source": hit.source,
        "start": hit.start,
        "end": hit.end,
        "score": hit.score,
        "search_id": answer.search_id,
        "model_version": answer.model_version,
        "collection": answer.collection,
    }


def feedback_fields(
    metadata: Mapping[str, Any], label: Label, idempotency_key: str | None, *, what: str
) -> dict[str, Any]:
    """`Client.feedback`'s arguments for a result this retriever returned (`what` names it in
    the error: `document`, `node`)."""
    missing = [k for k in ("chunk_id", "search_id") if not metadata.get(k)]
    if missing:
        raise ValueError(
            f"this {what} has no {' or '.join(missing)} in its metadata: feedback needs a "
            f"{what} this retriever returned"
        )
    return {
        "chunk_id": str(metadata["chunk_id"]),
        "search_id": str(metadata["search_id"]),
        "label": label,
        "idempotency_key": idempotency_key,
    }
