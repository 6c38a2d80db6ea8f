"""Stable chunk ids and the Qdrant point ids derived from them (pure, no I/O)."""

from __future__ import annotations

import hashlib
import uuid

# Fixed namespace: changing it would orphan every stored point.
_POINT_NAMESPACE = uuid.UUID("6f1c7a52-3d0e-4c8e-9a51-2b7f0d4e8c31")


def text_hash(text: str) -> str:
    """Short content hash of a chunk's text (first 16 hex digits of SHA-256)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def chunk_id(doc_id: str, index: int, text: str) -> str:
    """Stable id of a chunk from (doc id, chunk index, text hash).

    The same text at the same place in the same document always gets the same id, so
    re-ingesting an unchanged document finds every chunk already stored.
    """
    if index < 0:
        raise ValueError(f"chunk index must be >= 0, got {index}")
    return f"{doc_id}#{index}@{text_hash(text)}"


def point_id(chunk_id: str) -> str:
    """The UUID (as a string) under which a chunk is stored in Qdrant."""
    return str(uuid.uuid5(_POINT_NAMESPACE, chunk_id))
