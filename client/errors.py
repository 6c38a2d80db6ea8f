"""What the client raises: every answer of the retriever that is an error, as an exception
carrying its stable `code` and HTTP `status`, and the failures to reach it at all."""

from __future__ import annotations

from typing import Any

from ragctl.core.errors import RagctlError


class ClientError(RagctlError):
    """Base of everything `ragctl.client` raises.

    Attributes:
        status: The HTTP status of the answer (0: no answer came).
        code: The server's stable error code (`collection_not_found`, ...), or `unreachable`
            / `timeout` when no answer came.
        message: The server's message for people (or what went wrong reaching it).
        field: The request field at fault, when the server names one (dotted: `queries.1`).
        details: Every problem of a 422, as the server lists them.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        code: str = "unreachable",
        field: str | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.field = field
        self.details = details or []


class ApiConnectionError(ClientError):
    """The retriever could not be reached (after the retries), or the connection broke."""


class ApiTimeoutError(ApiConnectionError):
    """No answer within the timeout."""


class ApiError(ClientError):
    """The retriever answered with an error (4xx or 5xx); `status` and `code` say which."""

    def __str__(self) -> str:
        return f"retriever: {self.message} ({self.status} {self.code})"


class BadRequestError(ApiError):
    """400 or 422: the request breaks a rule (`field` names the part at fault)."""


class AuthenticationError(ApiError):
    """401: a key is needed and none, or a wrong one, was sent."""


class PermissionDeniedError(ApiError):
    """403: the key's role is too low, or that kind of request is off on the server."""


class NotFoundError(ApiError):
    """404: the collection, document, search, chunk or route named does not exist."""


class ConflictError(ApiError):
    """409: conflicts with the server's state (an idempotency key reused, a gate rejection)."""


class PayloadTooLargeError(ApiError):
    """413: the request carries more than a limit allows."""


class RateLimitError(ApiError):
    """429: too many requests (retried first, honouring `Retry-After`)."""


class ServiceUnavailableError(ApiError):
    """503: not ready (starting, swapping) or a backend is away (retried first)."""


class ServerError(ApiError):
    """Any other 5xx: a bug or a failure on the server's side."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: BadRequestError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def error_for_status(status: int) -> type[ApiError]:
    """The exception class of an error answer with `status`."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ServerError if status >= 500 else ApiError
