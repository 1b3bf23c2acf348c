"""Feedback labels: ``{"id", "label"}`` records on ``driftwise.labels`` joined to what was served.

The stream remembers, for each recent event id, the input, the label it served
and its confidence (bounded, oldest forgotten first). A label arriving later is
joined to that memory and handed to the adaptation controller, which turns it
into live accuracy, a "labels needed" decision, and labeled samples for the next
adaptation. Labels for unknown (forgotten or never seen) ids are counted and
dropped; malformed records are skipped with a log line, never fatal.

>>> memory = ServedMemory(capacity=2)
>>> memory.remember(["a", "b", "c"], np.zeros((3, 2), np.float32), np.array([1, 2, 3]), np.array([.9, .8, .7]))
>>> memory.pop("a") is None, memory.pop("c")[1:]
(True, (3, 0.7))
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence

import numpy as np
from kafka import KafkaConsumer

from driftwise.service.reconnecting import ReconnectingThread
from driftwise.service.topics import ensure_topics

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_MS = 2000
"""How long closing the feedback consumer may wait to commit its last offsets."""

OnFeedback = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], None]
"""``(X, served_labels, true_labels, confidences)`` for a batch of joined feedback."""


class ServedMemory:
    """Bounded map of event id -> (input, served label, confidence); thread-safe.

    The inputs live in one ring of rows, reserved (and touched) at the first event: the memory's
    footprint is known from the start instead of creeping up for hours as it fills. Its size is
    ``capacity`` events or ``max_bytes`` of inputs, whichever is fewer, so large inputs cannot
    exhaust the host (100,000 remembered 3x224x224 images would be 60 GB). Remembering an event
    again forgets its older entry. (As a dict of per-event arrays it cost 724 bytes an 8x8 digit
    and grew by 33 MB over the half hour of the soak's second half.)
    """

    def __init__(self, capacity: int = 100_000, *, max_bytes: int = 64 * 2**20) -> None:
        if capacity < 1 or max_bytes < 1:
            raise ValueError(f"capacity and max_bytes must be >= 1, got {capacity}, {max_bytes}")
        self.capacity, self.max_bytes = capacity, max_bytes
        self._slots: dict[str, int] = {}
        self._ids: list[str | None] = []
        self._rows: np.ndarray | None = None
        self._labels = np.zeros(0, np.int64)
        self._confidences = np.zeros(0, np.float64)
        self._next = 0
        self._lock = threading.Lock()

    def _reserve(self, row: np.ndarray) -> None:
        size = min(self.capacity, max(1, self.max_bytes // max(1, row.nbytes)))
        self._rows = np.empty((size, *row.shape), row.dtype)
        self._rows.fill(0)  # touched now, so resident from the start
        self._labels, self._confidences = np.zeros(size, np.int64), np.zeros(size, np.float64)
        self._ids = [None] * size

    def remember(self, ids: Sequence[str], X: np.ndarray, labels: np.ndarray, confidences: np.ndarray) -> None:
        with self._lock:
            for i, event_id in enumerate(ids):
                row = np.asarray(X[i])
                if self._rows is None:
                    self._reserve(row)
                assert self._rows is not None
                if row.shape != self._rows.shape[1:]:  # another model's inputs: start afresh
                    self._slots.clear()
                    self._reserve(row)
                    self._next = 0
                old = self._slots.pop(event_id, None)
                if old is not None:
                    self._ids[old] = None
                slot = self._next
                evicted = self._ids[slot]
                if evicted is not None:
                    del self._slots[evicted]
                self._rows[slot], self._labels[slot], self._confidences[slot] = row, labels[i], confidences[i]
                self._ids[slot], self._slots[event_id] = event_id, slot
                self._next = (slot + 1) % len(self._ids)

    def pop(self, event_id: str) -> tuple[np.ndarray, int, float] | None:
        with self._lock:
            slot = self._slots.pop(event_id, None)
            if slot is None or self._rows is None:
                return None
            self._ids[slot] = None
            return self._rows[slot].copy(), int(self._labels[slot]), float(self._confidences[slot])

    def __len__(self) -> int:
        return len(self._slots)


def decode_feedback(value: bytes | None) -> tuple[str, int]:
    """``(id, label)``; ``ValueError`` when the record is not feedback."""
    try:
        obj = json.loads(value or b"")
        event_id, label = obj["id"], obj["label"]
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"not a feedback record: {value!r:.80}") from exc
    if not isinstance(event_id, str) or isinstance(label, bool) or not isinstance(label, int) or label < 0:
        raise ValueError(f"not a feedback record: {value!r:.80}")
    return event_id, label


class FeedbackConsumer(ReconnectingThread):
    """Reads the labels topic in its own consumer group and reports joined feedback, in a background thread.

    Feedback is optional: while the broker is away, serving goes on without it.
    """

    thread_name = "driftwise-feedback"
    what = "the feedback consumer"

    def __init__(self, memory: ServedMemory, on_feedback: OnFeedback, *, bootstrap: str, topic: str,
                 group_id: str) -> None:
        super().__init__()
        self.memory, self.on_feedback = memory, on_feedback
        self.bootstrap, self.topic, self.group_id = bootstrap, topic, group_id
        self.joined = 0
        self.unknown = 0
        self.malformed = 0

    def _connect(self) -> KafkaConsumer:
        ensure_topics(self.bootstrap, [self.topic], partitions=3)
        return KafkaConsumer(self.topic, bootstrap_servers=self.bootstrap, group_id=self.group_id,
                             enable_auto_commit=True, auto_offset_reset="earliest", reconnect_backoff_max_ms=2000)

    def _work(self, consumer: KafkaConsumer) -> None:
        for batch in consumer.poll(timeout_ms=500).values():
            self._handle(batch)

    def _close(self, consumer: KafkaConsumer) -> None:
        # The last offsets are committed if the broker answers within the bound; if it does not (it has gone), the
        # labels since the last auto-commit are read again on the next start. Unbounded, a dead broker held a
        # stopping service 15 s here.
        consumer.close(timeout_ms=CLOSE_TIMEOUT_MS)

    def _handle(self, records: list) -> None:  # noqa: ANN001 - kafka ConsumerRecords
        rows, served, true, conf = [], [], [], []
        for record in records:
            try:
                event_id, label = decode_feedback(record.value)
            except ValueError as exc:
                self.malformed += 1
                log.warning("%s", exc)
                continue
            hit = self.memory.pop(event_id)
            if hit is None:
                self.unknown += 1
                continue
            rows.append(hit[0])
            served.append(hit[1])
            conf.append(hit[2])
            true.append(label)
        if rows:
            self.joined += len(rows)
            self.on_feedback(np.stack(rows), np.asarray(served), np.asarray(true), np.asarray(conf))
