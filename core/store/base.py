"""The store interface, collection specs, payload layout and query plans.

Layout: one physical collection `NAME__vN` per (collection name, model version), with named
vectors `full` and `mrl_D` per shortlist dim, and an alias `NAME` for the serving one.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ragctl.core.encoder import Embeddings
from ragctl.core.errors import CollectionNotFoundError, StoreError
from ragctl.core.lexical import LEXICAL_VECTOR, LexicalSpec, SparseVector, lexical_encoder
from ragctl.core.records import Chunk, Hit
from ragctl.core.search import FusionMethod, PayloadFilter, SearchMode, SearchParams, StrEnum

FULL_VECTOR = "full"
_PHYSICAL_RE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_-]*?)__v(?P<version>[1-9][0-9]*)$")


def shortlist_vector(dim: int) -> str:
    """Name of the Matryoshka shortlist vector of `dim` dimensions."""
    return f"mrl_{dim}"


def physical_name(name: str, version: int) -> str:
    """Physical collection name of model version `version` of collection `name`."""
    return f"{name}__v{version}"


def parse_physical(physical: str) -> tuple[str, int]:
    """Split `NAME__vN` into (NAME, N)."""
    match = _PHYSICAL_RE.match(physical)
    if match is None:
        raise StoreError(f"not a physical collection name (NAME__vN): {physical!r}")
    return match["name"], int(match["version"])


@dataclass(frozen=True)
class CollectionSpec:
    """What a physical collection holds: which model made its vectors, and their sizes."""

    name: str
    version: int
    model: str
    dim: int
    shortlist_dims: tuple[int, ...]
    query_prompt: str = ""
    document_prompt: str = ""
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    lexical: LexicalSpec | None = None  # None: no sparse vectors (dense search only)

    @property
    def physical(self) -> str:
        return physical_name(self.name, self.version)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["shortlist_dims"] = list(self.shortlist_dims)
        data["lexical"] = None if self.lexical is None else self.lexical.model_dump(mode="json")
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CollectionSpec:
        return cls(
            name=str(data["name"]),
            version=int(data["version"]),
            model=str(data["model"]),
            dim=int(data["dim"]),
            shortlist_dims=tuple(int(d) for d in data["shortlist_dims"]),
            query_prompt=str(data.get("query_prompt", "")),
            document_prompt=str(data.get("document_prompt", "")),
            created_at=str(data.get("created_at", "")),
            lexical=LexicalSpec.model_validate(data["lexical"]) if data.get("lexical") else None,
        )


@dataclass(frozen=True)
class StoredDocument:
    """A document as listed: its id, source, metadata and how many chunks it has."""

    doc_id: str
    source: str
    chunks: int
    metadata: dict[str, Any]


@dataclass(frozen=True)
class CollectionInfo:
    """A physical collection as listed: its spec, size, and the aliases pointing at it."""

    spec: CollectionSpec
    points: int
    aliases: tuple[str, ...]


def named_vectors(embeddings: Embeddings, row: int) -> dict[str, Any]:
    """One row's vectors keyed by their Qdrant vector name (`full`, `mrl_64`, ...)."""
    named: dict[str, Any] = {FULL_VECTOR: embeddings.full[row].tolist()}
    for dim, vectors in embeddings.shortlist.items():
        named[shortlist_vector(dim)] = vectors[row].tolist()
    return named


def chunk_payload(chunk: Chunk) -> dict[str, Any]:
    """What is stored with a chunk's vectors."""
    return {
        "chunk_id": chunk.chunk_id,
        "doc_id": chunk.doc_id,
        "index": chunk.index,
        "text": chunk.text,
        "source": chunk.source,
        "start": chunk.start,
        "end": chunk.end,
        "metadata": chunk.metadata,
    }


