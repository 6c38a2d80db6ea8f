"""`Client`: the blocking client of a ragctl retriever (httpx)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal

import httpx

from ragctl.client._calls import (
    RETRIED_ERRORS,
    Call,
    Calls,
    Label,
    RetryPolicy,
    T,
    check_base_url,
    client_headers,
    parse_answer,
    transport_error,
)
from ragctl.core.api import (
    BatchSearchResponse,
    CollectionList,
    CollectionsResponse,
    CollectionSummary,
    DeleteResponse,
    DocumentDetail,
    DocumentIn,
    DocumentsPage,
    DocumentsResponse,
    DocumentSummary,
    EmbeddingsResponse,
    FeedbackResponse,
    FeedbackStatsResponse,
    HealthResponse,
    ModelDetail,
    ModelsResponse,
    ReadyResponse,
    ReloadResponse,
    ReportDetail,
    ReportsResponse,
    RetuneStatusResponse,
    SearchRequest,
    SearchResponse,
)
from ragctl.core.search import SearchMode


class Client:
    """Calls one retriever (`ragctl serve`) at `base_url`.

    Args:
        base_url: `http(s)://host:port` of the server.
        api_key: Sent as `Authorization: Bearer <key>` on every request: a read key for
            searches and embeddings (when the server has read keys), write for documents and
            feedback, admin for the admin calls (a higher role does what a lower one does).
        collection: The collection every call uses unless it names one (None: the server's
            configured `collection`).
        timeout_s: Seconds to wait for an answer (connect, read, write, each); a
            `httpx.Timeout` for finer control.
        retry: When and how long to wait before retrying (429, 503, connection errors);
            `RetryPolicy(max_retries=0)` turns retries off.
        headers: More headers for every request.
        transport: An httpx transport (tests pass `httpx.MockTransport`).

    Every call returns the answer's typed model, or raises a `ClientError`: an `ApiError`
    subclass with the server's `status` and `code`, or `ApiConnectionError`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        collection: str | None = None,
        timeout_s: float | httpx.Timeout = 30.0,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = check_base_url(base_url)
        self.retry = retry or RetryPolicy()
        self.calls = Calls(collection)
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=client_headers(api_key, headers),
            timeout=timeout_s,
            transport=transport,
        )

    # --- lifecycle ---
    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- sending ---
    def send(self, call: Call[T]) -> T:
        """Send one call, retrying as `self.retry` says; its answer as its model."""
        attempt = 0
        while True:
            try:
                response = self._http.request(
                    call.method,
                    call.path,
                    **call.request_kwargs(),
                    timeout=httpx.USE_CLIENT_DEFAULT if call.timeout_s is None else call.timeout_s,
                )
            except RETRIED_ERRORS as exc:
                wait_s = self.retry.wait_s(attempt, None) if call.retry else None
                if wait_s is None:
                    raise transport_error(exc, self.base_url) from exc
            except httpx.TransportError as exc:
                raise transport_error(exc, self.base_url) from exc
            else:
                wait_s = self.retry.wait_s(attempt, response) if call.retry else None
                if wait_s is None:
                    return parse_answer(call, response)
            time.sleep(wait_s)
            attempt += 1

    # --- operations ---
    def health(self) -> HealthResponse:
        """`GET /v1/health`: the process is up (not retried)."""
        return self.send(self.calls.health())

    def ready(self) -> ReadyResponse:
        """`GET /v1/ready`: the default collection can be searched; every loaded collection's
        state in `collections` (not retried: a 503 raises `ServiceUnavailableError`)."""
        return self.send(self.calls.ready())

    def collections(self) -> CollectionList:
        """`GET /v1/collections`: every collection a request can name."""
        return self.send(self.calls.collections())

    def search(
        self,
        query: str | SearchRequest,
        *,
        k: int | None = None,
        shortlist: int | None = None,
        filter: Mapping[str, Any] | None = None,
        single_stage: bool = False,
        mode: SearchMode | str | None = None,
        score_threshold: float | None = None,
        collection: str | None = None,
    ) -> SearchResponse:
        """`POST /v1/search`: the chunks that best answer `query` (or a whole
        `SearchRequest`). Unset parameters take the server's defaults and the collection's
        profile; `filter` is the search filter language (values, ranges, `must_not`)."""
        return self.send(
            self.calls.search(
                query,
                k=k,
                shortlist=shortlist,
                filter=filter,
                single_stage=single_stage,
                mode=mode,
                score_threshold=score_threshold,
                collection=collection,
            )
        )

    def search_batch(
        self,
        queries: Sequence[str],
        *,
        k: int | None = None,
        shortlist: int | None = None,
        filter: Mapping[str, Any] | None = None,
        single_stage: bool = False,
        mode: SearchMode | str | None = None,
        score_threshold: float | None = None,
        collection: str | None = None,
    ) -> BatchSearchResponse:
        """`POST /v1/search/batch`: many queries (1-100), one request, one encode call; one
        answer per query in `searches`, in order, each with its own `search_id`."""
        return self.send(
            self.calls.search_batch(
                queries,
                k=k,
                shortlist=shortlist,
                filter=filter,
                single_stage=single_stage,
                mode=mode,
                score_threshold=score_threshold,
                collection=collection,
            )
        )

    def feedback(
        self,
        *,
        chunk_id: str,
        label: Label = "relevant",
        search_id: str | None = None,
        query: str | None = None,
        idempotency_key: str | None = None,
        collection: str | None = None,
    ) -> FeedbackResponse:
        """`POST /v1/feedback`: judge a chunk for a search (`search_id`, preferred) or a bare
        `query`. Sent with an idempotency key (a fresh one unless given), so a retry after a
        lost answer is stored once."""
        return self.send(
            self.calls.feedback(
                chunk_id=chunk_id,
                label=label,
                search_id=search_id,
                query=query,
                idempotency_key=idempotency_key,
                collection=collection,
            )
        )

    def upsert_documents(
        self,
        documents: Iterable[DocumentIn | Mapping[str, Any]],
        *,
        collection: str | None = None,
    ) -> DocumentsResponse:
        """`POST /v1/documents`: chunk, embed and store documents (`{"id", "text",
        "metadata"?, "source"?}` or `DocumentIn`); unchanged ones write nothing."""
        return self.send(self.calls.upsert_documents(documents, collection=collection))

    def list_documents(
        self,
        *,
        prefix: str | None = None,
        filter: Mapping[str, Any] | None = None,
        offset: int = 0,
        limit: int = 50,
        collection: str | None = None,
    ) -> DocumentsPage:
        """`GET /v1/documents`: one page of documents sorted by id (`next_offset`: the next
        page's offset, None at the end)."""
        return self.send(
            self.calls.list_documents(
                prefix=prefix, filter=filter, offset=offset, limit=limit, collection=collection
            )
        )

    def iter_documents(
        self,
        *,
        prefix: str | None = None,
        filter: Mapping[str, Any] | None = None,
        page_size: int = 500,
        collection: str | None = None,
    ) -> Iterator[DocumentSummary]:
        """Every document, page by page (`list_documents` until `next_offset` is None)."""
        offset: int | None = 0
        while offset is not None:
            page = self.list_documents(
                prefix=prefix, filter=filter, offset=offset, limit=page_size, collection=collection
            )
            yield from page.documents
            offset = page.next_offset

    def get_document(self, doc_id: str, *, collection: str | None = None) -> DocumentDetail:
        """`GET /v1/documents/{doc_id}`: a document and its chunks (404: `NotFoundError`)."""
        return self.send(self.calls.get_document(doc_id, collection=collection))

    def delete_document(self, doc_id: str, *, collection: str | None = None) -> DeleteResponse:
        """`DELETE /v1/documents/{doc_id}`: every chunk of a document (404 if none)."""
        return self.send(self.calls.delete_document(doc_id, collection=collection))

    def embed(
        self,
        texts: str | Sequence[str],
        *,
        dimensions: int | None = None,
        input_type: Literal["query", "document"] = "document",
        collection: str | None = None,
    ) -> EmbeddingsResponse:
        """`POST /v1/embeddings`: vectors by the model serving `collection` (`model` and
        `model_version` say which); `dimensions` keeps the first N, renormalized."""
        return self.send(
            self.calls.embed(
                texts, dimensions=dimensions, input_type=input_type, collection=collection
            )
        )

    # --- what the console reads (a read key when the server has read keys) ---
    def models(self, *, collection: str | None = None) -> ModelsResponse:
        """`GET /v1/models`: every model version, which one serves the collection, its profile."""
        return self.send(self.calls.models(collection=collection))

    def model(self, version: int) -> ModelDetail:
        """`GET /v1/models/{version}`: one version with its training, gate and evaluation."""
        return self.send(self.calls.model(version))

    def feedback_stats(
        self, *, days: int = 30, collection: str | None = None
    ) -> FeedbackStatsResponse:
        """`GET /v1/feedback/stats`: judgements by label, by day (the last `days`), newest."""
        return self.send(self.calls.feedback_stats(days=days, collection=collection))

    def retune_status(self, *, collection: str | None = None) -> RetuneStatusResponse:
        """`GET /v1/retune/status`: the latest retune of the collection (running, finished...)."""
        return self.send(self.calls.retune_status(collection=collection))

    def reports(self) -> ReportsResponse:
        """`GET /v1/reports`: every eval report (the registry's and the reports folder's)."""
        return self.send(self.calls.reports())

    def report(self, report_id: str) -> ReportDetail:
        """`GET /v1/reports/{id}`: one report, whole (404: `NotFoundError`)."""
        return self.send(self.calls.report(report_id))

    # --- admin (an admin key) ---
    def physical_collections(self) -> CollectionsResponse:
        """`GET /v1/admin/collections`: every physical collection (`NAME__vN`)."""
        return self.send(self.calls.physical_collections())

    def create_collection(self, name: str) -> CollectionSummary:
        """`POST /v1/admin/collections`: a new, empty collection (409 if it exists)."""
        return self.send(self.calls.create_collection(name))

    def reload(self, *, collection: str | None = None) -> ReloadResponse:
        """`POST /v1/admin/reload`: serve what the collection's alias points at now."""
        return self.send(self.calls.reload(collection=collection))

    def activate(
        self,
        version: int,
        *,
        force: bool = False,
        collection: str | None = None,
        timeout_s: float = 3600.0,
    ) -> ReloadResponse:
        """`POST /v1/admin/models/{version}/activate`: re-embed the collection with model
        `version` and switch to it (can take minutes: `timeout_s`)."""
        return self.send(
            self.calls.activate(version, force=force, collection=collection, timeout_s=timeout_s)
        )

    def rollback(
        self, *, force: bool = False, collection: str | None = None, timeout_s: float = 600.0
    ) -> ReloadResponse:
        """`POST /v1/admin/rollback`: serve the collection's previous version again."""
        return self.send(
            self.calls.rollback(force=force, collection=collection, timeout_s=timeout_s)
        )
