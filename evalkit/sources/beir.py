"""BEIR folders: `corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv`."""

from __future__ import annotations

import logging
from pathlib import Path

from ragctl.evalkit.errors import EvalError
from ragctl.evalkit.sources.records import (
    RawDataset,
    id_field,
    iter_json_records,
    text_field,
    where,
)

logger = logging.getLogger(__name__)

QRELS_HEADER = ("query-id", "corpus-id", "score")


def join_title(title: str, text: str) -> str:
    """`title + " " + text`, stripped: how MTEB (and its published scores) build a BEIR doc."""
    return f"{title} {text}".strip() if title.strip() else text.strip()


def is_beir_folder(path: Path) -> bool:
    """True when `path` is a folder holding `corpus.jsonl` and `queries.jsonl`."""
    return (path / "corpus.jsonl").is_file() and (path / "queries.jsonl").is_file()


def read_beir(folder: Path, split: str) -> RawDataset:
    """Read a BEIR folder's corpus, queries and the qrels of `split`.

    Raises:
        EvalError: A file is missing or malformed (the message names file, line and field).
    """
    for name in ("corpus.jsonl", "queries.jsonl"):
        if not (folder / name).is_file():
            raise EvalError(f"{folder} is not a BEIR folder: {name} is missing")
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        available = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
        raise EvalError(
            f"no qrels for split {split!r} in {folder} (expected {qrels_path}; "
            f"available splits: {', '.join(available) or 'none'})"
        )
    raw = RawDataset()
    raw.qrels = read_qrels(qrels_path)
    raw.corpus = read_corpus(folder / "corpus.jsonl")
    wanted = set(raw.qrels)
    for loc, record in iter_json_records(folder / "queries.jsonl"):
        qid = id_field(record, "_id", loc)
        if qid in wanted:
            raw.queries[qid] = text_field(record, "text", loc)
    return raw


def read_corpus(path: Path) -> dict[str, str]:
    """Doc id -> `title text` of a BEIR corpus.jsonl.

    Raises:
        EvalError: A record lacks `_id` or `text`, has a non-string title, or repeats an id.
    """
    corpus: dict[str, str] = {}
    first_seen: dict[str, str] = {}
    for loc, record in iter_json_records(path):
        doc_id = id_field(record, "_id", loc)
        text = text_field(record, "text", loc)
        title = text_field(record, "title", loc, required=False)
        if doc_id in corpus:
            raise EvalError(
                f"{loc}: field '_id': duplicate id {doc_id!r} (first at {first_seen[doc_id]})"
            )
        first_seen[doc_id] = loc
        corpus[doc_id] = join_title(title, text)
    return corpus


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """Query id -> doc id -> score from a BEIR qrels TSV (the header line is optional).

    Raises:
        EvalError: A line does not have 3 tab-separated fields or its score is not an integer.
    """
    qrels: dict[str, dict[str, int]] = {}
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalError(f"cannot read {path}: {exc}") from exc
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.rstrip("\r\n").split("\t")
        if line_no == 1 and tuple(p.strip().lower() for p in parts[:3]) == QRELS_HEADER:
            continue
        loc = where(path, line_no)
        if len(parts) == 4:  # TREC layout: query-id, iteration, corpus-id, score
            parts = [parts[0], parts[2], parts[3]]
        if len(parts) != 3:
            raise EvalError(
                f"{loc}: expected 3 tab-separated fields (query-id, corpus-id, score), "
                f"got {len(parts)}"
            )
        qid, doc_id, raw_score = (p.strip() for p in parts)
        if not qid:
            raise EvalError(f"{loc}: field 'query-id' is empty")
        if not doc_id:
            raise EvalError(f"{loc}: field 'corpus-id' is empty")
        try:
            score = int(raw_score)
        except ValueError as exc:
            raise EvalError(f"{loc}: field 'score' must be an integer, got {raw_score!r}") from exc
        qrels.setdefault(qid, {})[doc_id] = score
    if not qrels:
        raise EvalError(f"{path}: no qrels rows")
    return qrels
