"""Commit after ack, on a real broker: a commit never passes a record whose prediction is not acknowledged.

These tests fail production mid-stream (records whose delivery fails, a producer
that breaks halfway through a batch) or hand partitions over mid-stream, and audit
every commit the worker makes: at that moment every event below the committed
offset must have an acknowledged prediction. And no event may be lost (duplicates
are allowed: at-least-once).
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from typing import Any

import numpy as np
import pytest
from kafka.errors import KafkaTimeoutError

from driftwise.service.metrics import Metrics
from driftwise.service.stream import StreamWorker
from driftwise.service.topics import Topics
from tests.kafka_support import (
    SHAPE, SlowRuntime, TopicReader, committed_total, event_bytes, ids_of, produce, tiny_runtime, wait_for,
)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]


def events(n: int, prefix: str) -> tuple[list[str], list[tuple[bytes, bytes]]]:
    rng = np.random.default_rng(0)
    ids = [f"{prefix}-{i:05d}" for i in range(n)]
    return ids, [(i.encode(), event_bytes(i, rng.normal(size=SHAPE).tolist())) for i in ids]


class FailedDelivery:
    """What a produce future holds when the broker refused or lost the record (it was not written)."""

    is_done = True

    def __init__(self, error: Exception) -> None:
        self.exception = error

    def failed(self) -> bool:
        return True

    def succeeded(self) -> bool:
        return False

    def get(self, timeout: float | None = None) -> None:
        raise self.exception


class Ledger:
    """What a consumer group's workers polled and produced, shared: a commit may rest on another worker's acks."""

    def __init__(self) -> None:
        self.polled: dict[tuple[int, int], str] = {}  # (partition, offset) -> event id
        self.deliveries: dict[str, list[Any]] = defaultdict(list)  # event id -> its prediction futures


class AuditedWorker(StreamWorker):
    """A `StreamWorker` whose clients are watched, and whose ``fail_batch``-th batch fails to produce.

    ``fail_how``: ``"delivery"``, every record of that batch fails delivery (none is written), found when its
    acks are awaited; ``"send"``, the producer raises halfway through that batch's records. Every commit is
    checked against the acknowledgements at that moment (in ``ledger``, shared by a group's workers); what is
    wrong lands in ``violations``.
    """

    def __init__(self, *args: Any, fail_batch: int | None = None, fail_how: str = "delivery",
                 ledger: Ledger | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.ledger = ledger or Ledger()
        self.fail_batch, self.fail_how = fail_batch, fail_how
        self.violations: list[str] = []
        self.commits = 0
        self.rewound: list[int] = []  # the batch numbers rewound after a failure
        self._batch = 0
        self._sends_left: int | None = None  # in the failing batch: sends before it breaks

    def _open(self) -> None:
        super()._open()
        consumer, producer = self._consumer, self._producer
        poll, commit, commit_async, send = consumer.poll, consumer.commit, consumer.commit_async, producer.send

        def audited_poll(*a: Any, **kw: Any) -> Any:
            polled = poll(*a, **kw)
            for part in polled.values():
                for r in part:
                    self.ledger.polled[(r.partition, r.offset)] = json.loads(r.value)["id"]
            return polled

        def audited_commit(offsets: Any, **kw: Any) -> Any:
            self._audit(offsets)
            return commit(offsets, **kw)

        def audited_commit_async(offsets: Any, **kw: Any) -> Any:
            self._audit(offsets)
            return commit_async(offsets, **kw)

        def failing_send(topic: str, key: bytes | None = None, value: bytes | None = None) -> Any:
            if self._sends_left is not None:
                if self.fail_how == "delivery":
                    return FailedDelivery(KafkaTimeoutError("injected: the broker never acknowledged this record"))
                if self._sends_left == 0:
                    raise KafkaTimeoutError("injected: the producer failed halfway through a batch")
                self._sends_left -= 1
            future = send(topic, key=key, value=value)
            if topic == self.predictions_topic:
                self.ledger.deliveries[key.decode()].append(future)
            return future

        consumer.poll, consumer.commit, consumer.commit_async = audited_poll, audited_commit, audited_commit_async
        producer.send = failing_send

    def _audit(self, offsets: Any) -> None:
        self.commits += 1
        for tp, meta in offsets.items():
            for offset in range(meta.offset):
                event_id = self.ledger.polled.get((tp.partition, offset))
                if event_id is None:
                    self.violations.append(f"commit {tp.partition}@{meta.offset} passes offset {offset}, never polled")
                elif not any(f.succeeded() for f in self.ledger.deliveries[event_id]):
                    self.violations.append(f"commit {tp.partition}@{meta.offset} passes {event_id}, not acknowledged")

    def _process(self, records: list[Any]) -> None:
        self._batch += 1
        self._sends_left = len(records) // 2 if self._batch == self.fail_batch else None
        try:
            super()._process(records)
        finally:
            self._sends_left = None

    def _rewind(self, records: list[Any]) -> None:
        self.rewound.append(self._batch)
        super()._rewind(records)


def audited(bootstrap: str, topics: Topics, runtime: Any = None, **kw: Any) -> AuditedWorker:
    kw.setdefault("group_id", f"g-{uuid.uuid4().hex[:8]}")
    return AuditedWorker(runtime or tiny_runtime(), Metrics(), bootstrap=bootstrap, events_topic=topics.events,
                         predictions_topic=topics.predictions, dlq_topic=topics.dlq, poll_timeout_ms=200,
                         session_timeout_ms=6000, **kw)


def test_a_batch_whose_delivery_fails_is_redone_and_never_committed_before(kafka_bootstrap: str,
                                                                           kafka_topics: Topics) -> None:
    ids, records = events(300, "lost")
    produce(kafka_bootstrap, kafka_topics.events, records)
    w = audited(kafka_bootstrap, kafka_topics, max_batch=20, fail_batch=3)
    with w, TopicReader(kafka_bootstrap, kafka_topics.predictions) as reader:
        out = reader.read_until(lambda rs: len(set(ids_of(rs))) >= 300, timeout_s=90)
        wait_for(lambda: committed_total(kafka_bootstrap, w.group_id, kafka_topics.events) == 300, 30,
                 "every offset committed")
    assert sorted(set(ids_of(out))) == ids  # nothing lost: the failed batch's records were never written
    assert w.violations == []  # no commit ever passed an unacknowledged prediction
    assert w.commits > 0 and w.retries == 1 and w.rewound == [3]
    assert len(out) == 300  # only the failed batch was redone, and none of its records had been written


def test_a_producer_failing_halfway_through_a_batch_redoes_the_whole_batch(
        kafka_bootstrap: str, kafka_topics: Topics) -> None:
    ids, records = events(300, "half")
    produce(kafka_bootstrap, kafka_topics.events, records)
    w = audited(kafka_bootstrap, kafka_topics, max_batch=20, fail_batch=4, fail_how="send")
    with w, TopicReader(kafka_bootstrap, kafka_topics.predictions) as reader:
        out = reader.read_until(lambda rs: len(set(ids_of(rs))) >= 300, timeout_s=90)
        wait_for(lambda: committed_total(kafka_bootstrap, w.group_id, kafka_topics.events) == 300, 30,
                 "every offset committed")
    assert sorted(set(ids_of(out))) == ids
    assert w.violations == []
    assert w.retries == 1 and w.rewound == [4]
    assert len(out) > 300  # the half written before the break was predicted again: at least once, not exactly


def test_partitions_handed_over_mid_stream_lose_nothing_redo_nothing_and_commit_nothing_unacknowledged(
        kafka_bootstrap: str, kafka_topics: Topics) -> None:
    ids, records = events(1000, "handover")
    produce(kafka_bootstrap, kafka_topics.events, records)
    group, ledger = f"g-{uuid.uuid4().hex[:8]}", Ledger()
    a = audited(kafka_bootstrap, kafka_topics, SlowRuntime(tiny_runtime(), 0.05), group_id=group, max_batch=10,
                ledger=ledger)
    b = audited(kafka_bootstrap, kafka_topics, group_id=group, max_batch=10, ledger=ledger)
    with TopicReader(kafka_bootstrap, kafka_topics.predictions) as reader:
        with a:
            reader.read_until(lambda rs: len(rs) >= 100, timeout_s=60)
            with b:  # joins while a still has a backlog: a's partitions are revoked between two of its batches
                wait_for(lambda: b.processed > 0, 60, "the second worker to get partitions")
                out = reader.read_until(lambda rs: len(set(ids_of(rs))) >= 1000, timeout_s=120)
    assert sorted(set(ids_of(out))) == ids
    assert a.processed > 0 and b.processed > 0
    assert len(out) == len(ids)  # all a acknowledged was committed before the handover: b redid none of it
    assert a.violations == [] and b.violations == []
    assert a.retries == 0 and b.retries == 0
