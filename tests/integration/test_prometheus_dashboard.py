"""Every dashboard query returns data from a real Prometheus scraping a real, busy service.

The service runs as a user runs it (``driftwise pretrain`` then ``driftwise serve``
in a subprocess), is fed over HTTP and over the real local Kafka broker (good and
bad inputs, feedback labels), and a real Prometheus (Debian package) scrapes it
every second. Then each PromQL expression of deploy/grafana/dashboards/driftwise.json
is evaluated through Prometheus' HTTP API: an empty result fails the test, because
an empty result is an empty panel in Grafana. ``promtool check metrics`` must find
nothing to say about ``/metrics``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.datasets import load_digits

from deploy.grafana.dashboard import build_dashboard, queries
from driftwise.service.localhost import free_port
from driftwise.service.topics import ensure_topics
from tests.kafka_support import unique_topics
from tests.prometheus_support import (  # noqa: F401
    PrometheusServer,
    prometheus_server,
    promtool,
    promtool_check_metrics,
)

pytestmark = [pytest.mark.prometheus, pytest.mark.kafka, pytest.mark.timeout(420)]

NAME = "digits"
N_HTTP_REQUESTS = 20
N_EVENTS = 60
N_BAD_EVENTS = 2


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "driftwise.service.cli", *args]


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """A small, seeded slice of scikit-learn's bundled digits, scaled to [0, 1]."""
    X, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(X))[:400]
    return (X[order] / 16.0).astype(np.float32), y[order].astype(np.int64)


