"""evalkit.metrics: equal to sentence-transformers' InformationRetrievalEvaluator, graded ndcg."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from ragctl.evalkit.errors import EvalError
from ragctl.evalkit.metrics import (
    MetricConfig,
    evaluate_rankings,
    ndcg_at_k,
    query_metrics,
    rank_by_score,
)

ST_KEYS = ("accuracy", "precision", "recall", "ndcg", "mrr", "map")


def _st_metrics(
    rankings: dict[str, list[str]], qrels: dict[str, dict[str, int]], config: MetricConfig
) -> dict[str, float]:
    """Run sentence-transformers' own metric code on the same rankings."""
    from sentence_transformers.sentence_transformer.evaluation import (
        InformationRetrievalEvaluator,
    )

    corpus = {d: d for r in rankings.values() for d in r}
    corpus |= {d: d for j in qrels.values() for d in j}
    relevant = {q: {d for d, s in j.items() if s > 0} for q, j in qrels.items()}
    queries = {q: q for q in qrels}
    evaluator = InformationRetrievalEvaluator(
        queries=dict[str, Any](queries),
        corpus=dict[str, Any](corpus),
        relevant_docs=relevant,
        accuracy_at_k=list(config.accuracy_at_k),
        precision_recall_at_k=list(config.precision_recall_at_k),
        ndcg_at_k=list(config.ndcg_at_k),
        mrr_at_k=list(config.mrr_at_k),
        map_at_k=list(config.map_at_k),
        write_csv=False,
    )
    # Strictly decreasing scores keep our order through ST's (-score, corpus_id) sort.
    results: list[Any] = [
        [{"corpus_id": d, "score": 1.0 - i / 1000} for i, d in enumerate(rankings.get(q, []))]
        for q in evaluator.queries_ids
    ]
    scores = evaluator.compute_metrics(results)
    return {
        f"{name.split('@')[0]}@{k}": float(v)
        for name, per_k in scores.items()
        for k, v in per_k.items()
    }


def _random_case(seed: int, graded: bool) -> tuple[dict[str, list[str]], dict[str, dict[str, int]]]:
    rng = random.Random(seed)
    docs = [f"d{i:03d}" for i in range(60)]
    rankings: dict[str, list[str]] = {}
    qrels: dict[str, dict[str, int]] = {}
    for q in range(40):
        qid = f"q{q}"
        judged = rng.sample(docs, rng.randint(1, 6))
        qrels[qid] = {d: (rng.choice([1, 2, 3]) if graded else 1) for d in judged}
        if q % 7 == 0:
            qrels[qid][rng.choice(docs)] = 0  # judged not relevant
        rankings[qid] = rng.sample(docs, rng.choice([0, 3, 10, 25, 60]))
    qrels["q_none"] = {"d000": 0}  # no relevant doc: not evaluated
    return rankings, qrels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_sentence_transformers_binary(seed: int) -> None:
    rankings, qrels = _random_case(seed, graded=False)
    config = MetricConfig(ndcg_at_k=(3, 10), mrr_at_k=(5, 10), map_at_k=(10, 100))
    ours = evaluate_rankings(rankings, qrels, config)
    theirs = _st_metrics(rankings, qrels, config)
    assert set(theirs) <= set(ours)
    for key, value in theirs.items():
        assert ours[key] == pytest.approx(value, abs=1e-6), key


def test_metrics_graded_qrels_keep_st_numbers_except_ndcg() -> None:
    rankings, qrels = _random_case(5, graded=True)
    ours = evaluate_rankings(rankings, qrels)
    theirs = _st_metrics(rankings, qrels, MetricConfig())
    for key, value in theirs.items():
        if not key.startswith("ndcg"):
            assert ours[key] == pytest.approx(value, abs=1e-6), key
    assert ours["ndcg@10"] != pytest.approx(theirs["ndcg@10"], abs=1e-6)


def test_metrics_graded_ndcg_uses_linear_gains() -> None:
    gains = {"a": 3, "b": 1, "c": 2}
    ranking = ["b", "x", "a"]
    dcg = 1 / math.log2(2) + 3 / math.log2(4)
    ideal = 3 / math.log2(2) + 2 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(ranking, gains, 10) == pytest.approx(dcg / ideal)
    assert ndcg_at_k(["a", "c", "b"], gains, 10) == pytest.approx(1.0)
    assert ndcg_at_k(["b"], {"b": 1}, 1) == 1.0


def test_metrics_known_values_on_a_hand_case() -> None:
    values = query_metrics(["x", "a", "y", "b"], {"a": 1, "b": 1, "z": 0}, MetricConfig())
    assert values["accuracy@1"] == 0.0
    assert values["accuracy@3"] == 1.0
    assert values["precision@3"] == pytest.approx(1 / 3)
    assert values["recall@5"] == 1.0
    assert values["mrr@10"] == 0.5
    assert values["map@100"] == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert values["hit_rate@10"] == values["accuracy@10"]


def test_metrics_default_keys_follow_sentence_transformers() -> None:
    keys = MetricConfig().keys()
    assert keys[:4] == ["accuracy@1", "accuracy@3", "accuracy@5", "accuracy@10"]
    assert {"ndcg@10", "mrr@10", "map@100", "recall@5", "hit_rate@10"} <= set(keys)
    assert MetricConfig().max_k == 100
    assert MetricConfig.from_dict(MetricConfig(ndcg_at_k=(5,)).to_dict()).ndcg_at_k == (5,)


def test_metrics_score_zero_rows_are_not_relevant() -> None:
    qrels = {"q1": {"a": 0, "b": 1}, "q2": {"c": 0}}
    values = evaluate_rankings({"q1": ["a", "b"], "q2": ["c"]}, qrels)
    assert values["mrr@10"] == 0.5  # q2 is not evaluated, a does not count
    assert values["recall@1"] == 0.0


def test_metrics_missing_ranking_counts_as_empty() -> None:
    values = evaluate_rankings({"q1": ["a"]}, {"q1": {"a": 1}, "q2": {"b": 1}})
    assert values["accuracy@1"] == 0.5
    assert values["ndcg@10"] == 0.5


def test_metrics_reject_empty_and_malformed_inputs() -> None:
    with pytest.raises(EvalError, match="no query has a relevant document"):
        evaluate_rankings({}, {})
    with pytest.raises(EvalError, match="no query has a relevant document"):
        evaluate_rankings({"q": ["a"]}, {"q": {"a": 0}})
    with pytest.raises(EvalError, match="more than once"):
        evaluate_rankings({"q": ["a", "a"]}, {"q": {"a": 1}})
    with pytest.raises(EvalError, match="ndcg_at_k: every k must be an integer >= 1, got 0"):
        MetricConfig(ndcg_at_k=(0,))
    with pytest.raises(EvalError, match="2 doc ids but 1 scores"):
        rank_by_score(["a", "b"], [1.0], 1)


def test_metrics_rank_by_score_breaks_ties_by_doc_id() -> None:
    assert rank_by_score(["b", "a", "c"], [0.5, 0.5, 0.9], 3) == ["c", "a", "b"]
    assert rank_by_score(["b", "a", "c"], [0.5, 0.5, 0.9], 2) == ["c", "a"]
