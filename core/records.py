"""Records shared by the packages: documents, chunks, search hits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Document:
    """One source document, before chunking.

    Attributes:
        doc_id: Stable id of the document (a relative path, a record id, a BEIR `_id`).
        text: Its full visible text.
        source: Where it came from (a file path, `file.jsonl:LINE`).
        metadata: Extra fields kept with every chunk (title, record fields, ...).
    """

    doc_id: str
    text: str
    source: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Chunk:
    """A piece of a document that is embedded and stored as one point.

    `start` and `end` are character offsets into `Document.text`, so
    `document.text[start:end] == text`.
    """

    chunk_id: str
    doc_id: str
    index: int
    text: str
    start: int
    end: int
    source: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    """One search result."""

    chunk_id: str
    doc_id: str
    score: float
    text: str
    source: str
    start: int
    end: int
    metadata: dict[str, Any] = field(default_factory=dict)
