"""The server backend: a Qdrant server or cluster through qdrant-client.

Specs live in each collection's metadata (`{"ragctl": {...}}`); aliases are Qdrant's own and
are switched with one atomic `update_collection_aliases` call. The same class runs against
qdrant-client's local mode (`":memory:"` or a path), a testing tool that speaks the same API.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from core.encoder import Embeddings
from core.errors import CollectionNotFoundError, StoreError
from core.ids import point_id
from core.records import Chunk, Hit
from core.store.base import (
    FULL_VECTOR,
    CollectionSpec,
    PayloadFilter,
    VectorStore,
    check_search_limits,
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

_META_KEY = "ragctl"


class ServerStore(VectorStore):
    """Collections and aliases on a Qdrant server, shared by any number of processes."""

    def __init__(self, client: QdrantClient, *, local_mode: bool = False) -> None:
        self.client = client
        self.local_mode = local_mode
        # qdrant-client's local mode is not thread-safe; a real server is.
        self._guard: AbstractContextManager[Any] = (
            threading.RLock() if local_mode else nullcontext()
        )
        self._specs: dict[str, CollectionSpec] = {}

    @classmethod
    def connect(
        cls, url: str, *, api_key: str | None = None, timeout_s: float = 30.0
    ) -> ServerStore:
        """Connect to `url` (`http(s)://host:port`), or open local mode for `:memory:`."""
        from qdrant_client import QdrantClient

        if url == ":memory:":
            return cls(QdrantClient(location=":memory:"), local_mode=True)
        if not url.startswith(("http://", "https://")):
            raise StoreError(
                f"store.url must start with http:// or https:// (or be :memory:), got {url!r}"
            )
        client = QdrantClient(url=url, api_key=api_key, timeout=int(timeout_s))
        store = cls(client)
        store._call(client.get_collections)  # fail now, with a clear message, if unreachable
        return store

    # --- collections and aliases ---
    def create_collection(self, spec: CollectionSpec) -> None:
        from qdrant_client import models

        physical = spec.physical
        parse_physical(physical)
        if self._call(self.client.collection_exists, physical):
            raise StoreError(f"collection {physical!r} already exists")
        vectors = {FULL_VECTOR: models.VectorParams(size=spec.dim, distance=models.Distance.COSINE)}
        for dim in spec.shortlist_dims:
            vectors[shortlist_vector(dim)] = models.VectorParams(
                size=dim, distance=models.Distance.COSINE
            )
        self._call(
            self.client.create_collection,
            collection_name=physical,
            vectors_config=vectors,
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
        self._call(self.client.delete_collection, physical)
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
        self._call(self.client.update_collection_aliases, change_aliases_operations=operations)

    # --- points ---
    def upsert(self, physical: str, chunks: Sequence[Chunk], embeddings: Embeddings) -> None:
        from qdrant_client import models

        if len(chunks) != len(embeddings):
            raise StoreError(f"{len(chunks)} chunks but {len(embeddings)} vectors")
        if not chunks:
            return
        points = [
            models.PointStruct(
                id=point_id(chunk.chunk_id),
                vector=named_vectors(embeddings, i),
                payload=chunk_payload(chunk),
            )
            for i, chunk in enumerate(chunks)
        ]
        self._call(self.client.upsert, collection_name=physical, points=points, wait=True)

    def chunk_ids_of(self, physical: str, doc_ids: Sequence[str]) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        if not doc_ids:
            return found
        flt = self._doc_filter(doc_ids)
        for payload in self._scroll_payloads(physical, flt, ["doc_id", "chunk_id"]):
            found.setdefault(payload["doc_id"], set()).add(payload["chunk_id"])
        return found

    def all_chunk_ids(self, physical: str) -> set[str]:
        return {p["chunk_id"] for p in self._scroll_payloads(physical, None, ["chunk_id"])}

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

    def scroll_chunks(self, physical: str, *, batch_size: int = 256) -> Iterator[list[Chunk]]:
        batch: list[Chunk] = []
        for payload in self._scroll_payloads(physical, None, True, page=batch_size):
            batch.append(chunk_from_payload(payload))
            if len(batch) == batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

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

    def search_batch(
        self,
        physical: str,
        queries: Embeddings,
        *,
        k: int,
        shortlist: int,
        shortlist_dim: int | None = None,
        single_stage: bool = False,
        payload_filter: PayloadFilter | None = None,
    ) -> list[list[Hit]]:
        from qdrant_client import models

        check_search_limits(k, shortlist)
        flt = self._filter(payload_filter)
        dim = self._shortlist_dim(physical, shortlist_dim)
        requests = []
        for row in range(len(queries)):
            prefetch = None
            if not single_stage:
                prefetch = models.Prefetch(
                    query=queries.shortlist[dim][row].tolist(),
                    using=shortlist_vector(dim),
                    limit=shortlist,
                    filter=flt,
                )
            requests.append(
                models.QueryRequest(
                    query=queries.full[row].tolist(),
                    using=FULL_VECTOR,
                    prefetch=prefetch,
                    filter=flt,
                    limit=k,
                    with_payload=True,
                )
            )
        responses = self._call(
            self.client.query_batch_points, collection_name=physical, requests=requests
        )
        return [
            [hit_from_payload(p.score, p.payload or {}) for p in response.points]
            for response in responses
        ]

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
        self, physical: str, flt: Any, with_payload: Any, *, page: int = 1024
    ) -> Iterator[dict[str, Any]]:
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
        """Run a client call under the local-mode lock, turning its errors into StoreError."""
        try:
            with self._guard:
                return fn(*args, **kwargs)
        except StoreError:
            raise
        except Exception as exc:  # network errors, UnexpectedResponse, ValueError from local mode
            raise StoreError(f"Qdrant server: {exc}") from exc
