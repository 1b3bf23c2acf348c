"""The Kafka stream: events in, predictions out, at least once.

One background thread owns a consumer (in a consumer group, auto-commit off)
and a producer. Each poll is one batch: bad events go to the dead-letter topic
with their reason, good ones are predicted in one ``runtime.predict`` call, every
record produced is acknowledged (``acks=all``), and only then are the batch's
offsets committed. If anything before the acknowledgements fails, the batch's
partitions are rewound to the batch start and the batch is done again: an event
may be predicted twice, never zero times.

Acks are awaited batch by batch. Awaiting batch N's only after batch N+1 is
produced was tried (issue 12) and not kept: 0.89x the stream's events/s in
``driftwise bench serve`` (4916 vs 5551 without the monitor, 3 rounds, 2 cores
shared with the broker). This thread is busy for about 120 us of an event's
140 (CPU time, 20000 events), so there is little wait to hide; nor did moving
the forward pass to a thread of its own help (the GIL).

Commits are asynchronous (the next batch is predicted while the coordinator
answers: a synchronous commit cost 28 us an event, bench/results/serve.md).
They are cumulative, so a failed one is made good by the next; a commit that
never lands before a crash means the events after the last one that did are
predicted again, never lost. At a rebalance (in the revoke hook) and at
shutdown the offsets of everything acknowledged are committed synchronously.

Rebalances: polling, processing and committing run on this one thread, and a
rebalance only happens inside ``poll`` (the listener runs while ``poll`` waits),
so every batch is acknowledged or rewound before partitions can be revoked: there
is never unacknowledged work to hand over. A commit refused because the group moved
on (``CommitFailedError``) is dropped: the new owner starts from the last commit.

Broker restarts: kafka-python reconnects by itself; produce retries until the
broker is back (``delivery_timeout_ms``). If the clients themselves fail, they
are rebuilt and resume from the committed offsets.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.errors import CommitFailedError

from driftwise.service.events import decode_events, encode_dead_letter, encode_prediction
from driftwise.service.metrics import Metrics
from driftwise.service.topics import DLQ, EVENTS, PREDICTIONS, ensure_topics

log = logging.getLogger(__name__)
SOURCE = "kafka"
COMMIT_TIMEOUT_MS = 5000  # a synchronous commit at a rebalance or shutdown: a lost broker must not hold either long
RECONNECT_BACKOFF_MAX_MS = 2000  # kafka-python's default 30 s would idle that long after a broker comes back


class RuntimeLike(Protocol):
    """What the stream needs from `driftwise.service.runtime.Runtime`."""

    @property
    def input_shape(self) -> tuple[int, ...] | None: ...

    def predict(self, X: np.ndarray) -> Any: ...  # BatchPrediction


OnBatch = Callable[[np.ndarray, Any, list[str]], None]
"""``(X, prediction, event_ids)`` after each predicted batch is committed."""


class ModelNotReady(RuntimeError):
    """The runtime has no model yet: the batch waits (rewound), nothing is dead-lettered."""


class StreamWorker:
    """Consume events, predict in batches, produce predictions, then commit; in a background thread.

    ``max_batch`` bounds the records per poll (and per forward pass);
    ``poll_timeout_ms`` how long a poll waits for the first record. ``on_batch(X,
    prediction, ids)`` sees every predicted batch (the drift monitor); its errors are
    logged, never fatal. ``processed`` counts events whose prediction or dead
    letter is acknowledged and whose offset is committed.
    """

    def __init__(self, runtime: RuntimeLike, metrics: Metrics, *, bootstrap: str, group_id: str = "driftwise",
                 events_topic: str = EVENTS, predictions_topic: str = PREDICTIONS, dlq_topic: str = DLQ,
                 max_batch: int = 256, poll_timeout_ms: int = 500, on_batch: OnBatch | None = None,
                 session_timeout_ms: int = 10000, create_topics: bool = True, partitions: int = 3,
                 flush_timeout_s: float = 120.0) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if poll_timeout_ms < 0:
            raise ValueError(f"poll_timeout_ms must be >= 0, got {poll_timeout_ms}")
        if session_timeout_ms < 6000:
            raise ValueError(f"session_timeout_ms must be >= 6000 (the broker's minimum), got {session_timeout_ms}")
        if flush_timeout_s <= 0:
            raise ValueError(f"flush_timeout_s must be positive, got {flush_timeout_s}")
        if not bootstrap:
            raise ValueError("bootstrap servers are required (HOST:PORT)")
        self.runtime = runtime
        self.metrics = metrics
        self.bootstrap = bootstrap
        self.group_id = group_id
        self.events_topic = events_topic
        self.predictions_topic = predictions_topic
        self.dlq_topic = dlq_topic
        self.max_batch = max_batch
        self.poll_timeout_ms = poll_timeout_ms
        self.on_batch = on_batch
        self.session_timeout_ms = session_timeout_ms
        self.create_topics = create_topics
        self.partitions = partitions
        self.flush_timeout_s = flush_timeout_s
        self._reset()

    def _reset(self) -> None:
        self.processed = 0
        self.dead_lettered = 0
        self.batches = 0
        self.retries = 0
        self.commit_failures = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: KafkaConsumer | None = None
        self._producer: KafkaProducer | None = None
        self._next_offset: dict[TopicPartition, int] = {}  # per partition: the offset after the last acknowledged batch

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> "StreamWorker":
        if self._thread is not None:
            raise RuntimeError("this StreamWorker was already started; make a new one")
        self._thread = threading.Thread(target=self._run, name=f"stream-{self.group_id}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> bool:
        """Finish the batch in hand, close the clients; False if the thread did not end in time."""
        self._stopping.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> "StreamWorker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            try:
                self._open()
                backoff = 0.5
                while not self._stopping.is_set():
                    self._step()
            except Exception:  # a client that cannot go on: rebuild it, resume from committed offsets
                log.exception("stream clients failed; reconnecting in %.1fs", backoff)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                self._close()

    def _open(self) -> None:
        if self.create_topics:
            ensure_topics(self.bootstrap, [self.events_topic, self.predictions_topic, self.dlq_topic],
                          self.partitions)
        common = {"bootstrap_servers": self.bootstrap, "client_id": f"driftwise-stream-{self.group_id}",
                  "reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS}
        self._producer = KafkaProducer(acks="all", linger_ms=5, **common)
        self._consumer = KafkaConsumer(
            group_id=self.group_id, enable_auto_commit=False, auto_offset_reset="earliest",
            max_poll_records=self.max_batch, session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=self.session_timeout_ms // 4, **common,
        )
        self._consumer.subscribe([self.events_topic], listener=_Rebalance(self))
        # Know the topic's partitions before the first join. Otherwise the first metadata
        # response arrives after joining and triggers a second join, and kafka-python 3.0.12
        # drops that join's assignment if a poll times out while it is in flight (it does
        # not treat a pending join as "rejoin needed", unlike the Java client): the consumer
        # then sits in the group with no partitions. Seen here about once in 40 starts.
        self._consumer.partitions_for_topic(self.events_topic)

    def _close(self) -> None:
        self.commit_acknowledged()  # what the asynchronous commits may not have landed yet
        consumer, producer, self._consumer, self._producer = self._consumer, self._producer, None, None
        if producer is not None:
            try:
                producer.close(timeout=5)
            except Exception:
                log.exception("closing the producer failed")
        if consumer is not None:
            try:
                consumer.close(autocommit=False)
            except Exception:
                log.exception("closing the consumer failed")

    # -- one batch -----------------------------------------------------------------------

    def _step(self) -> None:
        polled = self._consumer.poll(timeout_ms=self.poll_timeout_ms, max_records=self.max_batch)
        records = [r for part in polled.values() for r in part]
        if records:
            try:
                self._process(records)
            except ModelNotReady as exc:
                log.warning("%s", exc)
                self._rewind(records)
                self._stopping.wait(1.0)
            except Exception:
                self.retries += 1
                log.exception("batch of %d events failed; rewinding to redo it", len(records))
                self._rewind(records)
                self._stopping.wait(1.0)
        self._update_lag()

    def _process(self, records: list[Any]) -> None:
        """Dead-letter the bad, predict the good, wait for every ack, commit; then metrics and the hook."""
        shape = self.runtime.input_shape
        if shape is None:
            raise ModelNotReady("no model is loaded yet; holding the batch until one is")
        futures = []
        decoded = decode_events([r.value for r in records], tuple(shape))
        bad: list[str] = []
        for i, exc in decoded.bad:
            r = records[i]
            dead_letter = encode_dead_letter(exc, r.value, topic=r.topic, partition=r.partition, offset=r.offset)
            futures.append(self._producer.send(self.dlq_topic, key=r.key, value=dead_letter))
            bad.append(exc.reason)
        good_ids = decoded.ids
        X = decoded.X if good_ids else None
        pred = None
        if X is not None:
            started = time.perf_counter()
            pred = self.runtime.predict(X)
            self.metrics.batch_latency.labels(SOURCE).observe(time.perf_counter() - started)
            version, send, topic = str(pred.model_version), self._producer.send, self.predictions_topic
            rows = zip(good_ids, pred.labels.tolist(), pred.confidence.tolist())
            futures.extend(send(topic, key=i.encode(), value=encode_prediction(i, label, confidence, version))
                           for i, label, confidence in rows)
        self._producer.flush(timeout=self.flush_timeout_s)
        for f in futures:
            f.get(timeout=0)  # raises the delivery error, if any
        self._commit(records)

        self.processed += len(records)
        self.dead_lettered += len(bad)
        self.batches += 1
        self.metrics.events_consumed.inc(len(records))
        for reason in bad:
            self.metrics.dlq.labels(reason).inc()
        if X is not None and pred is not None:
            self.metrics.predictions.labels(SOURCE).inc(len(good_ids))
            self.metrics.batch_size.labels(SOURCE).observe(len(good_ids))
            for c in pred.confidence.tolist():
                self.metrics.confidence.observe(c)
            if self.on_batch is not None:
                try:
                    self.on_batch(X, pred, good_ids)
                except Exception:
                    log.exception("the on_batch hook failed; the stream goes on")

    def _commit(self, records: list[Any]) -> None:
        """Commit (asynchronously) the offset after each partition's last record, for partitions still ours."""
        offsets: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
        assigned = self._consumer.assignment()
        to_commit = {tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items() if tp in assigned}
        self._next_offset.update(offsets)
        if to_commit:
            self._consumer.commit_async(to_commit, callback=self._committed)

    def _committed(self, offsets: Any, response: Any) -> None:
        if isinstance(response, Exception):
            self.commit_failures += 1
            log.warning("an asynchronous offset commit failed (%s); the next commit covers it", response)

    def commit_acknowledged(self, partitions: Any = None) -> None:
        """Commit, synchronously, the offsets of everything acknowledged on ``partitions`` (default: all ours)."""
        consumer = self._consumer
        if consumer is None:
            return
        wanted = set(consumer.assignment() if partitions is None else partitions)
        offsets = {tp: OffsetAndMetadata(o, "", -1) for tp, o in self._next_offset.items() if tp in wanted}
        if not offsets:
            return
        try:
            consumer.commit(offsets, timeout_ms=COMMIT_TIMEOUT_MS)
        except CommitFailedError:
            log.warning("offset commit refused after a rebalance; the new owner redoes those events")
        except Exception:  # noqa: BLE001 - at worst the events since the last commit are predicted again
            log.exception("committing acknowledged offsets failed")

    def _rewind(self, records: list[Any]) -> None:
        """Seek each partition of a failed batch back to the batch's first record."""
        first: dict[Any, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            first[tp] = min(first.get(tp, r.offset), r.offset)
        assigned = self._consumer.assignment()
        for tp, offset in first.items():
            if tp in assigned:
                self._consumer.seek(tp, offset)

    def _update_lag(self) -> None:
        """Lag = the partition's high watermark (from the last fetch) minus our next offset; no network call."""
        for tp in self._consumer.assignment():
            high = self._consumer.highwater(tp)
            position = self._next_offset.get(tp)
            if high is not None and (position is not None or high == 0):
                self.metrics.consumer_lag.labels(str(tp.partition)).set(max(high - (position or 0), 0))


class _Rebalance(ConsumerRebalanceListener):
    """Rebalance hooks: nothing is uncommitted at a rebalance (see the module docstring); keep the lag gauge honest."""

    def __init__(self, worker: StreamWorker) -> None:
        self.worker = worker

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.worker.commit_acknowledged(revoked)  # the new owner starts after what was acknowledged here
        for tp in revoked:
            self.worker._next_offset.pop(tp, None)
            try:
                self.worker.metrics.consumer_lag.remove(str(tp.partition))
            except KeyError:
                pass
        if revoked:
            log.info("partitions revoked: %s", sorted(tp.partition for tp in revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("partitions assigned: %s", sorted(tp.partition for tp in assigned))

    def on_partitions_lost(self, lost: Any) -> None:
        self.on_partitions_revoked(lost)
