"""`GET /v1/access`: what the key sent (or no key) may do on this server."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials

from ragctl.retriever.auth import AccessPolicy
from ragctl.retriever.deps import bearer, capabilities
from ragctl.retriever.schemas import AccessResponse

router = APIRouter(prefix="/v1", tags=["operations"])


@router.get("/access", response_model=AccessResponse)
async def access(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> AccessResponse:
    """The role of the bearer key (null without a known key) and whether it may read, write
    and administer here, by the same checks the routes make. Never an error: clients (the
    console) ask it to know which actions to offer."""
    token = credentials.credentials if credentials else None
    policy: AccessPolicy = request.app.state.access
    role = policy.role_of(token)
    allowed = capabilities(request, token)
    return AccessResponse(role=role.label if role else None, **allowed)
