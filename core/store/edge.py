"""The embedded backend: Qdrant Edge (the Qdrant engine in-process) under one directory.

Layout under `root`:
  collections/NAME__vN/       one Edge shard per physical collection
  collections/NAME__vN.json   its CollectionSpec (written after the shard, so a crash
                              mid-create leaves a shard without spec, which is ignored)
  aliases.json                alias -> physical, replaced atomically (write, fsync, rename)
  LOCK                        held by the one process that has the store open
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ragctl.core.encoder import Embeddings
from ragctl.core.errors import CollectionNotFoundError, StoreError
from ragctl.core.ids import point_id
from ragctl.core.lexical import LEXICAL_VECTOR
from ragctl.core.records import Chunk, Hit
from ragctl.core.search import FilterCondition, PayloadFilter, parse_filter
from ragctl.core.store.base import (
    FULL_VECTOR,
    CollectionSpec,
    QueryStage,
    StageKind,
    VectorStore,
    chunk_from_payload,
    chunk_payload,
    hit_from_payload,
    named_vectors,
    parse_physical,
    shortlist_vector,
)
from ragctl.core.store.files import ProcessLock, read_json, write_json_atomic

logger = logging.getLogger(__name__)


def _edge() -> Any:
    import qdrant_edge

    return qdrant_edge


class EdgeStore(VectorStore):
    """Qdrant Edge shards plus an alias map; one process at a time, any number of threads."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._collections_dir = self.root / "collections"
        self._aliases_path = self.root / "aliases.json"
        self._lock = ProcessLock(self.root / "LOCK")
        self._lock.acquire()
        self._shards: dict[str, Any] = {}
        self._specs: dict[str, CollectionSpec] | None = None
        self._mutex = threading.RLock()  # guards the shard cache and alias map, not queries
        self._collections_dir.mkdir(parents=True, exist_ok=True)

    # --- collections and aliases ---
    def create_collection(self, spec: CollectionSpec) -> None:
        qe = _edge()
        with self._mutex:
            physical = spec.physical
            parse_physical(physical)
            if physical in self._load_specs():
                raise StoreError(f"collection {physical!r} already exists")
            shard_dir = self._collections_dir / physical
            if shard_dir.exists():  # left by a create that crashed before writing its spec
                shutil.rmtree(shard_dir)
            vectors = {FULL_VECTOR: qe.EdgeVectorParams(size=spec.dim, distance=qe.Distance.Cosine)}
            for dim in spec.shortlist_dims:
                vectors[shortlist_vector(dim)] = qe.EdgeVectorParams(
                    size=dim, distance=qe.Distance.Cosine
                )
            sparse = None
            if spec.lexical is not None:  # IDF from the live collection at query time
                sparse = {LEXICAL_VECTOR: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)}
            shard = self._call(
                qe.EdgeShard.create,
                str(shard_dir),
                qe.EdgeConfig(vectors=vectors, sparse_vectors=sparse),
            )
            shard.update(
                qe.UpdateOperation.create_field_index("doc_id", qe.PayloadSchemaType.Keyword)
            )
            shard.flush()
            self._shards[physical] = shard
            write_json_atomic(self._spec_path(physical), spec.to_dict())
            self._load_specs()[physical] = spec

    def drop_collection(self, physical: str) -> None:
        with self._mutex:
            self._require(physical)
            holders = [a for a, target in self.aliases().items() if target == physical]
            if holders:
                raise StoreError(
                    f"collection {physical!r} is served by alias {', '.join(holders)}; "
                    "point the alias elsewhere first"
                )
            shard = self._shards.pop(physical, None)
            if shard is not None:
                shard.close()
            self._spec_path(physical).unlink()
            self._load_specs().pop(physical)
            shutil.rmtree(self._collections_dir / physical, ignore_errors=True)

    def list_specs(self) -> list[CollectionSpec]:
        with self._mutex:
            specs = self._load_specs().values()
            return sorted(specs, key=lambda s: (s.name, s.version))

    def aliases(self) -> dict[str, str]:
        with self._mutex:
            return dict(read_json(self._aliases_path, {}))

    def set_alias(self, alias: str, physical: str) -> None:
        with self._mutex:
            self._require(physical)
            if alias in self._load_specs():
                raise StoreError(f"alias {alias!r} would shadow a physical collection")
            mapping = self.aliases()
            mapping[alias] = physical
            write_json_atomic(self._aliases_path, mapping)

    # --- points ---
    def upsert(self, physical: str, chunks: Sequence[Chunk], embeddings: Embeddings) -> None:
        if len(chunks) != len(embeddings):
            raise StoreError(f"{len(chunks)} chunks but {len(embeddings)} vectors")
        if not chunks:
            return
        qe = _edge()
        lexical = self.sparse_documents(physical, chunks)
        points = []
        for i, chunk in enumerate(chunks):
            vectors = named_vectors(embeddings, i)
            if lexical is not None:
                vectors[LEXICAL_VECTOR] = qe.SparseVector(lexical[i].indices, lexical[i].values)
            points.append(qe.Point(point_id(chunk.chunk_id), vectors, chunk_payload(chunk)))
        self._call(self._shard(physical).update, qe.UpdateOperation.upsert_points(points))

    def delete_chunks(self, physical: str, chunk_ids: Sequence[str]) -> None:
        if chunk_ids:
            qe = _edge()
            ids = [point_id(c) for c in chunk_ids]
            self._call(self._shard(physical).update, qe.UpdateOperation.delete_points(ids))

    def delete_documents(self, physical: str, doc_ids: Sequence[str]) -> int:
        if not doc_ids:
            return 0
        qe = _edge()
        flt = self._doc_filter(doc_ids)
        shard = self._shard(physical)
        with self._mutex:  # count and delete as one step with respect to other writers here
            deleted = int(self._call(shard.count, qe.CountRequest(exact=True, filter=flt)))
            if deleted:
                self._call(shard.update, qe.UpdateOperation.delete_points_by_filter(flt))
        return deleted

    def count(self, physical: str) -> int:
        qe = _edge()
        return int(self._call(self._shard(physical).count, qe.CountRequest(exact=True)))

    def get_chunks(self, physical: str, chunk_ids: Sequence[str]) -> dict[str, Chunk]:
        if not chunk_ids:
            return {}
        records = self._call(
            self._shard(physical).retrieve, [point_id(c) for c in chunk_ids], True, False
        )
        chunks = (chunk_from_payload(r.payload) for r in records if r.payload)
        return {c.chunk_id: c for c in chunks}

    def _retrieve_vectors(
        self, physical: str, chunk_ids: Sequence[str], vector: str
    ) -> dict[str, list[float]]:
        if not chunk_ids:
            return {}
        records = self._call(
            self._shard(physical).retrieve, [point_id(c) for c in chunk_ids], ["chunk_id"], [vector]
        )
        return {
            r.payload["chunk_id"]: r.vector[vector]
            for r in records
            if r.payload and r.vector and vector in r.vector
        }

    def _query_batch(
        self, physical: str, plans: Sequence[QueryStage], payload_filter: PayloadFilter | None
    ) -> list[list[Hit]]:
        qe = _edge()
        flt = self._filter(payload_filter)
        requests = []
        for plan in plans:
            requests.append(
                qe.QueryRequest(
                    limit=plan.limit,
                    query=_edge_query(plan),
                    prefetches=[_edge_prefetch(p, flt) for p in plan.prefetch] or None,
                    filter=flt,
                    with_payload=True,
                )
            )
        shard = self._shard(physical)
        results = self._call(shard.query_batch, qe.QueryBatchRequest(requests))
        return [[hit_from_payload(p.score, p.payload) for p in points] for points in results]

    def stored_vectors(self, physical: str) -> dict[str, frozenset[str]]:
        qe = _edge()
        shard = self._shard(physical)
        found: dict[str, frozenset[str]] = {}
        offset = None
        while True:
            request = qe.ScrollRequest(
                offset=offset, limit=512, with_payload=["chunk_id"], with_vector=True
            )
            records, offset = self._call(shard.scroll, request)
            for record in records:
                found[record.payload["chunk_id"]] = frozenset(record.vector or {})
            if offset is None:
                return found

    def optimize(self, physical: str) -> None:
        self._call(self._shard(physical).optimize)

    def close(self) -> None:
        with self._mutex:
            for shard in self._shards.values():
                try:
                    shard.flush()
                finally:
                    shard.close()
            self._shards.clear()
            self._lock.release()

    # --- internals ---
    def _spec_path(self, physical: str) -> Path:
        return self._collections_dir / f"{physical}.json"

    def _load_specs(self) -> dict[str, CollectionSpec]:
        if self._specs is None:
            self._specs = {}
            for path in self._collections_dir.glob("*.json"):
                spec = CollectionSpec.from_dict(read_json(path, {}))
                if (self._collections_dir / spec.physical).is_dir():
                    self._specs[spec.physical] = spec
        return self._specs

    def _require(self, physical: str) -> None:
        if physical not in self._load_specs():
            raise CollectionNotFoundError(f"no collection {physical!r}")

    def _shard(self, physical: str) -> Any:
        with self._mutex:
            shard = self._shards.get(physical)
            if shard is None:
                self._require(physical)
                qe = _edge()
                shard = self._call(qe.EdgeShard.load, str(self._collections_dir / physical))
                self._shards[physical] = shard
            return shard

    @staticmethod
    def _doc_filter(doc_ids: Sequence[str]) -> Any:
        qe = _edge()
        return qe.Filter(
            must=[qe.FieldCondition(key="doc_id", match=qe.MatchAny(any=list(doc_ids)))]
        )

    def _filter(
        self, payload_filter: PayloadFilter | None, doc_ids: Sequence[str] | None = None
    ) -> Any:
        parsed = parse_filter(payload_filter)
        if not parsed and doc_ids is None:
            return None
        qe = _edge()
        must = [_edge_condition(c) for c in parsed.must]
        if doc_ids is not None:
            must.append(qe.FieldCondition(key="doc_id", match=qe.MatchAny(any=list(doc_ids))))
        return qe.Filter(
            must=must or None,
            must_not=[_edge_condition(c) for c in parsed.must_not] or None,
        )

    def _scroll_filter(
        self, doc_ids: Sequence[str] | None, payload_filter: PayloadFilter | None
    ) -> Any:
        return self._filter(payload_filter, doc_ids)

    def _scroll_payloads(
        self,
        physical: str,
        *,
        doc_ids: Sequence[str] | None = None,
        payload_filter: PayloadFilter | None = None,
        fields: list[str] | None = None,
        page: int = 1024,
    ) -> Iterator[dict[str, Any]]:
        qe = _edge()
        flt = self._scroll_filter(doc_ids, payload_filter)
        with_payload: Any = True if fields is None else fields
        shard = self._shard(physical)
        offset = None
        while True:
            request = qe.ScrollRequest(
                offset=offset, limit=page, filter=flt, with_payload=with_payload, with_vector=False
            )
            records, offset = self._call(shard.scroll, request)
            for record in records:
                if record.payload:
                    yield record.payload
            if offset is None:
                return

    @staticmethod
    def _call(fn: Any, *args: Any) -> Any:
        """Run an engine call, turning its plain `Exception`s into `StoreError`."""
        try:
            return fn(*args)
        except StoreError:
            raise
        except Exception as exc:  # Edge raises bare Exception("Service runtime error: ...")
            raise StoreError(f"Qdrant Edge: {exc}") from exc


