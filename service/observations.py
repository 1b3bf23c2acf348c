"""What replicas tell the adapter: every predicted batch, on the observations topic.

Only the adapter watches for drift (`driftwise.service.election`). A replica that
is not the adapter runs no detector: after each batch it sends what the drift
loop needs (the inputs, the calibrated probabilities and the embeddings it
served them with, and the version that served them) to the observations topic,
from the observer thread, never on the request's path. The adapter reads that
topic from the moment it takes the role and feeds each batch to its own loop,
so it sees the whole stream, whichever replica served it.

A record is a safetensors buffer (no pickle) with the sender, its deployment
(the consumer group), the model version and, for Kafka events, their ids in its
Kafka headers; an adapter takes only its own deployment's, so deployments may
share a broker and topic. With the ids the adapter can join a feedback label to
the event whichever replica served it (`driftwise.service.feedback`).

>>> import numpy as np
>>> from driftwise.service.runtime import BatchPrediction
>>> p = np.array([[0.9, 0.1]], np.float32)
>>> batch = BatchPrediction(np.array([0]), p, p.max(1), np.ones((1, 3), np.float32), "4")
>>> value, headers = encode_observation(np.zeros((1, 2), np.float32), batch, member="r1", group="driftwise")
>>> x, again, sender, ids = decode_observation(value, headers)
>>> x.shape, again.model_version, again.labels.tolist(), sender, ids
((1, 2), '4', [0], Sender(member='r1', group='driftwise'), None)
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from safetensors.numpy import load, save

from driftwise.service.reconnecting import ReconnectingThread
from driftwise.service.runtime import BatchPrediction
from driftwise.service.topics import ensure_topics

log = logging.getLogger(__name__)

OnObservation = Callable[[np.ndarray, BatchPrediction, Sequence[str] | None], None]
_TENSORS = ("x", "probabilities", "embeddings")


class Sender(NamedTuple):
    member: str  # the replica (`driftwise.service.election.replica_id`)
    group: str  # its deployment: the service's consumer group


def encode_observation(X: np.ndarray, prediction: BatchPrediction, *, member: str, group: str,
                       ids: Sequence[str] | None = None) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The record's value and headers for one predicted batch (``ids``: its events', when it came from Kafka)."""
    value = save({"x": np.ascontiguousarray(X, np.float32),
                  "probabilities": np.ascontiguousarray(prediction.probabilities, np.float32),
                  "embeddings": np.ascontiguousarray(prediction.embeddings, np.float32)})
    headers = [("member", member.encode()), ("group", group.encode()),
               ("model_version", prediction.model_version.encode())]
    if ids is not None:
        headers.append(("ids", json.dumps(list(ids)).encode()))
    return value, headers


def decode_observation(value: bytes, headers: list[tuple[str, bytes]]
                       ) -> tuple[np.ndarray, BatchPrediction, Sender, list[str] | None]:
    """``(X, prediction, sender, ids)``; ``ValueError`` when the record is not an observation."""
    try:
        fields = {key: raw.decode() for key, raw in headers}
        tensors = load(value)
        x, probabilities, embeddings = (tensors[name] for name in _TENSORS)
        sender, version = Sender(fields["member"], fields["group"]), fields["model_version"]
        ids = json.loads(fields["ids"]) if "ids" in fields else None
    except Exception as exc:  # noqa: BLE001 - any malformed record is the same error to the caller
        raise ValueError(f"not an observation: {type(exc).__name__}: {exc}") from exc
    n = len(x)
    if ids is not None and (not isinstance(ids, list) or len(ids) != n or not all(isinstance(i, str) for i in ids)):
        raise ValueError(f"not an observation: {n} inputs but ids {str(ids):.80}")
    if probabilities.ndim != 2 or embeddings.ndim != 2 or len(probabilities) != n or len(embeddings) != n:
        raise ValueError(f"not an observation: {n} inputs, probabilities {probabilities.shape}, "
                         f"embeddings {embeddings.shape}")
    prediction = BatchPrediction(probabilities.argmax(1).astype(np.int64), probabilities, probabilities.max(1),
                                 embeddings, version)
    return x, prediction, sender, ids


