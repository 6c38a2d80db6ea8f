"""Evaluation datasets: a corpus, queries and graded qrels, from any supported source.

Sources (`load_eval_dataset` picks by what the path holds):
- a BEIR folder (`corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv`); a doc's text is
  `title + " " + text` as in MTEB, whose published scores this reproduces;
- a pair file (JSON lines / CSV / Parquet with `anchor`, `positive`, optional `id` and a group
  column such as `global_chunk_id`), or a folder of them (`<split>.jsonl`, `<split>_dataset.json`;
  the other pair files in the folder add their positives to the corpus, as the notebook does);
- the retriever's feedback export (JSON lines with `query`, `chunk_id`, `label`, `chunk_text`);
- a Hugging Face dataset id (`owner/name`) in the MTEB or the pair layout.

Queries without a relevant doc (qrels score > 0) are dropped and counted.
"""

from __future__ import annotations

import logging
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragctl.evalkit.errors import EvalError
from ragctl.evalkit.metrics import evaluable_queries
from ragctl.evalkit.sources.pairs import PairColumns
from ragctl.evalkit.sources.records import (
    JSON_SUFFIXES,
    TABLE_SUFFIXES,
    RawDataset,
    iter_json_records,
)

logger = logging.getLogger(__name__)

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class EvalDataset:
    """What an evaluation runs on.

    Attributes:
        name: Short name for reports (folder or file name, Hub id).
        split: Which qrels set (`test`, `train`, ...; `all` for a feedback export).
        corpus: Doc id -> text.
        queries: Query id -> text; only queries with at least one relevant doc.
        qrels: Query id -> doc id -> score (> 0 relevant, graded; 0 judged not relevant).
        source: Where it was loaded from.
        dropped_queries: Queries dropped because no doc is relevant to them (or they had no text).
        notes: Remarks from loading (duplicates merged, docs missing from the corpus, subsets).
    """

    name: str
    split: str
    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    source: str = ""
    dropped_queries: int = 0
    notes: list[str] = field(default_factory=list)

    def sizes(self) -> dict[str, int]:
        """Queries, corpus docs, relevant (query, doc) pairs and dropped queries."""
        relevant = sum(1 for j in self.qrels.values() for s in j.values() if s > 0)
        return {
            "queries": len(self.queries),
            "corpus": len(self.corpus),
            "relevant_pairs": relevant,
            "dropped_queries": self.dropped_queries,
        }

    def subset(
        self, *, max_queries: int | None = None, max_corpus: int | None = None, seed: int = 13
    ) -> EvalDataset:
        """A seeded random subset: at most `max_queries` queries, and a corpus of at most
        `max_corpus` docs that always keeps every doc judged for a kept query.

        Raises:
            EvalError: A limit is below 1.
        """
        for name, value in (("max_queries", max_queries), ("max_corpus", max_corpus)):
            if value is not None and value < 1:
                raise EvalError(f"{name} must be >= 1, got {value}")
        rng = random.Random(seed)
        qids = list(self.queries)
        notes = list(self.notes)
        if max_queries is not None and max_queries < len(qids):
            keep = set(rng.sample(qids, max_queries))
            qids = [q for q in qids if q in keep]
            notes.append(f"queries sampled: {len(qids)} of {len(self.queries)} (seed {seed})")
        qrels = {q: dict(self.qrels[q]) for q in qids}
        corpus = self.corpus
        if max_corpus is not None and max_corpus < len(self.corpus):
            judged = [d for d in dict.fromkeys(d for j in qrels.values() for d in j) if d in corpus]
            judged_set = set(judged)
            others = [d for d in corpus if d not in judged_set]
            room = max(max_corpus - len(judged), 0)
            picked = set(judged) | set(rng.sample(others, min(room, len(others))))
            if len(judged) > max_corpus:
                logger.warning(
                    "max_corpus=%d is below the %d judged docs of the kept queries; keeping all",
                    max_corpus,
                    len(judged),
                )
            corpus = {d: t for d, t in self.corpus.items() if d in picked}
            notes.append(
                f"corpus sampled: {len(corpus)} of {len(self.corpus)} docs, every judged doc "
                f"kept (seed {seed})"
            )
        return EvalDataset(
            name=self.name,
            split=self.split,
            corpus=dict(corpus),
            queries={q: self.queries[q] for q in qids},
            qrels=qrels,
            source=self.source,
            dropped_queries=self.dropped_queries,
            notes=notes,
        )


