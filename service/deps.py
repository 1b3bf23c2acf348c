"""Dependencies, as ``Annotated`` aliases so route signatures read like prose.

They are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in its
thread pool, a thread hop per dependency per request on the hot path.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any, NoReturn

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from driftwise.service.runtime import Runtime
from driftwise.service.settings import Settings
from driftwise.service.state import ServiceState


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

ADMIN_AUTH_FAILURES = ("missing", "invalid", "not_configured")
"""Reasons an admin call is refused, the ``reason`` label of ``driftwise_admin_auth_failures_total``."""

NOT_CONFIGURED = ("admin routes are disabled: no admin token is configured; set DRIFTWISE_ADMIN_TOKEN "
                  "(or `driftwise serve --admin-token`) to a secret of at least 16 characters and send it as "
                  "'Authorization: Bearer <token>'")
MISSING = "this admin route needs the admin token as 'Authorization: Bearer <token>'"
INVALID = "the admin bearer token is not the configured one"

_bearer = HTTPBearer(
    auto_error=False, scheme_name="AdminToken",
    description="The admin token, sent as `Authorization: Bearer <token>`. It is configured with "
                "DRIFTWISE_ADMIN_TOKEN (or `driftwise serve --admin-token`), at least 16 characters. Every admin "
                "route answers 401 without it, with a wrong one, or when no token is configured at all: admin "
                "routes are never open.")

ADMIN_RESPONSES: dict[int | str, dict[str, Any]] = {401: {
    "description": "Refused, and nothing changed: the request carries no bearer token, a wrong one, or the service "
                   "has no admin token configured (DRIFTWISE_ADMIN_TOKEN or `driftwise serve --admin-token`, "
                   "16+ characters), in which case every admin call is refused.",
    "headers": {"WWW-Authenticate": {"description": "Always `Bearer`.", "schema": {"type": "string"}}},
    "content": {"application/json": {"schema": {"type": "object", "properties": {"detail": {"type": "string"}}}}},
}}
"""The ``responses`` entry every admin route documents, so OpenAPI says what `require_admin` does."""


async def require_admin(state: StateDep,
                        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    """Pass only a request carrying the configured admin token as a bearer token.

    With no token configured every admin call is refused: whoever reaches the port
    must never be able to swap the served model because a setting was left out.
    """
    token = state.settings.admin_token
    if token is None:
        _refuse(state, "not_configured", NOT_CONFIGURED)
    elif credentials is None:
        _refuse(state, "missing", MISSING)
    elif not hmac.compare_digest(credentials.credentials.encode(), token.get_secret_value().encode()):
        _refuse(state, "invalid", INVALID)


def _refuse(state: ServiceState, reason: str, detail: str) -> NoReturn:
    """Count the refusal (by reason, and among rejected requests) so probing shows on the dashboard; then 401."""
    state.metrics.admin_auth_failures.labels(reason).inc()
    state.metrics.bad_requests.labels("401").inc()
    raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


AdminDep = Annotated[None, Depends(require_admin)]
