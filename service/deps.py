"""Dependencies, as ``Annotated`` aliases so route signatures read like prose.

They are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in its
thread pool, a thread hop per dependency per request on the hot path.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.runtime import Runtime
from service.settings import Settings
from service.state import ServiceState


async def get_state(request: Request) -> ServiceState:
    """The `ServiceState` the app's lifespan built."""
    state = getattr(request.app.state, "service", None)
    if state is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the service is starting")
    return state


StateDep = Annotated[ServiceState, Depends(get_state)]


async def get_app_settings(state: StateDep) -> Settings:
    return state.settings


async def get_runtime(state: StateDep) -> Runtime:
    return state.runtime


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]

_bearer = HTTPBearer(auto_error=False, description="The admin token (DRIFTWISE_ADMIN_TOKEN), when one is configured.")


async def require_admin(settings: SettingsDep,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    """Pass when no admin token is configured, or the request carries it as a bearer token."""
    token = settings.admin_token
    if token is None:
        return
    given = "" if credentials is None else credentials.credentials
    if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "a valid admin bearer token is required",
                            headers={"WWW-Authenticate": "Bearer"})


AdminDep = Annotated[None, Depends(require_admin)]
