"""FastAPI dependencies: the service and metrics of the app, and the admin key check."""

from __future__ import annotations

import logging
import secrets
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ragctl.retriever.errors import ForbiddenError, NotReadyError, UnauthorizedError
from ragctl.retriever.metrics import Metrics
from ragctl.retriever.service import RetrieverService

logger = logging.getLogger(__name__)

_bearer = HTTPBearer(auto_error=False, description="The admin key (`retriever.admin_api_key`).")


def get_service(request: Request) -> RetrieverService:
    """The app's service; 503 `not_ready` while the app is starting or stopping."""
    service: RetrieverService | None = getattr(request.app.state, "service", None)
    if service is None:
        raise NotReadyError("not_ready", "the retriever is starting up or shutting down")
    return service


def get_metrics(request: Request) -> Metrics:
    """The app's metrics."""
    metrics: Metrics = request.app.state.metrics
    return metrics


ServiceDep = Annotated[RetrieverService, Depends(get_service)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]


def require_admin(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Let the request through only with `Authorization: Bearer <retriever.admin_api_key>`.

    No key configured: 403 `admin_disabled` (never open). Missing or wrong key: 401
    `unauthorized`, logged with the client address (never the key).
    """
    key = request.app.state.settings.retriever.admin_api_key
    client = request.client.host if request.client else "unknown"
    where = f"{request.method} {request.url.path} from {client}"
    if key is None:
        logger.warning("admin request refused (admin disabled: no key configured): %s", where)
        raise ForbiddenError(
            "admin_disabled",
            "admin routes are disabled: set retriever.admin_api_key "
            "(RAGCTL_RETRIEVER__ADMIN_API_KEY) to enable them",
        )
    given = credentials.credentials if credentials is not None else ""
    if not given or not secrets.compare_digest(
        given.encode("utf-8", "surrogateescape"), key.get_secret_value().encode("utf-8")
    ):
        reason = "wrong admin key" if given else "missing admin key"
        logger.warning("admin request refused (%s): %s", reason, where)
        raise UnauthorizedError(
            "unauthorized",
            f"{reason}: send Authorization: Bearer <retriever.admin_api_key>",
            field="authorization",
        )


AdminDep = Depends(require_admin)
