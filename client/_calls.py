"""What the sync and async clients share: the retry policy, how each API call is built from
typed models, and how answers become models or exceptions. No I/O here."""

from __future__ import annotations

import email.utils
import json
import random
import time
import urllib.parse
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

import httpx
from pydantic import BaseModel

from ragctl.client.errors import (
    ApiConnectionError,
    ApiError,
    ApiTimeoutError,
    ClientError,
    error_for_status,
)
from ragctl.core.api import (
    EMBEDDINGS_MODEL,
    BatchSearchRequest,
    BatchSearchResponse,
    CollectionList,
    CollectionsResponse,
    CollectionSummary,
    CreateCollectionRequest,
    DeleteResponse,
    DocumentDetail,
    DocumentIn,
    DocumentsPage,
    DocumentsRequest,
    DocumentsResponse,
    EmbeddingsRequest,
    EmbeddingsResponse,
    FeedbackRequest,
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

T = TypeVar("T", bound=BaseModel)
Label = Literal["relevant", "not_relevant"]

# Failures where the request surely did not reach the application (or its answer was cut off
# before a byte of it came): worth another try.
RETRIED_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.RemoteProtocolError,
    httpx.ReadError,
)


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before trying a request again.

    A request is retried on 429 and 503 answers and on connection errors (refused, reset,
    closed without an answer), at most `max_retries` times. The wait before retry n (0-based)
    is exponential with jitter: a random time between half and all of
    `min(max_backoff_s, backoff_s * 2**n)`, and never less than the server's `Retry-After`
    (seconds or an HTTP date). A `Retry-After` longer than `max_retry_after_s` is not waited
    for: the error is raised at once.

    Attributes:
        max_retries: Retries after the first try (0: none).
        backoff_s: The first wait's ceiling.
        max_backoff_s: The ceiling of any wait.
        max_retry_after_s: The longest `Retry-After` the client waits for.
        retry_statuses: The statuses retried.
    """

    max_retries: int = 3
    backoff_s: float = 0.25
    max_backoff_s: float = 8.0
    max_retry_after_s: float = 30.0
    retry_statuses: frozenset[int] = field(default_factory=lambda: frozenset({429, 503}))

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.backoff_s < 0 or self.max_backoff_s < 0 or self.max_retry_after_s < 0:
            raise ValueError("waits must be >= 0 seconds")

    def backoff(self, attempt: int) -> float:
        """The jittered wait before retry `attempt` (0-based), without a `Retry-After`."""
        ceiling = min(self.max_backoff_s, self.backoff_s * 2**attempt)
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def wait_s(self, attempt: int, response: httpx.Response | None) -> float | None:
        """How long to wait before retry `attempt`; None: do not retry."""
        if attempt >= self.max_retries:
            return None
        if response is None:
            return self.backoff(attempt)
        if response.status_code not in self.retry_statuses:
            return None
        asked = retry_after_s(response.headers.get("retry-after"))
        if asked is not None and asked > self.max_retry_after_s:
            return None
        return max(asked or 0.0, self.backoff(attempt))


NO_RETRIES = RetryPolicy(max_retries=0)


def retry_after_s(value: str | None) -> float | None:
    """A `Retry-After` header in seconds (delta-seconds or an HTTP date); None if absent or
    unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API call: what to send, and the model its answer is."""

    method: str
    path: str
    answer: type[T]
    body: BaseModel | None = None
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    timeout_s: float | None = None  # None: the client's timeout
    retry: bool = True

    def request_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of `httpx.Client.request` (timeout aside)."""
        kwargs: dict[str, Any] = {"params": {k: v for k, v in self.params.items() if v is not None}}
        if self.body is not None:
            kwargs["json"] = self.body.model_dump(mode="json", exclude_none=True)
        if self.headers:
            kwargs["headers"] = self.headers
        return kwargs


def check_base_url(base_url: str) -> str:
    """`base_url` without a trailing slash; ValueError unless it is an http(s) URL."""
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"the retriever's URL must be http(s)://host:port, like http://127.0.0.1:8000; "
            f"got {base_url!r}"
        )
    return base_url.rstrip("/")


