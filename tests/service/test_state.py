"""ServiceState's observers: every batch seen, in order, without slowing predictions down."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import numpy as np

from driftwise.service.app import load_current_model
from driftwise.service.runtime import BatchPrediction
from driftwise.service.settings import Settings
from driftwise.service.state import ServiceState
from tests.service.conftest import SHAPE


def _X(n: int = 1) -> np.ndarray:
    return np.random.default_rng(n).uniform(0, 16, size=(n, *SHAPE)).astype(np.float32)


def test_a_slow_observer_does_not_delay_predictions_and_sees_every_batch_in_order(
        make_settings: Callable[..., Settings]) -> None:
    state = ServiceState.build(make_settings())
    load_current_model(state)
    seen: list[int] = []

    def slow_observer(X: np.ndarray, prediction: BatchPrediction, source: str, ids: list[str] | None) -> None:
        time.sleep(0.2)
        seen.append(len(X))

    state.observers.append(slow_observer)
    state.start_observing()

    async def main() -> list[float]:
        took = []
        async with state.batcher:
            for n in (1, 2, 3):
                started = time.perf_counter()
                await state.batcher.predict(_X(n))
                took.append(time.perf_counter() - started)
        return took

    try:
        took = asyncio.run(main())
        assert max(took) < 0.15  # answered while the observer is still busy
        assert state.flush_observers(timeout=5.0)
        assert seen == [1, 2, 3]
    finally:
        state.stop_observing()


def test_without_the_observer_thread_observers_run_at_once_in_the_callers_thread(
        make_settings: Callable[..., Settings]) -> None:
    state = ServiceState.build(make_settings())
    load_current_model(state)
    threads: list[str] = []
    state.observers.append(lambda X, p, s, ids: threads.append(threading.current_thread().name))
    X = _X(2)
    state.notify(X, state.runtime.predict(X), "kafka")
    assert threads == [threading.current_thread().name]


def test_a_failing_observer_is_logged_and_the_next_one_still_runs(make_settings: Callable[..., Settings]) -> None:
    state = ServiceState.build(make_settings())
    load_current_model(state)
    calls: list[str] = []

    def broken(X: np.ndarray, prediction: BatchPrediction, source: str, ids: list[str] | None) -> None:
        raise RuntimeError("monitor bug")

    state.observers.extend([broken, lambda X, p, s, ids: calls.append(s)])
    state.start_observing()
    try:
        X = _X(1)
        state.notify(X, state.runtime.predict(X), "http")
        assert state.flush_observers(timeout=5.0)
        assert calls == ["http"]
    finally:
        state.stop_observing()


def test_another_replicas_batches_are_dropped_when_the_monitor_is_behind_but_its_own_never_are(
        make_settings: Callable[..., Settings]) -> None:
    from driftwise.service.state import SPARE_BACKLOG

    state = ServiceState.build(make_settings())
    load_current_model(state)
    release = threading.Event()
    seen: list[str] = []

    def stuck_observer(X: np.ndarray, prediction: BatchPrediction, source: str, ids: list[str] | None) -> None:
        release.wait(10)
        seen.append(source)

    state.observers.append(stuck_observer)
    state.start_observing()
    try:
        X = _X(1)
        p = state.runtime.predict(X)
        queued = [state.notify(X, p, "replica", wait=False) for _ in range(SPARE_BACKLOG + 10)]
        assert queued.count(False) >= 9, "past the spare backlog, another replica's batches are dropped"
        assert state.notify(X, p, "kafka") is True  # its own traffic waits its turn, however far behind
        release.set()
        assert state.flush_observers(timeout=10.0)
        assert seen[-1] == "kafka" and seen.count("replica") == queued.count(True)
    finally:
        release.set()
        state.stop_observing()
