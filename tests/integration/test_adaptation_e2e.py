"""The whole loop through the real broker: drift injected -> detected -> candidate -> guardrails -> swap.

A real digits CNN is served by the real app (HTTP + Kafka stream + controller);
clean then corrupted digits are produced into the events topic, and the
predictions topic is read back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from driftwise.drift.corruptions import corrupt
from driftwise.drift.guardrails import GuardrailConfig
from driftwise.drift.loop import model_reference
from driftwise.models.config import ModelConfig
from driftwise.models.digits import load_digits_images
from driftwise.models.pipeline import fit_model
from driftwise.models.registry import Registry
from driftwise.service.app import create_app
from driftwise.service.settings import Settings
from driftwise.service.topics import ensure_topics
from tests.kafka_support import TopicReader, event_bytes, produce, unique_topics

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
NAME = "digits"


def _versions(registry: Path) -> list[str]:
    """Every published version, one line each: what an assertion on versions should show when it fails."""
    reg = Registry(registry)
    return [f"v{v.version} {v.status} interim={v.manifest.get('interim', False)} {v.manifest.get('reason')}"
            for v in reg.versions(NAME)]


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    X, y = load_digits_images()
    order = np.random.default_rng(0).permutation(len(X))
    src, held = order[:900], order[900:]
    return X[src], y[src], X[held], y[held]


@pytest.fixture(scope="module")
def source_registry(tmp_path_factory: pytest.TempPathFactory, digits: Any) -> Path:
    """One real BN CNN trained (supervised, briefly) on the source half, published with its reference."""
    x_src, y_src, _, _ = digits
    config = ModelConfig(encoder="cnn", input_shape=(1, 8, 8), num_classes=10, width=16, embed_dim=64)
    result = fit_model(x_src, y_src, config, objective=None, head="finetune", device="cpu", seed=0)
    root = tmp_path_factory.mktemp("registry")
    Registry(root).publish(NAME, result.model, reason="pretrain", anchors=result.anchors,
                           reference=model_reference(result.model, x_src), metrics={})
    return root


def _copy_registry(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def _serve(registry: Path, bootstrap: str, topics: Any, **overrides: Any) -> Settings:
    ensure_topics(bootstrap, [topics.events, topics.predictions, topics.dlq], partitions=1)
    return Settings(registry=registry, name=NAME, bootstrap_servers=bootstrap, group_id=f"e2e{topics.events[-10:]}",
                    events_topic=topics.events, predictions_topic=topics.predictions, dlq_topic=topics.dlq,
                    models_topic=topics.models, cooldown_seconds=0.0,
                    min_pseudo_labels=30, **overrides)


def _events(x: np.ndarray, prefix: str) -> list[tuple[bytes, bytes]]:
    return [(f"{prefix}-{i}".encode(), event_bytes(f"{prefix}-{i}", row.ravel().tolist())) for i, row in enumerate(x)]


def _wait(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return predicate()


def _drifted_stream(digits: Any) -> tuple[np.ndarray, np.ndarray]:
    _, _, x_held, _ = digits
    clean = x_held[:400]
    noisy = corrupt(np.concatenate([x_held, x_held])[:1400], "gaussian_noise", severity=4, seed=1)
    return clean, noisy


def _stream_until_an_adaptation_ends(client: TestClient, bootstrap: str, topics: Any, clean: np.ndarray,
                                     noisy: np.ndarray) -> None:
    """Send the clean then the drifted events; wait (at most 180 s) until the first adaptation has an outcome."""
    produce(bootstrap, topics.events, _events(clean, "clean") + _events(noisy, "noisy"))
    assert _wait(lambda: (client.get("/drift").json().get("last_adaptation") or {}).get("outcome") is not None,
                 180), client.get("/drift").json()


def test_drift_is_detected_adapted_and_the_new_version_serves(
    tmp_path: Path, source_registry: Path, kafka_bootstrap: str, digits: Any
) -> None:
    registry = _copy_registry(source_registry, tmp_path / "registry")
    topics = unique_topics()
    settings = _serve(registry, kafka_bootstrap, topics, refine_after=0, normalize_after=0)  # the candidate alone
    clean, noisy = _drifted_stream(digits)
    with TestClient(create_app(settings)) as client:
        _stream_until_an_adaptation_ends(client, kafka_bootstrap, topics, clean, noisy)
        drift = client.get("/drift").json()
        assert drift["confirmed_drifts"] >= 1
        assert drift["last_adaptation"]["outcome"] == "promoted", drift["last_adaptation"]
        assert client.get("/readyz").json()["model_version"] == "2"
        produce(kafka_bootstrap, topics.events, _events(noisy[:50], "after"))
        with TopicReader(kafka_bootstrap, topics.predictions) as reader:
            records = reader.read_until(lambda rs: sum(json.loads(r.value)["id"].startswith("after") for r in rs) >= 50,
                                        60)
        after = [json.loads(r.value) for r in records if json.loads(r.value)["id"].startswith("after")]
        assert len(after) == 50 and {p["model_version"] for p in after} == {"2"}
        metrics = client.get("/metrics").text
        assert 'driftwise_adaptations_total{outcome="promoted"} 1.0' in metrics
    v2 = Registry(registry).get(NAME, 2)
    assert v2.status == "approved" and v2.manifest["parent"] == 1
    assert v2.manifest["guardrails"]["passed"] is True
    assert {c["name"] for c in v2.manifest["guardrails"]["checks"]} >= {"anchor_accuracy", "class_entropy", "agreement"}


def test_an_interim_normalised_model_serves_soon_after_the_drift_then_the_candidate_replaces_it(
    tmp_path: Path, source_registry: Path, kafka_bootstrap: str, digits: Any
) -> None:
    registry = _copy_registry(source_registry, tmp_path / "registry")
    topics = unique_topics()
    settings = _serve(registry, kafka_bootstrap, topics, refine_after=0)
    clean, noisy = _drifted_stream(digits)
    with TestClient(create_app(settings)) as client:
        # The drift's first 700 events, then the rest once the interim is made (it takes about half a second,
        # in which the whole stream, sent at once, could be consumed: in real time it is a few events).
        events = _events(clean, "clean") + _events(noisy, "noisy")
        produce(kafka_bootstrap, topics.events, events[:len(clean) + 700])
        assert _wait(lambda: client.get("/drift").json().get("last_normalization") is not None, 60)
        produce(kafka_bootstrap, topics.events, events[len(clean) + 700:])
        assert _wait(lambda: (client.get("/drift").json().get("last_adaptation") or {}).get("outcome") is not None,
                     180), client.get("/drift").json()
        drift = client.get("/drift").json()
        interim = drift["last_normalization"]
        assert interim is not None and interim["checks"]["passed"], interim
        assert interim["seconds"] < 2.0  # milliseconds of work, no worker process
        assert drift["last_adaptation"]["outcome"] == "promoted", drift["last_adaptation"]
        candidate = str(drift["last_adaptation"]["version"])
        assert client.get("/readyz").json()["model_version"] == candidate, _versions(registry)  # it replaced the interim
        metrics = client.get("/metrics").text
        with TopicReader(kafka_bootstrap, topics.predictions) as reader:
            records = reader.read_until(lambda rs: len(rs) >= len(clean) + len(noisy), 60)
    reg = Registry(registry)
    # Under load the stream can reach the interim's domain check mid-way and a second interim be made (the
    # domain moved on from its window): one or more interims, then the candidate.
    interims = [v for v in reg.versions(NAME) if v.manifest.get("interim")]
    assert interims and all(v.manifest["parent"] == 1 for v in interims), _versions(registry)
    assert f'driftwise_normalizations_total{{outcome="served"}} {float(len(interims))}' in metrics
    made = reg.get(NAME, int(candidate))
    assert made.manifest["parent"] == 1 and made.manifest["guardrails"]["passed"]  # made from the base, not an interim
    assert all(v.version < int(candidate) for v in interims), _versions(registry)
    served = {json.loads(r.value)["id"]: json.loads(r.value)["model_version"] for r in records}
    noisy_versions = [served[f"noisy-{i}"] for i in range(len(noisy))]
    first_interim = str(interims[0].version)
    assert first_interim in noisy_versions  # an interim served drifted events before any candidate existed
    if candidate in noisy_versions:
        assert noisy_versions.index(first_interim) < noisy_versions.index(candidate)


def test_a_rejected_candidate_is_kept_but_never_served(
    tmp_path: Path, source_registry: Path, kafka_bootstrap: str, digits: Any
) -> None:
    registry = _copy_registry(source_registry, tmp_path / "registry")
    topics = unique_topics()
    settings = _serve(registry, kafka_bootstrap, topics, normalize_after=0)
    clean, noisy = _drifted_stream(digits)
    with TestClient(create_app(settings)) as client:
        controller = client.app.state.service.controller
        # A guardrail no candidate can pass: the confidence on the drifted window must rise by a whole 1.0.
        controller.guardrail_config = GuardrailConfig(min_confidence_gain=1.0)
        _stream_until_an_adaptation_ends(client, kafka_bootstrap, topics, clean, noisy)
        drift = client.get("/drift").json()
        assert drift["last_adaptation"]["outcome"] == "rejected"
        assert any("confidence_gain" in r for r in drift["last_adaptation"]["guardrails"]["reasons"])
        assert client.get("/readyz").json()["model_version"] == "1"
        assert 'driftwise_adaptations_total{outcome="rejected"} 1.0' in client.get("/metrics").text
    reg = Registry(registry)
    assert reg.current(NAME).version == 1
    assert reg.get(NAME, 2).status == "rejected"


def test_a_promoted_candidate_is_refined_once_on_more_of_its_domain(
    tmp_path: Path, source_registry: Path, kafka_bootstrap: str, digits: Any
) -> None:
    registry = _copy_registry(source_registry, tmp_path / "registry")
    topics = unique_topics()
    settings = _serve(registry, kafka_bootstrap, topics, refine_after=512, normalize_after=0)  # twice the window
    clean, noisy = _drifted_stream(digits)

    def last_version() -> int | None:
        return (client.get("/drift").json().get("last_adaptation") or {}).get("version")

    with TestClient(create_app(settings)) as client:
        produce(kafka_bootstrap, topics.events, _events(clean, "clean") + _events(noisy, "noisy"))
        assert _wait(lambda: last_version() is not None, 180), client.get("/drift").json()
        assert client.get("/drift").json()["last_adaptation"]["outcome"] == "promoted"
        produce(kafka_bootstrap, topics.events, _events(noisy[:600], "more"))  # the domain reaches 512 inputs
        assert _wait(lambda: last_version() == 3, 180), client.get("/drift").json()
        drift = client.get("/drift").json()
        assert drift["last_adaptation"]["reason"].startswith("refinement of v2")
        assert drift["policy"]["outcomes"]["refinements"] == 1
        v3 = Registry(registry).get(NAME, 3)
        assert v3.manifest["parent"] == 1 and v3.manifest["refines"] == "2"  # the base again, on more of the domain
        assert client.get("/readyz").json()["model_version"] == ("3" if v3.status == "approved" else "2")
