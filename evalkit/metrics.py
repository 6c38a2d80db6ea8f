"""Information-retrieval metrics over ranked doc ids (pure, no I/O).

Definitions follow sentence-transformers' `InformationRetrievalEvaluator` exactly, so on the same
rankings the numbers are equal (tested to 1e-6):

- accuracy@k: 1 if any relevant doc is in the top k (`hit_rate@k` is the same number under the
  name RAG tooling uses).
- precision@k: relevant docs in the top k divided by k (even when fewer than k were returned).
- recall@k: relevant docs in the top k divided by the number of relevant docs.
- mrr@k: 1 / rank of the first relevant doc in the top k, else 0.
- ndcg@k: DCG = sum(gain_i / log2(i + 2)) over the top k, divided by the DCG of the ideal order
  of the judged gains. With binary qrels (every score 1) this is ST's binary nDCG; graded qrels
  (scores > 1) use the score itself as the linear gain, as trec_eval / pytrec_eval (BEIR) do.
- map@k: sum of precision@rank at each relevant hit in the top k, divided by
  min(k, number of relevant docs).

Relevance: a qrels score > 0 is relevant, a score <= 0 (the "0" rows of BEIR files) is not.
Only queries with at least one relevant doc are evaluated; a query with no ranking counts as an
empty ranking (all zeros). Per-metric averages are plain means over evaluated queries.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from ragctl.evalkit.errors import EvalError

Qrels = Mapping[str, Mapping[str, int]]
"""Query id -> doc id -> relevance score (0 = judged not relevant)."""

Rankings = Mapping[str, Sequence[str]]
"""Query id -> doc ids, best first."""

METRIC_NAMES: tuple[str, ...] = (
    "accuracy",
    "precision",
    "recall",
    "ndcg",
    "mrr",
    "map",
    "hit_rate",
)


def _check_ks(name: str, ks: Iterable[int]) -> tuple[int, ...]:
    values = tuple(ks)
    for k in values:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise EvalError(f"{name}: every k must be an integer >= 1, got {k!r}")
    return tuple(sorted(set(values)))


@dataclass(frozen=True)
class MetricConfig:
    """Which metrics at which cut-offs; defaults are sentence-transformers' (plus hit_rate@10).

    Attributes:
        accuracy_at_k: Cut-offs of accuracy@k.
        precision_recall_at_k: Cut-offs of precision@k and recall@k.
        ndcg_at_k: Cut-offs of ndcg@k.
        mrr_at_k: Cut-offs of mrr@k.
        map_at_k: Cut-offs of map@k.
        hit_rate_at_k: Cut-offs of hit_rate@k.
    """

    accuracy_at_k: tuple[int, ...] = (1, 3, 5, 10)
    precision_recall_at_k: tuple[int, ...] = (1, 3, 5, 10)
    ndcg_at_k: tuple[int, ...] = (10,)
    mrr_at_k: tuple[int, ...] = (10,)
    map_at_k: tuple[int, ...] = (100,)
    hit_rate_at_k: tuple[int, ...] = (10,)

    def __post_init__(self) -> None:
        for name in (
            "accuracy_at_k",
            "precision_recall_at_k",
            "ndcg_at_k",
            "mrr_at_k",
            "map_at_k",
            "hit_rate_at_k",
        ):
            object.__setattr__(self, name, _check_ks(name, getattr(self, name)))

    @property
    def max_k(self) -> int:
        """The deepest cut-off: how many docs a ranking needs."""
        every = (
            self.accuracy_at_k
            + self.precision_recall_at_k
            + self.ndcg_at_k
            + self.mrr_at_k
            + self.map_at_k
            + self.hit_rate_at_k
        )
        return max(every, default=1)

    def keys(self) -> list[str]:
        """Metric keys in report order, e.g. `accuracy@1`, ..., `ndcg@10`, `map@100`."""
        keys = [f"accuracy@{k}" for k in self.accuracy_at_k]
        keys += [f"precision@{k}" for k in self.precision_recall_at_k]
        keys += [f"recall@{k}" for k in self.precision_recall_at_k]
        keys += [f"ndcg@{k}" for k in self.ndcg_at_k]
        keys += [f"mrr@{k}" for k in self.mrr_at_k]
        keys += [f"map@{k}" for k in self.map_at_k]
        keys += [f"hit_rate@{k}" for k in self.hit_rate_at_k]
        return keys

    def to_dict(self) -> dict[str, list[int]]:
        """JSON-friendly form."""
        return {
            "accuracy_at_k": list(self.accuracy_at_k),
            "precision_recall_at_k": list(self.precision_recall_at_k),
            "ndcg_at_k": list(self.ndcg_at_k),
            "mrr_at_k": list(self.mrr_at_k),
            "map_at_k": list(self.map_at_k),
            "hit_rate_at_k": list(self.hit_rate_at_k),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Sequence[int]]) -> MetricConfig:
        """Inverse of `to_dict` (missing keys take the defaults)."""
        return cls(**{key: tuple(int(k) for k in value) for key, value in data.items()})


NDCG_AT_10 = MetricConfig(
    accuracy_at_k=(),
    precision_recall_at_k=(),
    mrr_at_k=(),
    ndcg_at_k=(10,),
    map_at_k=(),
    hit_rate_at_k=(),
)
"""ndcg@10 alone (checkpoint selection and benchmarks that need no other metric)."""


def relevant_gains(judgments: Mapping[str, int]) -> dict[str, int]:
    """The judged docs that count as relevant (score > 0), with their gains."""
    return {doc_id: int(score) for doc_id, score in judgments.items() if score > 0}


def accuracy_at_k(ranking: Sequence[str], relevant: Collection[str], k: int) -> float:
    """1.0 if any relevant doc is among the first k, else 0.0."""
    return 1.0 if any(doc_id in relevant for doc_id in ranking[:k]) else 0.0


def hit_rate_at_k(ranking: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Same as `accuracy_at_k` (the name RAG tooling uses)."""
    return accuracy_at_k(ranking, relevant, k)