def chunk_from_payload(payload: Mapping[str, Any]) -> Chunk:
    """Rebuild a chunk from its stored payload."""
    return Chunk(
        chunk_id=payload["chunk_id"],
        doc_id=payload["doc_id"],
        index=int(payload["index"]),
        text=payload["text"],
        start=int(payload["start"]),
        end=int(payload["end"]),
        source=payload["source"],
        metadata=dict(payload.get("metadata") or {}),
    )


def hit_from_payload(score: float, payload: Mapping[str, Any]) -> Hit:
    """A search hit from a scored point's payload."""
    return Hit(
        chunk_id=payload["chunk_id"],
        doc_id=payload["doc_id"],
        score=float(score),
        text=payload["text"],
        source=payload["source"],
        start=int(payload["start"]),
        end=int(payload["end"]),
        metadata=dict(payload.get("metadata") or {}),
    )


class StageKind(StrEnum):
    """What one stage of a query does."""

    NEAREST = "nearest"  # dense vector `dense` on vector `using`
    SPARSE = "sparse"  # sparse vector `sparse` on vector `using`
    RRF = FusionMethod.RRF.value  # fusion of the `prefetch` stages
    DBSF = FusionMethod.DBSF.value


@dataclass(frozen=True)
class QueryStage:
    """One stage of a Qdrant query, independent of the client library.

    Every stage returns `limit` points, scored among what its `prefetch` stages returned (or
    the whole collection).
    """

    kind: StageKind
    limit: int
    using: str | None = None
    dense: list[float] | None = None
    sparse: SparseVector | None = None
    prefetch: tuple[QueryStage, ...] = ()
    rrf_k: int = 60
    weights: tuple[float, ...] | None = None