class ObservationPublisher:
    """An observer (`driftwise.service.state.ServiceState.observers`) that sends batches while this replica is not the adapter."""

    def __init__(self, bootstrap: str, topic: str, *, member: str, group: str, is_adapter: Callable[[], bool]) -> None:
        self.topic, self.member, self.group, self.is_adapter = topic, member, group, is_adapter
        self.sent = 0
        ensure_topics(bootstrap, [topic], partitions=1)
        # acks=1 and a short linger: an observation lost to a broker failure costs the monitor one batch, not an event.
        self._producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20,
                                       client_id=f"driftwise-observations-{member}")

    def __call__(self, X: np.ndarray, prediction: BatchPrediction, source: str,
                 ids: Sequence[str] | None = None) -> bool:
        """Send the batch, unless this replica is the adapter or the batch came from another; True if sent."""
        if source == "replica" or self.is_adapter():
            return False  # the adapter observes its own batches directly, and never echoes what it received
        value, headers = encode_observation(X, prediction, member=self.member, group=self.group, ids=ids)
        self._producer.send(self.topic, value=value, headers=headers, partition=0)
        self.sent += 1
        return True

    def stop(self) -> None:
        self._producer.close(timeout=5)


class ObservationFeed(ReconnectingThread):
    """The adapter's reader of the observations topic: ``on_batch(X, prediction)`` for every other replica's batch.

    Reads nothing until `follow` (on taking the adapter role), from the end of
    the topic then: what was served before the role was taken is not replayed.
    `pause` stops it again (on losing the role).
    """

    thread_name = "observation-feed"
    what = "the observation feed"

    def __init__(self, bootstrap: str, topic: str, on_batch: OnObservation, *, member: str, group: str,
                 poll_timeout_ms: int = 200) -> None:
        super().__init__()
        self.bootstrap, self.topic, self.on_batch, self.member, self.group = bootstrap, topic, on_batch, member, group
        self.poll_timeout_ms = poll_timeout_ms
        self.received = 0
        self.malformed = 0
        self._following = threading.Event()
        self._restart = threading.Event()

    def start(self) -> "ObservationFeed":
        ensure_topics(self.bootstrap, [self.topic], partitions=1)
        return super().start()

    def follow(self) -> None:
        self._restart.set()
        self._following.set()

    def pause(self) -> None:
        self._following.clear()

    def stop(self, timeout: float = 10.0) -> bool:
        self._following.set()  # wake the thread so it sees the stop
        return super().stop(timeout)

    def _connect(self) -> KafkaConsumer:
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                 client_id=f"driftwise-observation-feed-{self.member}")
        consumer.assign([TopicPartition(self.topic, 0)])
        self._restart.set()  # a new client knows no position: start from the end again
        return consumer

    def _work(self, consumer: KafkaConsumer) -> None:
        """One poll while following (from the end after each `follow` or reconnection); idle otherwise. While the
        broker is away, the adapter watches only the batches it serves itself."""
        if not self._following.is_set():
            self._following.wait(1.0)
            return
        partition = TopicPartition(self.topic, 0)
        if self._restart.is_set():
            self._restart.clear()
            consumer.seek_to_end(partition)
            consumer.position(partition)  # resolve "the end" now, not at the next poll
        polled = consumer.poll(timeout_ms=self.poll_timeout_ms)
        for record in (r for part in polled.values() for r in part):
            if self._following.is_set():
                self._deliver(record.value, list(record.headers or []))

    def _deliver(self, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        try:
            X, prediction, sender, ids = decode_observation(value, headers)
        except ValueError as exc:
            self.malformed += 1
            log.warning("skipping a record on %s: %s", self.topic, exc)
            return
        if sender.group != self.group or sender.member == self.member:
            return  # another deployment's, or sent before this replica became the adapter
        self.received += 1
        self.on_batch(X, prediction, ids)
