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
