"""The server backend: a Qdrant server or cluster through qdrant-client.

Specs live in each collection's metadata (`{"ragctl": {...}}`); aliases are Qdrant's own and
are switched with one atomic `update_collection_aliases` call. The same class runs against
qdrant-client's local mode (`":memory:"` or a path), a testing tool that speaks the same API.

At scale, the store settings (`StoreSettings`) lay out new collections (shards, replication,
write consistency, `full` vectors on disk with the shortlist in RAM, HNSW, int8 shortlist
quantization) and set the search-time `hnsw_ef`; transient failures of idempotent calls are
retried.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from ragctl.core.encoder import Embeddings
from ragctl.core.errors import CollectionNotFoundError, StoreError
from ragctl.core.ids import point_id
from ragctl.core.lexical import LEXICAL_VECTOR
from ragctl.core.records import Chunk, Hit
from ragctl.core.search import FilterCondition, PayloadFilter, parse_filter
from ragctl.core.settings import StoreSettings
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

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

logger = logging.getLogger(__name__)

_META_KEY = "ragctl"
_RETRY_STATUS = frozenset({429, 502, 503, 504})


def _vectors_config(settings: StoreSettings, spec: CollectionSpec) -> dict[str, Any]:
    """Named vectors: `full` (on disk if asked, never quantized) and the shortlists.

    A plain shortlist vector lives in RAM. An int8-quantized one keeps its quantized copy
    in RAM (`quantization_always_ram`) and its float originals on disk: the shortlist is
    searched on the quantized copy and never rescored (the exact `full` rerank follows),
    so RAM holds 1 byte per shortlist dimension instead of 4.
    """
    from qdrant_client import models

    full_hnsw = models.HnswConfigDiff(on_disk=True) if settings.full_on_disk else None
    vectors = {
        FULL_VECTOR: models.VectorParams(
            size=spec.dim,
            distance=models.Distance.COSINE,
            on_disk=settings.full_on_disk,
            hnsw_config=full_hnsw,
        )
    }
    quantized = _quantized(settings)
    quantization = None
    if quantized:
        quantization = models.ScalarQuantization(
            scalar=models.ScalarQuantizationConfig(
                type=models.ScalarType.INT8, always_ram=settings.quantization_always_ram
            )
        )
    for dim in spec.shortlist_dims:
        vectors[shortlist_vector(dim)] = models.VectorParams(
            size=dim,
            distance=models.Distance.COSINE,
            on_disk=quantized,
            quantization_config=quantization,
        )
    return vectors


def _sparse_config(spec: CollectionSpec) -> dict[str, Any] | None:
    """The lexical vector with the IDF modifier (the server keeps document frequencies)."""
    from qdrant_client import models

    if spec.lexical is None:
        return None
    return {LEXICAL_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)}


def _quantized(settings: StoreSettings) -> bool:
    """Whether shortlist vectors are int8-quantized."""
    return settings.shortlist_quantization == "int8"


def _hnsw_config(settings: StoreSettings) -> Any:
    """Collection-wide HNSW parameters, or None for the server's (m=16, ef_construct=100)."""
    from qdrant_client import models

    if settings.hnsw_m is None and settings.hnsw_ef_construct is None:
        return None
    return models.HnswConfigDiff(m=settings.hnsw_m, ef_construct=settings.hnsw_ef_construct)


def _shortlist_search_params(settings: StoreSettings) -> Any:
    """Parameters of the shortlist (prefetch) search, or None for the server's defaults.

    `hnsw_ef` if set; a quantized shortlist is not rescored: rescoring only reorders the
    candidates, which the exact `full` rerank scores again anyway.
    """
    from qdrant_client import models

    quantization = models.QuantizationSearchParams(rescore=False) if _quantized(settings) else None
    if settings.hnsw_ef is None and quantization is None:
        return None
    return models.SearchParams(hnsw_ef=settings.hnsw_ef, quantization=quantization)


def _full_search_params(settings: StoreSettings) -> Any:
    """Parameters of a single-stage search on `full`, or None for the server's."""
    from qdrant_client import models

    return None if settings.hnsw_ef is None else models.SearchParams(hnsw_ef=settings.hnsw_ef)