def precision_at_k(ranking: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Relevant docs among the first k, divided by k."""
    return sum(1 for doc_id in ranking[:k] if doc_id in relevant) / k


def recall_at_k(ranking: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Relevant docs among the first k, divided by the number of relevant docs."""
    if not relevant:
        return 0.0
    return sum(1 for doc_id in ranking[:k] if doc_id in relevant) / len(relevant)


def mrr_at_k(ranking: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Reciprocal rank of the first relevant doc among the first k, else 0.0."""
    for rank, doc_id in enumerate(ranking[:k]):
        if doc_id in relevant:
            return 1.0 / (rank + 1)
    return 0.0


def _dcg(gains: Sequence[float], k: int) -> float:
    return sum(gains[i] / math.log2(i + 2) for i in range(min(len(gains), k)))


def ndcg_at_k(ranking: Sequence[str], gains: Mapping[str, int], k: int) -> float:
    """Normalized DCG with linear gains (binary gains give sentence-transformers' ndcg).

    Args:
        ranking: Doc ids, best first.
        gains: Relevant doc id -> gain (its qrels score, > 0).
        k: Cut-off.
    """
    if not gains:
        return 0.0
    predicted = [float(gains.get(doc_id, 0)) for doc_id in ranking[:k]]
    ideal = sorted((float(g) for g in gains.values()), reverse=True)
    return _dcg(predicted, k) / _dcg(ideal, k)


def average_precision_at_k(ranking: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Mean of precision@rank over relevant hits in the first k, over min(k, #relevant)."""
    if not relevant:
        return 0.0
    hits = 0
    total = 0.0
    for rank, doc_id in enumerate(ranking[:k]):
        if doc_id in relevant:
            hits += 1
            total += hits / (rank + 1)
    return total / min(k, len(relevant))


def query_metrics(
    ranking: Sequence[str], judgments: Mapping[str, int], config: MetricConfig
) -> dict[str, float]:
    """Every metric of `config` for one query.

    Args:
        ranking: Doc ids, best first (no duplicates).
        judgments: Doc id -> qrels score of this query (scores <= 0 are not relevant).
        config: Which metrics at which cut-offs.
    """
    gains = relevant_gains(judgments)
    relevant = gains.keys()
    out: dict[str, float] = {}
    for k in config.accuracy_at_k:
        out[f"accuracy@{k}"] = accuracy_at_k(ranking, relevant, k)
    for k in config.precision_recall_at_k:
        out[f"precision@{k}"] = precision_at_k(ranking, relevant, k)
    for k in config.precision_recall_at_k:
        out[f"recall@{k}"] = recall_at_k(ranking, relevant, k)
    for k in config.ndcg_at_k:
        out[f"ndcg@{k}"] = ndcg_at_k(ranking, gains, k)
    for k in config.mrr_at_k:
        out[f"mrr@{k}"] = mrr_at_k(ranking, relevant, k)
    for k in config.map_at_k:
        out[f"map@{k}"] = average_precision_at_k(ranking, relevant, k)
    for k in config.hit_rate_at_k:
        out[f"hit_rate@{k}"] = hit_rate_at_k(ranking, relevant, k)
    return out


def evaluable_queries(qrels: Qrels) -> list[str]:
    """Query ids with at least one relevant doc, in qrels order."""
    return [qid for qid, judgments in qrels.items() if any(s > 0 for s in judgments.values())]


def per_query_metrics(
    rankings: Rankings, qrels: Qrels, config: MetricConfig | None = None
) -> dict[str, dict[str, float]]:
    """Every metric of `config` for each query of `qrels` that has a relevant doc.

    Args:
        rankings: Query id -> doc ids, best first. A missing query counts as an empty ranking;
            queries absent from `qrels` are ignored.
        qrels: Query id -> doc id -> score (> 0 relevant; graded scores feed ndcg).
        config: Metrics and cut-offs (default: sentence-transformers' set plus hit_rate@10).

    Raises:
        EvalError: No query has a relevant doc, or a ranking lists a doc twice.
    """
    config = config or MetricConfig()
    query_ids = evaluable_queries(qrels)
    if not query_ids:
        raise EvalError("no query has a relevant document (qrels score > 0); nothing to evaluate")
    out: dict[str, dict[str, float]] = {}
    for qid in query_ids:
        ranking = rankings.get(qid, ())
        if len(set(ranking)) != len(ranking):
            raise EvalError(f"the ranking of query {qid!r} lists a document more than once")
        out[qid] = query_metrics(ranking, qrels[qid], config)
    return out


def mean_metrics(per_query: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """The plain mean of each metric over the queries of `per_query`."""
    values = list(per_query.values())
    return {key: sum(v[key] for v in values) / len(values) for key in values[0]}


def evaluate_rankings(
    rankings: Rankings, qrels: Qrels, config: MetricConfig | None = None
) -> dict[str, float]:
    """Mean metrics over every query of `qrels` that has a relevant doc (see
    `per_query_metrics` for the arguments and errors)."""
    return mean_metrics(per_query_metrics(rankings, qrels, config))


def rank_by_score(doc_ids: Sequence[str], scores: Sequence[float], k: int) -> list[str]:
    """The k best doc ids by score, ties broken by ascending doc id (as sentence-transformers).

    Args:
        doc_ids: Candidate doc ids (distinct).
        scores: Their scores, same length.
        k: How many to keep.
    """
    if len(doc_ids) != len(scores):
        raise EvalError(f"{len(doc_ids)} doc ids but {len(scores)} scores")
    order = sorted(range(len(doc_ids)), key=lambda i: (-scores[i], doc_ids[i]))
    return [doc_ids[i] for i in order[:k]]