def client_headers(api_key: str | None, extra: Mapping[str, str] | None) -> dict[str, str]:
    """Headers of every request: JSON, the key as a Bearer token, what the caller adds."""
    headers = {"Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    headers.update(extra or {})
    return headers


def parse_answer(call: Call[T], response: httpx.Response) -> T:
    """The answer as its model; the matching `ApiError` for an error status."""
    if response.status_code >= 400:
        raise api_error(response)
    try:
        return call.answer.model_validate(response.json())
    except ValueError as exc:  # not JSON, or not the documented shape
        raise ApiError(
            f"unexpected answer to {call.method} {call.path}: {exc}",
            status=response.status_code,
            code="invalid_response",
        ) from exc


def api_error(response: httpx.Response) -> ApiError:
    """The exception for an error answer, from its `{"error": {code, message, field}}` body."""
    status = response.status_code
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
        field, details = error.get("field"), error.get("details")
    except (ValueError, KeyError, TypeError):
        code, message = "http_error", f"HTTP {status} {response.reason_phrase}".strip()
        field, details = None, None
    return error_for_status(status)(message, status=status, code=code, field=field, details=details)


def transport_error(exc: httpx.TransportError, base_url: str) -> ClientError:
    """The exception for a request that got no answer."""
    if isinstance(exc, httpx.TimeoutException):
        return ApiTimeoutError(
            f"no answer from the retriever at {base_url}: {exc!r}", code="timeout"
        )
    return ApiConnectionError(f"cannot reach the retriever at {base_url}: {exc}")


def _documents(documents: Iterable[DocumentIn | Mapping[str, Any]]) -> list[DocumentIn]:
    return [d if isinstance(d, DocumentIn) else DocumentIn.model_validate(d) for d in documents]


def _quoted(doc_id: str) -> str:
    """One path segment: `/` is escaped too, and `.`/`..` so no URL layer resolves them."""
    quoted = urllib.parse.quote(doc_id, safe="")
    return quoted.replace(".", "%2E") if quoted in (".", "..") else quoted


class Calls:
    """Builds each API call from its arguments (`collection` defaults to the client's)."""

    def __init__(self, collection: str | None) -> None:
        self.collection = collection

    def _in(self, collection: str | None) -> str | None:
        return collection if collection is not None else self.collection

    def health(self) -> Call[HealthResponse]:
        return Call("GET", "/v1/health", HealthResponse, retry=False)

    def ready(self) -> Call[ReadyResponse]:
        return Call("GET", "/v1/ready", ReadyResponse, retry=False)

    def collections(self) -> Call[CollectionList]:
        return Call("GET", "/v1/collections", CollectionList)

    def search(
        self,
        query: str | SearchRequest,
        *,
        k: int | None,
        shortlist: int | None,
        filter: Mapping[str, Any] | None,
        single_stage: bool,
        mode: SearchMode | str | None,
        score_threshold: float | None,
        collection: str | None,
    ) -> Call[SearchResponse]:
        if isinstance(query, SearchRequest):
            body = query
            if body.collection is None and self.collection is not None:
                body = body.model_copy(update={"collection": self.collection})
        else:
            options = self._search_options(
                k, shortlist, filter, single_stage, mode, score_threshold, collection
            )
            body = SearchRequest(query=query, **options)
        return Call("POST", "/v1/search", SearchResponse, body=body)

    def search_batch(
        self,
        queries: Sequence[str],
        *,
        k: int | None,
        shortlist: int | None,
        filter: Mapping[str, Any] | None,
        single_stage: bool,
        mode: SearchMode | str | None,
        score_threshold: float | None,
        collection: str | None,
    ) -> Call[BatchSearchResponse]:
        if isinstance(queries, str):
            raise TypeError("search_batch takes a list of queries; use search for one")
        options = self._search_options(
            k, shortlist, filter, single_stage, mode, score_threshold, collection
        )
        body = BatchSearchRequest(queries=list(queries), **options)
        return Call("POST", "/v1/search/batch", BatchSearchResponse, body=body)

    def _search_options(
        self,
        k: int | None,
        shortlist: int | None,
        filter: Mapping[str, Any] | None,
        single_stage: bool,
        mode: SearchMode | str | None,
        score_threshold: float | None,
        collection: str | None,
    ) -> dict[str, Any]:
        """The fields a search and a batch search share, in the request models' types."""
        return {
            "k": k,
            "shortlist": shortlist,
            "filter": None if filter is None else dict(filter),
            "single_stage": single_stage,
            "mode": None if mode is None else SearchMode(mode),
            "score_threshold": score_threshold,
            "collection": self._in(collection),
        }

    def feedback(
        self,
        *,
        chunk_id: str,
        label: Label,
        search_id: str | None,
        query: str | None,
        idempotency_key: str | None,
        collection: str | None,
    ) -> Call[FeedbackResponse]:
        body = FeedbackRequest(
            chunk_id=chunk_id,
            label=label,
            search_id=search_id,
            query=query,
            # One key per judgement: a retry after a lost answer is stored once.
            idempotency_key=idempotency_key or uuid.uuid4().hex,
            # With search_id the server takes the search's collection; a client default
            # would only contradict it.
            collection=collection if search_id is not None else self._in(collection),
        )
        return Call("POST", "/v1/feedback", FeedbackResponse, body=body)

    def upsert_documents(
        self, documents: Iterable[DocumentIn | Mapping[str, Any]], *, collection: str | None
    ) -> Call[DocumentsResponse]:
        body = DocumentsRequest(documents=_documents(documents), collection=self._in(collection))
        return Call("POST", "/v1/documents", DocumentsResponse, body=body)

    def list_documents(
        self,
        *,
        prefix: str | None,
        filter: Mapping[str, Any] | None,
        offset: int,
        limit: int,
        collection: str | None,
    ) -> Call[DocumentsPage]:
        params = {
            "collection": self._in(collection),
            "prefix": prefix,
            "filter": None if filter is None else json.dumps(dict(filter)),
            "offset": offset,
            "limit": limit,
        }
        return Call("GET", "/v1/documents", DocumentsPage, params=params)

    def get_document(self, doc_id: str, *, collection: str | None) -> Call[DocumentDetail]:
        params = {"collection": self._in(collection)}
        return Call("GET", f"/v1/documents/{_quoted(doc_id)}", DocumentDetail, params=params)

    def delete_document(self, doc_id: str, *, collection: str | None) -> Call[DeleteResponse]:
        params = {"collection": self._in(collection)}
        return Call("DELETE", f"/v1/documents/{_quoted(doc_id)}", DeleteResponse, params=params)

    def embed(
        self,
        texts: str | Sequence[str],
        *,
        dimensions: int | None,
        input_type: Literal["query", "document"],
        collection: str | None,
    ) -> Call[EmbeddingsResponse]:
        body = EmbeddingsRequest(
            input=texts if isinstance(texts, str) else list(texts),
            model=self._in(collection) or EMBEDDINGS_MODEL,
            dimensions=dimensions,
            input_type=input_type,
        )
        return Call("POST", "/v1/embeddings", EmbeddingsResponse, body=body)

    # --- what the console reads ---
    def models(self, *, collection: str | None) -> Call[ModelsResponse]:
        params = {"collection": self._in(collection)}
        return Call("GET", "/v1/models", ModelsResponse, params=params)

    def model(self, version: int) -> Call[ModelDetail]:
        return Call("GET", f"/v1/models/{int(version)}", ModelDetail)

    def feedback_stats(self, *, days: int, collection: str | None) -> Call[FeedbackStatsResponse]:
        params = {"collection": self._in(collection), "days": days}
        return Call("GET", "/v1/feedback/stats", FeedbackStatsResponse, params=params)

    def retune_status(self, *, collection: str | None) -> Call[RetuneStatusResponse]:
        params = {"collection": self._in(collection)}
        return Call("GET", "/v1/retune/status", RetuneStatusResponse, params=params)

    def reports(self) -> Call[ReportsResponse]:
        return Call("GET", "/v1/reports", ReportsResponse)

    def report(self, report_id: str) -> Call[ReportDetail]:
        # The id is a path (`registry/v2/candidate`): its `/` stay, each segment is quoted.
        path = "/".join(_quoted(part) for part in report_id.split("/"))
        return Call("GET", f"/v1/reports/{path}", ReportDetail)

    # --- admin ---
    def physical_collections(self) -> Call[CollectionsResponse]:
        return Call("GET", "/v1/admin/collections", CollectionsResponse)

    def create_collection(self, name: str) -> Call[CollectionSummary]:
        body = CreateCollectionRequest(name=name)
        return Call("POST", "/v1/admin/collections", CollectionSummary, body=body)

    def reload(self, *, collection: str | None) -> Call[ReloadResponse]:
        params = {"collection": self._in(collection)}
        return Call("POST", "/v1/admin/reload", ReloadResponse, params=params)

    def activate(
        self, version: int, *, force: bool, collection: str | None, timeout_s: float
    ) -> Call[ReloadResponse]:
        params = {"collection": self._in(collection), "force": "true" if force else None}
        path = f"/v1/admin/models/{int(version)}/activate"
        return Call("POST", path, ReloadResponse, params=params, timeout_s=timeout_s)

    def rollback(
        self, *, force: bool, collection: str | None, timeout_s: float
    ) -> Call[ReloadResponse]:
        params = {"collection": self._in(collection), "force": "true" if force else None}
        return Call(
            "POST", "/v1/admin/rollback", ReloadResponse, params=params, timeout_s=timeout_s
        )
