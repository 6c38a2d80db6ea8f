"""Checkpoint selection: the model in training, scored on validation queries it never trains on.

An evaluation encodes the validation corpus and queries once at the full dim (evalkit's
encode-once exact search) and measures ndcg@10 at the full dim, at the shortlist dim and
through exact two-stage search (shortlist at the shortlist dim, rerank at the full dim). The
selection score mixes the first two (`selection_shortlist_weight`): a checkpoint must serve
well at the full dim and shortlist well. The Trainer keeps the checkpoint with the best score
(`load_best_model_at_end`) and stops after `early_stopping_patience` evaluations without a gain.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ragctl.core.matryoshka import truncate
from ragctl.evalkit.datasets import EvalDataset
from ragctl.evalkit.metrics import NDCG_AT_10, mean_metrics, per_query_metrics
from ragctl.evalkit.search import exact_search, id_ranks, two_stage_search

SELECTION = "selection"
"""The key of the selection score among an evaluation's metrics (`eval_selection` in the
Trainer's logs)."""


@dataclass(frozen=True)
class ValidationPlan:
    """What an evaluation measures and how it scores."""

    dataset: EvalDataset
    full_dim: int
    shortlist_dim: int
    shortlist: int  # two-stage shortlist size
    shortlist_weight: float  # of the shortlist dim in the selection score
    query_prompt: str = ""
    document_prompt: str = ""
    batch_size: int = 64

    @property
    def metric_keys(self) -> tuple[str, str, str]:
        """ndcg@10 at the full dim, at the shortlist dim, through two-stage."""
        return (
            f"ndcg@10_{self.full_dim}",
            f"ndcg@10_{self.shortlist_dim}",
            "ndcg@10_two_stage",
        )


def selection_score(full: float, shortlist: float, shortlist_weight: float) -> float:
    """The checkpoint selection score: ndcg@10 at the full dim and the shortlist dim, mixed."""
    return (1 - shortlist_weight) * full + shortlist_weight * shortlist


def score_vectors(
    plan: ValidationPlan,
    corpus_ids: Sequence[str],
    corpus: NDArray[np.float32],
    query_ids: Sequence[str],
    queries: NDArray[np.float32],
) -> dict[str, float]:
    """The metrics of one evaluation from normalized full-size vectors (pure)."""
    ranks = id_ranks(list(corpus_ids))
    qrels = plan.dataset.qrels
    short_corpus = truncate(corpus, plan.shortlist_dim)
    short_queries = truncate(queries, plan.shortlist_dim)
    runs = {
        "full": exact_search(queries, corpus, 10, ranks)[0],
        "shortlist": exact_search(short_queries, short_corpus, 10, ranks)[0],
        "two_stage": two_stage_search(
            queries, corpus, short_queries, short_corpus, plan.shortlist, 10, ranks
        )[0],
    }
    ndcg = {}
    for name, idx in runs.items():
        rankings = {qid: [corpus_ids[i] for i in idx[row]] for row, qid in enumerate(query_ids)}
        ndcg[name] = mean_metrics(per_query_metrics(rankings, qrels, NDCG_AT_10))["ndcg@10"]
    full_key, short_key, two_key = plan.metric_keys
    return {
        SELECTION: selection_score(ndcg["full"], ndcg["shortlist"], plan.shortlist_weight),
        full_key: ndcg["full"],
        short_key: ndcg["shortlist"],
        two_key: ndcg["two_stage"],
    }


def evaluate_model(model: Any, plan: ValidationPlan) -> dict[str, float]:
    """Encode the validation set with a sentence-transformers model (once, full size) and
    score it; adds the seconds it took."""
    started = time.perf_counter()
    dataset = plan.dataset
    corpus_ids, query_ids = list(dataset.corpus), list(dataset.queries)

    def encode(texts: list[str], prompt: str) -> NDArray[np.float32]:
        vectors = model.encode(
            texts,
            prompt=prompt or None,
            batch_size=plan.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    corpus = encode([dataset.corpus[d] for d in corpus_ids], plan.document_prompt)
    queries = encode([dataset.queries[q] for q in query_ids], plan.query_prompt)
    metrics = score_vectors(plan, corpus_ids, corpus, query_ids, queries)
    metrics["seconds"] = time.perf_counter() - started
    return metrics


def make_evaluator(plan: ValidationPlan) -> Any:
    """A sentence-transformers evaluator of `plan` for the Trainer (primary metric: the
    selection score)."""
    from sentence_transformers.base.evaluation.evaluator import BaseEvaluator

    class ValidationEvaluator(BaseEvaluator):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.primary_metric = SELECTION
            self.greater_is_better = True

        def __call__(
            self, model: Any, output_path: str | None = None, epoch: int = -1, steps: int = -1
        ) -> dict[str, float]:
            return evaluate_model(model, plan)

        def get_config_dict(self) -> dict[str, Any]:
            return {
                "queries": len(plan.dataset.queries),
                "corpus": len(plan.dataset.corpus),
                "shortlist_dim": plan.shortlist_dim,
                "shortlist": plan.shortlist,
                "shortlist_weight": plan.shortlist_weight,
            }

    return ValidationEvaluator()


def history_from_logs(log_history: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The evaluations of a run from the Trainer's log history (it survives a resume): step,
    epoch, the selection score, the ndcg@10 values and the seconds each took."""
    out = []
    for entry in log_history:
        key = f"eval_{SELECTION}"
        if key not in entry:
            continue
        row: dict[str, Any] = {"step": int(entry["step"]), "epoch": round(entry["epoch"], 4)}
        for name, value in entry.items():
            if name.startswith("eval_ndcg@10") or name == key:
                row[name.removeprefix("eval_")] = round(float(value), 4)
        row["seconds"] = round(float(entry.get("eval_seconds", 0.0)), 1)
        out.append(row)
    return out
