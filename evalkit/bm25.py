"""The BM25 baseline: `bm25s` (Lucene scoring) with an English Snowball stemmer and English
stopwords, k1=0.9 and b=0.4 as in the Anserini/Pyserini BEIR baselines (on scifact test this gives
ndcg@10 0.676; Pyserini publishes 0.679, BEIR's Elasticsearch run 0.665; bm25s' own defaults
k1=1.5, b=0.75 give 0.686). Docs with a zero score (no query term) are not returned, as in a
search engine; ties are broken by doc id."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ragctl.core.errors import require_extra
from ragctl.evalkit.search import id_ranks, top_k_rows

logger = logging.getLogger(__name__)

_QUERY_BLOCK = 64


@dataclass(frozen=True)
class BM25Params:
    """BM25 settings (k1 and b as in the Anserini/Pyserini BEIR baselines)."""

    k1: float = 0.9
    b: float = 0.4
    method: str = "lucene"
    stemmer: str = "english"
    stopwords: str = "en"

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "k1": self.k1,
            "b": self.b,
            "method": self.method,
            "stemmer": self.stemmer,
            "stopwords": self.stopwords,
        }


@dataclass
class BM25Run:
    """Rankings of a BM25 run and its timings."""

    rankings: dict[str, list[str]]
    index_seconds: float
    search_seconds: float


def bm25_rankings(
    doc_ids: Sequence[str],
    doc_texts: Sequence[str],
    queries: dict[str, str],
    k: int,
    params: BM25Params | None = None,
) -> BM25Run:
    """Index the corpus and rank it for every query.

    Args:
        doc_ids: Corpus ids.
        doc_texts: Corpus texts, same order.
        queries: Query id -> text.
        k: Docs per query at most.
        params: BM25 settings.
    """
    require_extra("bm25s", "bm25", "the bm25s baseline")
    require_extra("Stemmer", "bm25", "the bm25s baseline")
    import bm25s
    import Stemmer

    params = params or BM25Params()
    stemmer = Stemmer.Stemmer(params.stemmer)
    started = time.perf_counter()
    corpus_tokens = bm25s.tokenize(
        list(doc_texts),
        stopwords=params.stopwords,
        stemmer=stemmer,
        return_ids=False,
        show_progress=False,
    )
    retriever = bm25s.BM25(k1=params.k1, b=params.b, method=params.method)
    retriever.index(corpus_tokens, show_progress=False)
    index_seconds = time.perf_counter() - started

    started = time.perf_counter()
    query_ids = list(queries)
    query_tokens = bm25s.tokenize(
        [queries[q] for q in query_ids],
        stopwords=params.stopwords,
        stemmer=stemmer,
        return_ids=False,
        show_progress=False,
    )
    ranks = id_ranks(doc_ids)
    rankings: dict[str, list[str]] = {}
    for start in range(0, len(query_ids), _QUERY_BLOCK):
        block_ids = query_ids[start : start + _QUERY_BLOCK]
        scores = np.zeros((len(block_ids), len(doc_ids)), dtype=np.float32)
        for row, tokens in enumerate(query_tokens[start : start + _QUERY_BLOCK]):
            token_ids = retriever.get_tokens_ids([t for t in tokens if t])
            if token_ids:
                scores[row] = retriever.get_scores_from_ids(token_ids)
        idx, vals = top_k_rows(scores, k, ranks)
        for row, qid in enumerate(block_ids):
            rankings[qid] = [doc_ids[i] for i, v in zip(idx[row], vals[row], strict=True) if v > 0]
    search_seconds = time.perf_counter() - started
    logger.info("bm25: indexed %d docs in %.1f s", len(doc_ids), index_seconds)
    return BM25Run(rankings, index_seconds, search_seconds)
