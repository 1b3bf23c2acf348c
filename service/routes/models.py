"""``/models``: what the registry holds, and the admin actions that change what is served.

Activate and rollback load the new snapshot *before* touching ``CURRENT`` or the
runtime, so a version that cannot be loaded leaves both as they were; the swap
itself is atomic (see `driftwise.service.runtime`).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field

from driftwise.models.registry import ModelVersion, RegistryError
from driftwise.service.control import announce_model
from driftwise.service.deps import ADMIN_RESPONSES, AdminDep, StateDep
from driftwise.service.runtime import ModelSnapshot, load_from_registry
from driftwise.service.state import ServiceState

log = logging.getLogger(__name__)

router = APIRouter(prefix="/models", tags=["models"])


class VersionInfo(BaseModel):
    version: int
    status: str = Field(description="approved, or rejected (kept for inspection, never served)")
    reason: str | None = None
    parent: int | None = None
    created: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    current: bool = Field(description="CURRENT in the registry")
    served: bool = Field(description="the version this process is serving")


class ModelsResponse(BaseModel):
    name: str
    current: int | None
    served: str | None
    versions: list[VersionInfo]


class SwapResponse(BaseModel):
    model_version: str
    previous: str | None
    announced: bool | None = Field(
        None, description="Whether the control topic carries the change to other replicas (null without Kafka)")


def _describe(v: ModelVersion, current: int | None, served: str | None) -> VersionInfo:
    m = v.manifest
    return VersionInfo(version=v.version, status=v.status, reason=m.get("reason"), parent=m.get("parent"),
                       created=m.get("created"), metrics=m.get("metrics") or {}, current=v.version == current,
                       served=str(v.version) == served)


@router.get("", response_model=ModelsResponse, summary="Registry versions, with which is current and which is served")
def list_models(state: StateDep) -> ModelsResponse:
    name = state.settings.name
    current = state.registry.current(name)
    current_version = None if current is None else current.version
    served = state.runtime.version
    return ModelsResponse(name=name, current=current_version, served=served,
                          versions=[_describe(v, current_version, served) for v in state.registry.versions(name)])


@router.post("/{version}/activate", response_model=SwapResponse, summary="Serve VERSION and make it CURRENT",
             responses={**ADMIN_RESPONSES, 404: {"description": "No such version."},
                        409: {"description": "The version was rejected by its guardrails."}})
def activate(version: int, state: StateDep, _: AdminDep) -> SwapResponse:
    name = state.settings.name
    with state.model_lock:
        try:
            info = state.registry.get(name, version)
        except RegistryError as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
        if info.status == "rejected":
            raise HTTPException(status.HTTP_409_CONFLICT, f"version {version} was rejected by its guardrails")
        snapshot = load_from_registry(state.registry, name, version, device=state.runtime.device)
        state.registry.activate(name, version)
        previous = state.runtime.swap(snapshot, reason="activate")
    log.info("activated %s version %s", name, version)
    return SwapResponse(model_version=snapshot.version, previous=None if previous is None else previous.version,
                        announced=_announce(state, version))


@router.post("/rollback", response_model=SwapResponse, summary="Serve the version that was current before this one",
             responses={**ADMIN_RESPONSES, 409: {"description": "Nothing to roll back to."}})
def rollback(state: StateDep, _: AdminDep) -> SwapResponse:
    with state.model_lock:
        snapshot, previous = _rollback(state)
    state.metrics.rollbacks.labels("manual").inc()
    return SwapResponse(model_version=snapshot.version, previous=None if previous is None else previous.version,
                        announced=_announce(state, int(snapshot.version)))


def _announce(state: ServiceState, version: int) -> bool | None:
    """Tell the other replicas (control topic); this one already serves ``version``."""
    s = state.settings
    if not s.bootstrap_servers:
        return None
    try:
        announce_model(s.bootstrap_servers, s.models_topic, s.name, version, timeout_s=10.0)
        return True
    except Exception:  # noqa: BLE001 - the swap here stands; the response says the others were not told
        log.exception("could not announce version %s on %s", version, s.models_topic)
        return False


def _rollback(state: ServiceState) -> tuple[ModelSnapshot, ModelSnapshot | None]:
    """Repoint CURRENT to the previous version and serve it; the caller holds ``state.model_lock``."""
    name = state.settings.name
    before = state.registry.current(name)
    try:
        target = state.registry.rollback(name)
    except RegistryError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    try:
        snapshot = load_from_registry(state.registry, name, target.version, device=state.runtime.device)
    except Exception:
        if before is not None:  # leave CURRENT pointing at what is still served
            state.registry.activate(name, before.version)
        raise
    previous = state.runtime.swap(snapshot, reason="rollback")
    log.info("rolled %s back to version %s", name, target.version)
    return snapshot, previous
