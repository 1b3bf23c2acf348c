"""The OpenAPI document is the contract: what it allows is answered, what it refuses is a 4xx, and Schemathesis,
run against the real server on 127.0.0.1 with every check, finds nothing, with the admin token and without."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from driftwise.service.app import create_app
from driftwise.service.settings import Settings
from driftwise.service.validation import instance_schema
from tests.service.conftest import ADMIN_TOKEN, SHAPE, TestClient, instances, live_server

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))  # the virtual environment's, a dev dependency
MAX_EXAMPLES, MAX_SECONDS = 25, 30
"""Bounds of each run, so `make test` stays fast: examples per operation and phase, and the whole run's time
(fuzzing repeats until it is spent; the coverage phase, which tries every schema boundary, runs first, whole)."""


def _body_schema(client: TestClient) -> dict:
    spec = client.get("/openapi.json").json()
    return spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]


def test_the_predict_schema_is_the_served_models_shape_and_the_instance_limit(
        make_settings: Callable[..., Settings]) -> None:
    with TestClient(create_app(make_settings(max_instances=64))) as client:
        instances_schema = _body_schema(client)["properties"]["instances"]
    assert instances_schema["items"] == instance_schema(SHAPE)
    assert instances_schema["minItems"] == 1 and instances_schema["maxItems"] == 64
    flat, full, image = instance_schema(SHAPE)["anyOf"]
    assert (flat["minItems"], full["minItems"], image["minItems"]) == (64, 1, 8)


@pytest.mark.parametrize("body, status", [
    ({"instances": instances(2)}, 200),  # flat
    ({"instances": [[row[i:i + 8] for i in range(0, 64, 8)] for row in instances(2)]}, 200),  # an 8x8 image
    ({"instances": [[[row[i:i + 8] for i in range(0, 64, 8)]] for row in instances(2)]}, 200),  # (1, 8, 8)
    ({"instances": [[[[[]]]]]}, 422),  # the body Schemathesis found answered 422 though the old schema allowed it
    ({"instances": [[row[:32], row[32:]] for row in instances(1)]}, 422),  # 64 numbers, nested as no form says
    ({"instances": [instances(1)[0][:60] + [[1.0, 2.0], [3.0, 4.0]]]}, 422),  # 64 numbers, ragged
])
def test_every_form_the_schema_allows_is_answered_and_no_other(client: TestClient, body: dict, status: int) -> None:
    response = client.post("/predict", json=body)
    assert response.status_code == status, response.text
    if status == 422:
        assert "expected" in response.json()["detail"]


def test_with_no_model_served_the_schema_allows_any_nesting_of_numbers(
        make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(registry=tmp_path / "empty"))) as client:
        items = _body_schema(client)["properties"]["instances"]["items"]
    assert "anyOf" in items and "minItems" not in items  # the generic one: no shape is known


@pytest.mark.parametrize("token", [ADMIN_TOKEN, None], ids=["admin token", "no admin token"])
def test_schemathesis_finds_nothing(make_settings: Callable[..., Settings], tmp_path: Path,
                                    token: str | None) -> None:
    assert Path(SCHEMATHESIS).exists(), "schemathesis is a dev dependency: make install"
    app = create_app(make_settings(admin_token=token, max_instances=16))
    headers = ["-H", f"Authorization: Bearer {token}"] if token else []
    with live_server(app) as url:
        run = subprocess.run(
            [SCHEMATHESIS, "run", f"{url}/openapi.json", "--checks", "all", "--max-examples", str(MAX_EXAMPLES),
             "--max-time", str(MAX_SECONDS), "--seed", "0", "--workers", "1", *headers],
            capture_output=True, text=True, timeout=MAX_SECONDS + 60, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
