"""Hard negatives mined from the serving collection.

For each pair, the negative is (in order of preference) a chunk that feedback marked not
relevant for that query, else the best-ranked chunk that is not the positive, was never marked
relevant for the query, and scores below the positive by at least `margin` with the serving
model (a chunk scoring about as high as the positive is too likely an unlabeled positive: a
false negative).

Candidates are ranked by the serving model (`source="dense"`, the default) or by the BM25
lexical vectors (`sparse`) or both fused (`hybrid`): keyword-similar chunks that do not answer
are the classic hard negatives of DPR. The false-negative guard always uses the serving
model's cosine, computed for the sparse/hybrid candidates that are looked at.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

from ragctl.core.collections import BoundCollection
from ragctl.core.encoder import Encoder
from ragctl.core.records import Hit
from ragctl.core.search import SearchMode, SearchParams
from ragctl.tuner.pairs import TrainingPair, normalize_query

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MiningReport:
    """What mining gave the pairs.

    Attributes:
        pairs: Pairs that needed a negative.
        from_feedback: Negatives that feedback marked not relevant for the query.
        mined: Hard negatives: a top-ranked chunk safely below the positive.
        skipped_as_false_negative: Candidates passed over because they scored within `margin`
            of the positive (likely unlabeled positives).
        without_hard_negative: Pairs with no safe hard negative among their candidates (they
            get an easy negative: `easy_fallback`, or none: `no_negative`).
        easy_fallback: Pairs given a low-ranked chunk of another query instead.
        no_negative: Pairs left without any negative.
    """

    pairs: int
    from_feedback: int
    mined: int
    skipped_as_false_negative: int
    without_hard_negative: int
    easy_fallback: int = 0
    no_negative: int = 0

    def to_dict(self) -> dict[str, int]:
        """The counts (for the registry, the model card and `--json`)."""
        return asdict(self)

    def describe(self) -> str:
        """One line for the retune output."""
        return (
            f"hard negatives for {self.pairs} pairs: {self.mined} mined, {self.from_feedback} "
            f"from feedback, {self.easy_fallback} easy fallbacks and {self.no_negative} without "
            f"(no safe hard one among the candidates); {self.skipped_as_false_negative} "
            "candidates skipped as near-positives"
        )


def mine_hard_negatives(
    pairs: Sequence[TrainingPair],
    serving: BoundCollection,
    *,
    relevant: Mapping[str, set[str]],
    not_relevant: Mapping[str, set[str]] | None = None,
    candidates: int = 20,
    margin: float = 0.05,
    batch_size: int = 256,
    source: SearchMode = SearchMode.DENSE,
    guard_depth: int = 3,
) -> tuple[list[TrainingPair], MiningReport]:
    """Give every pair a negative, mined from the `serving` collection with its encoder.

    A pair with no safe hard negative among its candidates gets a random candidate of
    another query (an easy negative): the trainer needs a negative on every row or none.
    """
    encoder = serving.encoder
    not_relevant = not_relevant or {}
    params = SearchParams(k=candidates, shortlist=max(100, candidates), mode=source)
    out: list[TrainingPair] = []
    pool: list[Hit] = []  # low-ranked candidates, the easy negatives of last resort
    counts = {"feedback": 0, "mined": 0, "false_negative": 0, "none": 0}
    for start in range(0, len(pairs), batch_size):
        batch = pairs[start : start + batch_size]
        queries = encoder.encode_queries([p.query for p in batch])
        positives = _positive_vectors(batch, serving)
        positive_scores = np.einsum("ij,ij->i", queries.full, positives)
        hits = serving.store.search_batch(
            serving.physical, queries, params, [p.query for p in batch]
        )
        if params.mode is not SearchMode.DENSE:  # the guard compares cosines: score the top few
            hits = _with_cosines(hits, queries.full, encoder, guard_depth)
        for pair, pos_score, found in zip(batch, positive_scores, hits, strict=True):
            key = normalize_query(pair.query)
            banned = relevant.get(key, set()) | ({pair.positive_id} if pair.positive_id else set())
            negative = None
            labeled = [h for h in found if h.chunk_id in not_relevant.get(key, set())]
            if labeled:
                negative = labeled[0].text
                counts["feedback"] += 1
            else:
                for hit in found:
                    if hit.chunk_id in banned or hit.text == pair.positive:
                        continue
                    if hit.score > float(pos_score) - margin:
                        counts["false_negative"] += 1
                        continue
                    negative = hit.text
                    counts["mined"] += 1
                    break
            if negative is None:
                counts["none"] += 1
            pool.extend(h for h in found[-3:] if h.chunk_id not in banned)
            out.append(
                TrainingPair(pair.query, pair.positive, pair.positive_id, negative, pair.origin)
            )
    rng = np.random.default_rng(0)
    easy = 0
    for i, pair in enumerate(out):
        if pair.negative is None and pool:
            key = normalize_query(pair.query)
            banned = relevant.get(key, set()) | ({pair.positive_id} if pair.positive_id else set())
            for _ in range(5):
                hit = pool[int(rng.integers(len(pool)))]
                if hit.chunk_id not in banned and hit.text != pair.positive:
                    out[i] = TrainingPair(
                        pair.query, pair.positive, pair.positive_id, hit.text, pair.origin
                    )
                    easy += 1
                    break
    report = MiningReport(
        pairs=len(pairs),
        from_feedback=counts["feedback"],
        mined=counts["mined"],
        skipped_as_false_negative=counts["false_negative"],
        without_hard_negative=counts["none"],
        easy_fallback=easy,
        no_negative=counts["none"] - easy,
    )
    logger.info("hard negatives (%s candidates): %s", source, report)
    return out, report


def _positive_vectors(pairs: Sequence[TrainingPair], serving: BoundCollection) -> np.ndarray:
    """The serving model's full vector of each pair's positive: read back from the collection
    where the positive is a stored chunk (what the model gave it at ingest), else encoded."""
    ids = [p.positive_id for p in pairs if p.positive_id]
    stored = serving.store.get_vectors(serving.physical, ids) if ids else {}
    missing = [i for i, p in enumerate(pairs) if p.positive_id not in stored]
    vectors = np.empty((len(pairs), serving.encoder.dim), dtype=np.float32)
    if missing:
        encoded = serving.encoder.encode_documents([pairs[i].positive for i in missing])
        vectors[missing] = encoded.full
    for i, pair in enumerate(pairs):
        if pair.positive_id in stored:
            vectors[i] = stored[pair.positive_id]
    return vectors


def _with_cosines(
    hits: list[list[Hit]], queries: np.ndarray, encoder: Encoder, depth: int
) -> list[list[Hit]]:
    """The first `depth` hits of each query, rescored with the serving model's cosine (the
    order stays the ranker's); deeper hits are dropped."""
    texts = [h.text for found in hits for h in found[:depth]]
    if not texts:
        return [[] for _ in hits]
    vectors = encoder.encode_documents(texts).full
    out, i = [], 0
    for row, found in enumerate(hits):
        rescored = []
        for hit in found[:depth]:
            rescored.append(replace(hit, score=float(vectors[i] @ queries[row])))
            i += 1
        out.append(rescored)
    return out
