"""The micro-batcher: coalesces concurrent requests, returns each its own rows, isolates errors."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
import torch

from driftwise.service.batcher import MicroBatcher
from driftwise.service.metrics import Metrics
from driftwise.service.runtime import BatchPrediction, ModelSnapshot, ModelUnavailable, Runtime
from tests.service.conftest import SHAPE, tiny_classifier


@pytest.fixture
def runtime() -> Runtime:
    rt = Runtime(device="cpu")
    rt.swap(ModelSnapshot.of(tiny_classifier(0), version="1", device="cpu"))
    return rt


def _requests(sizes: list[int]) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.uniform(0, 16, size=(n, *SHAPE)).astype(np.float32) for n in sizes]


def test_concurrent_requests_share_forward_passes_and_get_their_own_rows(runtime: Runtime) -> None:
    requests = _requests([1, 3, 2, 1, 5, 1, 4, 2] * 4)
    metrics = Metrics()

    async def main() -> tuple[list[BatchPrediction], int]:
        async with MicroBatcher(runtime, max_batch=16, max_wait_ms=20, metrics=metrics) as batcher:
            outs = await asyncio.gather(*(batcher.predict(X) for X in requests))
        return outs, batcher.batches

    outs, batches = asyncio.run(main())
    assert batches < len(requests) // 2
    model = runtime.snapshot.model
    for X, out in zip(requests, outs):
        with torch.no_grad():
            expected = torch.softmax(model(torch.from_numpy(X)), 1).numpy()
        np.testing.assert_allclose(out.probabilities, expected, rtol=1e-5, atol=1e-6)
    total = sum(len(X) for X in requests)
    assert metrics.registry.get_sample_value("driftwise_predictions_total", {"source": "http"}) == total
    assert metrics.registry.get_sample_value("driftwise_batch_size_count", {"source": "http"}) == batches
    assert metrics.registry.get_sample_value("driftwise_confidence_count") == total


def test_no_batch_exceeds_max_batch_unless_one_request_does(runtime: Runtime) -> None:
    sizes: list[int] = []
    requests = _requests([3] * 10 + [9])

    async def main() -> None:
        async with MicroBatcher(runtime, max_batch=8, max_wait_ms=20,
                                on_batch=lambda X, p, s: sizes.append(len(X))) as batcher:
            await asyncio.gather(*(batcher.predict(X) for X in requests))

    asyncio.run(main())
    assert sum(sizes) == 39
    assert all(n <= 8 for n in sizes if n != 9) and 9 in sizes


def test_a_failing_request_does_not_fail_the_others_in_its_batch(runtime: Runtime) -> None:
    good = _requests([2, 2])
    bad = np.zeros((1, 64), np.float32)  # wrong shape for the model

    async def main() -> list[object]:
        async with MicroBatcher(runtime, max_batch=16, max_wait_ms=20) as batcher:
            return await asyncio.gather(batcher.predict(good[0]), batcher.predict(bad), batcher.predict(good[1]),
                                        return_exceptions=True)

    first, failed, last = asyncio.run(main())
    assert isinstance(first, BatchPrediction) and len(first) == 2
    assert isinstance(last, BatchPrediction) and len(last) == 2
    assert isinstance(failed, ValueError) and "input shape" in str(failed)


def test_observers_see_every_batch_with_its_source(runtime: Runtime) -> None:
    seen: list[tuple[int, str, str]] = []

    def observe(X: np.ndarray, prediction: BatchPrediction, source: str) -> None:
        assert len(X) == len(prediction)
        seen.append((len(X), prediction.model_version, source))

    async def main() -> None:
        async with MicroBatcher(runtime, max_batch=4, max_wait_ms=1, on_batch=observe) as batcher:
            for X in _requests([2, 3]):
                await batcher.predict(X)

    asyncio.run(main())
    assert seen == [(2, "1", "http"), (3, "1", "http")]


def test_a_failing_observer_never_fails_a_request(runtime: Runtime) -> None:
    def broken(X: np.ndarray, prediction: BatchPrediction, source: str) -> None:
        raise RuntimeError("monitor bug")

    async def main() -> BatchPrediction:
        async with MicroBatcher(runtime, on_batch=broken) as batcher:
            return await batcher.predict(_requests([1])[0])

    assert len(asyncio.run(main())) == 1


def test_predict_before_start_says_unavailable(runtime: Runtime) -> None:
    with pytest.raises(ModelUnavailable):
        asyncio.run(MicroBatcher(runtime).predict(_requests([1])[0]))


@pytest.mark.parametrize("kwargs", [{"max_batch": 0}, {"max_wait_ms": -1.0}])
def test_constructor_refuses_bad_limits(runtime: Runtime, kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        MicroBatcher(runtime, **kwargs)


def test_a_lone_request_is_not_held_back_waiting_for_company(runtime: Runtime) -> None:
    async def main() -> list[float]:
        waits = []
        async with MicroBatcher(runtime, max_batch=64, max_wait_ms=500) as batcher:
            for X in _requests([1, 1, 1]):
                started = time.perf_counter()
                await batcher.predict(X)
                waits.append(time.perf_counter() - started)
                await asyncio.sleep(0.3)  # sparse traffic: nobody else is coming within the wait
        return waits

    assert max(asyncio.run(main())) < 0.25
