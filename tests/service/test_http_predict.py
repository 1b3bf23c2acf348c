"""POST /predict and the read-only routes, over the real app (TestClient) and a real uvicorn server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import numpy as np
import torch

from driftwise.models.registry import Registry
from driftwise.service.app import create_app
from driftwise.service.settings import Settings
from tests.service.conftest import NAME, TestClient, instances, live_server


def _expected(registry: Registry, rows: list[list[float]], version: int = 1) -> np.ndarray:
    model = registry.load(NAME, version).model
    with torch.no_grad():
        return torch.softmax(model(torch.tensor(rows).reshape(-1, 1, 8, 8)), 1).numpy()


def test_predict_returns_label_confidence_and_probabilities_per_instance(client: TestClient,
                                                                          registry: Registry) -> None:
    rows = instances(3)
    response = client.post("/predict", json={"instances": rows})
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == "1"
    assert len(body["predictions"]) == 3
    expected = _expected(registry, rows)
    for p, probs in zip(body["predictions"], expected):
        assert set(p) == {"label", "confidence", "probabilities"}
        np.testing.assert_allclose(p["probabilities"], probs, rtol=1e-5, atol=1e-6)
        assert p["label"] == int(probs.argmax())
        assert p["confidence"] == max(p["probabilities"])
        assert abs(sum(p["probabilities"]) - 1.0) < 1e-5


def test_predict_accepts_instances_nested_to_the_input_shape(client: TestClient) -> None:
    flat = instances(2)
    nested = np.asarray(flat).reshape(2, 1, 8, 8).tolist()
    a = client.post("/predict", json={"instances": flat}).json()
    b = client.post("/predict", json={"instances": nested}).json()
    assert a == b


def test_predict_accepts_integers_and_mixed_nesting(client: TestClient) -> None:
    ints = [[int(v) for v in row] for row in instances(1)]
    mixed = [np.asarray(ints[0]).reshape(8, 8).tolist()]  # (8, 8) for a (1, 8, 8) model: 64 numbers all the same
    a = client.post("/predict", json={"instances": ints})
    b = client.post("/predict", json={"instances": mixed})
    assert a.status_code == b.status_code == 200
    assert a.json() == b.json()


def test_predict_counts_predictions_batches_and_latency(client: TestClient) -> None:
    for n in (1, 2, 4):
        assert client.post("/predict", json={"instances": instances(n)}).status_code == 200
    text = client.get("/metrics").text
    assert 'driftwise_predictions_total{source="http"} 7.0' in text
    assert "driftwise_request_latency_seconds_count 3.0" in text
    assert 'driftwise_batch_size_sum{source="http"} 7.0' in text
    assert "driftwise_confidence_count 7.0" in text


def test_metrics_exist_at_zero_before_any_event(client: TestClient) -> None:
    text = client.get("/metrics").text
    for series in ('driftwise_predictions_total{source="kafka"} 0.0',
                   'driftwise_batch_latency_seconds_count{source="kafka"} 0.0',
                   'driftwise_adaptations_total{outcome="promoted"} 0.0',
                   'driftwise_adaptations_total{outcome="rejected"} 0.0',
                   'driftwise_adaptations_total{outcome="failed"} 0.0',
                   'driftwise_pseudo_labels_total{outcome="accepted"} 0.0',
                   'driftwise_rollbacks_total{trigger="auto"} 0.0',
                   'driftwise_model_swaps_total{reason="control"} 0.0',
                   'driftwise_model_swaps_total{reason="startup"} 1.0',
                   "driftwise_model_version 1.0"):
        assert series in text, series
    assert client.get("/metrics").headers["content-type"].startswith("text/plain")


def test_healthz_and_readyz_with_a_model(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "model_version": "1"}


def test_models_lists_versions_with_current_and_served(client: TestClient) -> None:
    body = client.get("/models").json()
    assert body["name"] == NAME and body["current"] == 1 and body["served"] == "1"
    assert [(v["version"], v["current"], v["served"], v["reason"]) for v in body["versions"]] == [
        (1, True, True, "pretrain"), (2, False, False, "adapt")]


def test_drift_reports_detectors_after_traffic(client: TestClient) -> None:
    client.post("/predict", json={"instances": np.random.default_rng(0).random((32, 64)).tolist()})
    body = client.get("/drift").json()
    assert body["state"] == "stable" and body["model_version"] == "1"
    assert {"adwin", "page_hinkley"} <= set(body["monitor"]["detectors"])
    assert body["monitor"]["events_since_reset"] == 32


def test_openapi_documents_every_route(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path, method in [("/predict", "post"), ("/healthz", "get"), ("/readyz", "get"), ("/metrics", "get"),
                         ("/models", "get"), ("/models/{version}/activate", "post"), ("/models/rollback", "post"),
                         ("/drift", "get"), ("/drift/adapt", "post")]:
        assert method in paths[path], path
    predict = paths["/predict"]["post"]
    assert "instances" in predict["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert {"200", "413", "422", "503"} <= set(predict["responses"])


def test_concurrent_requests_over_real_http_share_forward_passes(make_settings: Callable[..., Settings],
                                                                registry: Registry) -> None:
    rows = instances(64, seed=3)
    expected = _expected(registry, rows)

    async def fire(base: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            return await asyncio.gather(*(http.post("/predict", json={"instances": [row]}) for row in rows))

    app = create_app(make_settings(max_wait_ms=5.0))
    with live_server(app) as base:
        responses = asyncio.run(fire(base))
        metrics = httpx.get(f"{base}/metrics").text
    assert [r.status_code for r in responses] == [200] * len(rows)
    for r, probs in zip(responses, expected):
        np.testing.assert_allclose(r.json()["predictions"][0]["probabilities"], probs, rtol=1e-5, atol=1e-6)
    batches = next(float(line.split()[-1]) for line in metrics.splitlines()
                   if line.startswith('driftwise_batch_size_count{source="http"}'))
    assert batches < len(rows)
