"""What a running service holds: built once at startup, reached from every route.

``observers`` are called with ``(X, prediction, source, ids)`` after every
predicted batch, whatever its source (``"http"``, ``"kafka"``, or ``"replica"``:
a batch another replica served, `driftwise.service.roles`); ``ids`` are the
events' ids for Kafka batches, else None. The drift monitor hooks in there.
Calls are serialised (one batch at a time, in order), so an observer need not
be thread-safe, and an observer that raises is logged and never fails a
request.

While the service runs (between ``start_observing`` and ``stop_observing``)
observers run in their own thread, fed by a bounded queue: a slow moment in the
monitor then delays no prediction. Every batch this process served is still
observed: when the queue is full, ``notify`` waits (back-pressure) rather than
dropping it; only another replica's, at the adapter, may be dropped (`SPARE_BACKLOG`).
``flush_observers`` waits until everything predicted so far has been observed.
Without that thread (tools, tests), ``notify`` calls the observers at once.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from driftwise.models.registry import Registry
from driftwise.service.feedback import ServedMemory
from driftwise.service.batcher import MicroBatcher
from driftwise.service.metrics import Metrics
from driftwise.service.runtime import BatchPrediction, Runtime
from driftwise.service.settings import Settings

log = logging.getLogger(__name__)

Observer = Callable[[np.ndarray, BatchPrediction, str, Sequence[str] | None], None]
OBSERVER_BACKLOG = 1024  # batches waiting for the observers before predictions wait for them
SPARE_BACKLOG = 64
"""Batches waiting beyond which one that need not be observed (``wait=False``: another replica's, at the adapter)
is dropped rather than queued: the adapter's monitor then falls behind on the others' traffic, never its own."""
_STOP = object()


@dataclass
class ServiceState:
    """The service's parts. ``stream`` and ``controller`` are set by the wiring code when enabled."""

    settings: Settings
    registry: Registry
    runtime: Runtime
    metrics: Metrics
    batcher: MicroBatcher
    observers: list[Observer] = field(default_factory=list)
    stream: Any | None = None  # driftwise.service.stream.StreamWorker, with bootstrap servers
    follower: Any | None = None  # follows the control topic, with bootstrap servers
    controller: Any | None = None  # the adaptation controller: snapshot(), trigger()
    roles: Any | None = None  # driftwise.service.roles.Roles, with bootstrap servers
    served: ServedMemory = field(default_factory=ServedMemory)  # what feedback labels join to; reserved at first use
    model_lock: threading.Lock = field(default_factory=threading.Lock)  # serialises activate/rollback/follow
    _observe_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _backlog: queue.Queue[Any] = field(default_factory=lambda: queue.Queue(OBSERVER_BACKLOG), repr=False)
    _observer_thread: threading.Thread | None = field(default=None, repr=False)

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

    def notify(self, X: np.ndarray, prediction: BatchPrediction, source: str,
               ids: Sequence[str] | None = None, *, wait: bool = True) -> bool:
        """Tell every observer about a predicted batch (called from the batch's thread).

        With ``wait=False`` the batch is dropped, and False returned, when more than `SPARE_BACKLOG` wait already.
        """
        if not self.observers:
            return True
        if self._observer_thread is not None:
            if not wait and self._backlog.qsize() >= SPARE_BACKLOG:
                return False
            self._backlog.put((X, prediction, source, ids))
            return True
        self._observe(X, prediction, source, ids)
        return True

    def start_observing(self) -> None:
        """Run observers in a thread of their own from now on."""
        if self._observer_thread is None:
            self._observer_thread = threading.Thread(target=self._observe_forever, name="observers", daemon=True)
            self._observer_thread.start()

    def flush_observers(self, timeout: float = 5.0) -> bool:
        """Wait until every batch handed to ``notify`` so far has been observed; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._backlog.all_tasks_done:
            while self._backlog.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._backlog.all_tasks_done.wait(remaining)
        return True

    def stop_observing(self, timeout: float = 10.0) -> None:
        """Observe what is queued, then stop the thread; observers are called directly again."""
        thread = self._observer_thread
        if thread is None:
            return
        self._backlog.put(_STOP)
        thread.join(timeout)
        self._observer_thread = None

    def _observe_forever(self) -> None:
        while True:
            item = self._backlog.get()
            try:
                if item is _STOP:
                    return
                self._observe(*item)
            finally:
                self._backlog.task_done()

    def _observe(self, X: np.ndarray, prediction: BatchPrediction, source: str, ids: Sequence[str] | None) -> None:
        with self._observe_lock:
            for observer in list(self.observers):
                try:
                    observer(X, prediction, source, ids)
                except Exception:  # noqa: BLE001 - monitoring must never break serving
                    log.exception("observer %r failed on a %s batch", observer, source)
