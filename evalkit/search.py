"""Exact top-k search over in-memory vectors or score rows (numpy, memory bounded).

Ties are broken like sentence-transformers: by descending score, then ascending doc id, so the
rankings (and so the metrics) match its `InformationRetrievalEvaluator`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from ragctl.evalkit.errors import EvalError

# Largest score block held at once: query rows x corpus columns (32 Mi floats = 128 MiB).
_BLOCK_CELLS = 32 * 1024 * 1024


def id_ranks(doc_ids: Sequence[str]) -> NDArray[np.int64]:
    """Position of each doc id in ascending string order (the tie-break key)."""
    order = sorted(range(len(doc_ids)), key=doc_ids.__getitem__)
    ranks = np.empty(len(doc_ids), dtype=np.int64)
    ranks[np.asarray(order, dtype=np.int64)] = np.arange(len(doc_ids), dtype=np.int64)
    return ranks


def top_k_rows(
    scores: NDArray[np.float32], k: int, ranks: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Column indices and scores of the k best columns per row, best first.

    Args:
        scores: (rows, columns) scores.
        k: How many per row (capped at the number of columns).
        ranks: Tie-break key per column (lower wins among equal scores).
    """
    n_rows, n_cols = scores.shape
    kk = min(k, n_cols)
    if kk == 0 or n_rows == 0:
        return np.zeros((n_rows, 0), dtype=np.int64), np.zeros((n_rows, 0), dtype=np.float32)
    if kk == n_cols:
        idx = np.broadcast_to(np.arange(n_cols, dtype=np.int64), (n_rows, n_cols)).copy()
    else:
        idx = np.argpartition(-scores, kk - 1, axis=1)[:, :kk].astype(np.int64)
        picked = np.take_along_axis(scores, idx, axis=1)
        thresholds = picked.min(axis=1)
        tied = np.flatnonzero((scores >= thresholds[:, None]).sum(axis=1) > kk)
        for row in tied:  # a tie at the cut-off: choose among the tied columns by rank
            cand = np.flatnonzero(scores[row] >= thresholds[row])
            order = np.lexsort((ranks[cand], -scores[row, cand]))[:kk]
            idx[row] = cand[order]
    vals = np.take_along_axis(scores, idx, axis=1)
    order = np.lexsort((ranks[idx], -vals), axis=-1)
    idx = np.take_along_axis(idx, order, axis=1)
    return idx, np.take_along_axis(vals, order, axis=1)


