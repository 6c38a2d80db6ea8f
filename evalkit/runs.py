"""Evaluation runs: exact search at every Matryoshka dim, the production pipeline, and BM25.

The corpus and the queries are encoded ONCE at full size; every smaller dim is a truncation of
those vectors (first D components, renormalized), so evaluating 4 dims costs one encoding pass,
not four.

Two protocols (`EvalOptions.protocol`):
- `best-chunk` (default): the corpus is chunked by the production chunker and each chunk
  encoded once; the exact rows score a document as its best chunk (as the pipeline rows do
  through the store), and the pipeline ingests those same vectors, so one encode serves every
  row.
- `whole-document`: the exact rows encode each document whole (truncated at the model's
  sequence limit), equal to sentence-transformers' `InformationRetrievalEvaluator` (what
  published numbers use); the pipeline then encodes the chunks of split documents again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ragctl.core.lexical import LexicalSpec
from ragctl.core.matryoshka import truncate
from ragctl.core.search import FusionMethod, FusionParams, SearchMode
from ragctl.evalkit.bm25 import BM25Params
from ragctl.evalkit.datasets import EvalDataset
from ragctl.evalkit.errors import EvalError
from ragctl.evalkit.metrics import MetricConfig, mean_metrics, per_query_metrics
from ragctl.evalkit.results import (
    BM25,
    EXACT,
    HYBRID,
    HYBRID_DEFAULT,
    TWO_STAGE,
    EvalReport,
    RunRow,
    per_query_values,
)
from ragctl.evalkit.search import best_chunk_search, exact_search, id_ranks

if TYPE_CHECKING:
    from ragctl.core.encoder import Encoder

logger = logging.getLogger(__name__)

MATRYOSHKA_DIMS: tuple[int, ...] = (768, 512, 256, 128, 64)
"""Dims evaluated by default: those below the model's full dim (plus the full dim itself)."""

BEST_CHUNK = "best-chunk"
WHOLE_DOCUMENT = "whole-document"
PROTOCOLS: tuple[str, ...] = (BEST_CHUNK, WHOLE_DOCUMENT)
"""How the exact rows see a document (see the module docstring)."""


@dataclass(frozen=True)
class EvalOptions:
    """What to evaluate and how.

    Attributes:
        dims: Exact-search dims; None = full dim + `MATRYOSHKA_DIMS` below it. The full dim is
            always included.
        protocol: `best-chunk` (exact rows from the chunk vectors, a document scoring as its
            best chunk; one encode for every row) or `whole-document` (each document encoded
            whole, as sentence-transformers' evaluator does).
        pipeline: Also run the production path (store ingest + two-stage search).
        single_stage: With the pipeline, also rank with single-stage full-vector search.
        shortlist: Two-stage prefetch size.
        bm25: Add the BM25 baseline row.
        bm25_params: BM25 settings.
        metrics: Metrics and cut-offs.
        chunk_size_tokens: Chunk size of the pipeline's chunker (production setting).
        chunk_overlap_tokens: Chunk overlap of the pipeline's chunker.
        optimize_store: Build the store's indexes (HNSW) before pipeline search.
        lexical: With the pipeline, build lexical vectors with this recipe and add the
            `sparse` and `hybrid` rows (None: dense rows only).
        fusions: The hybrid fusions tried; the `hybrid` row is the best of them on this set
            (one fusion = a fixed setting; `FUSION_GRID` = tuned on this set).
        reuse_vectors: Let the pipeline reuse the exact run's vectors (best-chunk: every
            chunk's; whole-document: those of single-chunk docs).
        show_progress: Progress bars while encoding.
        work_dir: Parent folder of the pipeline's temporary store.
    """

    dims: tuple[int, ...] | None = None
    protocol: str = BEST_CHUNK
    pipeline: bool = True
    single_stage: bool = True
    shortlist: int = 100
    bm25: bool = False
    bm25_params: BM25Params = field(default_factory=BM25Params)
    metrics: MetricConfig = field(default_factory=MetricConfig)
    chunk_size_tokens: int = 256
    chunk_overlap_tokens: int = 32
    optimize_store: bool = True
    lexical: LexicalSpec | None = field(default_factory=LexicalSpec)
    fusions: tuple[FusionParams, ...] = (FusionParams(),)
    reuse_vectors: bool = True
    show_progress: bool = False
    work_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.shortlist < 1:
            raise EvalError(f"shortlist must be >= 1, got {self.shortlist}")
        if not self.fusions:
            raise EvalError("fusions needs at least one fusion")
        if self.protocol not in PROTOCOLS:
            raise EvalError(
                f"protocol must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}"
            )


