"""A background thread that holds one Kafka client through broker outages: connect, work, reconnect.

Four clients of the service live this way: the model follower (`driftwise.service.control`),
the adapter election (`driftwise.service.election`), the observation feed
(`driftwise.service.observations`) and the feedback consumer (`driftwise.service.feedback`).
Each opens a client, works with it until it is stopped or the client fails, closes it,
waits and opens a new one. The wait doubles from `FIRST_BACKOFF_S` to `MAX_BACKOFF_S`
while the broker stays away, and starts over once a client connects: a broker back
after a restart is found within a second, one away for long is not hammered.

A subclass says how to connect (`_connect`), what one step of work is (`_work`) and,
if it must, what losing the client means (`_disconnected`).

>>> class Counter(ReconnectingThread):
...     thread_name, what = "counter", "the counter"
...     def __init__(self):
...         super().__init__()
...         self.steps = 0
...     def _connect(self):
...         return self
...     def _work(self, client):
...         self.steps += 1
...         self._stopping.wait(0.01)
...     def _close(self, client):
...         pass
>>> counter = Counter().start()
>>> import time; time.sleep(0.1)
>>> counter.stop(), counter.steps > 0
(True, True)
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger(__name__)

FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 10.0


class ReconnectingThread:
    """One daemon thread running `_work` on a client from `_connect`, reconnecting with backoff when it fails."""

    thread_name = "driftwise-client"
    what = "the Kafka client"
    """How logs name it: "<what> failed; reconnecting in 1.0s"."""

    def __init__(self) -> None:
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Any:
        """Start the thread (once: a stopped client is not restarted, make a new one); returns ``self``."""
        if self._thread is not None:
            raise RuntimeError(f"{type(self).__name__} was already started; make a new one")
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 15.0) -> bool:
        """Ask the thread to stop and wait up to ``timeout`` s; True if it has."""
        self._stopping.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what a subclass says ----------------------------------------------------------------------------------
    def _connect(self) -> Any:
        """Open the client (and do whatever must follow each connection); raising counts as a failure."""
        raise NotImplementedError

    def _work(self, client: Any) -> None:
        """One step with the client (a poll); called until stopped. Raising closes it and reconnects."""
        raise NotImplementedError

    def _close(self, client: Any) -> None:
        client.close()

    def _disconnected(self) -> None:
        """The client is gone, for a failure or a stop (before it is closed)."""

    # -- the loop ----------------------------------------------------------------------------------------------
    def _run(self) -> None:
        backoff = FIRST_BACKOFF_S
        while not self._stopping.is_set():
            client = None
            try:
                client = self._connect()
                backoff = FIRST_BACKOFF_S
                while not self._stopping.is_set():
                    self._work(client)
            except Exception:  # noqa: BLE001 - the broker may be down: the service goes on, this one retries
                log.exception("%s failed; reconnecting in %.1fs", self.what, backoff)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
            finally:
                self._disconnected()
                if client is not None:
                    try:
                        self._close(client)
                    except Exception:  # noqa: BLE001
                        log.exception("closing %s failed", self.what)
