"""Pytest plugin: a real Kafka broker for tests marked ``kafka``, and small helpers to talk to it.

``kafka_bootstrap`` (session): the broker in ``DRIFTWISE_TEST_BOOTSTRAP`` when it
answers, else a private single-node broker started with ``deploy/kafka/kafka.sh``
on a free port and stopped (and purged) at the end; the script also stops it if
this process dies. With ``CI=true`` a missing broker FAILS the test: Kafka tests
never skip in CI. Every test gets its own topics (uuid suffix), so tests never
see each other's records.

Also runnable as a stream worker process, for crash tests:
``python -m tests.kafka_support worker --bootstrap B --group G --events T ...``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from driftwise.service.events import encode_event
from driftwise.service.kafka_local import KafkaScriptError, LocalKafka, free_port_pair, is_reachable
from driftwise.service.topics import Topics, ensure_topics

if TYPE_CHECKING:  # torch and the runtime load only when a test builds one: every pytest run loads this plugin
    from driftwise.service.runtime import BatchPrediction, Runtime

ENV_BOOTSTRAP = "DRIFTWISE_TEST_BOOTSTRAP"
SHAPE = (4,)
NUM_CLASSES = 3


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def broker_unavailable(message: str) -> None:
    """Fail in CI (Kafka tests must run there), skip elsewhere, with the reason either way."""
    if in_ci():
        pytest.fail(f"CI=true and no Kafka broker: {message}", pytrace=False)
    pytest.skip(f"no Kafka broker: {message}")


def start_private_broker() -> LocalKafka:
    """A fresh single-node broker on a free port, stopped and purged when this process exits at the latest."""
    kafka = LocalKafka(free_port_pair(), tie_to_this_process=True, purge_on_stop=True)
    try:
        kafka.start()
    except (KafkaScriptError, OSError) as exc:
        broker_unavailable(str(exc))
    return kafka


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    configured = os.environ.get(ENV_BOOTSTRAP)
    if configured:
        if is_reachable(configured, timeout=10.0):
            yield configured
            return
        warnings.warn(f"{ENV_BOOTSTRAP}={configured} does not answer; starting a private broker instead")
    kafka = start_private_broker()
    try:
        yield kafka.bootstrap
    finally:
        kafka.stop()


def unique_topics() -> Topics:
    return Topics().with_suffix(f".t{uuid.uuid4().hex[:10]}")


@pytest.fixture
def kafka_topics(kafka_bootstrap: str) -> Topics:
    """This test's own events/predictions/dlq topics (3 partitions each), created and ready."""
    topics = unique_topics()
    ensure_topics(kafka_bootstrap, [topics.events, topics.predictions, topics.dlq], partitions=3)
    return topics


# -- a real runtime with a tiny real model ----------------------------------------------


def tiny_runtime(seed: int = 0, version: str = "1") -> Runtime:
    """The real `driftwise.service.runtime.Runtime` serving a small real MLP on inputs of shape (4,)."""
    import torch

    from driftwise.models.classifier import Classifier
    from driftwise.models.config import ModelConfig
    from driftwise.service.runtime import ModelSnapshot, Runtime

    torch.manual_seed(seed)
    model = Classifier(ModelConfig(encoder="mlp", input_shape=SHAPE, num_classes=NUM_CLASSES, hidden=16, embed_dim=8))
    runtime = Runtime(device="cpu")
    runtime.swap(ModelSnapshot.of(model, version=version, device="cpu"), reason="startup")
    return runtime


class SlowRuntime:
    """Wraps a runtime and sleeps before each batch, so a test can act while work is in flight."""

    def __init__(self, runtime: Runtime, delay_s: float) -> None:
        self.runtime = runtime
        self.delay_s = delay_s

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        return self.runtime.input_shape

    def predict(self, X: np.ndarray) -> BatchPrediction:
        time.sleep(self.delay_s)
        return self.runtime.predict(X)


# -- talking to topics -------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Seconds until ``condition()`` held; fails the test after ``timeout_s``, saying ``what`` it waited for."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout_s:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.1)
    return time.monotonic() - start