def _edge_condition(cond: FilterCondition) -> Any:
    qe = _edge()
    if cond.range is not None:
        bounds = cond.range
        span = qe.RangeFloat(gt=bounds.gt, gte=bounds.gte, lt=bounds.lt, lte=bounds.lte)
        return qe.FieldCondition(key=cond.key, range=span)
    if len(cond.values) == 1:
        return qe.FieldCondition(key=cond.key, match=qe.MatchValue(value=cond.values[0]))
    return qe.FieldCondition(key=cond.key, match=qe.MatchAny(any=list(cond.values)))


def _edge_query(stage: QueryStage) -> Any:
    qe = _edge()
    if stage.kind is StageKind.NEAREST:
        return qe.Query.Nearest(stage.dense, using=stage.using)
    if stage.kind is StageKind.SPARSE:
        assert stage.sparse is not None
        vector = qe.SparseVector(stage.sparse.indices, stage.sparse.values)
        return qe.Query.Nearest(vector, using=stage.using)
    if stage.kind is StageKind.RRF:
        return qe.Fusion.Rrf(k=stage.rrf_k, weights=list(stage.weights or ()) or None)
    return qe.Fusion.Dbsf()


def _edge_prefetch(stage: QueryStage, flt: Any) -> Any:
    qe = _edge()
    return qe.Prefetch(
        limit=stage.limit,
        query=_edge_query(stage),
        prefetches=[_edge_prefetch(p, flt) for p in stage.prefetch] or None,
        filter=flt,
    )
