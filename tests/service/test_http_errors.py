"""Every way a /predict request can be wrong gets its status and a clear body; the service stays up."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from driftwise.models.registry import Registry
from driftwise.service.app import create_app
from driftwise.service.settings import Settings
from tests.service.conftest import NAME, TestClient, instances, tiny_classifier

GOOD = instances(3)


@pytest.fixture
def client(make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(max_instances=8, max_body_bytes=16 * 1024))) as c:
        yield c


def _post_raw(client: TestClient, body: str | bytes) -> tuple[int, dict]:
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    return response.status_code, response.json()


def _with_bad_instance(bad: object, at: int = 1) -> str:
    rows: list[object] = list(GOOD)
    rows[at] = bad
    return json.dumps({"instances": rows})


def _assert_still_serving(client: TestClient) -> None:
    ok = client.post("/predict", json={"instances": GOOD})
    assert ok.status_code == 200 and len(ok.json()["predictions"]) == 3


def _assert_names_instance(client: TestClient, body: str, index: int, words: str) -> None:
    status, payload = _post_raw(client, body)
    assert status == 422, payload
    assert payload["instance"] == index
    assert payload["detail"].startswith(f"instance {index}: ")
    assert words in payload["detail"]
    _assert_still_serving(client)


def test_predict_rejects_wrong_length_with_422(client: TestClient) -> None:
    _assert_names_instance(client, _with_bad_instance(GOOD[1][:63]), 1, "expected 64 numbers")


def test_predict_rejects_nested_wrong_shape_with_422(client: TestClient) -> None:
    nested = [[[1.0] * 7 for _ in range(8)]]  # (1, 8, 7): 56 numbers
    _assert_names_instance(client, _with_bad_instance(nested, at=2), 2, "expected 64 numbers")


def test_predict_rejects_ragged_nesting_with_422(client: TestClient) -> None:
    ragged = [[1.0] * 8 for _ in range(7)] + [[1.0] * 9]
    _assert_names_instance(client, _with_bad_instance(ragged, at=0), 0, "expected 64 numbers")


def test_predict_rejects_nan_with_422(client: TestClient) -> None:
    body = _with_bad_instance(GOOD[1][:5] + [float("nan")] + GOOD[1][6:])  # json.dumps writes NaN
    assert "NaN" in body
    _assert_names_instance(client, body, 1, "non-finite")


def test_predict_rejects_infinity_with_422(client: TestClient) -> None:
    body = _with_bad_instance([float("-inf")] + GOOD[1][1:])
    _assert_names_instance(client, body, 1, "non-finite")


def test_predict_rejects_numbers_too_big_for_a_network_with_422(client: TestClient) -> None:
    _assert_names_instance(client, _with_bad_instance([1e39] + GOOD[1][1:]), 1, "beyond ±1e+18")
    # float32 holds it, but the network's sums overflow to a NaN prediction (found by Schemathesis)
    _assert_names_instance(client, _with_bad_instance([3.4e38, -3.4e38] + GOOD[1][2:]), 1, "beyond ±1e+18")
    _assert_names_instance(client, _with_bad_instance([1e999] + GOOD[1][1:]).replace("Infinity", "1e999"), 1,
                           "non-finite")


@pytest.mark.parametrize("bad, words", [
    ("7", "got str"),
    ("seven", "got str"),
    (True, "got bool"),
    (None, "got NoneType"),
    ({"x": 1}, "got dict"),
])
def test_predict_rejects_non_numbers_with_422(client: TestClient, bad: object, words: str) -> None:
    _assert_names_instance(client, _with_bad_instance(GOOD[1][:10] + [bad] + GOOD[1][11:]), 1, words)


@pytest.mark.parametrize("bad", [3.5, "pixels", None, {"features": [1.0] * 64}])
def test_predict_rejects_an_instance_that_is_not_a_list_with_422(client: TestClient, bad: object) -> None:
    _assert_names_instance(client, _with_bad_instance(bad, at=0), 0, "expected a list of numbers")


@pytest.mark.parametrize("body, words", [
    ("{}", '"instances" list'),
    ('{"features": [[1, 2]]}', '"instances" list'),
    ('[[1, 2]]', '"instances" list'),
    ('{"instances": []}', "must not be empty"),
    ('{"instances": {"a": 1}}', "must be a list"),
    ('{"instances": [[1, 2], ', "not valid JSON"),
    ("", "not valid JSON"),
])
def test_predict_rejects_a_malformed_body_with_422(client: TestClient, body: str, words: str) -> None:
    status, payload = _post_raw(client, body)
    assert status == 422 and words in payload["detail"], payload
    assert "instance" not in payload
    _assert_still_serving(client)


def test_predict_rejects_too_many_instances_with_422_as_the_schema_says(client: TestClient) -> None:
    status, payload = _post_raw(client, json.dumps({"instances": instances(9)}))
    assert status == 422 and "limit of 8" in payload["detail"]
    _assert_still_serving(client)


def test_predict_rejects_a_body_over_the_limit_with_413(client: TestClient) -> None:
    big = json.dumps({"instances": instances(8)}) + " " * 16 * 1024
    status, payload = _post_raw(client, big)
    assert status == 413 and "limit of 16384" in payload["detail"]
    _assert_still_serving(client)


def test_predict_rejects_a_chunked_body_over_the_limit_with_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"instances": ['
        for _ in range(200):
            yield (json.dumps(GOOD[0]) + ",").encode()

    response = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    _assert_still_serving(client)


def test_error_responses_are_counted_by_status(client: TestClient) -> None:
    _post_raw(client, "{}")
    _post_raw(client, json.dumps({"instances": instances(9)}))
    _post_raw(client, json.dumps({"instances": instances(1)}) + " " * 20_000)  # over the body limit
    text = client.get("/metrics").text
    assert 'driftwise_bad_requests_total{status="422"} 2.0' in text
    assert 'driftwise_bad_requests_total{status="413"} 1.0' in text


def test_predict_without_a_model_is_503_and_readyz_says_not_ready(tmp_path: object,
                                                                     make_settings: Callable[..., Settings]) -> None:
    empty = Registry(tmp_path / "empty")  # type: ignore[operator]
    empty.publish(NAME, tiny_classifier(0), reason="pretrain", activate=False)
    with TestClient(create_app(make_settings(registry=empty.root))) as c:
        response = c.post("/predict", json={"instances": GOOD})
        assert response.status_code == 503 and "no model" in response.json()["detail"]
        assert c.get("/readyz").status_code == 503
        assert c.get("/healthz").status_code == 200
        assert c.get("/models").json()["served"] is None
        assert 'driftwise_bad_requests_total{status="503"} 1.0' in c.get("/metrics").text


def test_predict_rejects_an_integer_too_large_with_422(client: TestClient) -> None:
    response = client.post("/predict", json={"instances": [[10**400] + [0] * 63]})
    assert response.status_code == 422
    assert "instance 0" in response.text and "beyond ±1e+18" in response.text
    assert client.get("/healthz").status_code == 200
