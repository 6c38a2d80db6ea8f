"""The store interface, collection specs, payload layout and the filter language.

Layout: one physical collection `NAME__vN` per (collection name, model version), with named
vectors `full` and `mrl_D` per shortlist dim, and an alias `NAME` for the serving one.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from core.encoder import Embeddings
from core.errors import CollectionNotFoundError, StoreError
from core.records import Chunk, Hit

FULL_VECTOR = "full"
_PHYSICAL_RE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_-]*?)__v(?P<version>[1-9][0-9]*)$")

Scalar = str | int | bool
PayloadFilter = Mapping[str, Scalar | Sequence[Scalar]]
"""`{"doc_id": "a.md"}` or `{"metadata.lang": ["en", "de"]}`: every key must match (AND);
a list matches any of its values (OR)."""

_FILTER_FIELDS = ("doc_id", "source", "chunk_id")


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

    @property
    def physical(self) -> str:
        return physical_name(self.name, self.version)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["shortlist_dims"] = list(self.shortlist_dims)
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
        )


@dataclass(frozen=True)
class CollectionInfo:
    """A physical collection as listed: its spec, size, and the aliases pointing at it."""

    spec: CollectionSpec
    points: int
    aliases: tuple[str, ...]


@dataclass(frozen=True)
class FilterCondition:
    """One validated condition: `key` equals `values[0]`, or any of `values`."""

    key: str
    values: tuple[Scalar, ...]


def parse_filter(payload_filter: PayloadFilter | None) -> list[FilterCondition]:
    """Validate a filter and turn it into conditions, naming what is wrong if anything is."""
    if not payload_filter:
        return []
    conditions = []
    for key, value in payload_filter.items():
        if key not in _FILTER_FIELDS and not re.fullmatch(r"metadata\.[A-Za-z0-9_.-]+", key):
            raise StoreError(
                f"cannot filter on {key!r}: allowed keys are {', '.join(_FILTER_FIELDS)} "
                "or metadata.<field>"
            )
        values = tuple(value) if isinstance(value, (list, tuple)) else (value,)
        if not values:
            raise StoreError(f"filter {key!r} has an empty list of values")
        for item in values:
            if isinstance(item, float) or not isinstance(item, (str, int, bool)):
                raise StoreError(
                    f"filter {key!r}: values must be strings, integers or booleans, got {item!r}"
                )
        conditions.append(FilterCondition(key, values))
    return conditions


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


def check_search_limits(k: int, shortlist: int) -> None:
    """1 <= k <= shortlist, with an error naming the bad value."""
    if k < 1:
        raise StoreError(f"k must be >= 1, got {k}")
    if shortlist < k:
        raise StoreError(f"shortlist ({shortlist}) must be >= k ({k})")


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
        """Top-k chunks per query row.

        Two-stage (default) is one Qdrant query: prefetch `shortlist` candidates on the
        `mrl_D` vector, then rescore them with `full`. `single_stage=True` searches `full`
        directly, for comparison.
        """

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
        fields: list[str] | None = None,
        page: int = 1024,
    ) -> Iterator[dict[str, Any]]:
        """Payloads of every point (of `doc_ids` only, if given); `fields=None` = all fields."""

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

    def search(
        self,
        physical: str,
        query: Embeddings,
        *,
        k: int,
        shortlist: int,
        shortlist_dim: int | None = None,
        single_stage: bool = False,
        payload_filter: PayloadFilter | None = None,
    ) -> list[Hit]:
        """Search with one query (row 0 of `query`)."""
        return self.search_batch(
            physical,
            query,
            k=k,
            shortlist=shortlist,
            shortlist_dim=shortlist_dim,
            single_stage=single_stage,
            payload_filter=payload_filter,
        )[0]

    def _shortlist_dim(self, physical: str, requested: int | None) -> int:
        dims = self.spec(physical).shortlist_dims
        if requested is None:
            return dims[0]
        if requested not in dims:
            raise StoreError(
                f"collection {physical!r} has no shortlist vector of {requested} dims "
                f"(it has {list(dims)})"
            )
        return requested

    def __enter__(self) -> VectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
