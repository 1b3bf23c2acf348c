"""The FastAPI application: wiring only.

The lifespan builds the `ServiceState` (registry, runtime, batcher, metrics),
loads the registry's CURRENT version if there is one (until then ``/predict`` and
``/readyz`` answer 503), starts the Kafka stream and the control-topic follower
when bootstrap servers are configured, attaches drift adaptation, joins the
adapter election (`driftwise.service.roles`: with a broker, the process adapts
only while it is the elected adapter), and stops all of it on shutdown.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import torch
from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from driftwise.models.registry import RegistryError
from driftwise.service.deps import ADMIN_AUTH_FAILURES
from driftwise.service.events import REASONS as DLQ_REASONS
from driftwise.service.metrics import Metrics
from driftwise.service.roles import start_roles
from driftwise.service.routes import drift, health, models, predict
from driftwise.service.runtime import SWAP_REASONS, BatchPrediction, load_from_registry
from driftwise.service.settings import Settings, get_settings
from driftwise.service.state import ServiceState

log = logging.getLogger(__name__)

SOURCES = ("http", "kafka")
ADAPTATION_OUTCOMES = ("promoted", "rejected", "failed")
NORMALIZATION_OUTCOMES = ("served", "label_shift", "refused", "failed", "source_again", "domain_moved", "window_grown")
PSEUDO_LABEL_OUTCOMES = ("accepted", "rejected")
ROLLBACK_TRIGGERS = ("auto", "manual", "fallback", "source")
HTTP_ERRORS = ("401", "413", "422", "503")
IGNORED_ANNOUNCEMENTS = ("unknown_version", "rejected")
OBSERVATION_OUTCOMES = ("sent", "received", "dropped")


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app for ``settings`` (default: from ``DRIFTWISE_*``); nothing starts until its lifespan runs."""
    app = FastAPI(
        title="driftwise",
        summary="Predictions from a model that watches for drift and adapts itself, safely.",
        lifespan=_lifespan,
    )
    app.state.settings = settings or get_settings()
    app.include_router(predict.router)
    app.include_router(models.router)
    app.include_router(drift.router)
    app.include_router(health.router)
    app.openapi = _contract(app)  # type: ignore[method-assign]
    return app


