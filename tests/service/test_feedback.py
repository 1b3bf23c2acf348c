"""Feedback labels on the labels topic: joined to served predictions, live accuracy, "labels needed"."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from driftwise.service.app import create_app
from driftwise.service.feedback import ServedMemory, decode_feedback
from driftwise.service.topics import ensure_topics
from tests.kafka_support import TopicReader, event_bytes, produce, unique_topics
from tests.service.conftest import TestClient


def test_decode_feedback_refuses_what_is_not_a_label() -> None:
    assert decode_feedback(b'{"id": "a", "label": 3}') == ("a", 3)
    for bad in (b"nope", b'{"id": 1, "label": 3}', b'{"id": "a", "label": true}', b'{"id": "a", "label": -1}',
                b'{"id": "a"}', None):
        with pytest.raises(ValueError, match="not a feedback record"):
            decode_feedback(bad)


def test_served_memory_forgets_the_oldest_first() -> None:
    memory = ServedMemory(capacity=3)
    memory.remember([f"e{i}" for i in range(5)], np.zeros((5, 2), np.float32), np.arange(5), np.full(5, 0.5))
    assert len(memory) == 3 and memory.pop("e1") is None and memory.pop("e4")[1] == 4


def test_served_memory_is_bounded_in_bytes_as_well_as_events() -> None:
    memory = ServedMemory(capacity=1000, max_bytes=4 * 64 * 4)  # room for four rows of 64 float32
    rows = np.arange(10 * 64, dtype=np.float32).reshape(10, 64)
    memory.remember([f"e{i}" for i in range(10)], rows, np.arange(10), np.full(10, 0.5))
    assert len(memory) == 4 and memory.pop("e5") is None
    hit = memory.pop("e9")
    assert hit is not None and np.array_equal(hit[0], rows[9]) and hit[1:] == (9, 0.5)


def test_served_memory_hands_back_copies_and_keeps_the_latest_of_a_repeated_id() -> None:
    memory = ServedMemory(capacity=2)
    memory.remember(["a"], np.ones((1, 3), np.float32), np.array([1]), np.array([0.9]))
    memory.remember(["a", "b"], np.full((2, 3), 2.0, np.float32), np.array([2, 3]), np.array([0.8, 0.7]))
    assert len(memory) == 2
    first = memory.pop("a")
    assert first is not None and first[1] == 2 and memory.pop("a") is None
    memory.remember(["c", "d"], np.full((2, 3), 5.0, np.float32), np.array([4, 5]), np.array([0.6, 0.5]))
    assert np.array_equal(first[0], np.full(3, 2.0))  # the ring's slot was reused; the popped row was not


def test_served_memory_starts_afresh_when_the_input_shape_changes() -> None:
    memory = ServedMemory(capacity=4)
    memory.remember(["a"], np.zeros((1, 3), np.float32), np.array([1]), np.array([0.9]))
    memory.remember(["b"], np.zeros((1, 5), np.float32), np.array([2]), np.array([0.9]))
    assert memory.pop("a") is None and memory.pop("b")[0].shape == (5,)


@pytest.mark.kafka
def test_wrong_feedback_labels_lower_live_accuracy_and_raise_labels_needed(
    kafka_bootstrap: str, make_settings: Callable[..., Any]
) -> None:
    topics = unique_topics()
    ensure_topics(kafka_bootstrap, [topics.events, topics.predictions, topics.dlq, topics.labels], partitions=1)
    settings = make_settings(bootstrap_servers=kafka_bootstrap, group_id=f"fb{topics.events[-8:]}",
                             events_topic=topics.events, predictions_topic=topics.predictions, dlq_topic=topics.dlq,
                             labels_topic=topics.labels, models_topic=topics.models, no_adapt=True)
    rng = np.random.default_rng(0)
    events = [(f"e{i}".encode(), event_bytes(f"e{i}", rng.uniform(0, 16, 64).tolist())) for i in range(120)]
    with TestClient(create_app(settings)) as client:
        produce(kafka_bootstrap, topics.events, events)
        with TopicReader(kafka_bootstrap, topics.predictions) as reader:
            served = {p["id"]: p["label"] for p in (json.loads(r.value) for r in reader.read_until(
                lambda rs: len(rs) >= 120, 60))}
        assert len(served) == 120
        # Every label is wrong: the served label + 1.
        labels = [(i.encode(), json.dumps({"id": i, "label": (lab + 1) % 10}).encode()) for i, lab in served.items()]
        produce(kafka_bootstrap, topics.labels, labels + [(b"x", b"not json"), (b"y", b'{"id": "unknown", "label": 1}')])
        deadline = time.monotonic() + 60
        counted = "driftwise_feedback_labels_total 120.0"
        while time.monotonic() < deadline and counted not in client.get("/metrics").text:
            time.sleep(0.5)
        drift = client.get("/drift").json()
        assert drift["policy"]["feedback_count"] == drift["loop"]["feedback_window"]  # live accuracy: the latest
        assert drift["policy"]["live_accuracy"] == 0.0
        assert drift["policy"]["labels_needed"] is True and drift["state"] == "labels needed"
        metrics = client.get("/metrics").text
        assert "driftwise_feedback_labels_total 120.0" in metrics
        assert "driftwise_labels_needed 1.0" in metrics
        assert "driftwise_live_accuracy 0.0" in metrics
