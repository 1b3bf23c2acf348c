"""The app's Kafka wiring on a real broker: the stream serves events, replicas follow the control topic."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable

import numpy as np
import pytest

from driftwise.models.registry import Registry
from driftwise.service.app import create_app
from driftwise.service.control import announce_model
from driftwise.service.runtime import BatchPrediction
from driftwise.service.settings import Settings
from tests.kafka_support import TopicReader, event_bytes, produce, unique_topics
from tests.service.conftest import ADMIN_TOKEN, NAME, TestClient, instances, tiny_classifier

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(240)]


def _kafka_settings(make_settings: Callable[..., Settings], bootstrap: str, **overrides: object) -> Settings:
    topics = unique_topics()
    values: dict[str, object] = {
        "bootstrap_servers": bootstrap, "group_id": f"g-{uuid.uuid4().hex[:8]}", "events_topic": topics.events,
        "predictions_topic": topics.predictions, "dlq_topic": topics.dlq, "models_topic": topics.models,
    }
    values.update(overrides)
    return make_settings(**values)


def _wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.2)


def test_serve_with_bootstrap_predicts_every_event_and_tells_the_observers(
        make_settings: Callable[..., Settings], kafka_bootstrap: str) -> None:
    settings = _kafka_settings(make_settings, kafka_bootstrap)
    rows = instances(30, seed=5)
    ids = [f"evt-{i:03d}" for i in range(len(rows))]
    seen: list[tuple[int, str]] = []
    seen_ids: list[str] = []

    def observe(X: np.ndarray, prediction: BatchPrediction, source: str, event_ids: list[str] | None) -> None:
        seen.append((len(X), source))
        seen_ids.extend(event_ids or [])

    with TestClient(create_app(settings)) as client:
        client.app.state.service.observers.append(observe)
        produce(kafka_bootstrap, settings.events_topic, [(i.encode(), event_bytes(i, r)) for i, r in zip(ids, rows)])
        with TopicReader(kafka_bootstrap, settings.predictions_topic) as reader:
            records = reader.read_until(lambda got: len({r.key for r in got}) >= len(ids), timeout_s=90)
        http = client.post("/predict", json={"instances": rows[:1]}).json()
        _wait_for(lambda: sum(n for n, s in seen if s == "kafka") >= len(ids), 30, "the observers")
        metrics = client.get("/metrics").text
    predictions = [json.loads(r.value) for r in records]
    assert sorted({p["id"] for p in predictions}) == ids
    assert {p["model_version"] for p in predictions} == {"1"}
    first = next(p for p in predictions if p["id"] == ids[0])
    assert first["label"] == http["predictions"][0]["label"]
    assert {s for _, s in seen} == {"kafka", "http"}
    assert sorted(set(seen_ids)) == ids  # Kafka batches come with their events' ids (what feedback joins to)
    kafka_total = float(next(line.split()[-1] for line in metrics.splitlines()
                             if line.startswith('driftwise_predictions_total{source="kafka"}')))
    assert kafka_total >= len(ids)


def test_an_activation_is_announced_and_another_replica_follows_it(
        make_settings: Callable[..., Settings], kafka_bootstrap: str) -> None:
    settings = _kafka_settings(make_settings, kafka_bootstrap, admin_token=ADMIN_TOKEN)
    replica_settings = settings.model_copy(update={"group_id": f"g-{uuid.uuid4().hex[:8]}"})
    with TestClient(create_app(settings)) as leader, TestClient(create_app(replica_settings)) as replica:
        _wait_for(lambda: replica.app.state.service.follower.caught_up.is_set(), 60, "the follower to catch up")
        response = leader.post("/models/2/activate", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert response.status_code == 200
        assert response.json() == {"model_version": "2", "previous": "1", "announced": True}
        _wait_for(lambda: replica.get("/models").json()["served"] == "2", 60, "the replica to swap")
        assert replica.post("/predict", json={"instances": instances(1)}).json()["model_version"] == "2"
        assert 'driftwise_model_swaps_total{reason="control"} 1.0' in replica.get("/metrics").text
        assert 'driftwise_model_swaps_total{reason="control"} 0.0' in leader.get("/metrics").text


def test_stale_announcements_are_one_warning_and_a_count_and_serving_goes_on(
        make_settings: Callable[..., Settings], registry: Registry, kafka_bootstrap: str,
        caplog: pytest.LogCaptureFixture) -> None:
    settings = _kafka_settings(make_settings, kafka_bootstrap)
    announce_model(kafka_bootstrap, settings.models_topic, NAME, 9)  # left by a deployment this registry never saw
    registry.publish(NAME, tiny_classifier(2), reason="adapt", parent=1, status="rejected", activate=False)  # v3
    caplog.set_level(logging.WARNING)
    with TestClient(create_app(settings)) as client:
        metrics = client.app.state.service.metrics.registry

        def ignored(reason: str) -> float | None:
            return metrics.get_sample_value("driftwise_control_announcements_ignored_total", {"reason": reason})

        assert ignored("rejected") == 0  # the series exist from the start
        _wait_for(lambda: client.app.state.service.follower.caught_up.is_set(), 60, "the follower to catch up")
        assert ignored("unknown_version") == 1
        announce_model(kafka_bootstrap, settings.models_topic, NAME, 3)
        _wait_for(lambda: ignored("rejected") == 1, 60, "the rejected announcement")
        assert client.post("/predict", json={"instances": instances(1)}).json()["model_version"] == "1"
        assert client.get("/models").json()["served"] == "1"
    assert ignored("unknown_version") == 1
    warnings = [r for r in caplog.records if r.name == "driftwise.service.app" and r.levelno == logging.WARNING]
    assert [("version 9" in r.getMessage(), "version 3" in r.getMessage()) for r in warnings] == [
        (True, False), (False, True)]
    assert "no such version" in warnings[0].getMessage() and "rejected" in warnings[1].getMessage()
    ours = [r for r in caplog.records if r.name.startswith("service.")]  # not the Kafka client's own chatter
    assert all(r.exc_info is None for r in ours) and not [r for r in ours if r.levelno >= logging.ERROR]
