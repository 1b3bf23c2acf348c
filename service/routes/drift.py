"""``/drift``: what the drift monitor sees, and a manual trigger for adaptation.

Both delegate to the adaptation controller (``state.controller``) when one is
wired in; without one the service still serves, and says monitoring is off.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status
from fastapi.encoders import jsonable_encoder

from driftwise.service.deps import ADMIN_RESPONSES, AdminDep, StateDep

router = APIRouter(prefix="/drift", tags=["drift"])


@router.get("", summary="Drift signals, detector state and adaptation status")
def drift_status(state: StateDep) -> Any:
    if state.controller is None:
        return {"monitoring": "off", "detail": "no drift controller is running in this process"}
    state.flush_observers(timeout=2.0)  # reflect every prediction answered so far
    return jsonable_encoder(state.controller.snapshot())


@router.post("/adapt", summary="Start an adaptation now (subject to the usual guardrails)",
             responses={**ADMIN_RESPONSES, 409: {"description": "No drift controller is running."}})
def trigger_adaptation(state: StateDep, _: AdminDep) -> Any:
    if state.controller is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "no drift controller is running in this process")
    return jsonable_encoder(state.controller.trigger())
