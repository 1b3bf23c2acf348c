"""The runtime: predictions match the model, swaps are atomic, versions are honest."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from driftwise.models.registry import Registry
from driftwise.service.metrics import Metrics
from driftwise.service.runtime import (
    InputShapeMismatch,
    ModelSnapshot,
    ModelUnavailable,
    Runtime,
    load_from_registry,
    resolve_device,
)
from tests.service.conftest import NAME, SHAPE, tiny_classifier


def _batch(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 16, size=(n, *SHAPE)).astype(np.float32)


def _reference(model: torch.nn.Module, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        logits, emb = model.forward_with_embedding(torch.from_numpy(X))
    return torch.softmax(logits, 1).numpy(), emb.numpy()


def test_predict_matches_a_direct_forward_pass() -> None:
    model = tiny_classifier(0)
    runtime = Runtime(device="cpu")
    runtime.swap(ModelSnapshot.of(model, version="7", device="cpu"))
    X = _batch(5)
    out = runtime.predict(X)
    probs, emb = _reference(model, X)
    np.testing.assert_allclose(out.probabilities, probs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out.embeddings, emb, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out.labels, probs.argmax(1))
    np.testing.assert_allclose(out.confidence, probs.max(1), rtol=1e-6)
    assert out.model_version == "7"
    assert (out.labels.dtype, out.probabilities.dtype, out.confidence.dtype, out.embeddings.dtype) == (
        np.int64, np.float32, np.float32, np.float32)
    assert out.probabilities.shape == (5, 10) and out.embeddings.shape == (5, 16)


def test_predict_without_a_model_raises_model_unavailable() -> None:
    with pytest.raises(ModelUnavailable):
        Runtime(device="cpu").predict(_batch(1))


def test_predict_rejects_a_batch_of_another_shape() -> None:
    runtime = Runtime(device="cpu")
    runtime.swap(ModelSnapshot.of(tiny_classifier(0), version="1", device="cpu"))
    with pytest.raises(InputShapeMismatch, match="input shape"):
        runtime.predict(np.zeros((2, 64), np.float32))


def test_swap_returns_the_previous_snapshot_and_counts_the_swap() -> None:
    metrics = Metrics()
    runtime = Runtime(device="cpu", metrics=metrics)
    first = ModelSnapshot.of(tiny_classifier(0), version="1", device="cpu")
    assert runtime.swap(first, reason="startup") is None
    assert runtime.swap(ModelSnapshot.of(tiny_classifier(1), version="2", device="cpu")) is first
    assert runtime.version == "2" and runtime.input_shape == SHAPE
    assert metrics.registry.get_sample_value("driftwise_model_swaps_total", {"reason": "activate"}) == 1
    assert metrics.registry.get_sample_value("driftwise_model_swaps_total", {"reason": "startup"}) == 1
    assert metrics.registry.get_sample_value("driftwise_model_version") == 2


def test_load_from_registry_serves_current_or_the_asked_version(registry: Registry) -> None:
    current = load_from_registry(registry, NAME, device="cpu")
    second = load_from_registry(registry, NAME, version=2, device="cpu")
    assert (current.version, second.version) == ("1", "2")
    assert current.input_shape == SHAPE and current.num_classes == 10
    assert not current.model.training
    X = _batch(3)
    np.testing.assert_allclose(_probabilities(second, X), _reference(tiny_classifier(1), X)[0], rtol=1e-5, atol=1e-6)


def _probabilities(snapshot: ModelSnapshot, X: np.ndarray) -> np.ndarray:
    runtime = Runtime(device="cpu")
    runtime.swap(snapshot)
    return runtime.predict(X).probabilities


def test_every_batch_runs_entirely_on_one_snapshot_while_swapping() -> None:
    """Threads predict while another swaps back and forth: each result equals its version's own model."""
    models = {"1": tiny_classifier(0), "2": tiny_classifier(1)}
    snapshots = {v: ModelSnapshot.of(m, version=v, device="cpu") for v, m in models.items()}
    X = _batch(8)
    expected = {v: _reference(m, X)[0] for v, m in models.items()}
    runtime = Runtime(device="cpu")
    runtime.swap(snapshots["1"])
    seen: list[tuple[str, np.ndarray]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def predict_loop() -> None:
        try:
            for _ in range(60):
                out = runtime.predict(X)
                seen.append((out.model_version, out.probabilities))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def swap_loop() -> None:
        i = 0
        while not stop.is_set():
            runtime.swap(snapshots["2" if i % 2 == 0 else "1"])
            i += 1

    workers = [threading.Thread(target=predict_loop) for _ in range(3)]
    swapper = threading.Thread(target=swap_loop)
    swapper.start()
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    stop.set()
    swapper.join(10)
    assert not errors
    assert {v for v, _ in seen} == {"1", "2"}
    for version, probs in seen:
        np.testing.assert_allclose(probs, expected[version], rtol=1e-5, atol=1e-6)


def test_auto_device_is_cuda_exactly_when_available() -> None:
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="auto, cpu or cuda"):
        resolve_device("tpu")
