"""Hugging Face Hub datasets, through `datasets.load_dataset` (needs network or a local cache).

Two layouts are understood:
- MTEB/BEIR (`mteb/scifact`): configs `corpus` (`_id`, `title`, `text`), `queries` (`_id`,
  `text`) and `default` with one split per qrels set (`query-id`, `corpus-id`, `score`).
- Pairs (`sentence-transformers/...`, `AdamLucek/legal-rag-positives-synthetic`): one table
  with anchor/positive columns (`question`/`text` are accepted too), read as a pair file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from ragctl.evalkit.errors import EvalError
from ragctl.evalkit.sources.beir import join_title
from ragctl.evalkit.sources.pairs import PairColumns, read_pair_records
from ragctl.evalkit.sources.records import RawDataset, id_field, text_field

logger = logging.getLogger(__name__)

# Column names other datasets use for the anchor and the positive.
_ANCHOR_ALIASES = ("anchor", "query", "question", "sentence1")
_POSITIVE_ALIASES = ("positive", "text", "context", "passage", "sentence2")


def _rows(dataset: Any, label: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for index, record in enumerate(dataset, start=1):
        yield f"{label}, row {index}", record


def _first_split(dataset_dict: Any) -> Any:
    if hasattr(dataset_dict, "keys"):
        names = list(dataset_dict.keys())
        if not names:
            raise EvalError("the Hub dataset has no split")
        return dataset_dict[names[0]]
    return dataset_dict


def read_hub(
    repo_id: str, split: str, *, revision: str | None = None, columns: PairColumns | None = None
) -> RawDataset:
    """Load a Hub dataset in the MTEB/BEIR or the pair layout.

    Raises:
        EvalError: The dataset cannot be loaded (offline, unknown id, unknown split or layout).
    """
    try:
        import datasets

        configs = set(datasets.get_dataset_config_names(repo_id, revision=revision))
        if {"corpus", "queries"} <= configs:
            return _read_mteb(datasets, repo_id, split, revision)
        table = datasets.load_dataset(repo_id, split=split, revision=revision)
    except EvalError:
        raise
    except Exception as exc:  # datasets raises many types (DatasetNotFoundError, ValueError, ...)
        raise EvalError(
            f"cannot load Hugging Face dataset {repo_id!r} (split {split!r}): {exc}. "
            "Offline, give a local BEIR folder or pair file instead."
        ) from exc
    return read_pair_records(
        _rows(table, f"{repo_id}:{split}"),
        columns=columns or _guess_columns(list(table.column_names)),
        source=repo_id,
    )


def _read_mteb(datasets: Any, repo_id: str, split: str, revision: str | None) -> RawDataset:
    raw = RawDataset()
    qrels_table = datasets.load_dataset(repo_id, "default", split=split, revision=revision)
    for loc, record in _rows(qrels_table, f"{repo_id}:default:{split}"):
        qid = id_field(record, "query-id", loc)
        doc_id = id_field(record, "corpus-id", loc)
        score = record.get("score", 1)
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            raise EvalError(f"{loc}: field 'score' must be a number, got {score!r}")
        raw.qrels.setdefault(qid, {})[doc_id] = int(score)
    corpus = _first_split(datasets.load_dataset(repo_id, "corpus", revision=revision))
    for loc, record in _rows(corpus, f"{repo_id}:corpus"):
        doc_id = id_field(record, "_id", loc)
        title = text_field(record, "title", loc, required=False)
        raw.corpus[doc_id] = join_title(title, text_field(record, "text", loc))
    queries = _first_split(datasets.load_dataset(repo_id, "queries", revision=revision))
    for loc, record in _rows(queries, f"{repo_id}:queries"):
        qid = id_field(record, "_id", loc)
        if qid in raw.qrels:
            raw.queries[qid] = text_field(record, "text", loc)
    return raw


def _guess_columns(names: list[str]) -> PairColumns:
    anchor = next((n for n in _ANCHOR_ALIASES if n in names), None)
    positive = next((n for n in _POSITIVE_ALIASES if n in names and n != anchor), None)
    if anchor is None or positive is None:
        raise EvalError(
            f"cannot tell the anchor and positive columns apart in {names} "
            f"(expected one of {list(_ANCHOR_ALIASES)} and one of {list(_POSITIVE_ALIASES)})"
        )
    return PairColumns(anchor=anchor, positive=positive)
