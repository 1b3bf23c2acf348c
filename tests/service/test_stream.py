"""The Kafka stream against a real broker: every id predicted, bad events dead-lettered, rebalances safe."""

from __future__ import annotations

import json
import threading
import time
import uuid

import numpy as np
import pytest

from driftwise.service.control import ModelAnnouncer, ModelFollower, announce_model
from driftwise.service.metrics import Metrics
from driftwise.service.runtime import Runtime
from driftwise.service.stream import StreamWorker
from driftwise.service.topics import Topics
from tests.kafka_support import (
    SHAPE, TopicReader, committed_total, event_bytes, ids_of, produce, produce_in_background, tiny_runtime,
    unique_topics, wait_for,
)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]


def events(n: int, prefix: str = "e", seed: int = 0) -> tuple[list[str], np.ndarray, list[tuple[bytes, bytes]]]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, *SHAPE)).astype(np.float32)
    ids = [f"{prefix}-{i:05d}" for i in range(n)]
    return ids, X, [(i.encode(), event_bytes(i, x.tolist())) for i, x in zip(ids, X)]


def worker(runtime: object, metrics: Metrics, bootstrap: str, topics: Topics, **kw: object) -> StreamWorker:
    kw.setdefault("group_id", f"g-{uuid.uuid4().hex[:8]}")
    kw.setdefault("max_batch", 64)
    return StreamWorker(runtime, metrics, bootstrap=bootstrap, events_topic=topics.events,
                        predictions_topic=topics.predictions, dlq_topic=topics.dlq, poll_timeout_ms=200,
                        session_timeout_ms=6000, **kw)


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    """A metric's value as /metrics would show it."""
    return metrics.registry.get_sample_value(name, labels)


def test_n_events_in_give_exactly_n_distinct_ids_out_with_the_models_predictions(kafka_bootstrap: str,
                                                                                   kafka_topics: Topics) -> None:
    runtime, metrics = tiny_runtime(), Metrics()
    ids, X, records = events(300)
    produce(kafka_bootstrap, kafka_topics.events, records)
    w = worker(runtime, metrics, kafka_bootstrap, kafka_topics)
    with w, TopicReader(kafka_bootstrap, kafka_topics.predictions) as reader:
        out = reader.read_until(lambda rs: len(set(ids_of(rs))) >= 300, timeout_s=60)
        wait_for(lambda: w.processed >= 300, 30, "the last commit")
        wait_for(lambda: [sample(metrics, "driftwise_consumer_lag", partition=str(p)) for p in range(3)] == [0, 0, 0],
                 10, "every partition's lag gauge to read 0")
    assert sorted(set(ids_of(out))) == ids
    assert len(out) == 300  # no failure happened, so no duplicate either
    expected = runtime.predict(X)
    by_id = {json.loads(r.value)["id"]: (r.key, json.loads(r.value)) for r in out}
    for i, event_id in enumerate(ids):
        key, p = by_id[event_id]
        assert key == event_id.encode()
        assert p["label"] == int(expected.labels[i])
        assert p["confidence"] == pytest.approx(float(expected.confidence[i]), rel=1e-5)
        assert p["model_version"] == "1"
    assert committed_total(kafka_bootstrap, w.group_id, kafka_topics.events) == 300
    assert sample(metrics, "driftwise_predictions_total", source="kafka") == 300
    assert sample(metrics, "driftwise_events_consumed_total") == 300
    assert w.dead_lettered == 0


