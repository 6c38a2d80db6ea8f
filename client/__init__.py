"""The public Python client of a ragctl retriever: `Client` (blocking) and `AsyncClient`.

```python
from ragctl.client import Client

with Client("http://127.0.0.1:8000", api_key="...") as client:
    found = client.search("how do I rotate the API keys?", k=5)
    client.feedback(search_id=found.search_id, chunk_id=found.results[0].chunk_id,
                    label="relevant")
```

Requests and answers are the server's own models (`ragctl.core.api`), so the two always
agree. Errors are `ClientError`s carrying the server's `code` and HTTP `status`. See
docs/client.md. Framework adapters: `ragctl.client.langchain` (`pip install
'ragctl[langchain]'`) and `ragctl.client.llamaindex` (`'ragctl[llamaindex]'`).

Light to import: httpx and pydantic, no fastapi, torch or numpy.
"""

from __future__ import annotations

from ragctl.client._calls import NO_RETRIES, Label, RetryPolicy
from ragctl.client.aio import AsyncClient
from ragctl.client.errors import (
    ApiConnectionError,
    ApiError,
    ApiTimeoutError,
    AuthenticationError,
    BadRequestError,
    ClientError,
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    ServiceUnavailableError,
)
from ragctl.client.sync import Client
from ragctl.core.api import (
    BatchSearchItem,
    BatchSearchRequest,
    BatchSearchResponse,
    CollectionList,
    CollectionOut,
    CollectionsResponse,
    CollectionSummary,
    CreateCollectionRequest,
    DeleteResponse,
    DocumentChunk,
    DocumentDetail,
    DocumentIn,
    DocumentsPage,
    DocumentsRequest,
    DocumentsResponse,
    DocumentSummary,
    Embedding,
    EmbeddingsRequest,
    EmbeddingsResponse,
    EmbeddingsUsage,
    ErrorResponse,
    FeedbackRequest,
    FeedbackResponse,
    HealthResponse,
    ReadyCollection,
    ReadyResponse,
    ReloadResponse,
    SearchRequest,
    SearchResponse,
    SearchResult,
)
from ragctl.core.search import SearchMode

REQUEST_MODELS = (
    SearchRequest,
    BatchSearchRequest,
    FeedbackRequest,
    DocumentsRequest,
    DocumentIn,
    EmbeddingsRequest,
    CreateCollectionRequest,
)
"""The bodies the client sends."""
RESPONSE_MODELS = (
    SearchResponse,
    BatchSearchResponse,
    FeedbackResponse,
    DocumentsResponse,
    DocumentsPage,
    DocumentDetail,
    DeleteResponse,
    CollectionList,
    CollectionSummary,
    CollectionsResponse,
    EmbeddingsResponse,
    HealthResponse,
    ReadyResponse,
    ReloadResponse,
    ErrorResponse,
)
"""The answers the client parses (their nested models come with them)."""

__all__ = [
    "NO_RETRIES",
    "REQUEST_MODELS",
    "RESPONSE_MODELS",
    "ApiConnectionError",
    "ApiError",
    "ApiTimeoutError",
    "AsyncClient",
    "AuthenticationError",
    "BadRequestError",
    "BatchSearchItem",
    "BatchSearchRequest",
    "BatchSearchResponse",
    "Client",
    "ClientError",
    "CollectionList",
    "CollectionOut",
    "CollectionSummary",
    "CollectionsResponse",
    "ConflictError",
    "CreateCollectionRequest",
    "DeleteResponse",
    "DocumentChunk",
    "DocumentDetail",
    "DocumentIn",
    "DocumentSummary",
    "DocumentsPage",
    "DocumentsRequest",
    "DocumentsResponse",
    "Embedding",
    "EmbeddingsRequest",
    "EmbeddingsResponse",
    "EmbeddingsUsage",
    "ErrorResponse",
    "FeedbackRequest",
    "FeedbackResponse",
    "HealthResponse",
    "Label",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "ReadyCollection",
    "ReadyResponse",
    "ReloadResponse",
    "RetryPolicy",
    "SearchMode",
    "SearchRequest",
    "SearchResponse",
    "SearchResult",
    "ServerError",
    "ServiceUnavailableError",
]
