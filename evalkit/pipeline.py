"""The production path: ingest the corpus into a real store and query it as the service does.

Each corpus entry is one document, chunked by the real chunker; a document's score is its best
chunk's. Queries go through `VectorStore.search_batch`: two-stage (Matryoshka shortlist, then
full-size rescoring), for comparison single-stage on the full vector, and, when the collection
has lexical vectors, sparse (BM25) and hybrid with each fusion asked for.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ragctl.core.encoder import Embeddings, Encoder
from ragctl.core.records import Document
from ragctl.core.search import SearchMode, SearchParams
from ragctl.core.store.base import VectorStore
from ragctl.evalkit.errors import EvalError
from ragctl.evalkit.results import HYBRID, SINGLE_STAGE, SPARSE, TWO_STAGE

if TYPE_CHECKING:
    from ragctl.evalkit.datasets import EvalDataset
    from ragctl.evalkit.runs import Encoded, EvalOptions

logger = logging.getLogger(__name__)

_QUERY_BATCH = 64
COLLECTION = "eval"


@dataclass
class PipelineRun:
    """Doc rankings per label (`two-stage`, `single-stage`, `sparse`, `hybrid#i` for fusion i),
    the search each label ran, and what the run did."""

    rankings: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    searches: dict[str, SearchParams] = field(default_factory=dict)
    chunks: int = 0
    max_chunks_per_doc: int = 0
    shortlist_dim: int = 0
    ingest_seconds: float = 0.0
    encode_seconds: float = 0.0
    reused_vectors: int = 0


class _ReusingEncoder:
    """`base`, except that texts it has seen get their known vector.

    Best-chunk protocol: the exact run encoded every chunk, so nothing is encoded again.
    Whole-document protocol: a corpus entry that fits in one chunk is chunked to its own
    (stripped) text, so its vector is the one the exact run computed; only split documents are
    encoded again.
    """

    def __init__(self, base: Encoder, known: Mapping[str, NDArray[np.float32]]) -> None:
        self.base = base
        self.model_ref, self.dim, self.batch_size = base.model_ref, base.dim, base.batch_size
        self.shortlist_dims = base.shortlist_dims
        self.query_prompt, self.document_prompt = base.query_prompt, base.document_prompt
        self.max_seq_length, self.tokenizer = base.max_seq_length, base.tokenizer
        self.document_prompt_tokens = base.document_prompt_tokens
        self._known = known
        self.reused = 0

    def encode_full(
        self, texts: Sequence[str], prompt: str, *, show_progress: bool = False
    ) -> NDArray[np.float32]:
        return self.base.encode_full(texts, prompt, show_progress=show_progress)

    def encode_queries(self, texts: Sequence[str]) -> Embeddings:
        return self.base.encode_queries(texts)

    def embeddings_from_full(self, full: NDArray[np.float32]) -> Embeddings:
        return self.base.embeddings_from_full(full)

    def encode_documents(self, texts: Sequence[str], *, show_progress: bool = False) -> Embeddings:
        rows: list[NDArray[np.float32] | None] = [self._known.get(t) for t in texts]
        missing = [t for t, row in zip(texts, rows, strict=True) if row is None]
        fresh = self.encode_full(missing, self.document_prompt, show_progress=show_progress)
        full = np.empty((len(texts), self.dim), dtype=np.float32)
        j = 0
        for i, row in enumerate(rows):
            if row is None:
                full[i] = fresh[j]
                j += 1
            else:
                full[i] = row
        self.reused += len(texts) - len(missing)
        return self.embeddings_from_full(full)


def _documents(corpus: Mapping[str, str], name: str) -> Iterator[Document]:
    for doc_id, text in corpus.items():
        if text.strip():
            yield Document(doc_id=doc_id, text=text, source=f"{name}:{doc_id}")


def doc_ranking(hits: Sequence[tuple[str, float]], k: int) -> list[str]:
    """Doc ids by their best chunk's score (ties by doc id), at most k."""
    best: dict[str, float] = {}
    for doc_id, score in hits:
        if score > best.get(doc_id, -np.inf):
            best[doc_id] = score
    return sorted(best, key=lambda d: (-best[d], d))[:k]