def _contract(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """``/openapi.json`` with ``/predict``'s body as the served model accepts it (`predict.document_request`).

    FastAPI caches the routes' schema; the served model's part is put in on every call, since a swap may change it.
    """
    generated = app.openapi

    def openapi() -> dict[str, Any]:
        schema = copy.deepcopy(generated())
        state: ServiceState | None = getattr(app.state, "service", None)
        shape = None if state is None else state.runtime.input_shape
        predict.document_request(schema, shape, app.state.settings.max_instances)
        return schema

    return openapi


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    torch.set_num_threads(settings.torch_threads)
    state = ServiceState.build(settings)
    init_metric_series(state.metrics)
    await run_in_threadpool(load_current_model, state)
    state.start_observing()
    await state.batcher.start()
    app.state.service = state
    try:
        await run_in_threadpool(start_background, state)
        yield
    finally:
        await run_in_threadpool(stop_background, state)
        await state.batcher.stop()
        await run_in_threadpool(state.stop_observing)
        app.state.service = None


def init_metric_series(metrics: Metrics) -> None:
    """Create every labelled series at zero, so dashboards and rate() see them before the first event."""
    for source in SOURCES:
        metrics.predictions.labels(source)
        metrics.batch_latency.labels(source)
        metrics.batch_size.labels(source)
    for reason in SWAP_REASONS:
        metrics.model_swaps.labels(reason)
    for reason in DLQ_REASONS:
        metrics.dlq.labels(reason)
    for outcome in ADAPTATION_OUTCOMES:
        metrics.adaptations.labels(outcome)
    for outcome in NORMALIZATION_OUTCOMES:
        metrics.normalizations.labels(outcome)
    for outcome in PSEUDO_LABEL_OUTCOMES:
        metrics.pseudo_labels.labels(outcome)
    for trigger in ROLLBACK_TRIGGERS:
        metrics.rollbacks.labels(trigger)
    for status in HTTP_ERRORS:
        metrics.bad_requests.labels(status)
    for reason in ADMIN_AUTH_FAILURES:
        metrics.admin_auth_failures.labels(reason)
    for reason in IGNORED_ANNOUNCEMENTS:
        metrics.control_ignored.labels(reason)
    for outcome in OBSERVATION_OUTCOMES:
        metrics.observations.labels(outcome)
    metrics.model_version.set(0)


def start_background(state: ServiceState) -> None:
    """What runs beside the HTTP server: adaptation, and with a broker the roles, then the stream.

    The roles first: a replica alone is elected before its first event, so its drift loop sees all of them.
    """
    attach_adaptation(state)
    if state.settings.bootstrap_servers:
        state.roles = start_roles(state)
        start_stream(state)


def load_current_model(state: ServiceState) -> None:
    """Serve the registry's CURRENT version; with none, wait for an activation (503 meanwhile)."""
    name = state.settings.name
    if state.registry.current(name) is None:
        log.warning("model %r has no current version in %s: serving 503 until one is activated",
                    name, state.settings.registry)
        return
    snapshot = load_from_registry(state.registry, name, device=state.runtime.device)
    state.runtime.swap(snapshot, reason="startup")
    log.info("serving %s version %s on %s", name, snapshot.version, snapshot.device)


def start_stream(state: ServiceState) -> None:
    """The Kafka stream (events -> predictions) and the control-topic follower.

    Each event served is remembered (`driftwise.service.feedback.ServedMemory`) for the feedback labels the
    adapter joins to it (`driftwise.service.roles`).
    """
    from driftwise.service.control import ModelFollower
    from driftwise.service.stream import StreamWorker

    s = state.settings
    assert s.bootstrap_servers is not None
    served = state.served

    def on_kafka_batch(X: np.ndarray, prediction: BatchPrediction, ids: list[str]) -> None:
        served.remember(ids, X, prediction.labels, prediction.confidence)
        state.notify(X, prediction, "kafka", ids)

    state.stream = StreamWorker(state.runtime, state.metrics, bootstrap=s.bootstrap_servers, group_id=s.group_id,
                                events_topic=s.events_topic, predictions_topic=s.predictions_topic,
                                dlq_topic=s.dlq_topic, on_batch=on_kafka_batch)
    state.stream.start()
    state.follower = ModelFollower(s.bootstrap_servers, lambda name, version: follow_announcement(state, version),
                                   topic=s.models_topic, name=s.name)
    state.follower.start()


def follow_announcement(state: ServiceState, version: int) -> None:
    """Serve a version announced on the control topic (by this replica, another one, or the adapter).

    An announcement this registry cannot honour (a version it lacks, e.g. a fresh
    registry on a broker that remembers an older deployment, or a rejected one) is
    expected, not a fault: one warning, a count, and the served model stays.
    """
    if state.runtime.version == str(version):
        return
    name = state.settings.name
    with state.model_lock:
        try:
            info = state.registry.get(name, version)
        except RegistryError:
            _ignore(state, version, "unknown_version", f"{state.settings.registry} has no such version")
            return
        if info.status == "rejected":
            _ignore(state, version, "rejected", "it was rejected by its guardrails")
            return
        snapshot = load_from_registry(state.registry, name, version, device=state.runtime.device)
        state.runtime.swap(snapshot, reason="control")
    log.info("following the control topic: now serving version %s", version)


def _ignore(state: ServiceState, version: int, reason: str, why: str) -> None:
    state.metrics.control_ignored.labels(reason).inc()
    log.warning("ignoring the announcement of %s version %s on %s: %s; still serving %s", state.settings.name,
                version, state.settings.models_topic, why, state.runtime.version or "nothing")


def attach_adaptation(state: ServiceState) -> None:
    """Hook the drift monitor and adaptation controller into ``state`` (observers, ``state.controller``)."""
    from driftwise.service.adaptation import build_controller

    build_controller(state, leading=not state.settings.bootstrap_servers)  # with a broker: once elected


def stop_background(state: ServiceState) -> None:
    """Stop what runs beside the HTTP server, newest first; one failure does not stop the others."""
    for part in (state.roles, state.controller, state.follower, state.stream):
        if part is None:
            continue
        try:
            part.stop()
        except Exception:  # noqa: BLE001 - keep shutting the rest down
            log.exception("stopping %r failed", part)
