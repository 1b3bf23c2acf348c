"""Swapping models under hundreds of concurrent HTTP requests fails none, and each answer is honest.

A real uvicorn server on 127.0.0.1; 200 client connections keep requests in
flight while the admin API swaps between versions 1 and 2 again and again,
ending on 2. Every request must succeed, every answer must equal what the model
of the version it names computes, and every request sent after the last swap
returned must carry version 2. Bounded: 10 requests per connection and a 120 s
deadline (the machine may be busy).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import numpy as np
import torch

from driftwise.models.registry import Registry
from driftwise.service.app import create_app
from driftwise.service.settings import Settings
from tests.service.conftest import ADMIN_TOKEN, NAME, instances, live_server

CONNECTIONS = 200
REQUESTS_PER_CONNECTION = 10
SWAPS = 8
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _expected(registry: Registry, rows: list[list[float]]) -> dict[str, np.ndarray]:
    out = {}
    for version in (1, 2):
        model = registry.load(NAME, version).model
        with torch.no_grad():
            out[str(version)] = torch.softmax(model(torch.tensor(rows).reshape(-1, 1, 8, 8)), 1).numpy()
    return out


def test_swaps_under_concurrent_load_fail_no_request(make_settings: Callable[..., Settings],
                                                     registry: Registry) -> None:
    rows = instances(16, seed=7)
    expected = _expected(registry, rows)
    results: list[tuple[float, float, int, httpx.Response | BaseException]] = []  # sent, done, row, outcome
    first_swap_sent = last_swap_done = float("inf")

    async def scenario(base: str) -> None:
        limits = httpx.Limits(max_connections=CONNECTIONS + 4, max_keepalive_connections=CONNECTIONS + 4)
        async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as http:
            swapping = asyncio.Event()

            async def client(k: int) -> None:
                for j in range(REQUESTS_PER_CONNECTION):
                    i = (k + j) % len(rows)
                    sent = time.monotonic()
                    try:
                        outcome: httpx.Response | BaseException = await http.post(
                            "/predict", json={"instances": [rows[i]]})
                    except Exception as exc:  # noqa: BLE001 - counted as a failure below
                        outcome = exc
                    results.append((sent, time.monotonic(), i, outcome))
                    if j == 2:
                        swapping.set()

            async def swapper() -> list[int]:
                nonlocal first_swap_sent, last_swap_done
                await swapping.wait()  # load is flowing
                first_swap_sent = time.monotonic()
                statuses = []
                for s in range(SWAPS):
                    version = 2 if s % 2 == 0 else 1
                    statuses.append((await http.post(f"/models/{version}/activate", headers=AUTH)).status_code)
                    await asyncio.sleep(0.01)
                statuses.append((await http.post("/models/2/activate", headers=AUTH)).status_code)
                last_swap_done = time.monotonic()
                return statuses

            swaps = asyncio.create_task(swapper())
            await asyncio.wait_for(asyncio.gather(*(client(k) for k in range(CONNECTIONS))), 120)
            assert await asyncio.wait_for(swaps, 30) == [200] * (SWAPS + 1)
            after = await asyncio.gather(*(http.post("/predict", json={"instances": [rows[i]]})
                                           for i in range(len(rows))))
            now = time.monotonic()
            results.extend((now, now, i, r) for i, r in enumerate(after))

    with live_server(create_app(make_settings(max_wait_ms=2.0, admin_token=ADMIN_TOKEN))) as base:
        asyncio.run(scenario(base))
        metrics = httpx.get(f"{base}/metrics").text

    failures = [r for _, _, _, r in results if not isinstance(r, httpx.Response) or r.status_code != 200]
    assert not failures, failures[:3]
    assert len(results) == CONNECTIONS * REQUESTS_PER_CONNECTION + len(rows)
    versions_seen = set()
    in_flight_while_swapping = sum(1 for sent, done, _, _ in results
                                   if sent < last_swap_done and done > first_swap_sent)
    assert in_flight_while_swapping >= CONNECTIONS
    for sent, _, i, response in results:
        body = response.json()  # type: ignore[union-attr]
        version = body["model_version"]
        versions_seen.add(version)
        np.testing.assert_allclose(body["predictions"][0]["probabilities"], expected[version][i],
                                   rtol=1e-5, atol=1e-6)
        if sent > last_swap_done:
            assert version == "2"
    assert versions_seen == {"1", "2"}
    assert f'driftwise_model_swaps_total{{reason="activate"}} {float(SWAPS + 1)}' in metrics