_RRF, _DBSF = FusionMethod.RRF, FusionMethod.DBSF
FUSION_GRID: tuple[FusionParams, ...] = (
    *(FusionParams(method=_RRF, rrf_k=60, sparse_weight=w) for w in (0.25, 0.5, 1.0, 2.0)),
    *(FusionParams(method=_RRF, rrf_k=20, sparse_weight=w) for w in (0.25, 1.0)),
    *(
        FusionParams(method=_DBSF, dense_weight=d, sparse_weight=s)
        for d, s in ((1, 1), (1, 2), (1, 3), (2, 1), (3, 1))
    ),
    FusionParams(method=_DBSF, dense_weight=1, sparse_weight=2, rescore=True),
)
"""The fusions retune (and `ragctl eval --tune-fusion`) try: Qdrant's weighted RRF at two rank
constants, DBSF with the dense and sparse branches counted 1-3 times each, and the fused pool
reranked by the full dense vector."""


def fusion_grid(default: FusionParams) -> tuple[FusionParams, ...]:
    """`default` first (its row is `hybrid-default`), then the rest of `FUSION_GRID`."""
    return (default, *(f for f in FUSION_GRID if f != default))


def resolve_dims(requested: Sequence[int] | None, full_dim: int) -> tuple[int, ...]:
    """The exact-search dims, largest first, always including `full_dim`.

    Raises:
        EvalError: A dim is outside [1, full_dim].
    """
    if requested is None:
        return (full_dim, *(d for d in MATRYOSHKA_DIMS if d < full_dim))
    bad = [d for d in requested if not 1 <= d <= full_dim]
    if bad:
        raise EvalError(f"dims must be in [1, {full_dim}] (the model's dim), got {bad}")
    return tuple(sorted({full_dim, *requested}, reverse=True))


@dataclass
class Encoded:
    """Normalized full-size vectors of a dataset, with the encoding times.

    Whole documents: row i of `corpus` is document `corpus_ids[i]`. Chunks (`starts` set): the
    rows are chunks, document `corpus_ids[i]`'s from row `starts[i]` to the next start.
    """

    corpus_ids: list[str]
    corpus: NDArray[np.float32]
    query_ids: list[str]
    queries: NDArray[np.float32]
    corpus_seconds: float
    query_seconds: float
    reused: int = 0  # corpus vectors given, not encoded
    texts: list[str] = field(default_factory=list)  # the text of each corpus row
    starts: NDArray[np.int64] | None = None

    def known_vectors(self) -> dict[str, NDArray[np.float32]]:
        """Text -> its vector, for every corpus row (what the pipeline's ingest may reuse)."""
        return dict(zip(self.texts, self.corpus, strict=True))


def encode_dataset(
    dataset: EvalDataset,
    encoder: Encoder,
    *,
    show_progress: bool = False,
    corpus_vectors: Mapping[str, NDArray[np.float32]] | None = None,
) -> Encoded:
    """Encode the corpus (document prompt) and the queries (query prompt) once, at full size.

    Corpus docs found in `corpus_vectors` (doc id -> this model's normalized full vector of
    that text, e.g. read back from a collection it embedded) take that vector instead.
    """
    corpus_ids = list(dataset.corpus)
    known = corpus_vectors or {}
    missing = [d for d in corpus_ids if d not in known]
    started = time.perf_counter()
    fresh = encoder.encode_full(
        [dataset.corpus[d] for d in missing],
        encoder.document_prompt,
        show_progress=show_progress,
    )
    if len(missing) == len(corpus_ids):
        corpus = fresh
    else:
        corpus = np.empty((len(corpus_ids), encoder.dim), dtype=np.float32)
        rows = iter(fresh)
        for i, doc_id in enumerate(corpus_ids):
            corpus[i] = known[doc_id] if doc_id in known else next(rows)
    corpus_seconds = time.perf_counter() - started
    query_ids = list(dataset.queries)
    started = time.perf_counter()
    queries = encoder.encode_full(
        [dataset.queries[q] for q in query_ids], encoder.query_prompt, show_progress=show_progress
    )
    query_seconds = time.perf_counter() - started
    logger.info(
        "encoded %d docs in %.1f s and %d queries in %.1f s",
        len(corpus_ids),
        corpus_seconds,
        len(query_ids),
        query_seconds,
    )
    reused = len(corpus_ids) - len(missing)
    texts = [dataset.corpus[d] for d in corpus_ids]
    return Encoded(
        corpus_ids, corpus, query_ids, queries, corpus_seconds, query_seconds, reused, texts
    )