def run_pipeline(
    dataset: EvalDataset,
    encoder: Encoder,
    options: EvalOptions,
    encoded: Encoded | None = None,
) -> PipelineRun:
    """Ingest `dataset`'s corpus into a fresh Qdrant Edge store and rank it for every query.

    Args:
        dataset: Corpus (one document per entry, labelled with the dataset's name) and queries.
        encoder: The model (its first shortlist dim is the two-stage prefetch vector).
        options: How: shortlist, single stage, chunking, store indexes, lexical recipe and
            fusions, work dir, progress; rankings hold `options.metrics.max_k` docs.
        encoded: The dataset's vectors from the exact run: the queries are not encoded again,
            and with `options.reuse_vectors` chunks whose text it encoded reuse their vector
            (every chunk under the best-chunk protocol, one-chunk documents under
            whole-document).
    """
    from ragctl.core.collections import BoundCollection, spec_for_new
    from ragctl.core.store.edge import EdgeStore
    from ragctl.ingest.pipeline import IngestReport, ingest_documents, make_chunker

    if not encoder.shortlist_dims:
        raise EvalError(
            "the pipeline run needs an encoder with a shortlist dim (store.shortlist_dims, e.g. 64)"
        )
    k, shortlist, lexical = options.metrics.max_k, options.shortlist, options.lexical
    known: dict[str, NDArray[np.float32]] = {}
    if encoded is not None and options.reuse_vectors:
        known = encoded.known_vectors()
    run = PipelineRun()
    with tempfile.TemporaryDirectory(prefix="ragctl-eval-", dir=options.work_dir) as tmp:
        store: VectorStore = EdgeStore(Path(tmp) / "qdrant")
        try:
            spec = spec_for_new(COLLECTION, 1, encoder, lexical)
            store.create_collection(spec)
            run.shortlist_dim = spec.shortlist_dims[0]
            ingest_encoder = _ReusingEncoder(encoder, known)
            chunker = make_chunker(encoder, options.chunk_size_tokens, options.chunk_overlap_tokens)
            started = time.perf_counter()

            with _progress_bar(len(dataset.corpus), options.show_progress) as bar:

                def progress(report: IngestReport) -> None:
                    bar.update(report.documents - bar.n)

                target = BoundCollection(store, spec, ingest_encoder)
                report = ingest_documents(
                    _documents(dataset.corpus, dataset.name), target, chunker, on_progress=progress
                )
            if options.optimize_store:
                store.optimize(spec.physical)
            run.ingest_seconds = time.perf_counter() - started
            run.encode_seconds = report.encode_seconds
            run.reused_vectors = ingest_encoder.reused
            run.chunks = store.count(spec.physical)
            per_doc: dict[str, int] = {}
            for batch in store.scroll_chunks(spec.physical):
                for chunk in batch:
                    per_doc[chunk.doc_id] = per_doc.get(chunk.doc_id, 0) + 1
            run.max_chunks_per_doc = max(per_doc.values(), default=1)
            query_ids, texts = list(dataset.queries), list(dataset.queries.values())
            query_vectors = (
                encoded.queries
                if encoded is not None
                else encoder.encode_full(texts, encoder.query_prompt)
            )
            query_embeddings = encoder.embeddings_from_full(query_vectors)
            wanted = max(1, min(k * run.max_chunks_per_doc, run.chunks))
            run.searches[TWO_STAGE] = SearchParams(k=min(wanted, shortlist), shortlist=shortlist)
            if options.single_stage:
                run.searches[SINGLE_STAGE] = SearchParams(
                    k=wanted, shortlist=wanted, single_stage=True
                )
            if lexical is not None:
                run.searches[SPARSE] = SearchParams(
                    k=wanted, shortlist=wanted, mode=SearchMode.SPARSE
                )
                for i, fusion in enumerate(options.fusions):
                    hits_k = min(wanted, max(shortlist, fusion.candidates))
                    run.searches[f"{HYBRID}#{i}"] = SearchParams(
                        k=hits_k,
                        shortlist=max(shortlist, hits_k),
                        mode=SearchMode.HYBRID,
                        fusion=fusion,
                    )
            for label, params in run.searches.items():
                started = time.perf_counter()
                run.rankings[label] = _search_all(
                    store, spec.physical, query_ids, query_embeddings, texts, k, params
                )
                run.seconds[label] = time.perf_counter() - started
        finally:
            store.close()
    logger.info(
        "pipeline: %d chunks (max %d per doc), ingest %.1f s, %d vectors reused",
        run.chunks,
        run.max_chunks_per_doc,
        run.ingest_seconds,
        run.reused_vectors,
    )
    return run


def _progress_bar(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc="ingest", unit="doc", disable=not enabled, leave=False)


def _search_all(
    store: VectorStore,
    physical: str,
    query_ids: list[str],
    embeddings: Embeddings,
    texts: list[str],
    k: int,
    params: SearchParams,
) -> dict[str, list[str]]:
    rankings: dict[str, list[str]] = {}
    for start in range(0, len(query_ids), _QUERY_BATCH):
        rows = slice(start, start + _QUERY_BATCH)
        results = store.search_batch(
            physical, embeddings.embeddings_slice(rows), params, texts[rows]
        )
        for qid, hits in zip(query_ids[rows], results, strict=True):
            rankings[qid] = doc_ranking([(h.doc_id, h.score) for h in hits], k)
    return rankings
