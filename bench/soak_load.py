"""The soak's load and probes: Kafka events at a fixed rate, open-loop HTTP, predictions read back, /proc.

Every load is open loop and bounded: item ``i`` is due at ``start + i / rate`` and there
are at most ``count`` of them, so a slow service shows up as latency, never as less
load. Each load keeps one slot per item in preallocated arrays (due time, arrival or
latency), so even a million events cost a few megabytes and nothing grows with time
in this process either. Latency counts from when the item was due, not from when it
went out, so a stall in the client or the service is not hidden (as in `driftwise.bench.serve`).

The probes read ``/proc`` (Linux) for the service's resident memory, open file
descriptors, threads and CPU time, and walk the registry for its size.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from driftwise.bench.serve import _Connection, _raw_post, _run, clock
from driftwise.drift.corruptions import StreamBuilder
from driftwise.service.events import encode_event
from driftwise.service.replay import event_id

EVENT_PREFIX = "soak"


def event_index(eid: str) -> int:
    """The position of an event from its id (`driftwise.service.replay.event_id`).

    >>> event_index(event_id(EVENT_PREFIX, 42))
    42
    """
    return int(eid.rsplit("-", 1)[1])


def phased_rows(pool_x: np.ndarray, pool_y: np.ndarray, phases: tuple[str, ...], phase_events: int, *,
                severity: int, seed: int) -> Iterator[tuple[str, np.ndarray]]:
    """``(phase, row)`` without end: ``phase_events`` rows of each phase in turn, the phases over and over.

    Built one phase at a time, so a long soak never holds its whole stream.
    """
    builder = StreamBuilder(pool_x, pool_y, severity=severity, seed=seed)
    while True:
        for name in phases:
            for row in builder.segment(name, phase_events).x:
                yield name, row


class EventLoad(threading.Thread):
    """``count`` events into ``topic`` at ``rate`` per second from ``start`` (a `clock` time), acks from all
    replicas; each one's due time and whether the broker acknowledged it, by position."""

    def __init__(self, bootstrap: str, topic: str, rows: Iterator[tuple[str, np.ndarray]], count: int, rate: float,
                 start: float, stop: threading.Event) -> None:
        super().__init__(name="soak-events", daemon=True)
        self.bootstrap, self.topic, self.rows = bootstrap, topic, rows
        self.count, self.rate, self.start_at, self.stop = count, rate, start, stop
        self.due = np.full(count, np.nan)
        self.acked = np.zeros(count, dtype=bool)
        self.failed = 0
        self.sent = 0
        self.latest: np.ndarray | None = None
        self.phases: list[tuple[int, float, str]] = []
        """(first event, its due time, phase name) at each phase change."""
        self.error: str | None = None

    def run(self) -> None:
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=5)
        try:
            for i in range(self.count):
                phase, row = next(self.rows)
                due = self.start_at + i / self.rate
                if (delay := due - clock()) > 0:
                    self.stop.wait(delay)
                if self.stop.is_set():
                    break
                if not self.phases or self.phases[-1][2] != phase:
                    self.phases.append((i, due, phase))
                eid = event_id(EVENT_PREFIX, i)
                self.due[i] = due
                future = producer.send(self.topic, key=eid.encode(), value=encode_event(eid, row))
                future.add_callback(self._ack, i)
                future.add_errback(self._fail, i)
                self.latest, self.sent = row, i + 1
            producer.flush(timeout=60)
        except Exception as exc:  # noqa: BLE001 - reported by the run, which then fails
            self.error = f"producing into {self.topic}: {type(exc).__name__}: {exc}"
        finally:
            producer.close(timeout=5)

    def _ack(self, i: int, _metadata: Any) -> None:
        self.acked[i] = True

    def _fail(self, _i: int, _exc: BaseException) -> None:
        self.failed += 1


class PredictionTally(threading.Thread):
    """Reads the predictions topic from the start (no consumer group: it commits nothing) until ``stop``;
    when each event's first prediction arrived, duplicates (at-least-once), and the served version's changes."""

    def __init__(self, bootstrap: str, topic: str, count: int, stop: threading.Event) -> None:
        super().__init__(name="soak-predictions", daemon=True)
        self.bootstrap, self.topic, self.stop = bootstrap, topic, stop
        self.arrived = np.full(count, np.nan)
        self.predicted = 0
        self.duplicates = 0
        self.version = "-"
        self.swaps: list[tuple[float, str]] = []
        """(arrival time, version) whenever predictions start coming from another version."""
        self.error: str | None = None

    def run(self) -> None:
        from kafka import KafkaConsumer

        consumer = None
        try:
            consumer = KafkaConsumer(self.topic, bootstrap_servers=self.bootstrap, auto_offset_reset="earliest",
                                     enable_auto_commit=False, group_id=None)
            while not self.stop.is_set():
                for batch in consumer.poll(timeout_ms=200).values():
                    now = clock()
                    for record in batch:
                        self._count(json.loads(record.value), now)
        except Exception as exc:  # noqa: BLE001 - reported by the run, which then fails
            self.error = f"reading {self.topic}: {type(exc).__name__}: {exc}"
        finally:
            if consumer is not None:
                consumer.close(autocommit=False)

    def _count(self, prediction: dict[str, Any], now: float) -> None:
        i = event_index(prediction["id"])
        if np.isnan(self.arrived[i]):
            self.arrived[i] = now
            self.predicted += 1
        else:
            self.duplicates += 1
        version = str(prediction.get("model_version"))
        if version != self.version:
            self.version = version
            self.swaps.append((now, version))