def exact_search(
    queries: NDArray[np.float32],
    corpus: NDArray[np.float32],
    k: int,
    ranks: NDArray[np.int64],
    *,
    block_cells: int = _BLOCK_CELLS,
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Top-k corpus rows by dot product for every query row (cosine for normalized vectors).

    Args:
        queries: (n_queries, dim) vectors.
        corpus: (n_docs, dim) vectors of the same dim.
        k: Results per query (capped at n_docs).
        ranks: Tie-break key per corpus row (see `id_ranks`).
        block_cells: Most scores held in memory at once.

    Returns:
        (indices, scores), each (n_queries, min(k, n_docs)), best first.
    """
    if queries.ndim != 2 or corpus.ndim != 2 or queries.shape[1] != corpus.shape[1]:
        raise EvalError(
            f"query vectors {queries.shape} and corpus vectors {corpus.shape} do not match"
        )
    n_q, n_c = queries.shape[0], corpus.shape[0]
    kk = min(k, n_c)
    out_idx = np.zeros((n_q, kk), dtype=np.int64)
    out_val = np.zeros((n_q, kk), dtype=np.float32)
    if n_q == 0 or kk == 0:
        return out_idx, out_val
    col_block = max(kk, min(n_c, block_cells // 256))
    row_block = max(1, block_cells // col_block)
    for q0 in range(0, n_q, row_block):
        q_part = queries[q0 : q0 + row_block]
        cand_idx: list[NDArray[np.int64]] = []
        cand_val: list[NDArray[np.float32]] = []
        for c0 in range(0, n_c, col_block):
            scores = q_part @ corpus[c0 : c0 + col_block].T
            idx, vals = top_k_rows(scores, kk, ranks[c0 : c0 + col_block])
            cand_idx.append(idx + c0)
            cand_val.append(vals)
        all_idx = np.concatenate(cand_idx, axis=1)
        all_val = np.concatenate(cand_val, axis=1)
        order = np.lexsort((ranks[all_idx], -all_val), axis=-1)[:, :kk]
        out_idx[q0 : q0 + row_block] = np.take_along_axis(all_idx, order, axis=1)
        out_val[q0 : q0 + row_block] = np.take_along_axis(all_val, order, axis=1)
    return out_idx, out_val


def best_chunk_search(
    queries: NDArray[np.float32],
    chunks: NDArray[np.float32],
    starts: NDArray[np.int64],
    k: int,
    ranks: NDArray[np.int64],
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Top-k documents per query, a document scoring as its best chunk (what the pipeline's
    rankings do through the store, here exact).

    Args:
        queries: (n_queries, dim) vectors.
        chunks: (n_chunks, dim) vectors, each document's chunks in consecutive rows.
        starts: First chunk row of each document, ascending (`starts[0] == 0`).
        k: Documents per query (capped at the number of documents).
        ranks: Tie-break key per document (see `id_ranks`).

    Returns:
        (document indices, best-chunk scores), each (n_queries, min(k, n_docs)), best first.
    """
    if queries.ndim != 2 or chunks.ndim != 2 or queries.shape[1] != chunks.shape[1]:
        raise EvalError(
            f"query vectors {queries.shape} and chunk vectors {chunks.shape} do not match"
        )
    n_q, n_docs = queries.shape[0], len(starts)
    kk = min(k, n_docs)
    out_idx = np.zeros((n_q, kk), dtype=np.int64)
    out_val = np.zeros((n_q, kk), dtype=np.float32)
    if n_q == 0 or kk == 0:
        return out_idx, out_val
    row_block = max(1, _BLOCK_CELLS // max(1, chunks.shape[0]))
    for q0 in range(0, n_q, row_block):
        scores = np.maximum.reduceat(queries[q0 : q0 + row_block] @ chunks.T, starts, axis=1)
        idx, vals = top_k_rows(scores, kk, ranks)
        out_idx[q0 : q0 + row_block] = idx
        out_val[q0 : q0 + row_block] = vals
    return out_idx, out_val


def two_stage_search(
    queries: NDArray[np.float32],
    corpus: NDArray[np.float32],
    shortlist_queries: NDArray[np.float32],
    shortlist_corpus: NDArray[np.float32],
    shortlist: int,
    k: int,
    ranks: NDArray[np.int64],
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Exact two-stage search: the `shortlist` best corpus rows by the shortlist vectors, then
    the k best of those by the full vectors (what the store's prefetch query does, without an
    approximate index).

    Args:
        queries, corpus: Full-size vectors (normalized).
        shortlist_queries, shortlist_corpus: The same rows' shortlist vectors (truncated and
            renormalized).
        shortlist: Shortlist size (capped at the corpus size).
        k: Results per query (capped at the shortlist size).
        ranks: Tie-break key per corpus row (see `id_ranks`).

    Returns:
        (indices, full-dim scores), each (n_queries, min(k, shortlist, n_docs)), best first.
    """
    if shortlist < 1 or k < 1:
        raise EvalError(f"shortlist and k must be >= 1, got {shortlist} and {k}")
    pool, _ = exact_search(shortlist_queries, shortlist_corpus, shortlist, ranks)
    n_q = queries.shape[0]
    kk = min(k, pool.shape[1])
    out_idx = np.zeros((n_q, kk), dtype=np.int64)
    out_val = np.zeros((n_q, kk), dtype=np.float32)
    row_block = max(1, _BLOCK_CELLS // max(1, pool.shape[1] * corpus.shape[1]))
    for q0 in range(0, n_q, row_block):
        part = pool[q0 : q0 + row_block]
        scores = np.einsum("qd,qsd->qs", queries[q0 : q0 + row_block], corpus[part])
        order = np.lexsort((ranks[part], -scores), axis=-1)[:, :kk]
        out_idx[q0 : q0 + row_block] = np.take_along_axis(part, order, axis=1)
        out_val[q0 : q0 + row_block] = np.take_along_axis(scores, order, axis=1)
    return out_idx, out_val
