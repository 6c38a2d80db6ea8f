"""FastAPI dependencies: the service and metrics of the app, and the API key checks by role."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ragctl.core.limits import COLLECTION_NAME_PATTERN
from ragctl.retriever.auth import AccessPolicy, Role
from ragctl.retriever.errors import ForbiddenError, NotReadyError, UnauthorizedError
from ragctl.retriever.metrics import Metrics
from ragctl.retriever.service import RetrieverService

logger = logging.getLogger(__name__)

bearer = HTTPBearer(
    auto_error=False,
    description="An API key: `retriever.read_api_key`, `write_api_key` or `admin_api_key`.",
)


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

_ACTIONS = {Role.READ: "search", Role.WRITE: "change documents or feedback", Role.ADMIN: "admin"}
_WANTED = {
    Role.READ: "a read, write or admin key",
    Role.WRITE: "a write or admin key",
    Role.ADMIN: "an admin key",
}


def check_access(request: Request, token: str | None, needed: Role, *, log: bool = True) -> None:
    """Let the request through only when its key (or the anonymous policy) allows `needed`.

    Raises:
        ForbiddenError: 403 `admin_disabled` (no admin key configured), `writes_disabled` (no
            key can write, or no key at all on a non-loopback bind), `forbidden` (a key of a
            lower role).
        UnauthorizedError: 401 `unauthorized`: a key is needed and none, or a wrong one, came.
    """
    policy: AccessPolicy = request.app.state.access
    _refuse = _log_refusal if log else _quiet
    if needed is Role.ADMIN and not policy.configured(Role.ADMIN):
        _refuse(request, "admin disabled: no admin key configured")
        raise ForbiddenError(
            "admin_disabled",
            "admin routes are disabled: set retriever.admin_api_key "
            "(RAGCTL_RETRIEVER__ADMIN_API_KEY) to enable them",
        )
    if needed is Role.READ and not policy.configured(Role.READ):
        return  # searches are open unless read keys are configured
    if needed is Role.WRITE and not policy.any_keys:
        if policy.anonymous_writes:
            return
        _refuse(request, "writes disabled: no API key on a non-loopback bind")
        raise ForbiddenError(
            "writes_disabled",
            f"writes are disabled: no API key is configured and the server listens on "
            f"{policy.host}, not only this machine; set retriever.write_api_key "
            "(RAGCTL_RETRIEVER__WRITE_API_KEY)",
        )
    if needed is Role.WRITE and not (
        policy.configured(Role.WRITE) or policy.configured(Role.ADMIN)
    ):
        _refuse(request, "writes disabled: only read keys configured")
        raise ForbiddenError(
            "writes_disabled",
            "writes are disabled: only read keys are configured; set retriever.write_api_key",
        )
    role = policy.role_of(token)
    if role is None:
        reason = "wrong API key" if token else "missing API key"
        _refuse(request, reason)
        raise UnauthorizedError(
            "unauthorized",
            f"{reason}: send Authorization: Bearer <key> with {_WANTED[needed]}",
            field="authorization",
        )
    if role < needed:
        _refuse(request, f"{role.label} key on a route that needs {_WANTED[needed]}")
        raise ForbiddenError(
            "forbidden",
            f"a {role.label} key cannot {_ACTIONS[needed]}: this route needs {_WANTED[needed]}",
            field="authorization",
        )


def _quiet(request: Request, reason: str) -> None:
    pass


def _log_refusal(request: Request, reason: str) -> None:
    client = request.client.host if request.client else "unknown"
    logger.warning(
        "request refused (%s): %s %s from %s", reason, request.method, request.url.path, client
    )


def _requires(needed: Role) -> Callable[..., None]:
    def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        check_access(request, credentials.credentials if credentials else None, needed)

    dependency.__name__ = f"require_{needed.label}"
    return dependency


require_read = _requires(Role.READ)
require_write = _requires(Role.WRITE)
require_admin = _requires(Role.ADMIN)
ReadDep = Depends(require_read)
WriteDep = Depends(require_write)
AdminDep = Depends(require_admin)


CollectionQuery = Annotated[
    str | None,
    Query(
        pattern=COLLECTION_NAME_PATTERN,
        description="The collection (alias name); default: the configured `collection`.",
    ),
]


def resolve_collection(service: RetrieverService, collection: str | None) -> str:
    """The collection (alias) a request names, default the server's; loads no model.

    Raises:
        NotFoundError: 404 `collection_not_found`, naming the collections the store has.
    """
    name = collection or service.collections.default
    service.collections.target(name)  # raises for a name the store does not have
    return name


def capabilities(request: Request, token: str | None) -> dict[str, bool]:
    """What a request with `token` may do: read, write, admin (by the same checks)."""
    allowed = {}
    for role in Role:
        try:
            check_access(request, token, role, log=False)
        except (ForbiddenError, UnauthorizedError):
            allowed[role.label] = False
        else:
            allowed[role.label] = True
    return allowed
