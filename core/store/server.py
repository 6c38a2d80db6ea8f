"""The server backend: a Qdrant server or cluster through qdrant-client.

Specs live in each collection's metadata (`{"ragctl": {...}}`); aliases are Qdrant's own and
are switched with one atomic `update_collection_aliases` call. The same class runs against
qdrant-client's local mode (`":memory:"` or a path), a testing tool that speaks the same API.

At scale, `ServerParams` lays out new collections (shards, replication, write consistency,
`full` vectors on disk with the shortlist in RAM, HNSW, int8 shortlist quantization) and
sets the search-time `hnsw_ef`; transient failures of idempotent calls are retried.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ragctl.core.encoder import Embeddings
from ragctl.core.errors import CollectionNotFoundError, StoreError
from ragctl.core.ids import point_id
from ragctl.core.lexical import LEXICAL_VECTOR
from ragctl.core.records import Chunk, Hit
from ragctl.core.store.base import (
    FULL_VECTOR,
    CollectionSpec,
    PayloadFilter,
    QueryStage,
    VectorStore,
    chunk_from_payload,
    chunk_payload,
    hit_from_payload,
    named_vectors,
    parse_filter,
    parse_physical,
    shortlist_vector,
)

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

    from ragctl.core.settings import StoreSettings

logger = logging.getLogger(__name__)

_META_KEY = "ragctl"
_RETRY_STATUS = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class ServerParams:
    """How new collections are laid out on the server, searched, and how calls are retried.

    None means "the server's default"; the defaults give the layout of a plain `create_collection`.
    qdrant-client's local mode accepts and ignores the layout (no shards, HNSW or disk).
    """

    shard_number: int | None = None
    replication_factor: int | None = None
    write_consistency_factor: int | None = None
    full_on_disk: bool = False
    hnsw_m: int | None = None
    hnsw_ef_construct: int | None = None
    hnsw_ef: int | None = None
    shortlist_quantization: str = "none"  # or "int8"
    quantization_always_ram: bool = True
    max_retries: int = 2
    retry_backoff_s: float = 0.5

    @classmethod
    def from_settings(cls, store: StoreSettings) -> ServerParams:
        """The server-side parameters of `store` settings."""
        return cls(
            shard_number=store.shard_number,
            replication_factor=store.replication_factor,
            write_consistency_factor=store.write_consistency_factor,
            full_on_disk=store.full_on_disk,
            hnsw_m=store.hnsw_m,
            hnsw_ef_construct=store.hnsw_ef_construct,
            hnsw_ef=store.hnsw_ef,
            shortlist_quantization=store.shortlist_quantization,
            quantization_always_ram=store.quantization_always_ram,
            max_retries=store.max_retries,
            retry_backoff_s=store.retry_backoff_s,
        )

    def __post_init__(self) -> None:
        if self.shortlist_quantization not in ("none", "int8"):
            raise StoreError(
                "shortlist_quantization must be 'none' or 'int8', "
                f"got {self.shortlist_quantization!r}"
            )
        if self.max_retries < 0:
            raise StoreError(f"max_retries must be >= 0, got {self.max_retries}")

    def vectors_config(self, spec: CollectionSpec) -> dict[str, Any]:
        """Named vectors: `full` (on disk if asked, never quantized) and the shortlists.

        A plain shortlist vector lives in RAM. An int8-quantized one keeps its quantized copy
        in RAM (`quantization_always_ram`) and its float originals on disk: the shortlist is
        searched on the quantized copy and never rescored (the exact `full` rerank follows),
        so RAM holds 1 byte per shortlist dimension instead of 4.
        """
        from qdrant_client import models

        full_hnsw = models.HnswConfigDiff(on_disk=True) if self.full_on_disk else None
        vectors = {
            FULL_VECTOR: models.VectorParams(
                size=spec.dim,
                distance=models.Distance.COSINE,
                on_disk=self.full_on_disk,
                hnsw_config=full_hnsw,
            )
        }
        quantization = None
        if self.quantized:
            quantization = models.ScalarQuantization(
                scalar=models.ScalarQuantizationConfig(
                    type=models.ScalarType.INT8, always_ram=self.quantization_always_ram
                )
            )
        for dim in spec.shortlist_dims:
            vectors[shortlist_vector(dim)] = models.VectorParams(
                size=dim,
                distance=models.Distance.COSINE,
                on_disk=self.quantized,
                quantization_config=quantization,
            )
        return vectors

    @staticmethod
    def sparse_config(spec: CollectionSpec) -> dict[str, Any] | None:
        """The lexical vector with the IDF modifier (the server keeps document frequencies)."""
        from qdrant_client import models

        if spec.lexical is None:
            return None
        return {LEXICAL_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)}

    @property
    def quantized(self) -> bool:
        """Whether shortlist vectors are int8-quantized."""
        return self.shortlist_quantization == "int8"

    def hnsw_config(self) -> Any:
        """Collection-wide HNSW parameters, or None for the server's (m=16, ef_construct=100)."""
        from qdrant_client import models

        if self.hnsw_m is None and self.hnsw_ef_construct is None:
            return None
        return models.HnswConfigDiff(m=self.hnsw_m, ef_construct=self.hnsw_ef_construct)

    def shortlist_search_params(self) -> Any:
        """Parameters of the shortlist (prefetch) search, or None for the server's defaults.

        `hnsw_ef` if set; a quantized shortlist is not rescored: rescoring only reorders the
        candidates, which the exact `full` rerank scores again anyway.
        """
        from qdrant_client import models

        quantization = models.QuantizationSearchParams(rescore=False) if self.quantized else None
        if self.hnsw_ef is None and quantization is None:
            return None
        return models.SearchParams(hnsw_ef=self.hnsw_ef, quantization=quantization)

    def full_search_params(self) -> Any:
        """Parameters of a single-stage search on `full`, or None for the server's."""
        from qdrant_client import models

        return None if self.hnsw_ef is None else models.SearchParams(hnsw_ef=self.hnsw_ef)


