"""Replaying a dataset into the events topic: one event per row, labels kept out, rate and limit honoured."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from driftwise.models.data import DatasetError
from driftwise.service.events import decode_event
from driftwise.service.replay import event_id, replay
from tests.kafka_support import TopicReader, unique_topics

@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 1, 2, 2)).astype(np.float32)  # image-shaped rows are flattened in the event
    y = rng.integers(0, 3, size=60)
    y[::10] = -1  # unlabeled rows get no line in the labels file
    path = tmp_path / "data.npz"
    np.savez(path, X=X, y=y)
    return path, X, y


@pytest.mark.kafka
def test_each_row_becomes_one_event_with_its_features_and_no_label(kafka_bootstrap: str, dataset, tmp_path: Path) -> None:
    path, X, y = dataset
    topic = unique_topics().events
    labels = tmp_path / "labels.jsonl"
    sent = replay(path, bootstrap=kafka_bootstrap, topic=topic, id_prefix="run1", labels_out=labels)
    assert sent == 60
    with TopicReader(kafka_bootstrap, topic) as reader:
        records = reader.read_until(lambda rs: len(rs) >= 60, timeout_s=30)
    assert len(records) == 60
    by_id = {}
    for r in records:
        body = json.loads(r.value)
        assert set(body) == {"id", "features"}  # the hidden label never travels with the event
        assert r.key == body["id"].encode()
        by_id[body["id"]] = decode_event(r.value, (1, 2, 2)).features
    assert sorted(by_id) == [event_id("run1", i) for i in range(60)]
    for i in range(60):
        np.testing.assert_array_equal(by_id[event_id("run1", i)], X[i])
    lines = [json.loads(line) for line in labels.read_text().splitlines()]
    assert lines == [{"id": event_id("run1", i), "label": int(y[i])} for i in range(60) if y[i] >= 0]


@pytest.mark.kafka
def test_rate_and_limit_bound_the_replay(kafka_bootstrap: str, dataset) -> None:
    path, _, _ = dataset
    topic = unique_topics().events
    started = time.monotonic()
    sent = replay(path, bootstrap=kafka_bootstrap, topic=topic, rate=40.0, limit=20)
    elapsed = time.monotonic() - started
    assert sent == 20
    assert elapsed >= 19 / 40  # the 20th event is due 0.475 s after the first
    with TopicReader(kafka_bootstrap, topic) as reader:
        records = reader.read_until(lambda rs: len(rs) >= 20, timeout_s=30)
        time.sleep(0.5)
        records = reader.read_until(lambda rs: False, timeout_s=0.5)
    assert len(records) == 20


def test_replay_refuses_bad_arguments_before_touching_kafka(tmp_path: Path, dataset) -> None:
    path, _, _ = dataset
    with pytest.raises(ValueError, match="rate must be positive"):
        replay(path, bootstrap="127.0.0.1:1", rate=0)
    with pytest.raises(ValueError, match="limit must be >= 0"):
        replay(path, bootstrap="127.0.0.1:1", limit=-1)
    with pytest.raises(DatasetError, match="no such file"):
        replay(tmp_path / "missing.npz", bootstrap="127.0.0.1:1")


@pytest.mark.kafka
def test_driftwise_replay_command_streams_the_file(kafka_bootstrap: str, dataset) -> None:
    from typer.testing import CliRunner

    from driftwise.service.cli import app

    path, _, _ = dataset
    topic = unique_topics().events
    result = CliRunner().invoke(app, ["replay", "--data", str(path), "--bootstrap-servers", kafka_bootstrap,
                                      "--topic", topic, "--limit", "7", "--id-prefix", "cli"])
    assert result.exit_code == 0, result.output
    assert "replayed 7 events" in result.output
    with TopicReader(kafka_bootstrap, topic) as reader:
        records = reader.read_until(lambda rs: len(rs) >= 7, timeout_s=30)
    assert sorted(json.loads(r.value)["id"] for r in records) == [event_id("cli", i) for i in range(7)]
