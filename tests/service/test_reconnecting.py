"""The background Kafka clients' common loop: a failed client is closed and replaced, with growing waits."""

from __future__ import annotations

import threading

import pytest

from driftwise.service import reconnecting
from driftwise.service.reconnecting import ReconnectingThread


class Flaky(ReconnectingThread):
    """Fails to connect ``failures`` times, then works; each client fails after ``steps`` steps."""

    what = "the flaky client"

    def __init__(self, failures: int, steps: int = 3) -> None:
        super().__init__()
        self.failures, self.steps = failures, steps
        self.connects, self.closed, self.disconnects, self.worked = 0, [], 0, 0
        self.third_client = threading.Event()

    def _connect(self) -> int:
        self.connects += 1
        if self.connects <= self.failures:
            raise ConnectionError("broker away")
        if self.connects - self.failures >= 3:
            self.third_client.set()
        return self.connects

    def _work(self, client: int) -> None:
        self.worked += 1
        if self.worked % self.steps == 0:
            raise ConnectionError("lost the broker")

    def _close(self, client: int) -> None:
        self.closed.append(client)

    def _disconnected(self) -> None:
        self.disconnects += 1


def test_a_client_that_fails_is_closed_and_replaced_until_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr(reconnecting, "FIRST_BACKOFF_S", 0.001)
    flaky = Flaky(failures=3)
    real_wait = flaky._stopping.wait
    monkeypatch.setattr(flaky._stopping, "wait", lambda t: waits.append(t) or real_wait(0))
    with flaky:
        assert flaky.third_client.wait(5.0), "it kept reconnecting"
    assert waits[:3] == [0.001, 0.002, 0.004], "the wait doubles while the broker stays away"
    assert waits[3] == 0.001, "and starts over once a client connected"
    assert flaky.closed[:2] == [4, 5], "every client that connected was closed; none that did not"
    assert flaky.disconnects == flaky.connects, "each lost client is reported, failed connects included"
    assert not flaky._thread.is_alive()


def test_the_wait_is_capped_and_a_client_is_started_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reconnecting, "FIRST_BACKOFF_S", 4.0)
    waits: list[float] = []
    flaky = Flaky(failures=5)
    done = threading.Event()

    def wait(t: float) -> bool:
        waits.append(t)
        if len(waits) == 4:
            done.set()
        return False

    monkeypatch.setattr(flaky._stopping, "wait", wait)
    flaky.start()
    assert done.wait(5.0)
    assert flaky.stop(5.0)
    assert waits[:4] == [4.0, 8.0, reconnecting.MAX_BACKOFF_S, reconnecting.MAX_BACKOFF_S]
    with pytest.raises(RuntimeError, match="already started"):
        flaky.start()