class HttpLoad(threading.Thread):
    """``count`` ``POST /predict`` requests at ``rate`` per second from ``start``, each with one instance from
    ``instance()`` (the latest event sent, so HTTP drifts with the stream), over keep-alive connections.

    A request that takes over ``timeout_s``, fails, answers other than 200, or finds ``max_connections`` already
    busy is an error, by kind; the others' latencies count from when they were due.
    """

    def __init__(self, port: int, instance: Callable[[], np.ndarray], count: int, rate: float, start: float,
                 stop: threading.Event, *, max_connections: int = 64, timeout_s: float = 30.0) -> None:
        super().__init__(name="soak-http", daemon=True)
        self.port, self.instance, self.count, self.rate, self.start_at, self.stop = (
            port, instance, count, rate, start, stop)
        self.max_connections, self.timeout_s = max_connections, timeout_s
        self.due = np.full(count, np.nan)
        self.latency = np.full(count, np.nan)
        """Seconds from due to the whole response; NaN for an error."""
        self.errors: Counter[str] = Counter()
        self.sent = 0
        self.error: str | None = None
        self._idle: list[_Connection] = []
        self._busy = 0

    def run(self) -> None:
        try:
            _run(self._load())
        except Exception as exc:  # noqa: BLE001 - reported by the run, which then fails
            self.error = f"HTTP load: {type(exc).__name__}: {exc}"

    async def _load(self) -> None:
        pending: set[asyncio.Task] = set()
        for i in range(self.count):
            due = self.start_at + i / self.rate
            if (delay := due - clock()) > 0:
                await asyncio.sleep(delay)
            if self.stop.is_set():
                break
            body = json.dumps({"instances": [self.instance().reshape(-1).tolist()]}).encode()
            task = asyncio.create_task(self._one(i, due, _raw_post(self.port, "/predict", body)))
            pending.add(task)
            task.add_done_callback(pending.discard)
            self.sent = i + 1
        if pending:
            await asyncio.wait(pending, timeout=self.timeout_s + 5)
        for conn in self._idle:
            conn.close()

    async def _one(self, i: int, due: float, raw: bytes) -> None:
        self.due[i] = due
        if not self._idle and self._busy >= self.max_connections:
            self.errors[f"more than {self.max_connections} requests outstanding"] += 1
            return
        self._busy += 1
        conn = None
        try:
            conn = self._idle.pop() if self._idle else await _Connection.open(self.port)
            status = await asyncio.wait_for(conn.request(raw), self.timeout_s)
        except (asyncio.TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            self.errors[type(exc).__name__] += 1
            if conn is not None:
                conn.close()
            return
        finally:
            self._busy -= 1
        if status == 200:
            self.latency[i] = clock() - due
        else:
            self.errors[f"HTTP {status}"] += 1
        self._idle.append(conn)


# -- probes (Linux /proc) ---------------------------------------------------------------------------------------------
def proc_status(pid: int) -> dict[str, int]:
    """Resident memory (kB) and threads of ``pid``, from ``/proc/PID/status``."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {"rss_kb": int(fields["VmRSS"].split()[0]), "threads": int(fields["Threads"])}


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (the service's adapter workers)."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent[int(entry)] = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [], [pid]
    while frontier:
        children = [p for p, pp in parent.items() if pp in frontier]
        found += children
        frontier = children
    return found


def tree_rss_kb(pid: int) -> int:
    """Resident memory of ``pid`` and its descendants (shared pages counted in each)."""
    total = 0
    for p in [pid, *descendants(pid)]:
        try:
            total += proc_status(p)["rss_kb"]
        except (OSError, KeyError):
            continue
    return total


def dir_bytes(path: Path) -> int:
    """Bytes of the files under ``path``; files pruned while it walks are skipped."""
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(folder, name)).st_size
            except OSError:
                continue
    return total


def version_count(registry: Path, name: str) -> int:
    """Published versions of ``name`` on disk (numbered folders; one being pruned is already renamed away)."""
    try:
        return sum(1 for entry in os.scandir(registry / name) if entry.name.isdigit() and entry.is_dir())
    except FileNotFoundError:
        return 0


def probe(pid: int, registry: Path, name: str) -> dict[str, Any]:
    """One sample of the service ``pid`` and its registry."""
    status = proc_status(pid)
    return {"rss_mb": status["rss_kb"] / 1024, "tree_rss_mb": tree_rss_kb(pid) / 1024, "fds": open_fds(pid),
            "threads": status["threads"], "cpu_s": cpu_seconds(pid), "registry_mb": dir_bytes(registry) / 2**20,
            "versions": version_count(registry, name)}