def test_malformed_events_land_in_the_dlq_with_a_reason_and_the_stream_keeps_going(kafka_bootstrap: str,
                                                                                   kafka_topics: Topics) -> None:
    metrics = Metrics()
    ids, _, good = events(100)
    bad = [
        (b"k1", b"this is not json", "not_json"),
        (b"k2", b"\xff\xfe\x00garbage", "not_json"),
        (b"k3", b"[1, 2, 3, 4]", "not_object"),
        (b"k4", b'{"features": [1, 2, 3, 4]}', "missing_id"),
        (b"k5", b'{"id": 7, "features": [1, 2, 3, 4]}', "missing_id"),
        (b"k6", b'{"id": "short", "features": [1, 2, 3]}', "invalid_features"),
        (b"k7", b'{"id": "nan", "features": [1, NaN, 3, 4]}', "invalid_features"),
        (b"k8", b'{"id": "text", "features": ["a", "b", "c", "d"]}', "invalid_features"),
        (b"k9", b'{"id": "nofeat"}', "invalid_features"),
    ]
    produce(kafka_bootstrap, kafka_topics.events, good[:50] + [(k, v) for k, v, _ in bad] + good[50:])
    w = worker(tiny_runtime(), metrics, kafka_bootstrap, kafka_topics)
    with w, TopicReader(kafka_bootstrap, kafka_topics.predictions) as preds, \
            TopicReader(kafka_bootstrap, kafka_topics.dlq) as dlq:
        out = preds.read_until(lambda rs: len(set(ids_of(rs))) >= 100, timeout_s=60)
        dead = dlq.read_until(lambda rs: len(rs) >= len(bad), timeout_s=30)
        wait_for(lambda: w.processed >= 100 + len(bad), 30, "the last commit")
    assert sorted(set(ids_of(out))) == ids
    letters = {r.key: json.loads(r.value) for r in dead}
    assert len(dead) == len(bad)
    for key, value, reason in bad:
        letter = letters[key]
        assert letter["reason"] == reason
        assert letter["detail"]
        assert letter["topic"] == kafka_topics.events and letter["offset"] >= 0
        if key == b"k2":  # not UTF-8: kept as base64
            assert letter["payload"] is None and letter["payload_base64"]
        else:
            assert letter["payload"] == value.decode()
    assert "non-finite" in letters[b"k7"]["detail"]
    assert "expected 4 numbers" in letters[b"k6"]["detail"]
    assert sample(metrics, "driftwise_dlq_total", reason="not_json") == 2
    assert sample(metrics, "driftwise_dlq_total", reason="invalid_features") == 4
    assert sample(metrics, "driftwise_dlq_total", reason="missing_id") == 2
    assert sample(metrics, "driftwise_dlq_total", reason="not_object") == 1
    assert w.dead_lettered == len(bad)


def test_on_batch_sees_every_predicted_row_once(kafka_bootstrap: str, kafka_topics: Topics) -> None:
    seen: list[np.ndarray] = []
    versions: set[str] = set()

    def on_batch(X: np.ndarray, prediction: object, ids: list[str]) -> None:
        seen.append(X.copy())
        versions.add(prediction.model_version)  # type: ignore[attr-defined]
        assert len(X) == len(prediction.labels)  # type: ignore[attr-defined]

    ids, X, records = events(120, seed=1)
    produce(kafka_bootstrap, kafka_topics.events, records)
    w = worker(tiny_runtime(), Metrics(), kafka_bootstrap, kafka_topics, on_batch=on_batch, max_batch=16)
    with w:
        wait_for(lambda: w.processed >= 120, 60, "120 events")
    rows = np.concatenate(seen)
    assert len(rows) == 120 and max(len(b) for b in seen) <= 16
    assert {tuple(r) for r in rows} == {tuple(r) for r in X}
    assert versions == {"1"}


def test_events_wait_for_a_model_instead_of_being_dead_lettered(kafka_bootstrap: str, kafka_topics: Topics) -> None:
    runtime = Runtime(device="cpu")  # no model yet
    ids, _, records = events(40)
    produce(kafka_bootstrap, kafka_topics.events, records)
    w = worker(runtime, Metrics(), kafka_bootstrap, kafka_topics)
    with w, TopicReader(kafka_bootstrap, kafka_topics.predictions) as reader:
        time.sleep(3)
        assert w.processed == 0 and w.dead_lettered == 0
        runtime.swap(tiny_runtime(version="7").snapshot, reason="startup")
        out = reader.read_until(lambda rs: len(set(ids_of(rs))) >= 40, timeout_s=60)
    assert sorted(set(ids_of(out))) == ids
    assert {json.loads(r.value)["model_version"] for r in out} == {"7"}


