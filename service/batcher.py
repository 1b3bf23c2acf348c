"""Micro-batching: concurrent HTTP requests coalesced into one forward pass.

Requests wait in a queue; one collector task takes them in arrival order until
the batch holds ``max_batch`` instances or the oldest request has waited
``max_wait_ms``, then runs the forward pass in a worker thread so the event loop
keeps accepting requests. While a forward pass runs, new requests pile up and
the next batch takes them at once, without waiting again. Waiting only pays when
company is coming: the collector stops waiting early when, at the recent arrival
rate, no other request is due before the deadline (at 200 requests/s, 5 ms
apart, a request is sent on at once instead of idling 2 ms). Requests are never
split, so a batch may exceed ``max_batch`` only when a single request does.

>>> import asyncio, numpy as np
>>> from driftwise.models.classifier import Classifier
>>> from driftwise.models.config import ModelConfig
>>> from driftwise.service.runtime import ModelSnapshot, Runtime
>>> runtime = Runtime(device="cpu")
>>> _ = runtime.swap(ModelSnapshot.of(Classifier(ModelConfig("mlp", (4,), 3, hidden=8, embed_dim=8)), "1"))
>>> async def main():
...     async with MicroBatcher(runtime, max_batch=8, max_wait_ms=5) as batcher:
...         outs = await asyncio.gather(*(batcher.predict(np.zeros((1, 4), np.float32)) for _ in range(5)))
...     return [len(o) for o in outs], batcher.batches
>>> asyncio.run(main())
([1, 1, 1, 1, 1], 1)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from driftwise.service.metrics import Metrics
from driftwise.service.runtime import BatchPrediction, ModelUnavailable, Runtime

log = logging.getLogger(__name__)

BatchObserver = Callable[[np.ndarray, BatchPrediction, str], None]


@dataclass
class _Pending:
    X: np.ndarray
    future: asyncio.Future[BatchPrediction]
    enqueued: float


class MicroBatcher:
    """Coalesce concurrent ``predict`` calls into forward passes of at most ``max_batch`` instances.

    ``on_batch(X, prediction, source)`` is called in the worker thread after each
    batch's results have been handed back, so it never delays those responses.
    """

    def __init__(self, runtime: Runtime, *, max_batch: int = 64, max_wait_ms: float = 2.0, source: str = "http",
                 metrics: Metrics | None = None, on_batch: BatchObserver | None = None) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if not 0.0 <= max_wait_ms <= 1000.0:
            raise ValueError(f"max_wait_ms must be in [0, 1000], got {max_wait_ms}")
        self.runtime = runtime
        self.max_batch = int(max_batch)
        self.max_wait_ms = float(max_wait_ms)
        self.source = source
        self.metrics = metrics
        self.on_batch = on_batch
        self._reset()

    def _reset(self) -> None:
        self._queue: deque[_Pending] = deque()
        self._queued = 0  # instances waiting
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False
        self._last_arrival = 0.0
        self._gap = 2 * self.max_wait_ms / 1000.0  # moving average of the time between requests, seconds
        self.batches = 0

    # -- lifecycle -------------------------------------------------------------
    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("batcher already started")
        self._reset()
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"forward-{self.source}")
        self._task = asyncio.create_task(self._collect_forever(), name=f"batcher-{self.source}")

    async def stop(self, timeout: float = 5.0) -> None:
        """Finish queued requests (up to ``timeout`` seconds), then fail what is left."""
        if self._task is None:
            return
        self._closing = True
        assert self._arrived is not None
        self._arrived.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            self._task.cancel()
        for item in self._queue:
            if not item.future.done():
                item.future.set_exception(ModelUnavailable("the service is shutting down"))
        assert self._executor is not None
        self._executor.shutdown(wait=True)
        self._task = None

    async def __aenter__(self) -> "MicroBatcher":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- requests --------------------------------------------------------------
    async def predict(self, X: np.ndarray) -> BatchPrediction:
        """Predict ``X`` of shape ``(m, *input_shape)`` as part of some batch; returns its ``m`` rows."""
        if self._task is None or self._closing:
            raise ModelUnavailable("the batcher is not running")
        loop = asyncio.get_running_loop()
        now = time.perf_counter()
        gap = min(now - self._last_arrival, 2 * self.max_wait_ms / 1000.0)  # a long lull counts as "no company"
        self._gap, self._last_arrival = 0.8 * self._gap + 0.2 * gap, now
        item = _Pending(X, loop.create_future(), now)
        self._queue.append(item)
        self._queued += len(X)
        assert self._arrived is not None
        self._arrived.set()
        return await item.future

    # -- the collector -----------------------------------------------------------
    async def _collect_forever(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._arrived is not None
        while True:
            while not self._queue:
                if self._closing:
                    return
                self._arrived.clear()
                await self._arrived.wait()
            deadline = self._queue[0].enqueued + self.max_wait_ms / 1000.0
            while self._queued < self.max_batch and not self._closing:
                remaining = deadline - time.perf_counter()
                if remaining <= 0 or remaining < self._gap:  # nobody else is due in time
                    break
                self._arrived.clear()
                try:
                    async with asyncio.timeout(remaining):
                        await self._arrived.wait()
                except TimeoutError:
                    break
            batch = self._take()
            try:
                await loop.run_in_executor(self._executor, self._run_batch, loop, batch)
            except Exception as exc:  # noqa: BLE001 - a bug here must fail these requests, not hang them
                log.exception("batch failed outside the model")
                for item in batch:
                    _settle(item.future, None, exc)

    def _take(self) -> list[_Pending]:
        batch = [self._queue.popleft()]
        size = len(batch[0].X)
        while self._queue and size + len(self._queue[0].X) <= self.max_batch:
            item = self._queue.popleft()
            batch.append(item)
            size += len(item.X)
        self._queued -= size
        return batch

    # -- the worker thread ---------------------------------------------------------
    def _run_batch(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending]) -> None:
        live = [item for item in batch if not item.future.done()]  # skip callers that went away
        if not live:
            return
        started = time.perf_counter()
        try:
            X = live[0].X if len(live) == 1 else np.concatenate([item.X for item in live])
            prediction = self.runtime.predict(X)
        except Exception as exc:  # noqa: BLE001 - handed to the callers
            if len(live) == 1:
                loop.call_soon_threadsafe(_settle, live[0].future, None, exc)
            else:  # find out whose input fails: every other request still gets its answer
                for item in live:
                    self._run_batch(loop, [item])
            return
        self.batches += 1
        self._record(prediction, time.perf_counter() - started)  # before the answers: a scrape after one sees it
        start = 0
        for item in live:
            stop = start + len(item.X)
            loop.call_soon_threadsafe(_settle, item.future, prediction.slice(start, stop), None)
            start = stop
        if self.on_batch is not None:
            try:
                self.on_batch(X, prediction, self.source)
            except Exception:  # noqa: BLE001 - an observer must never break serving
                log.exception("batch observer failed")

    def _record(self, prediction: BatchPrediction, elapsed: float) -> None:
        if self.metrics is None:
            return
        m = self.metrics
        n = len(prediction)
        m.batch_latency.labels(self.source).observe(elapsed)
        m.batch_size.labels(self.source).observe(n)
        m.predictions.labels(self.source).inc(n)
        for c in prediction.confidence.tolist():
            m.confidence.observe(c)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller was cancelled meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