def build_dataset(raw: RawDataset, *, name: str, split: str, source: str) -> EvalDataset:
    """Keep the queries that have text and a relevant doc; count and note the rest.

    Raises:
        EvalError: No query is left, or the corpus is empty.
    """
    notes = list(raw.notes)
    if not raw.corpus:
        raise EvalError(f"{source}: the corpus is empty")
    judged = set(evaluable_queries(raw.qrels))
    missing_text = [q for q in judged if q not in raw.queries]
    if missing_text:
        notes.append(f"{len(missing_text)} queries in the qrels have no query text (dropped)")
    kept = [q for q in raw.queries if q in judged]
    dropped = len(raw.qrels) - len(kept)
    if dropped:
        notes.append(f"{dropped} queries dropped: no relevant doc or no text")
    if not kept:
        raise EvalError(
            f"{source} (split {split!r}): no query has both a text and a relevant doc "
            "(qrels score > 0)"
        )
    qrels = {q: raw.qrels[q] for q in kept}
    missing_docs = {
        d for j in qrels.values() for d, s in j.items() if s > 0 and d not in raw.corpus
    }
    if missing_docs:
        notes.append(
            f"{len(missing_docs)} relevant docs are not in the corpus (they still count as "
            "relevant, as in BEIR)"
        )
    for note in notes:
        logger.info("%s: %s", name, note)
    return EvalDataset(
        name=name,
        split=split,
        corpus=raw.corpus,
        queries={q: raw.queries[q] for q in kept},
        qrels=qrels,
        source=source,
        dropped_queries=dropped,
        notes=notes,
    )


def load_beir(folder: Path, split: str = "test", *, name: str | None = None) -> EvalDataset:
    """A BEIR folder's corpus, queries and `qrels/<split>.tsv`."""
    from ragctl.evalkit.sources.beir import read_beir

    folder = Path(folder)
    raw = read_beir(folder, split)
    return build_dataset(raw, name=name or folder.name, split=split, source=str(folder))


def load_pairs(
    path: Path,
    *,
    corpus_paths: list[Path] | None = None,
    columns: PairColumns | None = None,
    split: str | None = None,
    name: str | None = None,
) -> EvalDataset:
    """A pair file (JSON lines / CSV / Parquet); `corpus_paths` add distractor positives."""
    from ragctl.evalkit.sources.pairs import read_pairs

    path = Path(path)
    raw = read_pairs(path, columns=columns or PairColumns(), corpus_paths=corpus_paths or [])
    return build_dataset(raw, name=name or path.stem, split=split or path.stem, source=str(path))


def load_pairs_folder(
    folder: Path, split: str = "test", *, columns: PairColumns | None = None
) -> EvalDataset:
    """The pair file of `split` in a folder; the folder's other pair files extend the corpus."""
    from ragctl.evalkit.sources.pairs import find_split_files

    folder = Path(folder)
    path, others = find_split_files(folder, split)
    return load_pairs(path, corpus_paths=others, columns=columns, split=split, name=folder.name)


def load_feedback(path: Path, *, name: str | None = None) -> EvalDataset:
    """The retriever's feedback export (JSON lines); the split is `all`."""
    from ragctl.evalkit.sources.feedback import read_feedback

    path = Path(path)
    raw = read_feedback(path)
    return build_dataset(raw, name=name or path.stem, split="all", source=str(path))


def load_hf(repo_id: str, split: str = "test", *, revision: str | None = None) -> EvalDataset:
    """A Hugging Face Hub dataset (MTEB/BEIR layout or pairs); needs network or a cache."""
    from ragctl.evalkit.sources.hub import read_hub

    raw = read_hub(repo_id, split, revision=revision)
    return build_dataset(raw, name=repo_id, split=split, source=f"hf:{repo_id}")


def load_eval_dataset(source: str | Path, split: str = "test", **options: Any) -> EvalDataset:
    """Load a dataset from a BEIR folder, pair file(s), feedback export or Hub id.

    Args:
        source: A path, or `owner/name` of a Hugging Face dataset (`hf:owner/name` forces it).
        split: The qrels split (BEIR, pair folders, Hub); ignored by single files.
        **options: Passed to the chosen loader (e.g. `columns=PairColumns(...)`).

    Raises:
        EvalError: Nothing usable at `source`, or the data is malformed.
    """
    text = str(source)
    if text.startswith("hf:"):
        return load_hf(text[3:], split, **options)
    path = Path(text).expanduser()
    if path.is_dir():
        from ragctl.evalkit.sources.beir import is_beir_folder

        if is_beir_folder(path):
            return load_beir(path, split, **options)
        return load_pairs_folder(path, split, **options)
    if path.is_file():
        return _load_file(path, **options)
    if _HUB_ID.match(text) and not text.startswith((".", "/")):
        return load_hf(text, split, **options)
    raise EvalError(
        f"dataset not found: {text} (give a BEIR folder, a pair file or folder, a feedback "
        "export, or a Hugging Face dataset id owner/name)"
    )


def _load_file(path: Path, **options: Any) -> EvalDataset:
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise EvalError(
            f"{path}: unsupported file type {suffix!r} (use {', '.join(TABLE_SUFFIXES)})"
        )
    if suffix in JSON_SUFFIXES:
        from ragctl.evalkit.sources.feedback import looks_like_feedback

        first = next(iter_json_records(path), None)
        if first is None:
            raise EvalError(f"{path}: the file has no records")
        if looks_like_feedback(first[1]):
            return load_feedback(path, **options)
    return load_pairs(path, **options)