def test_a_second_worker_joining_and_the_first_leaving_lose_no_id(kafka_bootstrap: str, kafka_topics: Topics) -> None:
    ids, _, records = events(400, seed=2)
    group = f"g-{uuid.uuid4().hex[:8]}"
    a = worker(tiny_runtime(), Metrics(), kafka_bootstrap, kafka_topics, group_id=group, max_batch=10)
    b = worker(tiny_runtime(), Metrics(), kafka_bootstrap, kafka_topics, group_id=group, max_batch=10)
    producer = produce_in_background(kafka_bootstrap, kafka_topics.events, records, rate=100)
    with TopicReader(kafka_bootstrap, kafka_topics.predictions) as reader:
        a.start()
        reader.read_until(lambda rs: len(rs) >= 80, timeout_s=60)
        b.start()  # rebalance: partitions split between a and b
        wait_for(lambda: b.processed > 0, 60, "the second worker to get partitions")
        assert a.stop()  # a leaves mid-stream: another rebalance, b takes everything
        out = reader.read_until(lambda rs: len(set(ids_of(rs))) >= 400, timeout_s=90)
        producer.join(60)
        b.stop()
    assert producer.error is None
    assert sorted(set(ids_of(out))) == ids
    assert a.processed > 0 and b.processed > 0


def test_model_follower_reports_the_latest_version_then_each_announcement(kafka_bootstrap: str) -> None:
    topic = unique_topics().models
    announce_model(kafka_bootstrap, topic, "digits", 1)
    announce_model(kafka_bootstrap, topic, "digits", 2)
    announce_model(kafka_bootstrap, topic, "other", 5)
    calls: list[tuple[str, int]] = []
    lock = threading.Lock()

    def on_announce(name: str, version: int) -> None:
        with lock:
            calls.append((name, version))

    with ModelFollower(kafka_bootstrap, on_announce, topic=topic, name="digits", poll_timeout_ms=100) as follower:
        assert follower.caught_up.wait(30)
        assert calls == [("digits", 2)]  # catch-up: only the latest, only our model
        announce_model(kafka_bootstrap, topic, "other", 6)
        announce_model(kafka_bootstrap, topic, "digits", 3)
        wait_for(lambda: ("digits", 3) in calls, 30, "the new announcement")
    assert calls == [("digits", 2), ("digits", 3)]


def test_model_follower_ignores_a_deposed_adapter_once_its_successor_has_spoken(kafka_bootstrap: str) -> None:
    topic = unique_topics().models
    calls: list[tuple[str, int]] = []
    with ModelFollower(kafka_bootstrap, lambda name, version: calls.append((name, version)), topic=topic,
                       name="digits", poll_timeout_ms=100) as follower:
        assert follower.caught_up.wait(30)
        announce_model(kafka_bootstrap, topic, "digits", 4, epoch=7)  # the successor
        wait_for(lambda: ("digits", 4) in calls, 30, "the successor's announcement")
        announce_model(kafka_bootstrap, topic, "digits", 5, epoch=3)  # a deposed adapter that has not noticed
        announce_model(kafka_bootstrap, topic, "digits", 1)  # an operator (no epoch): always followed
        wait_for(lambda: ("digits", 1) in calls, 30, "the operator's announcement")
    assert calls == [("digits", 4), ("digits", 1)]
    assert follower.fenced == 1


def test_one_announcer_tells_followers_every_version_in_the_order_served(kafka_bootstrap: str) -> None:
    topic = unique_topics().models
    calls: list[tuple[str, int]] = []
    announcer = ModelAnnouncer(kafka_bootstrap, topic)  # makes the topic on its first announcement
    try:
        announcer.announce("digits", 1, epoch=2)
        with ModelFollower(kafka_bootstrap, lambda name, version: calls.append((name, version)), topic=topic,
                           name="digits", poll_timeout_ms=100) as follower:
            assert follower.caught_up.wait(30)
            for version in (2, 3, 4):  # an interim, a grown interim, a candidate: one producer for all
                announcer.announce("digits", version, epoch=2)
            wait_for(lambda: ("digits", 4) in calls, 30, "the last announcement")
    finally:
        announcer.close()
    assert calls == [("digits", 1), ("digits", 2), ("digits", 3), ("digits", 4)]
    with pytest.raises(ValueError, match="non-empty"):
        announcer.announce("", 5)


def test_kafka_python_checksums_record_batches_in_c() -> None:
    """Its pure-Python CRC-32C took 10 ms for one replica's 140 KB batch of observations (about 40 us an event)."""
    from kafka.record import util
    from kafka.record._crc32c import crc as pure_python

    assert util._crc32c is not pure_python, "install the crc32c package (a dependency in pyproject.toml)"