class ServerStore(VectorStore):
    """Collections and aliases on a Qdrant server, shared by any number of processes.

    `settings` gives the collection layout, search parameters and retries (its `url`,
    `api_key` and `timeout_s` are `client`'s, see `connect`).
    """

    def __init__(
        self,
        client: QdrantClient,
        *,
        local_mode: bool = False,
        settings: StoreSettings | None = None,
    ) -> None:
        self.client = client
        self.local_mode = local_mode
        self.settings = settings or StoreSettings()
        # qdrant-client's local mode is not thread-safe; a real server is.
        self._guard: AbstractContextManager[Any] = (
            threading.RLock() if local_mode else nullcontext()
        )
        self._specs: dict[str, CollectionSpec] = {}

    @classmethod
    def connect(cls, settings: StoreSettings) -> ServerStore:
        """Connect to `settings.url` (`http(s)://host:port`), or open local mode for `:memory:`.

        `settings.api_key` is the server's API key (`service.api_key`), if it has one;
        `settings.timeout_s` the per-request timeout (whole seconds are sent; rounded up).
        """
        from qdrant_client import QdrantClient

        url = settings.url
        if url == ":memory:":
            return cls(QdrantClient(location=":memory:"), local_mode=True, settings=settings)
        if url is None or not url.startswith(("http://", "https://")):
            raise StoreError(
                f"store.url must start with http:// or https:// (or be :memory:), got {url!r}"
            )
        api_key = settings.api_key.get_secret_value() if settings.api_key else None
        client = QdrantClient(url=url, api_key=api_key, timeout=math.ceil(settings.timeout_s))
        store = cls(client, settings=settings)
        store._call(client.get_collections)  # fail now, with a clear message, if unreachable
        return store

    # --- collections and aliases ---
    def create_collection(self, spec: CollectionSpec) -> None:
        from qdrant_client import models

        physical = spec.physical
        parse_physical(physical)
        if self._call(self.client.collection_exists, physical):
            raise StoreError(f"collection {physical!r} already exists")
        settings = self.settings
        self._call_once(  # not retried: a create that timed out may have happened
            self.client.create_collection,
            collection_name=physical,
            vectors_config=_vectors_config(settings, spec),
            shard_number=settings.shard_number,
            replication_factor=settings.replication_factor,
            write_consistency_factor=settings.write_consistency_factor,
            hnsw_config=_hnsw_config(settings),
            sparse_vectors_config=_sparse_config(spec),
            metadata={_META_KEY: spec.to_dict()},
        )
        if self.local_mode:  # local mode ignores payload indexes (and warns)
            return
        self._call(
            self.client.create_payload_index,
            collection_name=physical,
            field_name="doc_id",
            field_schema=models.PayloadSchemaType.KEYWORD,
        )

    def drop_collection(self, physical: str) -> None:
        self.spec(physical)
        holders = [a for a, target in self.aliases().items() if target == physical]
        if holders:
            raise StoreError(
                f"collection {physical!r} is served by alias {', '.join(holders)}; "
                "point the alias elsewhere first"
            )
        self._call_once(self.client.delete_collection, physical)
        self._specs.pop(physical, None)

    def list_specs(self) -> list[CollectionSpec]:
        specs = []
        for description in self._call(self.client.get_collections).collections:
            spec = self._spec_of(description.name)
            if spec is not None:
                specs.append(spec)
        return sorted(specs, key=lambda s: (s.name, s.version))

    def spec(self, physical: str) -> CollectionSpec:
        spec = self._spec_of(physical)
        if spec is None:
            raise CollectionNotFoundError(f"no collection {physical!r}")
        return spec

    def aliases(self) -> dict[str, str]:
        response = self._call(self.client.get_aliases)
        return {a.alias_name: a.collection_name for a in response.aliases}

    def set_alias(self, alias: str, physical: str) -> None:
        from qdrant_client import models

        self.spec(physical)
        operations: list[Any] = []
        if alias in self.aliases():
            operations.append(
                models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias))
            )
        operations.append(
            models.CreateAliasOperation(
                create_alias=models.CreateAlias(collection_name=physical, alias_name=alias)
            )
        )
        self._call_once(self.client.update_collection_aliases, change_aliases_operations=operations)

    # --- points ---
    def upsert(self, physical: str, chunks: Sequence[Chunk], embeddings: Embeddings) -> None:
        from qdrant_client import models

        if len(chunks) != len(embeddings):
            raise StoreError(f"{len(chunks)} chunks but {len(embeddings)} vectors")
        if not chunks:
            return
        lexical = self.sparse_documents(physical, chunks)
        points = []
        for i, chunk in enumerate(chunks):
            vectors = named_vectors(embeddings, i)
            if lexical is not None:
                vectors[LEXICAL_VECTOR] = models.SparseVector(
                    indices=lexical[i].indices, values=lexical[i].values
                )
            points.append(
                models.PointStruct(
                    id=point_id(chunk.chunk_id), vector=vectors, payload=chunk_payload(chunk)
                )
            )
        self._call(self.client.upsert, collection_name=physical, points=points, wait=True)

    def delete_chunks(self, physical: str, chunk_ids: Sequence[str]) -> None:
        from qdrant_client import models

        if chunk_ids:
            selector = models.PointIdsList(points=[point_id(c) for c in chunk_ids])
            self._call(
                self.client.delete, collection_name=physical, points_selector=selector, wait=True
            )

    def delete_documents(self, physical: str, doc_ids: Sequence[str]) -> int:
        from qdrant_client import models

        if not doc_ids:
            return 0
        flt = self._doc_filter(doc_ids)
        deleted = self._call(
            self.client.count, collection_name=physical, count_filter=flt, exact=True
        )
        if deleted.count:
            self._call(
                self.client.delete,
                collection_name=physical,
                points_selector=models.FilterSelector(filter=flt),
                wait=True,
            )
        return int(deleted.count)

    def count(self, physical: str) -> int:
        return int(self._call(self.client.count, collection_name=physical, exact=True).count)

    def get_chunks(self, physical: str, chunk_ids: Sequence[str]) -> dict[str, Chunk]:
        if not chunk_ids:
            return {}
        records = self._call(
            self.client.retrieve,
            collection_name=physical,
            ids=[point_id(c) for c in chunk_ids],
            with_payload=True,
        )
        chunks = (chunk_from_payload(r.payload) for r in records if r.payload)
        return {c.chunk_id: c for c in chunks}

    def _retrieve_vectors(
        self, physical: str, chunk_ids: Sequence[str], vector: str
    ) -> dict[str, list[float]]:
        if not chunk_ids:
            return {}
        records = self._call(
            self.client.retrieve,
            collection_name=physical,
            ids=[point_id(c) for c in chunk_ids],
            with_payload=["chunk_id"],
            with_vectors=[vector],
        )
        found: dict[str, list[float]] = {}
        for record in records:
            vectors = record.vector if isinstance(record.vector, dict) else {}
            values = vectors.get(vector)
            if record.payload and isinstance(values, list):
                found[record.payload["chunk_id"]] = values  # type: ignore[assignment]
        return found

    def _query_batch(
        self, physical: str, plans: Sequence[QueryStage], payload_filter: PayloadFilter | None
    ) -> list[list[Hit]]:
        from qdrant_client import models

        flt = self._filter(payload_filter)
        requests = []
        for plan in plans:
            query, using, params = self._query(plan)
            requests.append(
                models.QueryRequest(
                    query=query,
                    using=using,
                    prefetch=[self._prefetch(p, flt) for p in plan.prefetch] or None,
                    filter=flt,
                    limit=plan.limit,
                    with_payload=True,
                    params=params,
                )
            )
        responses = self._call(
            self.client.query_batch_points, collection_name=physical, requests=requests
        )
        return [
            [hit_from_payload(p.score, p.payload or {}) for p in response.points]
            for response in responses
        ]

    def _query(self, stage: QueryStage) -> tuple[Any, str | None, Any]:
        """(query, using, search params) of a stage.

        hnsw_ef goes to the HNSW searches: a shortlist vector, or `full` searched without a
        prefetch (single-stage); a rerank of prefetched points is exact and needs none.
        """
        from qdrant_client import models

        if stage.kind is StageKind.NEAREST:
            if stage.using == FULL_VECTOR:
                params = None if stage.prefetch else _full_search_params(self.settings)
            else:
                params = _shortlist_search_params(self.settings)
            return stage.dense, stage.using, params
        if stage.kind is StageKind.SPARSE:
            assert stage.sparse is not None
            vector = models.SparseVector(indices=stage.sparse.indices, values=stage.sparse.values)
            return vector, stage.using, None
        if stage.kind is StageKind.RRF:
            weights = list(stage.weights) if stage.weights else None
            return models.RrfQuery(rrf=models.Rrf(k=stage.rrf_k, weights=weights)), None, None
        return models.FusionQuery(fusion=models.Fusion.DBSF), None, None

    def _prefetch(self, stage: QueryStage, flt: Any) -> Any:
        from qdrant_client import models

        query, using, params = self._query(stage)
        return models.Prefetch(
            query=query,
            using=using,
            prefetch=[self._prefetch(p, flt) for p in stage.prefetch] or None,
            filter=flt,
            limit=stage.limit,
            params=params,
        )

    def stored_vectors(self, physical: str) -> dict[str, frozenset[str]]:
        found: dict[str, frozenset[str]] = {}
        offset = None
        while True:
            points, offset = self._call(
                self.client.scroll,
                collection_name=physical,
                limit=512,
                offset=offset,
                with_payload=["chunk_id"],
                with_vectors=True,
            )
            for point in points:
                vectors = point.vector if isinstance(point.vector, dict) else {}
                found[(point.payload or {})["chunk_id"]] = frozenset(vectors)
            if offset is None:
                return found

    def optimize(self, physical: str) -> None:
        """A server builds its indexes in the background; nothing to do."""

    def close(self) -> None:
        self._call(self.client.close)

    # --- internals ---
    def _spec_of(self, physical: str) -> CollectionSpec | None:
        if physical not in self._specs:
            if not self._call(self.client.collection_exists, physical):
                return None
            info = self._call(self.client.get_collection, physical)
            meta = (info.config.metadata or {}).get(_META_KEY)
            if meta is None:
                return None  # a collection ragctl did not make
            self._specs[physical] = CollectionSpec.from_dict(meta)
        return self._specs[physical]

    @staticmethod
    def _doc_filter(doc_ids: Sequence[str]) -> Any:
        from qdrant_client import models

        return models.Filter(
            must=[models.FieldCondition(key="doc_id", match=models.MatchAny(any=list(doc_ids)))]
        )

    @staticmethod
    def _filter(payload_filter: PayloadFilter | None, doc_ids: Sequence[str] | None = None) -> Any:
        from qdrant_client import models

        parsed = parse_filter(payload_filter)
        if not parsed and doc_ids is None:
            return None
        must = [_condition(c) for c in parsed.must]
        if doc_ids is not None:
            must.append(
                models.FieldCondition(key="doc_id", match=models.MatchAny(any=list(doc_ids)))
            )
        return models.Filter(
            must=must or None,
            must_not=[_condition(c) for c in parsed.must_not] or None,
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
        flt = self._scroll_filter(doc_ids, payload_filter)
        with_payload: Any = True if fields is None else fields
        offset = None
        while True:
            records, offset = self._call(
                self.client.scroll,
                collection_name=physical,
                scroll_filter=flt,
                limit=page,
                offset=offset,
                with_payload=with_payload,
                with_vectors=False,
            )
            for record in records:
                if record.payload:
                    yield record.payload
            if offset is None:
                return

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run an idempotent client call, retrying transient failures (see `_is_transient`)."""
        attempt = 0
        while True:
            try:
                with self._guard:
                    return fn(*args, **kwargs)
            except StoreError:
                raise
            except Exception as exc:
                if attempt >= self.settings.max_retries or not _is_transient(exc):
                    raise _store_error(exc) from exc
                wait_s = self.settings.retry_backoff_s * 2**attempt
                attempt += 1
                logger.warning(
                    "Qdrant server: %s; retry %d/%d in %.1f s",
                    _short(exc),
                    attempt,
                    self.settings.max_retries,
                    wait_s,
                )
                time.sleep(wait_s)

    def _call_once(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a call that is not safe to repeat blindly (create, drop, alias switch)."""
        try:
            with self._guard:
                return fn(*args, **kwargs)
        except StoreError:
            raise
        except Exception as exc:
            raise _store_error(exc) from exc


def _condition(cond: FilterCondition) -> Any:
    from qdrant_client import models

    if cond.range is not None:
        bounds = cond.range
        span = models.Range(gt=bounds.gt, gte=bounds.gte, lt=bounds.lt, lte=bounds.lte)
        return models.FieldCondition(key=cond.key, range=span)
    match: Any
    if len(cond.values) == 1:
        match = models.MatchValue(value=cond.values[0])
    else:
        match = models.MatchAny(any=list(cond.values))  # type: ignore[arg-type]
    return models.FieldCondition(key=cond.key, match=match)


def _is_transient(exc: BaseException) -> bool:
    """A failure worth retrying: no answer (connection, timeout) or an overloaded server."""
    import httpx
    from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    if isinstance(exc, ResponseHandlingException):  # wraps what httpx raised while sending
        return isinstance(exc.source, httpx.TransportError)
    if isinstance(exc, (httpx.TransportError, ResourceExhaustedResponse)):
        return True
    return isinstance(exc, UnexpectedResponse) and exc.status_code in _RETRY_STATUS


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _store_error(exc: BaseException) -> StoreError:
    # network errors, UnexpectedResponse, ValueError from local mode
    return StoreError(f"Qdrant server: {exc}")
