"""A small blocking client of the retriever's HTTP API (the standard library's HTTP).

Lets the CLI send work to a running `ragctl serve` instead of opening the embedded store,
which that server holds: `ragctl search --api http://127.0.0.1:8000 "..."`.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ragctl.retriever.errors import RetrieverError

if TYPE_CHECKING:
    from ragctl.retriever.schemas import SearchRequest


class ApiClientError(RetrieverError):
    """The retriever answered with an error, or could not be reached.

    Attributes:
        status: The HTTP status (0 when the server was not reached).
        code: The error body's stable code (`search_not_found`, ...), or `unreachable`.
    """

    def __init__(self, message: str, *, status: int = 0, code: str = "unreachable") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class RetrieverClient:
    """Calls one retriever at `base_url` (e.g. `http://127.0.0.1:8000`).

    Args:
        base_url: Scheme, host and port of the server.
        api_key: A key sent with every request (`Authorization: Bearer`): a write key for
            documents and feedback, an admin key for everything.
        timeout_s: Per-request timeout.
    """

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout_s: float = 60.0):
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ApiClientError(f"--api must be an http(s) URL like http://127.0.0.1:8000, got "
                                 f"{base_url!r}")  # fmt: skip
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout_s = timeout_s

    def search(self, request: SearchRequest) -> dict[str, Any]:
        """`POST /v1/search`."""
        return self._request(
            "POST", "/v1/search", request.model_dump(mode="json", exclude_none=True)
        )

    def upsert_documents(self, documents: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """`POST /v1/documents` with `[{id, text, metadata?, source?}, ...]`."""
        return self._request("POST", "/v1/documents", {"documents": list(documents)})

    def delete_document(self, doc_id: str) -> dict[str, Any]:
        """`DELETE /v1/documents/{doc_id}`."""
        return self._request("DELETE", "/v1/documents/" + urllib.parse.quote(doc_id, safe="/"))

    def collections(self) -> dict[str, Any]:
        """`GET /v1/admin/collections` (needs the admin key)."""
        return self._request("GET", "/v1/admin/collections", admin=True)

    def _request(
        self, method: str, path: str, body: Any = None, *, admin: bool = False
    ) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.api_key:
            request.add_header("Authorization", f"Bearer {self.api_key}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                answer: dict[str, Any] = json.loads(response.read())
                return answer
        except urllib.error.HTTPError as exc:
            raise _from_error_body(exc) from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiClientError(
                f"cannot reach the retriever at {self.base_url}: {reason}"
            ) from exc


def _from_error_body(exc: urllib.error.HTTPError) -> ApiClientError:
    try:
        error = json.loads(exc.read())["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "http_error", f"HTTP {exc.code} {exc.reason}"
    return ApiClientError(f"retriever: {message} ({exc.code} {code})", status=exc.code, code=code)
