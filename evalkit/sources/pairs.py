"""Pair files: (anchor, positive) rows in JSON lines, CSV or Parquet.

Every row is a query (its `anchor`) whose relevant doc is its `positive`. Positives become the
corpus, deduplicated by a group column (such as `global_chunk_id`) when there is one, else by
text. Extra pair files may add their positives to the corpus as distractors (the notebook's
corpus is train + test positives, its queries only the test anchors).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragctl.evalkit.errors import EvalError
from ragctl.evalkit.sources.records import (
    TABLE_SUFFIXES,
    RawDataset,
    id_field,
    iter_table_records,
    nonempty_text,
)

logger = logging.getLogger(__name__)

GROUP_COLUMNS: tuple[str, ...] = ("global_chunk_id", "chunk_id", "positive_id", "doc_id")
"""Columns tried, in order, as the positive's group id when none is given."""


@dataclass(frozen=True)
class PairColumns:
    """Column names of a pair file.

    Attributes:
        anchor: The query text.
        positive: The relevant passage.
        id: Optional query id (default: the row number).
        group: Optional id of the positive; None tries `GROUP_COLUMNS`.
    """

    anchor: str = "anchor"
    positive: str = "positive"
    id: str = "id"
    group: str | None = None


class _Corpus:
    """Positives deduplicated by group id or by text."""

    def __init__(self) -> None:
        self.docs: dict[str, str] = {}
        self._by_text: dict[str, str] = {}
        self.conflicts = 0

    def add(self, text: str, group: str | None) -> str:
        if group is not None:
            doc_id = group
            known = self.docs.get(doc_id)
            if known is None:
                self.docs[doc_id] = text
            elif known != text:
                self.conflicts += 1  # first text wins
            return doc_id
        found = self._by_text.get(text)
        if found is not None:
            return found
        new_id = f"p{len(self.docs)}"
        while new_id in self.docs:
            new_id += "_"
        self._by_text[text] = new_id
        self.docs[new_id] = text
        return new_id


def _rows(
    records: Iterable[tuple[str, Mapping[str, Any]]], columns: PairColumns
) -> Iterator[tuple[str, int, Mapping[str, Any], str | None]]:
    """(location, row index, record, group column) with the group column found on row 1."""
    group: str | None = columns.group
    for index, (loc, record) in enumerate(records):
        if index == 0 and group is None:
            group = next((c for c in GROUP_COLUMNS if record.get(c) is not None), None)
        yield loc, index, record, group


def read_pair_records(
    records: Iterable[tuple[str, Mapping[str, Any]]],
    *,
    columns: PairColumns = PairColumns(),
    extra_positives: Iterable[tuple[str, Mapping[str, Any]]] = (),
    source: str = "pairs",
) -> RawDataset:
    """Queries, corpus and qrels from pair records.

    Args:
        records: (location, record) of the evaluated pairs.
        columns: Column names.
        extra_positives: (location, record) of more pairs whose positives only join the corpus.
        source: Name used in notes.

    Raises:
        EvalError: A row misses the anchor or positive, or repeats a query id.
    """
    corpus = _Corpus()
    raw = RawDataset()
    first_seen: dict[str, str] = {}
    rows = 0
    for loc, index, record, group_col in _rows(records, columns):
        rows += 1
        anchor = nonempty_text(record, columns.anchor, loc)
        positive = nonempty_text(record, columns.positive, loc)
        group = id_field(record, group_col, loc) if group_col else None
        qid = (
            id_field(record, columns.id, loc) if record.get(columns.id) is not None else f"q{index}"
        )
        if qid in raw.queries:
            raise EvalError(
                f"{loc}: field '{columns.id}': duplicate query id {qid!r} "
                f"(first at {first_seen[qid]})"
            )
        first_seen[qid] = loc
        raw.queries[qid] = anchor
        raw.qrels[qid] = {corpus.add(positive, group): 1}
    if rows == 0:
        raise EvalError(f"{source}: no pair rows")
    evaluated_docs = len(corpus.docs)
    for loc, _, record, group_col in _rows(extra_positives, columns):
        positive = nonempty_text(record, columns.positive, loc)
        corpus.add(positive, id_field(record, group_col, loc) if group_col else None)
    raw.corpus = corpus.docs
    if len(corpus.docs) > evaluated_docs:
        raw.notes.append(
            f"{len(corpus.docs) - evaluated_docs} positives of other pair files added "
            "as distractors"
        )
    if corpus.conflicts:
        raw.notes.append(
            f"{corpus.conflicts} rows gave a different text for an existing group id (first kept)"
        )
    return raw


def read_pairs(
    path: Path, *, columns: PairColumns = PairColumns(), corpus_paths: Sequence[Path] = ()
) -> RawDataset:
    """Read one pair file, adding the positives of `corpus_paths` to the corpus.

    Raises:
        EvalError: A file is missing or malformed (the message names file, line and field).
    """
    for item in (path, *corpus_paths):
        if not item.is_file():
            raise EvalError(f"pair file not found: {item}")

    def extra() -> Iterator[tuple[str, dict[str, Any]]]:
        for other in corpus_paths:
            yield from iter_table_records(other)

    return read_pair_records(
        iter_table_records(path), columns=columns, extra_positives=extra(), source=str(path)
    )


def find_split_files(folder: Path, split: str) -> tuple[Path, list[Path]]:
    """The pair file of `split` in a folder (`<split>.*` or `<split>_dataset.*`) and the others.

    Raises:
        EvalError: No file or several files match the split.
    """
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in TABLE_SUFFIXES
    )
    matches = [p for p in files if p.stem in (split, f"{split}_dataset", f"{split}-dataset")]
    if len(matches) != 1:
        names = ", ".join(p.name for p in files) or "none"
        found = "no file" if not matches else f"{len(matches)} files"
        raise EvalError(
            f"{found} for split {split!r} in {folder} (expected {split}.jsonl, {split}.csv, "
            f"{split}.parquet or {split}_dataset.json; found: {names})"
        )
    return matches[0], [p for p in files if p != matches[0]]
