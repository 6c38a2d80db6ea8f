"""Limits shared by every way data comes in (folder ingest, the HTTP API); pure, no I/O.

One definition each, so a document that `ragctl ingest` accepts can also be read, replaced and
deleted over HTTP, and a value the store cannot hold is refused up front with a reason instead
of failing a whole batch inside Qdrant (which refuses NaN, infinities, lone surrogates and
deeply nested payloads, and silently turns integers beyond 64 bits into floats).
"""

from __future__ import annotations

import math
from typing import Any

MAX_DOC_ID_CHARS = 512
"""Longest document id, in characters (a file path relative to the ingest folder, a record id)."""
MAX_METADATA_DEPTH = 8
"""Deepest nesting of lists and objects in a document's metadata."""
COLLECTION_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$"
"""A collection (alias) name: letters, digits, `_` and `-`, 1-63 characters."""
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def check_text(text: str, what: str = "") -> str:
    """`text` when it can be stored as UTF-8 (no lone surrogates); else ValueError.

    `what` names the value in the message ("document id is not valid Unicode text ...").
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        subject = f"{what} is " if what else ""
        raise ValueError(f"{subject}not valid Unicode text (position {exc.start})") from None
    return text


def check_doc_id(doc_id: str) -> str:
    """A document id: non-blank, valid Unicode, at most `MAX_DOC_ID_CHARS` characters."""
    if not doc_id.strip():
        raise ValueError("document id is empty")
    if len(doc_id) > MAX_DOC_ID_CHARS:
        raise ValueError(
            f"document id has {len(doc_id)} characters; the limit is {MAX_DOC_ID_CHARS}"
        )
    return check_text(doc_id, "document id")


def check_metadata_value(value: Any, depth: int = 0) -> Any:
    """One metadata value: JSON scalars, lists and objects; finite numbers; 64-bit integers.

    Returns the value (object keys as strings); raises ValueError naming what is wrong.
    """
    if depth > MAX_METADATA_DEPTH:
        raise ValueError(f"nested deeper than {MAX_METADATA_DEPTH} levels")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValueError(f"integer of {value.bit_length()} bits is outside the 64-bit range")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"number {value} is not finite")
        return value
    if isinstance(value, str):
        return check_text(value, "a string")
    if isinstance(value, list):
        return [check_metadata_value(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {
            check_text(str(k), "a key"): check_metadata_value(v, depth + 1)
            for k, v in value.items()
        }
    raise ValueError(f"unsupported value type {type(value).__name__}")
