"""The retriever's operations without HTTP: search, feedback, documents, embeddings, admin.

Every method is synchronous and blocking (model inference, store calls, fsyncs); the HTTP
layer runs them in a thread pool. A request names its collection (None: the configured
default); it takes one `Serving` snapshot of that collection and uses it throughout.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import ValidationError

from ragctl.core.errors import CollectionNotFoundError, StoreError
from ragctl.core.profile import resolve_profile, tuned_profile
from ragctl.core.records import Chunk, Document, Hit
from ragctl.core.search import SearchMode, SearchParams
from ragctl.core.store.base import StoredDocument, parse_physical
from ragctl.retriever.batching import QueryBatcher
from ragctl.retriever.errors import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    NotReadyError,
    PayloadTooLargeError,
)
from ragctl.retriever.feedback_log import FeedbackEvent, FeedbackLog, SearchEvent, open_feedback_log
from ragctl.retriever.schemas import (
    BatchSearchRequest,
    EmbeddingsRequest,
    SearchOptions,
    SearchRequest,
)
from ragctl.retriever.serving import ServedCollection, ServedCollections, Serving

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from ragctl.core.encoder import Encoder
    from ragctl.core.settings import Settings
    from ragctl.core.store.base import CollectionSpec, VectorStore
    from ragctl.ingest.pipeline import IngestReport

logger = logging.getLogger(__name__)

# An upsert whose serving pair is swapped while it embeds prepares again; after this many
# swaps in a row it embeds under the lock instead.
_SWAPS_BEFORE_LOCKING = 3


@dataclass(frozen=True)
class SearchOutcome:
    """A finished search, with the pair that answered it and the time of each stage."""

    search_id: str
    serving: Serving
    hits: list[Hit]
    mode: SearchMode
    encode_s: float
    store_s: float
    log_s: float
    queue_s: float = 0.0
    """Waiting for the query encoder (micro-batching); not part of `encode_s`."""
    encode_batch: int = 0
    """Queries encoded in the same model call as this one (0: no model call, sparse mode)."""


@dataclass(frozen=True)
class BatchSearchOutcome:
    """A finished batch: one (search_id, query, hits) per query, one pair for all of them."""

    serving: Serving
    searches: list[tuple[str, str, list[Hit]]]
    mode: SearchMode
    encode_s: float
    store_s: float
    log_s: float


@dataclass(frozen=True)
class EmbeddingsOutcome:
    """Vectors of the inputs (rows, in order), and the pair whose model made them."""

    serving: Serving
    vectors: NDArray[np.float32]
    tokens: int


@dataclass(frozen=True)
class FeedbackOutcome:
    """A stored judgement and its id; `replayed` when its idempotency key was stored before."""

    feedback_id: int
    event: FeedbackEvent
    replayed: bool = False


@dataclass(frozen=True)
class CollectionReadiness:
    """Whether one loaded collection can be searched, and why not."""

    served: ServedCollection
    ready: bool
    reason: str


@dataclass(frozen=True)
class Readiness:
    """Whether the service can answer searches of the default collection, and why not; with
    the state of every loaded collection."""

    ready: bool
    reason: str
    alias_target: str | None = None
    collections: tuple[CollectionReadiness, ...] = ()


@dataclass(frozen=True)
class ReloadOutcome:
    """What a reload of the alias changed."""

    previous: Serving
    current: Serving

    @property
    def changed(self) -> bool:
        return self.previous is not self.current


class RetrieverService:
    """The store, the served collections and the feedback log, and what the API does with them.

    Build one with `RetrieverService.open(settings)`; `close()` releases what it opened.
    """

    def __init__(
        self,
        settings: Settings,
        store: VectorStore,
        collections: ServedCollections,
        feedback_log: FeedbackLog,
        *,
        owns_store: bool = True,
    ) -> None:
        self.settings = settings
        self.store = store
        self.collections = collections
        self.feedback_log = feedback_log
        self._owns_store = owns_store
        batch = settings.retriever.query_batch_size
        self.batcher = (
            QueryBatcher(batch, workers=settings.retriever.query_encoder_threads)
            if batch > 1
            else None
        )

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        encoder: Encoder | None = None,
        store: VectorStore | None = None,
    ) -> RetrieverService:
        """Open the store (unless given), the default collection's pair and the feedback log;
        other collections load on first use."""
        from ragctl.core.store import open_store

        owns_store = store is None
        opened = open_store(settings) if store is None else store
        try:
            collections = ServedCollections(opened, settings, encoder=encoder)
            serving = collections.open_default().current()
            feedback_log = open_feedback_log(settings)
        except BaseException:
            if owns_store:
                opened.close()
            raise
        logger.info(
            "retriever serving %s (model %s) with feedback log %s",
            serving.physical,
            serving.spec.model,
            feedback_log.location,
        )
        return cls(settings, opened, collections, feedback_log, owns_store=owns_store)

    def current(self, collection: str | None = None) -> Serving:
        """The serving pair of `collection` (None: the default) right now (one snapshot)."""
        return self.collections.get(collection).current()

    # --- search ---
    def search(self, request: SearchRequest) -> SearchOutcome:
        """Encode the query and search its collection with one snapshot; log the search.

        What `request` leaves out comes from `settings.search` and the collection's profile
        (see `SearchRequest.params`).

        Raises:
            InvalidRequestError: A limit or rule is broken (code `validation_error`, naming
                the field), or the mode needs lexical vectors the collection lacks.
            NotFoundError: 404 `collection_not_found`.
        """
        query = self._check_query(request.query, "query")
        serving = self.collections.get(request.collection).current()
        params = self._params(request, serving)
        started = time.perf_counter()
        vectors = None
        queue_s, encode_batch = 0.0, 0
        if params.mode is not SearchMode.SPARSE:  # sparse search needs no model call
            if self.batcher is not None:
                batched = self.batcher.encode(serving.encoder, query)
                vectors, queue_s = batched.embeddings, batched.queued_s
                encode_batch = batched.batch_size
            else:
                vectors, encode_batch = serving.encoder.encode_queries([query]), 1
        encoded = time.perf_counter()
        hits = self.store.search(serving.physical, vectors, params, text=query)
        searched = time.perf_counter()
        search_id = self._log_search(serving, query, params, hits)
        logged = time.perf_counter()
        return SearchOutcome(
            search_id=search_id,
            serving=serving,
            hits=hits,
            mode=params.mode,
            encode_s=encoded - started - queue_s,
            store_s=searched - encoded,
            log_s=logged - searched,
            queue_s=queue_s,
            encode_batch=encode_batch,
        )

    def search_batch(self, request: BatchSearchRequest) -> BatchSearchOutcome:
        """Search many queries with one snapshot: one encode call for all of them, one store
        call; each query is logged as its own search (its own `search_id`).

        Raises:
            InvalidRequestError: As `search`, naming `queries.N` for a bad query.
            NotFoundError: 404 `collection_not_found`.
        """
        queries = [self._check_query(q, f"queries.{i}") for i, q in enumerate(request.queries)]
        serving = self.collections.get(request.collection).current()
        params = self._params(request, serving)
        started = time.perf_counter()
        vectors = None
        if params.mode is not SearchMode.SPARSE:
            vectors = serving.encoder.encode_queries(queries)  # the whole batch in one call
        encoded = time.perf_counter()
        found = self.store.search_batch(serving.physical, vectors, params, texts=queries)
        searched = time.perf_counter()
        searches = [
            (self._log_search(serving, query, params, hits), query, hits)
            for query, hits in zip(queries, found, strict=True)
        ]
        logged = time.perf_counter()
        return BatchSearchOutcome(
            serving=serving,
            searches=searches,
            mode=params.mode,
            encode_s=encoded - started,
            store_s=searched - encoded,
            log_s=logged - searched,
        )

    def _params(self, request: SearchOptions, serving: Serving) -> SearchParams:
        try:
            params = request.params(self.settings.search, serving.profile)
        except ValidationError as exc:  # answered like the request's own validation errors
            error = exc.errors()[0]
            field = ".".join(str(p) for p in error["loc"])
            message = str(error["msg"]).removeprefix("Value error, ")
            raise InvalidRequestError(
                "validation_error", f"{field}: {message}", field=field
            ) from exc
        if params.mode is not SearchMode.DENSE and serving.spec.lexical is None:
            raise InvalidRequestError(
                "validation_error",
                f"{serving.physical} has no lexical vectors, so mode '{params.mode}' is not "
                "available (it was created with lexical.enabled = false or before hybrid "
                "search); use dense",
                field="mode",
            )
        return params

    def _log_search(
        self, serving: Serving, query: str, params: SearchParams, hits: list[Hit]
    ) -> str:
        search_id = uuid.uuid4().hex
        self.feedback_log.log_search(
            SearchEvent(
                search_id=search_id,
                query=query,
                k=params.k,
                model_version=serving.model_version,
                collection=serving.physical,
                chunk_ids=tuple(h.chunk_id for h in hits),
                single_stage=params.single_stage,
            )
        )
        return search_id

    # --- feedback ---
    def record_feedback(
        self,
        *,
        chunk_id: str,
        label: str,
        search_id: str | None = None,
        query: str | None = None,
        idempotency_key: str | None = None,
        collection: str | None = None,
    ) -> FeedbackOutcome:
        """Store a judgement of `chunk_id` for a logged search (or a bare query).

        With `search_id`, the query and model version come from the logged search and the chunk
        is looked up in the collection that search used (the serving one if that was dropped).
        The chunk need not be among the search's results: a relevant chunk the search missed is
        the most useful signal; `rank` records where (or whether) it was returned. Without
        `search_id` the judgement is stored as free text (`free_text`): the query is the
        client's own, and `ragctl retune` leaves such rows out unless asked.

        With `idempotency_key`, a retry of the same judgement (a lost response) is stored once:
        the stored record comes back with `replayed` set.

        `collection`: with `search_id` the search's collection is used (a different one given
        is refused); without, the collection the chunk is in (None: the default).

        Raises:
            NotFoundError: Unknown `search_id`, `chunk_id` or collection (nothing is written).
            InvalidRequestError: Neither `search_id` nor `query`, or a query or collection that
                contradicts the logged search.
            ConflictError: `idempotency_key` was used for a different judgement.
        """
        if idempotency_key is not None:
            stored = self.feedback_log.feedback_by_key(idempotency_key)
            if stored is not None:
                return self._replay(stored, chunk_id, label, search_id, query)
        search = None
        if search_id is not None:
            search = self.feedback_log.get_search(search_id)
            if search is None:
                raise NotFoundError(
                    "search_not_found", f"no logged search with id {search_id!r}", field="search_id"
                )
            if query is not None and query.strip() != search.query.strip():
                raise InvalidRequestError(
                    "query_mismatch",
                    f"query {_show(query)} differs from the query of search {search_id!r} "
                    f"({_show(search.query)}); leave query out when giving search_id",
                    field="query",
                )
            name = _logical(search.collection)
            if collection is not None and collection != name:
                raise InvalidRequestError(
                    "collection_mismatch",
                    f"search {search_id!r} was made in collection {name!r}, not {collection!r}; "
                    "leave collection out when giving search_id",
                    field="collection",
                )
            query_text = search.query
            model_version = search.model_version
            physical = search.collection
            try:
                fallback = self.collections.target(name)
            except NotFoundError:  # the collection's alias is gone: its physical one may stay
                fallback = physical
        elif query is None:
            raise InvalidRequestError(
                "query_required",
                "give the search_id of the search (preferred) or the query",
                field="query",
            )
        else:
            query_text = self._check_query(query, "query")
            physical = fallback = self.collections.target(collection)
            model_version = parse_physical(physical)[1]

        chunk, physical = self._find_chunk(chunk_id, physical, fallback)
        if chunk is None:
            raise NotFoundError(
                "chunk_not_found",
                f"no chunk {chunk_id!r} in collection {physical}",
                field="chunk_id",
            )
        rank = None
        if search is not None and chunk_id in search.chunk_ids:
            rank = search.chunk_ids.index(chunk_id) + 1
        event = FeedbackEvent(
            query=query_text,
            chunk_id=chunk.chunk_id,
            doc_id=chunk.doc_id,
            label=label,
            chunk_text=chunk.text,
            model_version=model_version,
            collection=physical,
            search_id=search_id,
            rank=rank,
            free_text=search is None,
            idempotency_key=idempotency_key,
        )
        feedback_id, stored_now = self.feedback_log.log_feedback_once(event)
        if not stored_now:  # a concurrent retry with the same key stored it first
            stored = self.feedback_log.feedback_by_key(idempotency_key or "")
            if stored is not None:
                return self._replay(stored, chunk_id, label, search_id, query)
        return FeedbackOutcome(feedback_id, event)

    @staticmethod
    def _replay(
        stored: tuple[int, FeedbackEvent],
        chunk_id: str,
        label: str,
        search_id: str | None,
        query: str | None,
    ) -> FeedbackOutcome:
        feedback_id, event = stored
        same = (
            event.chunk_id == chunk_id
            and event.label == label
            and event.search_id == search_id
            and (query is None or query.strip() == event.query.strip())
        )
        if not same:
            raise ConflictError(
                "idempotency_key_reused",
                f"idempotency key {event.idempotency_key!r} was used for another judgement "
                f"(feedback {feedback_id}: {event.label} for chunk {event.chunk_id!r}); "
                "use a new key for each judgement",
                field="idempotency_key",
            )
        return FeedbackOutcome(feedback_id, event, replayed=True)

    def _find_chunk(self, chunk_id: str, physical: str, fallback: str) -> tuple[Chunk | None, str]:
        try:
            return self.store.get_chunks(physical, [chunk_id]).get(chunk_id), physical
        except CollectionNotFoundError:
            if physical == fallback:
                raise
            logger.info("collection %s is gone; looking up %r in %s", physical, chunk_id, fallback)
            return self.store.get_chunks(fallback, [chunk_id]).get(chunk_id), fallback

    # --- documents ---
    def upsert_documents(
        self, documents: Sequence[Document], collection: str | None = None
    ) -> tuple[Serving, IngestReport]:
        """Chunk, embed and store documents like `ragctl ingest` (unchanged ones write nothing)
        in `collection` (None: the default).

        Chunking and embedding run without the write lock (`ingest.staged`); the lock is held
        only to re-plan against the store and write, so an admin operation waiting for it waits
        for a store write, not for a model. Should the serving pair be swapped meanwhile, the
        documents are prepared again for the new pair (so they land in the collection served).

        Raises:
            InvalidRequestError: Too many documents, or one is too long.
            PayloadTooLargeError: Their text together is over `retriever.max_request_text_mib`.
            NotFoundError: 404 `collection_not_found`.
        """
        from ragctl.ingest.pipeline import ingest_documents
        from ragctl.ingest.staged import commit_prepared, prepare_documents

        self._check_documents(documents)
        served = self.collections.get(collection)
        for _ in range(_SWAPS_BEFORE_LOCKING):
            serving = served.current()
            prepared = prepare_documents(documents, serving, serving.chunker)
            with served.write_lock:
                if served.current() is serving:
                    report = commit_prepared(
                        prepared, serving, upsert_batch_size=self.settings.store.upsert_batch_size
                    )
                    return serving, report
            logger.info("the serving pair changed while documents were embedded; again")
        with served.write_lock:  # swapped every time: embed under the lock, once
            serving = served.current()
            report = ingest_documents(
                documents,
                serving,
                serving.chunker,
                upsert_batch_size=self.settings.store.upsert_batch_size,
            )
        return serving, report

    def _check_documents(self, documents: Sequence[Document]) -> None:
        limits = self.settings.retriever
        if len(documents) > limits.max_documents_per_request:
            raise InvalidRequestError(
                "validation_error",
                f"{len(documents)} documents in one request; the limit is "
                f"{limits.max_documents_per_request}",
                field="documents",
            )
        for i, doc in enumerate(documents):
            if len(doc.text) > limits.max_document_chars:
                raise InvalidRequestError(
                    "validation_error",
                    f"document {doc.doc_id!r} has {len(doc.text)} characters; the limit is "
                    f"{limits.max_document_chars}",
                    field=f"documents.{i}.text",
                )
        limit = int(limits.max_request_text_mib * 1024 * 1024)
        total = 0
        for doc in documents:
            total += len(doc.text.encode("utf-8"))
            if total > limit:
                raise PayloadTooLargeError(
                    "payload_too_large",
                    f"the documents of one request hold over {limit} bytes of text "
                    f"(retriever.max_request_text_mib = {limits.max_request_text_mib:g}); "
                    "send them in several requests",
                    field="documents",
                )

    def delete_document(self, doc_id: str, collection: str | None = None) -> tuple[str, int]:
        """Delete every chunk of `doc_id` from `collection` (None: the default); returns the
        physical collection and the chunks deleted.

        Raises:
            NotFoundError: The document has no chunks there, or no such collection.
        """
        served = self._served_if_loaded(collection)
        if served is None:  # not loaded here: no swap of it to race with, no model needed
            physical = self.collections.target(collection)
            deleted = self.store.delete_documents(physical, [doc_id])
        else:
            with served.write_lock:
                physical = served.current().physical
                deleted = self.store.delete_documents(physical, [doc_id])
        if not deleted:
            raise NotFoundError(
                "document_not_found",
                f"no document {doc_id!r} in collection {physical}",
                field="doc_id",
            )
        return physical, deleted

    def list_documents(
        self,
        collection: str | None = None,
        *,
        prefix: str | None = None,
        payload_filter: dict[str, object] | None = None,
    ) -> tuple[str, list[StoredDocument]]:
        """The documents of `collection` (None: the default) whose id starts with `prefix` and
        which have a chunk matching `payload_filter`, sorted by id; with the physical
        collection read. Needs no model.

        Raises:
            InvalidRequestError: The filter breaks a rule (field `filter`).
            NotFoundError: 404 `collection_not_found`.
        """
        from ragctl.core.search import parse_filter

        try:
            parse_filter(payload_filter)
        except ValueError as exc:
            raise InvalidRequestError("validation_error", f"filter: {exc}", field="filter") from exc
        physical = self.collections.target(collection)
        return physical, self.store.documents(
            physical, prefix=prefix, payload_filter=payload_filter
        )

    def get_document(self, doc_id: str, collection: str | None = None) -> tuple[str, list[Chunk]]:
        """The chunks of `doc_id` by index, and the physical collection read.

        Raises:
            NotFoundError: 404 `document_not_found` (no chunks), or `collection_not_found`.
        """
        physical = self.collections.target(collection)
        chunks = self.store.document_chunks(physical, doc_id)
        if not chunks:
            raise NotFoundError(
                "document_not_found",
                f"no document {doc_id!r} in collection {physical}",
                field="doc_id",
            )
        return physical, chunks

    def _served_if_loaded(self, collection: str | None) -> ServedCollection | None:
        return self.collections.loaded_one(collection or self.collections.default)

    # --- embeddings ---
    def embed(self, request: EmbeddingsRequest) -> EmbeddingsOutcome:
        """Embed texts with the serving model of a collection (`model`: its name, or `ragctl`
        for the default), OpenAI-style; `dimensions` keeps the first N, renormalized.

        Raises:
            InvalidRequestError: Too many or too long inputs, or `dimensions` over the model's.
            PayloadTooLargeError: The inputs' text together is over `max_request_text_mib`.
            NotFoundError: 404 `collection_not_found` for an unknown `model`.
        """
        from ragctl.core.api import EMBEDDINGS_MODEL
        from ragctl.core.matryoshka import truncate

        texts = request.texts()
        self._check_texts(texts)
        name = None if request.model == EMBEDDINGS_MODEL else request.model
        if name is not None and name not in self.store.aliases():
            raise NotFoundError(
                "collection_not_found",
                f"model {name!r} is neither {EMBEDDINGS_MODEL!r} nor a collection; collections: "
                f"{', '.join(sorted(self.store.aliases())) or 'none'}",
                field="model",
            )
        serving = self.collections.get(name).current()
        encoder = serving.encoder
        dim = request.dimensions
        if dim is not None and dim > encoder.dim:
            raise InvalidRequestError(
                "validation_error",
                f"dimensions {dim} is over the model's {encoder.dim}",
                field="dimensions",
            )
        prompt = encoder.query_prompt if request.input_type == "query" else encoder.document_prompt
        full = encoder.encode_full(texts, prompt)
        vectors = full if dim is None or dim == encoder.dim else truncate(full, dim)
        return EmbeddingsOutcome(serving, vectors, _count_tokens(encoder, texts, prompt))

    def _check_texts(self, texts: Sequence[str]) -> None:
        limits = self.settings.retriever
        if len(texts) > limits.max_documents_per_request:
            raise InvalidRequestError(
                "validation_error",
                f"{len(texts)} inputs in one request; the limit is "
                f"{limits.max_documents_per_request} (retriever.max_documents_per_request)",
                field="input",
            )
        total = 0
        limit = int(limits.max_request_text_mib * 1024 * 1024)
        for i, text in enumerate(texts):
            if len(text) > limits.max_document_chars:
                raise InvalidRequestError(
                    "validation_error",
                    f"input {i} has {len(text)} characters; the limit is "
                    f"{limits.max_document_chars}",
                    field=f"input.{i}",
                )
            total += len(text.encode("utf-8"))
            if total > limit:
                raise PayloadTooLargeError(
                    "payload_too_large",
                    f"the inputs of one request hold over {limit} bytes of text "
                    f"(retriever.max_request_text_mib = {limits.max_request_text_mib:g})",
                    field="input",
                )

    # --- collections ---
    def list_collections(self) -> list[tuple[str, CollectionSpec, int, bool]]:
        """Every collection (alias) of the store: (name, spec of what requests use now, points,
        loaded here), sorted by name."""
        aliases = self.store.aliases()
        listed = []
        for name in sorted(aliases):
            served = self.collections.loaded_one(name)
            physical = served.current().physical if served is not None else aliases[name]
            try:
                spec = self.store.spec(physical)
            except CollectionNotFoundError:
                continue  # an alias ragctl did not make, or one pointing at nothing
            listed.append((name, spec, self.store.count(physical), served is not None))
        return listed

    def serving_physicals(self) -> set[str]:
        """The physical collections requests use now: a loaded collection's served one, else
        the one its alias points at."""
        return {self.collections.target(name) for name in self.store.aliases()}

    def create_collection(self, name: str) -> ServedCollection:
        """A new, empty collection `name` (`NAME__v1`, embedded by `model.name_or_path`, or the
        base model registered for it), loaded at once.

        Raises:
            ConflictError: 409 `collection_exists`.
        """
        from ragctl.core.collections import open_or_create

        if name in self.store.aliases():
            raise ConflictError(
                "collection_exists", f"collection {name!r} exists already", field="name"
            )
        with self.collections.admin_lock:
            if name not in self.store.aliases():
                shared = self.collections.shared_encoder_for_settings()
                open_or_create(self.store, self.settings, name, encoder=shared)
        return self.collections.get(name)

    # --- operations ---
    def readiness(self) -> Readiness:
        """The default collection: model loaded, store reachable, alias resolved; and the same
        for every other loaded collection."""
        states = tuple(self._collection_readiness(s) for s in self.collections.loaded())
        default = next(s for s in states if s.served.name == self.collections.default)
        target = self._alias_target(default.served.name)
        return Readiness(default.ready, default.reason, target, states)

    def _alias_target(self, name: str) -> str | None:
        try:
            return self.store.resolve(name)
        except StoreError:
            return None

    def _collection_readiness(self, served: ServedCollection) -> CollectionReadiness:
        serving = served.current()
        name = served.name
        try:
            target = self.store.resolve(name)
        except CollectionNotFoundError as exc:
            return CollectionReadiness(served, False, f"alias {name!r} does not resolve: {exc}")
        except StoreError as exc:
            return CollectionReadiness(served, False, f"store unreachable: {exc}")
        if target != serving.physical:
            return CollectionReadiness(
                served,
                True,
                f"serving {serving.physical}; alias {name} points at {target} (reload to switch)",
            )
        return CollectionReadiness(served, True, f"serving {serving.physical}")

    def reload(self, collection: str | None = None) -> ReloadOutcome:
        """Serve whatever the alias of `collection` (None: the default) points at now (after a
        promotion by another process).

        Loads the new model first (seconds) while the old pair keeps serving, then swaps.
        """
        served = self.collections.get(collection)
        with served.admin_lock:
            return self._reload(served)

    def _reload(self, served: ServedCollection) -> ReloadOutcome:
        current = served.current()
        try:
            target = self.store.resolve(served.name)
        except CollectionNotFoundError as exc:
            raise NotReadyError("collection_not_found", str(exc)) from exc
        spec = self.store.spec(target)
        if target == current.physical and current.profile == resolve_profile(
            self.settings, spec, tuned_profile(self.settings, spec)
        ):
            return ReloadOutcome(current, current)
        encoder = self.collections.encoder_for(spec)  # a new model loads before the lock
        with served.write_lock:  # another collection, or a new search profile for this one
            fresh = self.collections.build(spec, encoder=encoder)
            previous = served.holder.swap(fresh)
        return ReloadOutcome(previous, fresh)

    def activate(
        self, version: int, *, force: bool = False, collection: str | None = None
    ) -> ReloadOutcome:
        """Serve model `version` in `collection` (None: the default): re-embed the collection
        with it, then switch atomically.

        The long re-embedding runs while the old pair keeps serving and accepting writes; a
        final catch-up pass under the collection's write lock embeds what was written
        meanwhile, verifies the counts, switches the alias and swaps the pair in one step for
        new requests. Other collections are untouched.

        Raises:
            RegistryError: No such version.
            RejectedModelError: The gate rejected it and `force` is not set.
        """
        served = self.collections.get(collection)
        with served.admin_lock:
            return self._activate(served, version, force=force)

    def _activate(self, served: ServedCollection, version: int, *, force: bool) -> ReloadOutcome:
        from dataclasses import replace

        from ragctl.core.registry import ModelRegistry
        from ragctl.core.store.base import physical_name
        from ragctl.tuner.promote import (
            check_servable,
            reembed,
            switch,
            sync_collection,
            version_encoder,
        )

        registry = ModelRegistry(self.settings.data_dir)
        record = registry.get(version)
        check_servable(record, force=force)
        current = served.current()
        if current.model_version == version:
            return ReloadOutcome(current, current)
        name = served.name
        wanted = replace(current.spec, version=record.version, model=record.ref)
        encoder = self.collections.shared_encoder(wanted) or version_encoder(
            current.spec, record, self.settings
        )
        reembed(self.store, collection=name, version=version, encoder=encoder, verify=False)
        with served.write_lock:
            fresh = self.collections.build(
                self.store.spec(physical_name(name, version)), encoder=encoder
            )
            sync_collection(fresh, current.physical)
            switch(self.store, registry, name, version)
            previous = served.holder.swap(fresh)
        return ReloadOutcome(previous, fresh)

    def rollback(self, *, force: bool = False, collection: str | None = None) -> ReloadOutcome:
        """Serve the version that served `collection` (None: the default) before the current
        one (history only goes back).

        Raises:
            ConflictError: Nothing served before the current version.
            RejectedModelError: The earlier version was gate-rejected and `force` is unset.
        """
        served = self.collections.get(collection)
        with served.admin_lock:
            return self._rollback(served, force=force)

    def _rollback(self, served: ServedCollection, *, force: bool) -> ReloadOutcome:
        from ragctl.core.registry import ModelRegistry, RegistryError
        from ragctl.tuner.promote import rollback

        registry = ModelRegistry(self.settings.data_dir)
        try:
            registry.rollback_target(served.name)
        except RegistryError as exc:
            raise ConflictError("nothing_to_roll_back", str(exc)) from exc
        with served.write_lock:
            report = rollback(
                self.store,
                registry,
                served.name,
                load_encoder=self.collections.encoder_for,
                force=force,
            )
            fresh = self.collections.build(self.store.spec(report.to_physical))
            previous = served.holder.swap(fresh)
        return ReloadOutcome(previous, fresh)

    def close(self) -> None:
        """Close the feedback log and the store (when this service opened it)."""
        try:
            if self.batcher is not None:
                self.batcher.close()
            self.feedback_log.close()
        finally:
            if self._owns_store:
                self.store.close()

    def _check_query(self, query: str, field: str) -> str:
        if not query.strip():
            raise InvalidRequestError("validation_error", f"{field} is empty", field=field)
        limit = self.settings.retriever.max_query_chars
        if len(query) > limit:
            raise InvalidRequestError(
                "validation_error",
                f"{field} has {len(query)} characters; the limit is {limit}",
                field=field,
            )
        return query


def _logical(physical: str) -> str:
    """`docs` of `docs__v2`."""
    return parse_physical(physical)[0]


def _count_tokens(encoder: Encoder, texts: Sequence[str], prompt: str) -> int:
    """Tokens the model reads of `texts` (prompt and special tokens included, truncated to
    its window)."""
    limit = encoder.max_seq_length
    encoded = encoder.tokenizer.encode_batch([prompt + t for t in texts])
    return sum(min(len(e.ids), limit) for e in encoded)


def _show(text: str, width: int = 60) -> str:
    shown = repr(text)
    return shown if len(shown) <= width else shown[: width - 4] + "...'"