def encode_chunked(
    dataset: EvalDataset,
    encoder: Encoder,
    options: EvalOptions,
    *,
    corpus_vectors: Mapping[str, NDArray[np.float32]] | None = None,
) -> Encoded:
    """Chunk the corpus with the production chunker (`options`' chunk size and overlap) and
    encode each distinct chunk text once, and the queries once, at full size.

    A chunk whose text is a document's whole text found in `corpus_vectors` takes that vector
    (a stored chunk re-chunks to itself). Documents without text have no chunks and are not
    ranked, as in the pipeline.
    """
    from ragctl.core.records import Document
    from ragctl.ingest.pipeline import make_chunker

    chunker = make_chunker(encoder, options.chunk_size_tokens, options.chunk_overlap_tokens)
    started = time.perf_counter()
    corpus_ids: list[str] = []
    starts: list[int] = []
    texts: list[str] = []
    for doc_id, text in dataset.corpus.items():
        chunks = chunker.chunk(Document(doc_id=doc_id, text=text, source=dataset.name))
        if chunks:
            corpus_ids.append(doc_id)
            starts.append(len(texts))
            texts.extend(c.text for c in chunks)
    given = {dataset.corpus[d]: v for d, v in (corpus_vectors or {}).items() if d in dataset.corpus}
    unique = list(dict.fromkeys(t for t in texts if t not in given))
    fresh = encoder.encode_full(
        unique, encoder.document_prompt, show_progress=options.show_progress
    )
    vector_of = {**dict(zip(unique, fresh, strict=True)), **given}
    corpus = np.empty((len(texts), encoder.dim), dtype=np.float32)
    for i, text in enumerate(texts):
        corpus[i] = vector_of[text]
    corpus_seconds = time.perf_counter() - started
    query_ids = list(dataset.queries)
    started = time.perf_counter()
    queries = encoder.encode_full(
        [dataset.queries[q] for q in query_ids],
        encoder.query_prompt,
        show_progress=options.show_progress,
    )
    query_seconds = time.perf_counter() - started
    reused = sum(t in given for t in texts)
    logger.info(
        "chunked %d docs into %d chunks, encoded %d distinct texts in %.1f s and %d queries "
        "in %.1f s",
        len(corpus_ids),
        len(texts),
        len(unique),
        corpus_seconds,
        len(query_ids),
        query_seconds,
    )
    return Encoded(
        corpus_ids,
        corpus,
        query_ids,
        queries,
        corpus_seconds,
        query_seconds,
        reused,
        texts,
        np.asarray(starts, dtype=np.int64),
    )


def exact_rows(
    encoded: Encoded,
    qrels: dict[str, dict[str, int]],
    dims: Sequence[int],
    metrics: MetricConfig,
) -> list[RunRow]:
    """One row per dim: exact top-k on truncated (renormalized) copies of the same vectors
    (chunk vectors: a document scores as its best chunk)."""
    full_dim = int(encoded.corpus.shape[1])
    ranks = id_ranks(encoded.corpus_ids)
    rows = []
    for dim in dims:
        started = time.perf_counter()
        corpus = encoded.corpus if dim == full_dim else truncate(encoded.corpus, dim)
        queries = encoded.queries if dim == full_dim else truncate(encoded.queries, dim)
        if encoded.starts is None:
            idx, _ = exact_search(queries, corpus, metrics.max_k, ranks)
        else:
            idx, _ = best_chunk_search(queries, corpus, encoded.starts, metrics.max_k, ranks)
        rankings = {
            qid: [encoded.corpus_ids[i] for i in idx[row]]
            for row, qid in enumerate(encoded.query_ids)
        }
        per_query = per_query_metrics(rankings, qrels, metrics)
        values = mean_metrics(per_query)
        rows.append(
            RunRow(
                str(dim),
                EXACT,
                dim,
                values,
                time.perf_counter() - started,
                {"k": metrics.max_k},
                per_query_values(per_query),
            )
        )
        logger.info("exact %d: ndcg@10 %.4f", dim, values.get("ndcg@10", float("nan")))
    return rows