class ServerStore(VectorStore):
    """Collections and aliases on a Qdrant server, shared by any number of processes."""

    def __init__(
        self,
        client: QdrantClient,
        *,
        local_mode: bool = False,
        params: ServerParams | None = None,
    ) -> None:
        self.client = client
        self.local_mode = local_mode
        self.params = params or ServerParams()
        # qdrant-client's local mode is not thread-safe; a real server is.
        self._guard: AbstractContextManager[Any] = (
            threading.RLock() if local_mode else nullcontext()
        )
        self._specs: dict[str, CollectionSpec] = {}

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        params: ServerParams | None = None,
    ) -> ServerStore:
        """Connect to `url` (`http(s)://host:port`), or open local mode for `:memory:`.

        Args:
            url: The server's REST address, or `:memory:` for qdrant-client's local mode.
            api_key: The server's API key (`service.api_key`), if it has one.
            timeout_s: Per-request timeout (whole seconds are sent; rounded up).
            params: Collection layout, search parameters and retries (default: none).
        """
        from qdrant_client import QdrantClient

        if url == ":memory:":
            return cls(QdrantClient(location=":memory:"), local_mode=True, params=params)
        if not url.startswith(("http://", "https://")):
            raise StoreError(
                f"store.url must start with http:// or https:// (or be :memory:), got {url!r}"
            )
        if timeout_s <= 0:
            raise StoreError(f"timeout_s must be positive, got {timeout_s}")
        client = QdrantClient(url=url, api_key=api_key, timeout=math.ceil(timeout_s))
        store = cls(client, params=params)
        store._call(client.get_collections)  # fail now, with a clear message, if unreachable
        return store

    # --- collections and aliases ---
    def create_collection(self, spec: CollectionSpec) -> None:
        from qdrant_client import models

        physical = spec.physical
        parse_physical(physical)
        if self._call(self.client.collection_exists, physical):
            raise StoreError(f"collection {physical!r} already exists")
        params = self.params
        self._call_once(  # not retried: a create that timed out may have happened
            self.client.create_collection,
            collection_name=physical,
            vectors_config=params.vectors_config(spec),
            shard_number=params.shard_number,
            replication_factor=params.replication_factor,
            write_consistency_factor=params.write_consistency_factor,
            hnsw_config=params.hnsw_config(),
            sparse_vectors_config=params.sparse_config(spec),
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

        if stage.kind == "nearest":
            if stage.using == FULL_VECTOR:
                params = None if stage.prefetch else self.params.full_search_params()
            else:
                params = self.params.shortlist_search_params()
            return stage.dense, stage.using, params
        if stage.kind == "sparse":
            assert stage.sparse is not None
            vector = models.SparseVector(indices=stage.sparse.indices, values=stage.sparse.values)
            return vector, stage.using, None
        if stage.kind == "rrf":
            weights = list(stage.weights) if stage.weights else None
            return models.RrfQuery(rrf=models.Rrf(k=stage.rrf_k, weights=weights)), None, None
        if stage.kind == "dbsf":
            return models.FusionQuery(fusion=models.Fusion.DBSF), None, None
        raise StoreError(f"unknown query stage {stage.kind!r}")

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
    def _filter(payload_filter: PayloadFilter | None) -> Any:
        from qdrant_client import models

        conditions = parse_filter(payload_filter)
        if not conditions:
            return None
        must: list[Any] = []
        for cond in conditions:
            match: Any
            if len(cond.values) == 1:
                match = models.MatchValue(value=cond.values[0])
            else:
                match = models.MatchAny(any=list(cond.values))  # type: ignore[arg-type]
            must.append(models.FieldCondition(key=cond.key, match=match))
        return models.Filter(must=must)

    def _scroll_payloads(
        self,
        physical: str,
        *,
        doc_ids: Sequence[str] | None = None,
        fields: list[str] | None = None,
        page: int = 1024,
    ) -> Iterator[dict[str, Any]]:
        flt = None if doc_ids is None else self._doc_filter(doc_ids)
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
                if attempt >= self.params.max_retries or not _is_transient(exc):
                    raise _store_error(exc) from exc
                wait_s = self.params.retry_backoff_s * 2**attempt
                attempt += 1
                logger.warning(
                    "Qdrant server: %s; retry %d/%d in %.1f s",
                    _short(exc),
                    attempt,
                    self.params.max_retries,
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