def event_bytes(event_id: str, features: list[float]) -> bytes:
    return encode_event(event_id, np.asarray(features, dtype=np.float32))


def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]], *,
            rate: float | None = None, timeout_s: float = 120.0) -> None:
    """Send ``(key, value)`` records (at ``rate`` per second if given) and wait for every ack."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2, reconnect_backoff_max_ms=1000)
    try:
        started = time.monotonic()
        futures = []
        for i, (key, value) in enumerate(records):
            if rate is not None:
                time.sleep(max(0.0, started + i / rate - time.monotonic()))
            futures.append(producer.send(topic, key=key, value=value))
        producer.flush(timeout=timeout_s)
        for f in futures:
            f.get(timeout=0)
    finally:
        producer.close(timeout=5)


def produce_in_background(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]],
                          rate: float) -> threading.Thread:
    """`produce` in a thread (joined by the caller); errors are re-raised by ``thread.error``."""

    def run() -> None:
        try:
            produce(bootstrap, topic, records, rate=rate)
        except BaseException as exc:  # surfaced to the test through .error
            thread.error = exc  # type: ignore[attr-defined]

    thread = threading.Thread(target=run, daemon=True)
    thread.error = None  # type: ignore[attr-defined]
    thread.start()
    return thread


class TopicReader:
    """Reads a whole topic from the beginning with no consumer group (it commits nothing, changes nothing)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                      reconnect_backoff_max_ms=1000)
        partitions = self.consumer.partitions_for_topic(topic) or set()
        deadline = time.monotonic() + 30
        while not partitions and time.monotonic() < deadline:
            time.sleep(0.2)
            partitions = self.consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        self.consumer.assign(tps)
        self.consumer.seek_to_beginning(*tps)
        self.records: list[Any] = []

    def read_until(self, done: Callable[[list[Any]], bool], timeout_s: float) -> list[Any]:
        """Poll until ``done(records)`` or the timeout; returns every record read so far."""
        deadline = time.monotonic() + timeout_s
        while not done(self.records) and time.monotonic() < deadline:
            for part in self.consumer.poll(timeout_ms=500).values():
                self.records.extend(part)
        return self.records

    def close(self) -> None:
        self.consumer.close(autocommit=False)

    def __enter__(self) -> "TopicReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def committed_total(bootstrap: str, group_id: str, topic: str) -> int:
    """The group's committed offsets on ``topic``, summed over its partitions (events it will never be given again)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False)
    try:
        return sum(consumer.committed(TopicPartition(topic, p)) or 0 for p in consumer.partitions_for_topic(topic))
    finally:
        consumer.close(autocommit=False)


def ids_of(records: list[Any]) -> list[str]:
    return [json.loads(r.value)["id"] for r in records]


# -- a stream worker in its own process (for kill -9 tests) -------------------------------


def _worker_main(argv: list[str] | None = None) -> None:
    from driftwise.service.metrics import Metrics
    from driftwise.service.stream import StreamWorker

    parser = argparse.ArgumentParser(prog="python -m tests.kafka_support worker")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--events", required=True)
    parser.add_argument("--predictions", required=True)
    parser.add_argument("--dlq", required=True)
    parser.add_argument("--max-batch", type=int, default=20)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to sleep before each forward pass")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    runtime: Any = tiny_runtime()
    if args.delay > 0:
        runtime = SlowRuntime(runtime, args.delay)
    worker = StreamWorker(runtime, Metrics(), bootstrap=args.bootstrap, group_id=args.group,
                          events_topic=args.events, predictions_topic=args.predictions, dlq_topic=args.dlq,
                          max_batch=args.max_batch, poll_timeout_ms=200, session_timeout_ms=6000)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    worker.start()
    while not stop.is_set():
        stop.wait(0.5)
    worker.stop()


if __name__ == "__main__":
    import sys

    if len(sys.argv) < 2 or sys.argv[1] != "worker":
        sys.exit("usage: python -m tests.kafka_support worker --bootstrap B --group G --events T --predictions T --dlq T")
    _worker_main(sys.argv[2:])
