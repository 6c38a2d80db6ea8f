"""The retriever's operations without HTTP: search, feedback, document upserts and deletes.

Every method is synchronous and blocking (model inference, store calls, fsyncs); the HTTP
layer runs them in a thread pool. Each request takes one `Serving` snapshot and uses it
throughout.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import ValidationError

from ragctl.core.errors import CollectionNotFoundError, StoreError
from ragctl.core.profile import resolve_profile, tuned_profile
from ragctl.core.records import Chunk, Document, Hit
from ragctl.core.search import SearchMode
from ragctl.retriever.batching import QueryBatcher
from ragctl.retriever.errors import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    NotReadyError,
    PayloadTooLargeError,
)
from ragctl.retriever.feedback_log import FeedbackEvent, FeedbackLog, SearchEvent, open_feedback_log
from ragctl.retriever.schemas import SearchRequest
from ragctl.retriever.serving import Serving, ServingHolder, build_serving, load_serving

if TYPE_CHECKING:
    from ragctl.core.encoder import Encoder
    from ragctl.core.settings import Settings
    from ragctl.core.store.base import VectorStore
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


@dataclass(frozen=True)
class FeedbackOutcome:
    """A stored judgement and its id; `replayed` when its idempotency key was stored before."""

    feedback_id: int
    event: FeedbackEvent
    replayed: bool = False


@dataclass(frozen=True)
class Readiness:
    """Whether the service can answer searches, and why not."""

    ready: bool
    reason: str
    alias_target: str | None = None


@dataclass(frozen=True)
class ReloadOutcome:
    """What a reload of the alias changed."""

    previous: Serving
    current: Serving

    @property
    def changed(self) -> bool:
        return self.previous is not self.current


class RetrieverService:
    """The store, the serving pair and the feedback log, and what the API does with them.

    Build one with `RetrieverService.open(settings)`; `close()` releases what it opened.
    """

    def __init__(
        self,
        settings: Settings,
        store: VectorStore,
        holder: ServingHolder,
        feedback_log: FeedbackLog,
        *,
        owns_store: bool = True,
    ) -> None:
        self.settings = settings
        self.store = store
        self.holder = holder
        self.feedback_log = feedback_log
        self._owns_store = owns_store
        # One writer at a time per collection (ingest plans then writes; two concurrent upserts
        # of one document would race). Promotion/re-embedding can take the same lock.
        self.write_lock = threading.Lock()
        # One admin operation (activate, rollback, reload) at a time in this process; the
        # registry's admin lock serializes them across processes.
        self.admin_lock = threading.Lock()
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
        """Open the store (unless given), the serving pair and the feedback log."""
        from ragctl.core.store import open_store

        owns_store = store is None
        opened = open_store(settings) if store is None else store
        try:
            serving = load_serving(opened, settings, encoder=encoder)
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
        return cls(settings, opened, ServingHolder(serving), feedback_log, owns_store=owns_store)

    def current(self) -> Serving:
        """The serving pair right now (one snapshot)."""
        return self.holder.current()

    # --- search ---
    def search(self, request: SearchRequest) -> SearchOutcome:
        """Encode the query and search the serving collection with one snapshot; log the search.

        What `request` leaves out comes from `settings.search` and the serving collection's
        profile (see `SearchRequest.params`).

        Raises:
            InvalidRequestError: A limit or rule is broken (code `validation_error`, naming
                the field), or the mode needs lexical vectors the collection lacks.
        """
        query = self._check_query(request.query, "query")
        serving = self.holder.current()
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
        started = time.perf_counter()
        vectors = None
        if params.mode is not SearchMode.SPARSE:  # sparse search needs no model call
            if self.batcher is not None:
                vectors = self.batcher.encode(serving.encoder, query)
            else:
                vectors = serving.encoder.encode_queries([query])
        encoded = time.perf_counter()
        hits = self.store.search(serving.physical, vectors, params, text=query)
        searched = time.perf_counter()
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
        logged = time.perf_counter()
        return SearchOutcome(
            search_id=search_id,
            serving=serving,
            hits=hits,
            mode=params.mode,
            encode_s=encoded - started,
            store_s=searched - encoded,
            log_s=logged - searched,
        )

    # --- feedback ---
    def record_feedback(
        self,
        *,
        chunk_id: str,
        label: str,
        search_id: str | None = None,
        query: str | None = None,
        idempotency_key: str | None = None,
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

        Raises:
            NotFoundError: Unknown `search_id` or `chunk_id` (nothing is written).
            InvalidRequestError: Neither `search_id` nor `query`, or a query that contradicts
                the logged search.
            ConflictError: `idempotency_key` was used for a different judgement.
        """
        if idempotency_key is not None:
            stored = self.feedback_log.feedback_by_key(idempotency_key)
            if stored is not None:
                return self._replay(stored, chunk_id, label, search_id, query)
        serving = self.holder.current()
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
            query_text = search.query
            model_version = search.model_version
            collection = search.collection
        elif query is None:
            raise InvalidRequestError(
                "query_required",
                "give the search_id of the search (preferred) or the query",
                field="query",
            )
        else:
            query_text = self._check_query(query, "query")
            model_version = serving.model_version
            collection = serving.physical

        chunk, collection = self._find_chunk(chunk_id, collection, serving.physical)
        if chunk is None:
            raise NotFoundError(
                "chunk_not_found",
                f"no chunk {chunk_id!r} in collection {collection}",
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
            collection=collection,
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
    def upsert_documents(self, documents: Sequence[Document]) -> tuple[Serving, IngestReport]:
        """Chunk, embed and store documents like `ragctl ingest` (unchanged ones write nothing).

        Chunking and embedding run without the write lock (`ingest.staged`); the lock is held
        only to re-plan against the store and write, so an admin operation waiting for it waits
        for a store write, not for a model. Should the serving pair be swapped meanwhile, the
        documents are prepared again for the new pair (so they land in the collection served).

        Raises:
            InvalidRequestError: Too many documents, or one is too long.
            PayloadTooLargeError: Their text together is over `retriever.max_request_text_mib`.
        """
        from ragctl.ingest.pipeline import ingest_documents
        from ragctl.ingest.staged import commit_prepared, prepare_documents

        self._check_documents(documents)
        for _ in range(_SWAPS_BEFORE_LOCKING):
            serving = self.holder.current()
            prepared = prepare_documents(documents, serving, serving.chunker)
            with self.write_lock:
                if self.holder.current() is serving:
                    report = commit_prepared(
                        prepared, serving, upsert_batch_size=self.settings.store.upsert_batch_size
                    )
                    return serving, report
            logger.info("the serving pair changed while documents were embedded; again")
        with self.write_lock:  # swapped every time: embed under the lock, once
            serving = self.holder.current()
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

    def delete_document(self, doc_id: str) -> tuple[Serving, int]:
        """Delete every chunk of `doc_id` from the serving collection.

        Raises:
            NotFoundError: The document has no chunks there.
        """
        with self.write_lock:
            serving = self.holder.current()
            deleted = self.store.delete_documents(serving.physical, [doc_id])
        if not deleted:
            raise NotFoundError(
                "document_not_found",
                f"no document {doc_id!r} in collection {serving.physical}",
                field="doc_id",
            )
        return serving, deleted

    # --- operations ---
    def readiness(self) -> Readiness:
        """Model loaded, store reachable, alias resolved."""
        serving = self.holder.current()
        try:
            target = self.store.resolve(self.settings.collection)
        except CollectionNotFoundError as exc:
            return Readiness(False, f"alias {self.settings.collection!r} does not resolve: {exc}")
        except StoreError as exc:
            return Readiness(False, f"store unreachable: {exc}")
        if target != serving.physical:
            return Readiness(
                True,
                f"serving {serving.physical}; alias {self.settings.collection} points at "
                f"{target} (reload to switch)",
                target,
            )
        return Readiness(True, f"serving {serving.physical}", target)

    def reload(self) -> ReloadOutcome:
        """Serve whatever the alias points at now (after a promotion by another process).

        Loads the new model first (seconds) while the old pair keeps serving, then swaps.
        """
        with self.admin_lock:
            return self._reload()

    def _reload(self) -> ReloadOutcome:
        current = self.holder.current()
        try:
            target = self.store.resolve(self.settings.collection)
        except CollectionNotFoundError as exc:
            raise NotReadyError("collection_not_found", str(exc)) from exc
        spec = self.store.spec(target)
        if target == current.physical and current.profile == resolve_profile(
            self.settings, spec, tuned_profile(self.settings, spec)
        ):
            return ReloadOutcome(current, current)
        with self.write_lock:  # another collection, or a new search profile for this one
            fresh = build_serving(self.store, spec, self.settings, encoder=current.encoder)
            previous = self.holder.swap(fresh)
        return ReloadOutcome(previous, fresh)

    def activate(self, version: int, *, force: bool = False) -> ReloadOutcome:
        """Serve model `version`: re-embed the collection with it, then switch atomically.

        The long re-embedding runs while the old pair keeps serving and accepting writes; a
        final catch-up pass under the write lock embeds what was written meanwhile, verifies
        the counts, switches the alias and swaps the pair in one step for new requests.

        Raises:
            RegistryError: No such version.
            RejectedModelError: The gate rejected it and `force` is not set.
        """
        with self.admin_lock:
            return self._activate(version, force=force)

    def _activate(self, version: int, *, force: bool) -> ReloadOutcome:
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
        current = self.holder.current()
        if current.model_version == version:
            return ReloadOutcome(current, current)
        collection = self.settings.collection
        encoder = version_encoder(current.spec, record, self.settings)
        reembed(self.store, collection=collection, version=version, encoder=encoder, verify=False)
        with self.write_lock:
            fresh = build_serving(
                self.store,
                self.store.spec(physical_name(collection, version)),
                self.settings,
                encoder=encoder,
            )
            sync_collection(fresh, current.physical)
            switch(self.store, registry, collection, version)
            previous = self.holder.swap(fresh)
        return ReloadOutcome(previous, fresh)

    def rollback(self, *, force: bool = False) -> ReloadOutcome:
        """Serve the version that served before the current one (history only goes back).

        Raises:
            ConflictError: Nothing served before the current version.
            RejectedModelError: The earlier version was gate-rejected and `force` is unset.
        """
        with self.admin_lock:
            return self._rollback(force=force)

    def _rollback(self, *, force: bool) -> ReloadOutcome:
        from ragctl.core.collections import encoder_for
        from ragctl.core.registry import ModelRegistry, RegistryError
        from ragctl.tuner.promote import rollback

        registry = ModelRegistry(self.settings.data_dir)
        try:
            registry.rollback_target(self.settings.collection)
        except RegistryError as exc:
            raise ConflictError("nothing_to_roll_back", str(exc)) from exc
        with self.write_lock:
            report = rollback(
                self.store,
                registry,
                self.settings.collection,
                load_encoder=lambda spec: encoder_for(spec, self.settings),
                force=force,
            )
            fresh = build_serving(self.store, self.store.spec(report.to_physical), self.settings)
            previous = self.holder.swap(fresh)
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


def _show(text: str, width: int = 60) -> str:
    shown = repr(text)
    return shown if len(shown) <= width else shown[: width - 4] + "...'"