def evaluate(
    dataset: EvalDataset,
    encoder: Encoder,
    options: EvalOptions | None = None,
    *,
    on_stage: Callable[[str], None] | None = None,
    corpus_vectors: Mapping[str, NDArray[np.float32]] | None = None,
) -> EvalReport:
    """Evaluate `encoder` on `dataset`: exact dims, then the pipeline and BM25 when asked.

    Args:
        dataset: Corpus, queries and qrels.
        encoder: The model (its shortlist dims drive the pipeline's two-stage search).
        options: What to run.
        on_stage: Called with a short label when each stage starts (for CLI progress).
        corpus_vectors: Doc id -> `encoder`'s full vector of that doc's text, where already
            known (a collection the model embedded): those docs are not encoded again, by the
            exact run nor (one-chunk docs, `options.reuse_vectors`) by the pipeline.

    With `options.protocol` `best-chunk` (default) the corpus is chunked and encoded once for
    every row; `whole-document` encodes whole documents for the exact rows.

    Raises:
        EvalError: Bad options (dims, shortlist) or an empty dataset.
    """
    options = options or EvalOptions()
    stage = on_stage or (lambda _label: None)
    started = time.perf_counter()
    dims = resolve_dims(options.dims, encoder.dim)
    metrics = options.metrics
    if options.protocol == BEST_CHUNK:
        stage("chunking and encoding corpus, encoding queries")
        encoded = encode_chunked(dataset, encoder, options, corpus_vectors=corpus_vectors)
    else:
        stage("encoding corpus and queries")
        encoded = encode_dataset(
            dataset, encoder, show_progress=options.show_progress, corpus_vectors=corpus_vectors
        )
    timings: dict[str, float] = {
        "encode_corpus": encoded.corpus_seconds,
        "encode_queries": encoded.query_seconds,
    }
    stage(f"exact search at {', '.join(map(str, dims))}")
    t = time.perf_counter()
    rows = exact_rows(encoded, dataset.qrels, dims, metrics)
    timings["exact_search"] = time.perf_counter() - t
    sizes = dataset.sizes()
    notes = list(dataset.notes)
    if encoded.reused:
        notes.append(f"{encoded.reused} of {len(encoded.corpus)} corpus vectors given, not encoded")
    if encoded.starts is not None:
        sizes["chunks"] = len(encoded.corpus)
        unranked = len(dataset.corpus) - len(encoded.corpus_ids)
        if unranked:
            notes.append(f"{unranked} docs without text: no chunks, not ranked")

    if options.pipeline:
        stage("pipeline: ingest into a Qdrant Edge store, then two-stage search")
        rows += pipeline_rows(dataset, encoder, encoded, options, timings, sizes)
    if options.bm25:
        stage("bm25 baseline")
        rows.append(bm25_row(dataset, encoded.corpus_ids, options, timings))
    timings["total"] = time.perf_counter() - started
    return EvalReport(
        model=encoder.model_ref,
        dataset=dataset.name,
        split=dataset.split,
        full_dim=encoder.dim,
        sizes=sizes,
        rows=rows,
        timings=timings,
        config={"dataset_source": dataset.source, **run_config(encoder, options, dims)},
        notes=notes,
        queries=dict(dataset.queries),
    )


