"""The errors that `retriever` raises; the HTTP layer turns each into a JSON body with a code."""

from __future__ import annotations

from ragctl.core.errors import RagctlError


class RetrieverError(RagctlError):
    """Base of the retriever's own errors."""


class FeedbackLogError(RetrieverError):
    """The search and feedback log cannot be opened, read or written."""


class RequestError(RetrieverError):
    """A request the service refuses, with a stable machine-readable `code`.

    Args:
        code: Stable snake_case code clients can branch on (`search_not_found`, ...).
        message: One sentence for a person, naming the bad value and what is allowed.
        field: The request field at fault (dotted, e.g. `documents.0.text`), if one is.
    """

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


class InvalidRequestError(RequestError):
    """The request is well-formed JSON but breaks a limit or rule (HTTP 422)."""


class NotFoundError(RequestError):
    """Something the request names does not exist (HTTP 404)."""


class PayloadTooLargeError(RequestError):
    """The request carries more than a limit allows (HTTP 413)."""


class ConflictError(RequestError):
    """The request conflicts with the current state (HTTP 409)."""


class NotReadyError(RequestError):
    """The service cannot answer yet: no model, no store or no collection (HTTP 503)."""


class UnauthorizedError(RequestError):
    """An admin request without the right key (HTTP 401)."""


class ForbiddenError(RequestError):
    """An admin request while the admin routes are disabled (HTTP 403)."""
