"""What a running service holds: built once at startup, reached from every route.

``observers`` are called with ``(X, prediction, source)`` after every predicted
batch, whatever its source (``"http"`` or ``"kafka"``); the drift monitor hooks
in there. Calls are serialised (one batch at a time), so an observer need not be
thread-safe, and an observer that raises is logged and never fails a request.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.registry import Registry
from service.batcher import MicroBatcher
from service.metrics import Metrics
from service.runtime import BatchPrediction, Runtime
from service.settings import Settings

log = logging.getLogger(__name__)

Observer = Callable[[np.ndarray, BatchPrediction, str], None]


@dataclass
class ServiceState:
    """The service's parts. ``stream`` and ``controller`` are set by the wiring code when enabled."""

    settings: Settings
    registry: Registry
    runtime: Runtime
    metrics: Metrics
    batcher: MicroBatcher
    observers: list[Observer] = field(default_factory=list)
    stream: Any | None = None  # service.stream.StreamWorker, with bootstrap servers
    follower: Any | None = None  # follows the control topic, with bootstrap servers
    controller: Any | None = None  # the adaptation controller: snapshot(), trigger()
    feedback: Any | None = None  # service.feedback.FeedbackConsumer, with bootstrap servers
    model_lock: threading.Lock = field(default_factory=threading.Lock)  # serialises activate/rollback/follow
    _observe_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def build(cls, settings: Settings, metrics: Metrics | None = None) -> "ServiceState":
        """Registry, runtime and batcher from ``settings``; no model is loaded yet."""
        metrics = metrics or Metrics()
        runtime = Runtime(device=settings.device, metrics=metrics)
        batcher = MicroBatcher(runtime, max_batch=settings.max_batch, max_wait_ms=settings.max_wait_ms, source="http",
                               metrics=metrics)
        state = cls(settings, Registry(settings.registry), runtime, metrics, batcher)
        batcher.on_batch = state.notify
        return state

    def notify(self, X: np.ndarray, prediction: BatchPrediction, source: str) -> None:
        """Tell every observer about a predicted batch (called from the batch's thread)."""
        if not self.observers:
            return
        with self._observe_lock:
            for observer in list(self.observers):
                try:
                    observer(X, prediction, source)
                except Exception:  # noqa: BLE001 - monitoring must never break serving
                    log.exception("observer %r failed on a %s batch", observer, source)