def pipeline_rows(
    dataset: EvalDataset,
    encoder: Encoder,
    encoded: Encoded,
    options: EvalOptions,
    timings: dict[str, float],
    sizes: dict[str, int],
) -> list[RunRow]:
    """Two-stage (and single-stage) rows through a real store; fills `timings` and `sizes`."""
    from ragctl.evalkit.pipeline import run_pipeline

    run = run_pipeline(dataset, encoder, options, encoded)
    timings["ingest"] = run.ingest_seconds
    timings["ingest_encode"] = run.encode_seconds
    sizes["chunks"] = run.chunks
    sizes["max_chunks_per_doc"] = run.max_chunks_per_doc
    rows = []
    hybrids: list[RunRow] = []
    for label, rankings in run.rankings.items():
        started = time.perf_counter()
        per_query = per_query_metrics(rankings, dataset.qrels, options.metrics)
        values = mean_metrics(per_query)
        kept = per_query_values(per_query)
        search = run.searches[label]
        params: dict[str, Any] = {"hits_per_query": search.k}
        if label == TWO_STAGE:
            params |= {"shortlist": options.shortlist, "shortlist_dim": run.shortlist_dim}
        seconds = run.seconds[label] + time.perf_counter() - started
        timings[f"{label}_search"] = run.seconds[label]
        if search.mode is SearchMode.HYBRID:
            fusion = search.fusion.model_dump(mode="json")
            params |= {"fusion": fusion, "shortlist": options.shortlist}
            hybrids.append(RunRow(HYBRID, HYBRID, encoder.dim, values, seconds, params, kept))
        else:
            rows.append(RunRow(label, label, encoder.dim, values, seconds, params, kept))
    if hybrids:
        metric = "ndcg@10" if "ndcg@10" in hybrids[0].metrics else next(iter(hybrids[0].metrics))
        default = replace(hybrids[0], name=HYBRID_DEFAULT, params=dict(hybrids[0].params))
        rows.append(best_hybrid(hybrids, metric))
        if len(hybrids) > 1:
            rows.append(default)
    return rows


def best_hybrid(rows: Sequence[RunRow], metric: str) -> RunRow:
    """The hybrid row of the best fusion on `metric` (first wins ties); with several, its
    params list every fusion tried and its score."""
    best = max(rows, key=lambda r: r.metrics.get(metric, float("-inf")))
    if len(rows) > 1:
        best.params["tuned"] = [
            {"fusion": r.params["fusion"], metric: r.metrics.get(metric)} for r in rows
        ]
        best.seconds = sum(r.seconds for r in rows)
    return best


def bm25_row(
    dataset: EvalDataset,
    corpus_ids: list[str],
    options: EvalOptions,
    timings: dict[str, float],
) -> RunRow:
    """The BM25 baseline row; fills `timings`."""
    from ragctl.evalkit.bm25 import bm25_rankings

    bm = bm25_rankings(
        corpus_ids,
        [dataset.corpus[d] for d in corpus_ids],
        dataset.queries,
        options.metrics.max_k,
        options.bm25_params,
    )
    started = time.perf_counter()
    per_query = per_query_metrics(bm.rankings, dataset.qrels, options.metrics)
    seconds = bm.search_seconds + time.perf_counter() - started
    timings["bm25_index"] = bm.index_seconds
    timings["bm25_search"] = bm.search_seconds
    return RunRow(
        BM25,
        BM25,
        None,
        mean_metrics(per_query),
        seconds,
        options.bm25_params.to_dict(),
        per_query_values(per_query),
    )


def run_config(encoder: Encoder, options: EvalOptions, dims: Sequence[int]) -> dict[str, Any]:
    """What a report records of how it was run (everything that can change its numbers)."""
    config: dict[str, Any] = {
        "dims": list(dims),
        "protocol": options.protocol,
        "metrics": options.metrics.to_dict(),
        "query_prompt": encoder.query_prompt,
        "document_prompt": encoder.document_prompt,
        "device": str(getattr(encoder, "device", "")),
        "batch_size": encoder.batch_size,
    }
    if options.pipeline or options.protocol == BEST_CHUNK:
        config["chunking"] = {
            "chunk_size_tokens": options.chunk_size_tokens,
            "chunk_overlap_tokens": options.chunk_overlap_tokens,
        }
    if options.pipeline:
        config["pipeline"] = {
            "store": "qdrant-edge",
            "shortlist": options.shortlist,
            "shortlist_dims": list(encoder.shortlist_dims),
            "single_stage": options.single_stage,
            "chunk_size_tokens": options.chunk_size_tokens,
            "chunk_overlap_tokens": options.chunk_overlap_tokens,
            "optimized": options.optimize_store,
            "lexical": None if options.lexical is None else options.lexical.model_dump(mode="json"),
            "fusions": [f.model_dump(mode="json") for f in options.fusions],
            "reuse_vectors": options.reuse_vectors,
        }
    if options.bm25:
        config["bm25"] = options.bm25_params.to_dict()
    return config
