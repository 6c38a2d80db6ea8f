"""Training pairs from a BEIR folder: the judged (query, document) pairs of its train qrels.

Qrels may be graded (TREC-style 0-4 judgments, say). With threshold `min_relevance`:
- score >= min_relevance: a positive pair;
- 0 < score < min_relevance: partly relevant, so neither a positive nor ever a mined negative;
- score <= 0: judged not relevant: a known negative, preferred by hard-negative mining.

A judged document the collection holds (its BEIR `_id` is the stored doc id, as after
`ragctl ingest corpus.jsonl`) is pinned to its chunk that best answers the query, as doc-level
feedback is, and none of its chunks is mined as a negative for a query it is relevant to. A
positive document the collection lacks trains with its corpus text (`title text`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragctl.core.collections import BoundCollection
from ragctl.evalkit.sources.beir import is_beir_folder, read_beir
from ragctl.tuner.errors import TunerError
from ragctl.tuner.pairs import PairSet, TrainingPair, normalize_query, pin_to_chunks

TRAIN_SPLIT = "train"


@dataclass(frozen=True)
class BeirPairsReport:
    """What a BEIR folder gave."""

    folder: str
    split: str
    min_relevance: int
    positives: int  # positive pairs added
    pinned: int  # of which pinned to a stored chunk
    below_threshold: int  # judged 0 < score < min_relevance: left out
    not_relevant: int  # judged score <= 0: known negatives (those the collection holds)
    missing: int  # judged docs in neither the corpus nor the collection, or queries without text

    def describe(self) -> str:
        """One line for the retune output."""
        return (
            f"{self.folder} (BEIR qrels/{self.split}.tsv, positive when score >= "
            f"{self.min_relevance}): {self.positives} positive pairs ({self.pinned} pinned to "
            f"stored chunks), {self.below_threshold} judged below the threshold (left out), "
            f"{self.not_relevant} judged not relevant (known negatives), {self.missing} missing"
        )


def check_beir_folder(folder: Path, split: str = TRAIN_SPLIT) -> None:
    """Raise TunerError unless `folder` is a BEIR folder with `qrels/<split>.tsv`."""
    qrels = folder / "qrels" / f"{split}.tsv"
    if not is_beir_folder(folder) or not qrels.is_file():
        raise TunerError(
            f"{folder} is a folder but not a BEIR folder with training judgments: --pairs "
            f"takes a pair file, or a folder holding corpus.jsonl, queries.jsonl and {qrels}"
        )


def add_beir_pairs(
    pair_set: PairSet,
    folder: Path,
    serving: BoundCollection,
    *,
    min_relevance: int = 1,
    split: str = TRAIN_SPLIT,
) -> BeirPairsReport:
    """Add the judged pairs of `folder`'s `split` qrels to `pair_set` (see the module doc).

    Raises:
        TunerError: `min_relevance` is below 1, or `folder` is not a BEIR folder with that
            split.
        EvalError: A file of the folder is malformed (naming file, line and field).
    """
    if min_relevance < 1:
        raise TunerError(f"min_relevance must be >= 1 (a qrels score), got {min_relevance}")
    check_beir_folder(folder, split)
    raw = read_beir(folder, split)
    judged_docs = sorted({doc for judged in raw.qrels.values() for doc in judged})
    stored = serving.store.chunk_ids_of(serving.physical, judged_docs)
    counts: Counter[str] = Counter()
    to_pin: list[dict[str, Any]] = []
    for qid, judged in raw.qrels.items():
        query = raw.queries.get(qid, "").strip()
        if not query:
            counts["missing"] += len(judged)
            continue
        key = normalize_query(query)
        for doc, score in judged.items():
            if score > 0 and doc in stored:  # no chunk of a relevant doc is a negative
                pair_set.relevant.setdefault(key, set()).update(stored[doc])
            if 0 < score < min_relevance:
                counts["below_threshold"] += 1
            elif doc in stored:
                label = "relevant" if score > 0 else "not_relevant"
                to_pin.append({"query": query, "doc_id": doc, "label": label})
            elif score <= 0:
                continue  # a known negative the collection does not hold: nothing to avoid
            elif doc in raw.corpus:
                pair_set.pairs.append(TrainingPair(query, raw.corpus[doc], origin="beir"))
                counts["positives"] += 1
            else:
                counts["missing"] += 1
    for record in pin_to_chunks(to_pin, serving):
        key = normalize_query(record["query"])
        if record["label"] == "relevant":
            text, chunk = record["chunk_text"], record["chunk_id"]
            pair_set.pairs.append(TrainingPair(record["query"], text, chunk, origin="beir"))
            counts["positives"] += 1
            counts["pinned"] += 1
        else:
            pair_set.not_relevant.setdefault(key, set()).add(record["chunk_id"])
            counts["not_relevant"] += 1
    report = BeirPairsReport(
        folder=folder.name,
        split=split,
        min_relevance=min_relevance,
        positives=counts["positives"],
        pinned=counts["pinned"],
        below_threshold=counts["below_threshold"],
        not_relevant=counts["not_relevant"],
        missing=counts["missing"],
    )
    pair_set.count("beir_positives", report.positives)
    pair_set.count("beir_below_threshold", report.below_threshold)
    pair_set.count("beir_not_relevant", report.not_relevant)
    return report