@pytest.fixture
def registry(tmp_path: Path, digits: tuple[np.ndarray, np.ndarray]) -> Path:
    """Version 1 published by ``driftwise pretrain``, as a user would (tiny and quick)."""
    X, y = digits
    data = tmp_path / "digits.npz"
    np.savez(data, X=X, y=y)
    root = tmp_path / "registry"
    result = subprocess.run(
        _cli("pretrain", "--data", str(data), "--name", NAME, "--registry", str(root), "--encoder", "mlp",
             "--objective", "ae", "--epochs", "1", "--head", "linear", "--device", "cpu"),
        capture_output=True, text=True, timeout=240, env={**os.environ, "DRIFTWISE_TORCH_THREADS": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return root


@pytest.fixture
def topics(kafka_bootstrap: str) -> dict[str, str]:
    """Fresh topics and consumer group for this test, as ``DRIFTWISE_*`` settings."""
    names = unique_topics()
    ensure_topics(kafka_bootstrap, names.all, partitions=2, compacted=names.compacted)
    return {
        "DRIFTWISE_EVENTS_TOPIC": names.events,
        "DRIFTWISE_PREDICTIONS_TOPIC": names.predictions,
        "DRIFTWISE_DLQ_TOPIC": names.dlq,
        "DRIFTWISE_LABELS_TOPIC": names.labels,
        "DRIFTWISE_MODELS_TOPIC": names.models,
        "DRIFTWISE_GROUP_ID": f"promtest-{uuid.uuid4().hex[:8]}",
    }


@pytest.fixture
def service(registry: Path, topics: dict[str, str], kafka_bootstrap: str, tmp_path: Path) -> Iterator[str]:
    """``driftwise serve`` on a free loopback port with HTTP and the Kafka stream; yields its base URL."""
    port = free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, **topics, "DRIFTWISE_TORCH_THREADS": "1"}
    with open(log, "wb") as out:
        process = subprocess.Popen(
            _cli("serve", "--registry", str(registry), "--name", NAME, "--host", "127.0.0.1", "--port", str(port),
                 "--bootstrap-servers", kafka_bootstrap),
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, f"driftwise serve exited {process.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"driftwise serve not ready in 120s:\n{log.read_text()[-4000:]}"
            try:
                if httpx.get(f"{url}/readyz", timeout=2.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log.exists():
            sys.stdout.write(log.read_text(errors="replace")[-3000:])


def _metric_value(metrics_text: str, sample_name: str, **labels: str) -> float:
    """Sum of the samples called ``sample_name`` whose labels include ``labels``."""
    total = 0.0
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == sample_name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def _feed_http(url: str, X: np.ndarray) -> None:
    """Good batches of several sizes, plus the bad requests a real client sends sometimes."""
    with httpx.Client(base_url=url, timeout=30.0) as client:
        for i in range(N_HTTP_REQUESTS):
            batch = X[(i * 7) % len(X):][: 1 + i % 8]
            response = client.post("/predict", json={"instances": batch.tolist()})
            assert response.status_code == 200, response.text
        bad = client.post("/predict", json={"instances": [[0.0, 1.0]]})  # wrong number of features
        assert bad.status_code == 422, bad.text


def _feed_kafka(bootstrap: str, topics: dict[str, str], X: np.ndarray, y: np.ndarray) -> None:
    """Events (some undecodable), then feedback labels for the good ones."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for i in range(N_EVENTS):
            event = {"id": f"evt-{i}", "features": X[i].tolist()}
            producer.send(topics["DRIFTWISE_EVENTS_TOPIC"], key=event["id"].encode(), value=json.dumps(event).encode())
        for i in range(N_BAD_EVENTS):
            producer.send(topics["DRIFTWISE_EVENTS_TOPIC"], key=f"bad-{i}".encode(), value=b"{not json")
        for i in range(N_EVENTS):
            label = {"id": f"evt-{i}", "label": int(y[i])}
            producer.send(topics["DRIFTWISE_LABELS_TOPIC"], key=label["id"].encode(), value=json.dumps(label).encode())
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=10)


def _wait_for_stream(url: str, timeout: float = 90.0) -> str:
    """Poll /metrics until every event was predicted or dead-lettered; return the last text."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = httpx.get(f"{url}/metrics", timeout=5.0).text
        predicted = _metric_value(text, "driftwise_predictions_total", source="kafka")
        dead = _metric_value(text, "driftwise_dlq_total")
        if predicted >= N_EVENTS and dead >= N_BAD_EVENTS:
            return text
        time.sleep(0.5)
    raise AssertionError(f"stream did not catch up in {timeout}s; /metrics:\n{text}")


def test_every_dashboard_query_returns_data_from_real_prometheus(
    service: str, topics: dict[str, str], kafka_bootstrap: str,
    prometheus_server, promtool: str, digits: tuple[np.ndarray, np.ndarray],  # noqa: F811
) -> None:
    X, y = digits
    prometheus: PrometheusServer = prometheus_server(service.removeprefix("http://"))
    prometheus.wait_for_scrapes(count=2)

    _feed_http(service, X)
    _feed_kafka(kafka_bootstrap, topics, X, y)
    metrics_text = _wait_for_stream(service)
    # Rates need two samples inside their window after the traffic: a few more scrapes.
    time.sleep(4)
    prometheus.wait_for_scrapes(count=6)

    empty = [expr for expr in queries(build_dashboard()) if not prometheus.query(expr)]
    assert not empty, (
        f"{len(empty)} dashboard queries returned no data:\n  " + "\n  ".join(empty)
        + f"\n/metrics was:\n{httpx.get(f'{service}/metrics', timeout=5.0).text}"
    )

    # The traffic is visible through Prometheus, per source.
    sources = {r["metric"]["source"] for r in prometheus.query("sum by (source) (driftwise_predictions_total)")}
    assert {"http", "kafka"} <= sources
    assert _metric_value(metrics_text, "driftwise_bad_requests_total", status="422") >= 1

    lint = promtool_check_metrics(httpx.get(f"{service}/metrics", timeout=5.0).text, binary=promtool)
    assert lint.returncode == 0 and not (lint.stdout + lint.stderr).strip(), lint.stdout + lint.stderr
