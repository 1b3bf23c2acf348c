"""Admin routes: refused (401) without the configured bearer token, or with none configured; activate/rollback
change what is served, and say so."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from driftwise.models.registry import Registry
from driftwise.service.app import create_app
from driftwise.service.settings import Settings
from tests.service.conftest import ADMIN_TOKEN, NAME, TestClient, instances, tiny_classifier

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def admin(make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(admin_token=ADMIN_TOKEN))) as c:
        yield c


ADMIN_ROUTES = [("post", "/models/2/activate"), ("post", "/models/rollback"), ("post", "/drift/adapt")]
BAD_CREDENTIALS = [  # (headers, reason counted)
    ({}, "missing"),
    ({"Authorization": f"Basic {ADMIN_TOKEN}"}, "missing"),  # the right secret under another scheme
    ({"Authorization": ADMIN_TOKEN}, "missing"),  # no scheme at all
    ({"Authorization": "Bearer"}, "missing"),
    ({"X-Admin-Token": ADMIN_TOKEN}, "missing"),
    ({"Authorization": "Bearer wrong-token-wrong-token"}, "invalid"),
    ({"Authorization": f"Bearer {ADMIN_TOKEN[:-1]}"}, "invalid"),  # a prefix
    ({"Authorization": f"Bearer {ADMIN_TOKEN}x"}, "invalid"),  # an extension
]


def _served(client: TestClient) -> str:
    return client.post("/predict", json={"instances": instances(1)}).json()["model_version"]


def _failures(client: TestClient, reason: str) -> float | None:
    return client.app.state.service.metrics.registry.get_sample_value(
        "driftwise_admin_auth_failures_total", {"reason": reason})


def _rollback_possible(registry: Registry) -> None:
    """History 1, 2, 1 with 1 served: a rollback would serve 2, as would activating 2."""
    registry.activate(NAME, 2)
    registry.activate(NAME, 1)


@pytest.mark.parametrize("method, path", [("post", "/models/2/activate"), ("post", "/models/rollback"),
                                          ("post", "/drift/adapt")])
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token-wrong-token"},
                                     {"Authorization": f"Basic {ADMIN_TOKEN}"}])
def test_admin_routes_need_the_bearer_token_with_401(admin: TestClient, method: str, path: str,
                                                     headers: dict[str, str]) -> None:
    response = admin.request(method, path, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert _served(admin) == "1"


def test_activate_swaps_the_served_model_and_moves_current(admin: TestClient, registry: Registry) -> None:
    response = admin.post("/models/2/activate", headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {"model_version": "2", "previous": "1", "announced": None}
    assert _served(admin) == "2"
    assert registry.current(NAME).version == 2
    listed = admin.get("/models").json()
    assert (listed["current"], listed["served"]) == (2, "2")
    text = admin.get("/metrics").text
    assert 'driftwise_model_swaps_total{reason="activate"} 1.0' in text
    assert "driftwise_model_version 2.0" in text


def test_rollback_serves_the_previous_version_and_counts_a_manual_rollback(admin: TestClient,
                                                                           registry: Registry) -> None:
    admin.post("/models/2/activate", headers=AUTH)
    response = admin.post("/models/rollback", headers=AUTH)
    assert response.status_code == 200 and response.json() == {"model_version": "1", "previous": "2", "announced": None}
    assert _served(admin) == "1" and registry.current(NAME).version == 1
    text = admin.get("/metrics").text
    assert 'driftwise_rollbacks_total{trigger="manual"} 1.0' in text
    assert 'driftwise_model_swaps_total{reason="rollback"} 1.0' in text


def test_rollback_with_nothing_before_is_409(admin: TestClient) -> None:
    response = admin.post("/models/rollback", headers=AUTH)
    assert response.status_code == 409 and "nothing to roll back" in response.json()["detail"]
    assert _served(admin) == "1"


def test_activating_an_unknown_version_is_404(admin: TestClient) -> None:
    assert admin.post("/models/9/activate", headers=AUTH).status_code == 404
    assert _served(admin) == "1"


def test_activating_a_rejected_candidate_is_409_and_changes_nothing(admin: TestClient, registry: Registry) -> None:
    registry.publish(NAME, tiny_classifier(2), reason="adapt", parent=1, status="rejected", activate=False)
    response = admin.post("/models/3/activate", headers=AUTH)
    assert response.status_code == 409 and "rejected" in response.json()["detail"]
    assert _served(admin) == "1" and registry.current(NAME).version == 1


def test_without_a_configured_token_every_admin_route_is_401_and_changes_nothing(client: TestClient,
                                                                               registry: Registry) -> None:
    _rollback_possible(registry)
    controller = _Controller()
    client.app.state.service.controller = controller
    for method, path in ADMIN_ROUTES:
        for headers in ({}, AUTH):  # even a well-formed bearer token: there is none to match
            response = client.request(method, path, headers=headers)
            assert response.status_code == 401, (path, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
            detail = response.json()["detail"]
            assert "DRIFTWISE_ADMIN_TOKEN" in detail and "--admin-token" in detail and "16 characters" in detail
    assert _served(client) == "1" and registry.current(NAME).version == 1
    assert registry.activation_history(NAME) == [1, 2, 1] and controller.triggered == 0
    assert _failures(client, "not_configured") == 2 * len(ADMIN_ROUTES)
    assert _failures(client, "missing") == _failures(client, "invalid") == 0


def test_no_admin_route_changes_anything_without_the_valid_token(admin: TestClient, registry: Registry) -> None:
    _rollback_possible(registry)
    controller = _Controller()
    admin.app.state.service.controller = controller
    assert {r: _failures(admin, r) for r in ("missing", "invalid", "not_configured")} == {
        "missing": 0, "invalid": 0, "not_configured": 0}  # the series exist from the start
    for method, path in ADMIN_ROUTES:
        for headers, _ in BAD_CREDENTIALS:
            response = admin.request(method, path, headers=headers, params={"token": ADMIN_TOKEN})
            assert response.status_code == 401, (path, headers, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
    assert _served(admin) == "1" and registry.current(NAME).version == 1
    assert registry.activation_history(NAME) == [1, 2, 1] and controller.triggered == 0
    for reason in ("missing", "invalid"):
        expected = len(ADMIN_ROUTES) * sum(1 for _, r in BAD_CREDENTIALS if r == reason)
        assert _failures(admin, reason) == expected, reason
    assert _failures(admin, "not_configured") == 0
    text = admin.get("/metrics").text
    assert f'driftwise_bad_requests_total{{status="401"}} {float(len(ADMIN_ROUTES) * len(BAD_CREDENTIALS))}' in text
    assert admin.post("/models/rollback", headers=AUTH).json()["model_version"] == "2"  # the token still works


def test_openapi_says_admin_routes_need_the_token_and_answer_401(admin: TestClient) -> None:
    spec = admin.get("/openapi.json").json()
    scheme = spec["components"]["securitySchemes"]["AdminToken"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert "DRIFTWISE_ADMIN_TOKEN" in scheme["description"] and "never open" in scheme["description"]
    secured = {(method, path) for path, ops in spec["paths"].items() for method, op in ops.items()
               if op.get("security")}
    assert secured == {("post", "/models/{version}/activate"), ("post", "/models/rollback"),
                       ("post", "/drift/adapt")}
    for method, path in secured:
        op = spec["paths"][path][method]
        assert op["security"] == [{"AdminToken": []}]
        unauthorized = op["responses"]["401"]
        assert "no admin token configured" in unauthorized["description"]
        assert "WWW-Authenticate" in unauthorized["headers"]


def test_a_service_started_without_a_model_serves_after_an_activation(tmp_path: Path,
                                                                       make_settings: Callable[..., Settings]) -> None:
    reg = Registry(tmp_path / "fresh")
    reg.publish(NAME, tiny_classifier(0), reason="pretrain", activate=False)
    with TestClient(create_app(make_settings(registry=reg.root, admin_token=ADMIN_TOKEN))) as c:
        assert c.post("/predict", json={"instances": instances(1)}).status_code == 503
        activated = c.post("/models/1/activate", headers=AUTH).json()
        assert activated == {"model_version": "1", "previous": None, "announced": None}
        assert c.get("/readyz").status_code == 200
        assert _served(c) == "1"


class _Controller:
    """The two methods the routes call on the lead's adaptation controller."""

    def __init__(self) -> None:
        self.triggered = 0

    def snapshot(self) -> dict[str, Any]:
        return {"monitoring": "on", "drift": False, "triggered": self.triggered}

    def trigger(self) -> dict[str, Any]:
        self.triggered += 1
        return {"started": True}

    def stop(self) -> None:
        pass


def test_drift_routes_delegate_to_the_controller(admin: TestClient) -> None:
    state = admin.app.state.service
    real, state.controller = state.controller, _Controller()
    try:
        assert admin.post("/drift/adapt", headers=AUTH).json() == {"started": True}
        assert admin.get("/drift").json() == {"monitoring": "on", "drift": False, "triggered": 1}
        state.controller = None
        assert admin.post("/drift/adapt", headers=AUTH).status_code == 409
        assert admin.get("/drift").json()["monitoring"] == "off"
    finally:
        state.controller = real
