"""Settings: read from DRIFTWISE_* variables, unsafe values refused at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from driftwise.service.settings import Settings

BASE = {"registry": "/tmp/registry", "name": "digits"}


def test_every_field_reads_its_driftwise_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {"REGISTRY": "/srv/reg", "NAME": "digits", "PORT": "9001", "NO_ADAPT": "true",
                       "BOOTSTRAP_SERVERS": "127.0.0.1:9092", "MAX_BATCH": "32", "DEVICE": "cpu",
                       "EVENTS_TOPIC": "ev.in", "CONFIDENCE_THRESHOLD": "0.95"}.items():
        monkeypatch.setenv(f"DRIFTWISE_{key}", value)
    s = Settings()  # type: ignore[call-arg]
    assert (s.registry, s.name, s.port, s.no_adapt) == (Path("/srv/reg"), "digits", 9001, True)
    assert (s.bootstrap_servers, s.max_batch, s.device, s.events_topic) == ("127.0.0.1:9092", 32, "cpu", "ev.in")
    assert s.confidence_threshold == 0.95


def test_defaults_match_the_design() -> None:
    s = Settings(**BASE)
    assert (s.host, s.port, s.max_instances, s.max_body_bytes, s.max_batch, s.max_wait_ms) == (
        "127.0.0.1", 8000, 1024, 8 * 1024 * 1024, 64, 2.0)
    assert (s.events_topic, s.predictions_topic, s.dlq_topic, s.labels_topic, s.models_topic) == (
        "driftwise.events", "driftwise.predictions", "driftwise.events.dlq", "driftwise.labels", "driftwise.models")
    assert s.bootstrap_servers is None and s.admin_token is None and not s.no_adapt


@pytest.mark.parametrize("overrides", [
    {"host": "0.0.0.0"},
    {"host": "10.1.2.3", "allow_public_bind": True},  # public needs a token too
    {"port": 0}, {"port": 70000},
    {"max_instances": 0}, {"max_body_bytes": 10}, {"max_batch": 0}, {"max_wait_ms": -1},
    {"admin_token": "short"},
    {"bootstrap_servers": "localhost"}, {"bootstrap_servers": "127.0.0.1:9092,nope"},
    {"events_topic": "has space"}, {"models_topic": ""},
    {"name": "../escape"}, {"device": "tpu"},
    {"confidence_threshold": 1.5}, {"rollback_window": 0},
])
def test_unsafe_values_are_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Settings(**{**BASE, **overrides})


def test_a_public_bind_is_allowed_when_explicit_and_guarded_by_a_token() -> None:
    s = Settings(**BASE, host="0.0.0.0", allow_public_bind=True, admin_token="x" * 16)
    assert s.host == "0.0.0.0"
    assert "x" * 16 not in repr(s)


def test_loopback_addresses_need_no_permission() -> None:
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert Settings(**BASE, host=host).host == host