class VectorStore(ABC):
    """Physical collections of chunk vectors, aliases, and two-stage search.

    Methods taking `physical` want a physical name (`NAME__vN`); `resolve` turns an alias
    or physical name into one.
    """

    # --- collections and aliases ---
    @abstractmethod
    def create_collection(self, spec: CollectionSpec) -> None:
        """Create an empty physical collection for `spec` (error if it already exists)."""

    @abstractmethod
    def drop_collection(self, physical: str) -> None:
        """Delete a physical collection that no alias points at."""

    @abstractmethod
    def list_specs(self) -> list[CollectionSpec]:
        """Specs of every physical collection ragctl made, sorted by name and version."""

    @abstractmethod
    def aliases(self) -> dict[str, str]:
        """Alias -> physical collection."""

    @abstractmethod
    def set_alias(self, alias: str, physical: str) -> None:
        """Point `alias` at `physical`, atomically replacing any previous target."""

    # --- points ---
    @abstractmethod
    def upsert(self, physical: str, chunks: Sequence[Chunk], embeddings: Embeddings) -> None:
        """Insert or replace chunks with their vectors (row i of `embeddings` = chunks[i])."""

    @abstractmethod
    def delete_chunks(self, physical: str, chunk_ids: Sequence[str]) -> None:
        """Delete chunks by chunk id (unknown ids are ignored)."""

    @abstractmethod
    def delete_documents(self, physical: str, doc_ids: Sequence[str]) -> int:
        """Delete every chunk of the given documents; returns how many were deleted."""

    @abstractmethod
    def count(self, physical: str) -> int:
        """Number of points in a physical collection."""

    @abstractmethod
    def get_chunks(self, physical: str, chunk_ids: Sequence[str]) -> dict[str, Chunk]:
        """Stored chunks by chunk id (unknown ids are absent from the result)."""

    @abstractmethod
    def _retrieve_vectors(
        self, physical: str, chunk_ids: Sequence[str], vector: str
    ) -> dict[str, list[float]]:
        """Chunk id -> its stored dense vector `vector` (unknown ids are absent)."""

    @abstractmethod
    def _query_batch(
        self, physical: str, plans: Sequence[QueryStage], payload_filter: PayloadFilter | None
    ) -> list[list[Hit]]:
        """Run one query per plan in one call; the filter applies to every stage."""

    @abstractmethod
    def stored_vectors(self, physical: str) -> dict[str, frozenset[str]]:
        """Chunk id -> names of the vectors stored with it (`full`, `mrl_64`, `lex`), for
        checking that every chunk has all of them."""

    @abstractmethod
    def optimize(self, physical: str) -> None:
        """Build indexes (HNSW) where the backend does not do it by itself."""

    @abstractmethod
    def close(self) -> None:
        """Release the store (files, locks, connections)."""

    @abstractmethod
    def _scroll_payloads(
        self,
        physical: str,
        *,
        doc_ids: Sequence[str] | None = None,
        payload_filter: PayloadFilter | None = None,
        fields: list[str] | None = None,
        page: int = 1024,
    ) -> Iterator[dict[str, Any]]:
        """Payloads of every point (of `doc_ids` only, and matching `payload_filter`, if
        given); `fields=None` = all fields."""

    # --- shared behaviour ---
    def chunk_ids_of(self, physical: str, doc_ids: Sequence[str]) -> dict[str, set[str]]:
        """Stored chunk ids of each given document (documents with none are absent)."""
        found: dict[str, set[str]] = {}
        if doc_ids:
            for payload in self._scroll_payloads(
                physical, doc_ids=doc_ids, fields=["doc_id", "chunk_id"]
            ):
                found.setdefault(payload["doc_id"], set()).add(payload["chunk_id"])
        return found

    def all_chunk_ids(self, physical: str) -> set[str]:
        """Every stored chunk id (payload-only scroll, for syncing collections)."""
        return {p["chunk_id"] for p in self._scroll_payloads(physical, fields=["chunk_id"])}

    def get_vectors(
        self, physical: str, chunk_ids: Sequence[str], *, batch_size: int = 1024
    ) -> dict[str, NDArray[np.float32]]:
        """The stored `full` vector of each chunk id (unknown ids are absent).

        These are the vectors the collection's own model gave the chunks (L2-normalized, as
        upserted): reading them back spares encoding the same texts again with that model.
        """
        found: dict[str, NDArray[np.float32]] = {}
        for start in range(0, len(chunk_ids), batch_size):
            batch = chunk_ids[start : start + batch_size]
            for chunk, values in self._retrieve_vectors(physical, batch, FULL_VECTOR).items():
                found[chunk] = np.asarray(values, dtype=np.float32)
        return found

    def scroll_chunks(self, physical: str, *, batch_size: int = 256) -> Iterator[list[Chunk]]:
        """Every stored chunk, in batches (for re-embedding and exports)."""
        batch: list[Chunk] = []
        for payload in self._scroll_payloads(physical, page=batch_size):
            batch.append(chunk_from_payload(payload))
            if len(batch) == batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def documents(
        self,
        physical: str,
        *,
        prefix: str | None = None,
        payload_filter: PayloadFilter | None = None,
    ) -> list[StoredDocument]:
        """Every document with a chunk matching `payload_filter` (and an id starting with
        `prefix`), sorted by doc id; `chunks` counts its matching chunks, source and metadata
        are its first chunk's. One payload-only scroll of the matching chunks."""
        found: dict[str, StoredDocument] = {}
        first_index: dict[str, int] = {}
        fields = ["doc_id", "index", "source", "metadata"]
        for payload in self._scroll_payloads(
            physical, payload_filter=payload_filter, fields=fields
        ):
            doc_id = payload["doc_id"]
            if prefix and not doc_id.startswith(prefix):
                continue
            index = int(payload.get("index", 0))
            seen = found.get(doc_id)
            if seen is None or index < first_index[doc_id]:
                first_index[doc_id] = index
                found[doc_id] = StoredDocument(
                    doc_id=doc_id,
                    source=str(payload.get("source", "")),
                    chunks=1 if seen is None else seen.chunks + 1,
                    metadata=dict(payload.get("metadata") or {}),
                )
            else:
                found[doc_id] = replace(seen, chunks=seen.chunks + 1)
        return [found[d] for d in sorted(found)]

    def document_chunks(self, physical: str, doc_id: str) -> list[Chunk]:
        """The chunks of one document, by index (none: an empty list)."""
        chunks = [chunk_from_payload(p) for p in self._scroll_payloads(physical, doc_ids=[doc_id])]
        return sorted(chunks, key=lambda c: c.index)

    def spec(self, physical: str) -> CollectionSpec:
        """The spec of a physical collection."""
        for spec in self.list_specs():
            if spec.physical == physical:
                return spec
        raise CollectionNotFoundError(f"no collection {physical!r}")

    def resolve(self, name: str) -> str:
        """Physical name behind an alias, or `name` itself if it is a physical collection."""
        target = self.aliases().get(name)
        if target is not None:
            return target
        if any(spec.physical == name for spec in self.list_specs()):
            return name
        known = sorted(self.aliases())
        raise CollectionNotFoundError(
            f"no collection or alias named {name!r}"
            + (f" (known: {', '.join(known)})" if known else " (the store is empty; run ingest)")
        )

    def collections(self) -> list[CollectionInfo]:
        """Every physical collection with its point count and aliases."""
        by_target: dict[str, list[str]] = {}
        for alias, target in self.aliases().items():
            by_target.setdefault(target, []).append(alias)
        return [
            CollectionInfo(
                spec, self.count(spec.physical), tuple(sorted(by_target.get(spec.physical, [])))
            )
            for spec in self.list_specs()
        ]

    def search_batch(
        self,
        physical: str,
        queries: Embeddings | None,
        params: SearchParams,
        texts: Sequence[str] | None = None,
    ) -> list[list[Hit]]:
        """Top-k chunks per query, each query one Qdrant query, all in one call.

        Modes (`params.mode`):
          dense: prefetch `shortlist` candidates on the `mrl_D` vector, rescore them with
            `full` (`single_stage` searches `full` directly, for comparison);
          sparse: BM25 on the `lex` vector (needs `texts`; no dense vectors needed);
          hybrid: the dense two-stage branch and the sparse branch each bring
            `fusion.candidates` chunks, fused by `fusion` (needs both).
        A query with no lexical term left (only stop words) has no sparse branch: sparse
        returns nothing for it and hybrid returns its dense results. With
        `params.score_threshold`, hits scoring below it are left out.
        """
        plans = self.plan_queries(physical, queries, params, texts)
        runnable = [p for p in plans if p is not None]
        results = iter(self._query_batch(physical, runnable, params.filter) if runnable else [])
        found = [[] if plan is None else next(results) for plan in plans]
        threshold = params.score_threshold
        if threshold is None:
            return found
        # Hits come best first, so this is the top k of those scoring >= threshold.
        return [[h for h in hits if h.score >= threshold] for hits in found]

    def plan_queries(
        self,
        physical: str,
        queries: Embeddings | None,
        params: SearchParams,
        texts: Sequence[str] | None = None,
    ) -> list[QueryStage | None]:
        """The query of each row (None: nothing to search), checked against the collection."""
        mode = params.mode
        spec = self.spec(physical)
        if mode is not SearchMode.DENSE and spec.lexical is None:
            raise StoreError(
                f"collection {physical!r} has no lexical (sparse) vectors, so it cannot be "
                f"searched in {mode} mode; use mode dense, or ingest into a collection created "
                "with lexical.enabled = true"
            )
        if mode is not SearchMode.SPARSE and queries is None:
            raise StoreError(f"{mode} search needs the query embeddings")
        if mode is not SearchMode.DENSE and texts is None:
            raise StoreError(f"{mode} search needs the query texts")
        rows = len(texts) if queries is None and texts is not None else len(queries or [])
        if texts is not None and len(texts) != rows:
            raise StoreError(f"{len(texts)} query texts but {rows} query vectors")
        dim = _shortlist_dim(spec, params.shortlist_dim) if mode is not SearchMode.SPARSE else 0
        terms = (
            lexical_encoder(spec.lexical).queries(list(texts))
            if mode is not SearchMode.DENSE and spec.lexical is not None and texts is not None
            else []
        )
        k, shortlist, fusion = params.k, params.shortlist, params.fusion
        plans: list[QueryStage | None] = []
        for row in range(rows):
            lexical = (
                QueryStage(StageKind.SPARSE, k, using=LEXICAL_VECTOR, sparse=terms[row])
                if terms and len(terms[row])
                else None
            )
            if mode is SearchMode.SPARSE:
                plans.append(lexical)
                continue
            assert queries is not None
            if lexical is None:  # dense, or hybrid with no lexical term left
                plans.append(_dense_stage(queries, row, k, shortlist, dim, params.single_stage))
                continue
            pool = max(fusion.candidates, k)
            dense = _dense_stage(queries, row, pool, max(shortlist, pool), dim, params.single_stage)
            sparse = QueryStage(StageKind.SPARSE, pool, using=LEXICAL_VECTOR, sparse=terms[row])
            if fusion.method is FusionMethod.RRF:
                branches: tuple[QueryStage, ...] = (dense, sparse)
                weights: tuple[float, ...] | None = (fusion.dense_weight, fusion.sparse_weight)
            else:  # dbsf: a branch counted n times is prefetched n times
                n_dense, n_sparse = int(fusion.dense_weight), int(fusion.sparse_weight)
                branches, weights = (dense,) * n_dense + (sparse,) * n_sparse, None
            fused = QueryStage(
                StageKind(fusion.method),
                pool if fusion.rescore else k,
                prefetch=branches,
                rrf_k=fusion.rrf_k,
                weights=weights,
            )
            if fusion.rescore:  # the dense order over the fused pool
                full = queries.full[row].tolist()
                fused = QueryStage(
                    StageKind.NEAREST, k, using=FULL_VECTOR, dense=full, prefetch=(fused,)
                )
            plans.append(fused)
        return plans

    def search(
        self,
        physical: str,
        query: Embeddings | None,
        params: SearchParams,
        text: str | None = None,
    ) -> list[Hit]:
        """Search with one query (row 0 of `query`, and/or `text`)."""
        return self.search_batch(physical, query, params, None if text is None else [text])[0]

    def sparse_documents(self, physical: str, chunks: Sequence[Chunk]) -> list[SparseVector] | None:
        """The lexical vectors of `chunks` for this collection (None if it has none)."""
        lexical = self.spec(physical).lexical
        if lexical is None:
            return None
        return lexical_encoder(lexical).documents([c.text for c in chunks])

    def __enter__(self) -> VectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _dense_stage(
    queries: Embeddings, row: int, limit: int, shortlist: int, dim: int, single_stage: bool
) -> QueryStage:
    """`full` rescoring of a `mrl_D` shortlist (or `full` alone when single-stage)."""
    full = queries.full[row].tolist()
    if single_stage:
        return QueryStage(StageKind.NEAREST, limit, using=FULL_VECTOR, dense=full)
    head = QueryStage(
        StageKind.NEAREST,
        shortlist,
        using=shortlist_vector(dim),
        dense=queries.shortlist[dim][row].tolist(),
    )
    return QueryStage(StageKind.NEAREST, limit, using=FULL_VECTOR, dense=full, prefetch=(head,))


def _shortlist_dim(spec: CollectionSpec, requested: int | None) -> int:
    """The shortlist dim to prefetch on: `requested`, which `spec` must have, or its first."""
    dims = spec.shortlist_dims
    if requested is None:
        return dims[0]
    if requested not in dims:
        raise StoreError(
            f"collection {spec.physical!r} has no shortlist vector of {requested} dims "
            f"(it has {list(dims)})"
        )
    return requested
