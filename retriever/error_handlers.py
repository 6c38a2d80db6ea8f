"""Every error becomes `{"error": {"code", "message", "field"}}` with a fitting status.

FastAPI's own 422 validation errors and Starlette's 404/405/413 are rewritten into the same
shape; domain errors from core, ingest and the retriever are mapped to 4xx/503 at this edge;
anything else is logged with its traceback and answered with a JSON 500.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ragctl.core.errors import (
    CollectionNotFoundError,
    ConfigError,
    ModelLoadError,
    RagctlError,
    StoreError,
    StoreLockedError,
)
from ragctl.core.registry import RegistryError
from ragctl.ingest.errors import IngestError
from ragctl.retriever.errors import (
    ConflictError,
    FeedbackLogError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    NotReadyError,
    PayloadTooLargeError,
    RequestError,
    UnauthorizedError,
)
from ragctl.retriever.schemas import ErrorResponse
from ragctl.tuner.errors import RejectedModelError, TunerError

logger = logging.getLogger(__name__)

RETRY_AFTER_S = 1
"""`Retry-After` of every 503 answer, in seconds."""

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    503: "unavailable",
}
_REQUEST_ERROR_STATUS: tuple[tuple[type[RequestError], int], ...] = (
    (NotFoundError, 404),
    (ConflictError, 409),
    (PayloadTooLargeError, 413),
    (InvalidRequestError, 422),
    (NotReadyError, 503),
    (UnauthorizedError, 401),
    (ForbiddenError, 403),
)
# Most specific first: the first matching class decides.
_DOMAIN_ERRORS: tuple[tuple[type[RagctlError], int, str], ...] = (
    (StoreLockedError, 503, "store_locked"),
    (CollectionNotFoundError, 503, "collection_not_found"),
    (StoreError, 503, "store_unavailable"),
    (ModelLoadError, 503, "model_unavailable"),
    (FeedbackLogError, 503, "feedback_log_unavailable"),
    (IngestError, 422, "invalid_document"),
    (RegistryError, 404, "model_not_found"),
    (RejectedModelError, 409, "gate_rejected"),
    (TunerError, 409, "promotion_failed"),
    (ConfigError, 500, "config_error"),
)

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in (
        (400, "Malformed request body (not UTF-8 JSON)"),
        (404, "Not found"),
        (422, "Invalid request (the field and the limit are named)"),
        (503, "Not ready or a backend is unavailable"),
    )
}
KEY_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "A key is needed: missing or wrong API key"},
    403: {
        "model": ErrorResponse,
        "description": "The key's role is too low, or this kind of request is off "
        "(no key of the needed role configured)",
    },
}
KEYED_RESPONSES: dict[int | str, dict[str, Any]] = {**ERROR_RESPONSES, **KEY_RESPONSES}
FEEDBACK_RESPONSES: dict[int | str, dict[str, Any]] = {
    **KEYED_RESPONSES,
    409: {"model": ErrorResponse, "description": "The idempotency key was used for another "
          "judgement"},
}  # fmt: skip
UPSERT_RESPONSES: dict[int | str, dict[str, Any]] = {
    **KEYED_RESPONSES,
    413: {
        "model": ErrorResponse,
        "description": "The documents' text is over retriever.max_request_text_mib (or the "
        "body over retriever.max_body_mib)",
    },
}
ADMIN_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or wrong admin key"},
    403: {"model": ErrorResponse, "description": "Admin routes are disabled (no key configured)"},
    409: {
        "model": ErrorResponse,
        "description": "Conflicts with the registry (e.g. gate rejected)",
    },
    **ERROR_RESPONSES,
}


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A JSON error body with a stable code."""
    error: dict[str, Any] = {"code": code, "message": message, "field": field}
    if details:
        error["details"] = details
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error the same JSON shape."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestError, _request_error)
    app.add_exception_handler(RagctlError, _domain_error)
    app.add_exception_handler(Exception, _unexpected_error)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [_detail(error) for error in exc.errors()]
    first = details[0] if details else {"field": None, "message": "invalid request", "type": ""}
    code = "invalid_json" if first["type"] == "json_invalid" else "validation_error"
    where = first["field"] or "request body"
    message = f"{where}: {first['message']}"
    if len(details) > 1:
        message += f" (and {len(details) - 1} more)"
    return error_response(422, code, message, field=first["field"], details=details)


def _detail(error: dict[str, Any]) -> dict[str, Any]:
    loc: Sequence[Any] = error.get("loc", ())
    field = _field(loc)
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    kind = str(error.get("type", ""))
    if kind == "json_invalid":
        ctx = error.get("ctx") or {}
        position = loc[1] if len(loc) > 1 else "?"
        message = f"{message}: {ctx.get('error', 'malformed JSON')} at position {position}"
        field = None
    elif kind not in ("missing", "extra_forbidden") and "input" in error:
        message = f"{message} (got {_show(error['input'])})"
    return {"field": field, "message": message, "type": kind}


def _field(loc: Sequence[Any]) -> str | None:
    """`("body", "documents", 0, "text")` -> `documents.0.text`; the whole body -> None."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    if not parts or (len(parts) == 1 and isinstance(parts[0], int)):
        return None
    return ".".join(str(p) for p in parts)


def _show(value: Any, width: int = 80) -> str:
    shown = repr(value)  # repr escapes control characters and lone surrogates
    return shown if len(shown) <= width else shown[: width - 3] + "..."


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    code = _HTTP_CODES.get(status, "http_error")
    if status == 404 and request.scope.get("route") is None:
        message = f"no route {request.method} {_show(request.url.path)}; see /docs"
    elif status == 405:
        message = f"method {request.method} is not allowed on {_show(request.url.path)}"
    elif status == 400 and exc.detail == "There was an error parsing the body":
        message = "the request body could not be parsed: send UTF-8 encoded JSON"
    else:
        message = str(exc.detail)
    return error_response(status, code, message, headers=dict(exc.headers or {}) or None)


async def _request_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestError)
    status = next((s for cls, s in _REQUEST_ERROR_STATUS if isinstance(exc, cls)), 400)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else _retry_after(status)
    return error_response(status, exc.code, exc.message, field=exc.field, headers=headers)


def _retry_after(status: int) -> dict[str, str] | None:
    """A 503 (starting, stopping, a backend away) is worth retrying soon: clients that honour
    `Retry-After` (ragctl.client does) wait this long."""
    return {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RagctlError)
    status, code = next(
        ((s, c) for cls, s, c in _DOMAIN_ERRORS if isinstance(exc, cls)), (400, "bad_request")
    )
    log = logger.error if status >= 500 else logger.warning
    log("%s %s -> %d %s: %s", request.method, request.url.path, status, code, exc)
    return error_response(status, code, str(exc), headers=_retry_after(status))


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "internal server error; see the server log")
