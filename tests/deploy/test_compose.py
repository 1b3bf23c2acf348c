"""docker-compose.yml and the Dockerfile, checked statically (no Docker engine here)."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
DOCKERIGNORE = REPO / "deploy" / "Dockerfile.dockerignore"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def _volumes(service: dict[str, Any]) -> list[tuple[str, str]]:
    pairs = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2] if isinstance(volume, str) else (volume["source"], volume["target"])
        pairs.append((source, target))
    return pairs


def _gpu_devices(service: dict[str, Any]) -> list[dict[str, Any]]:
    return service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])


def test_compose_lists_kafka_the_service_prometheus_and_grafana(services: dict[str, Any]) -> None:
    assert {"kafka", "kafka-init", "driftwise", "driftwise-cpu", "prometheus", "grafana"} <= set(services)


def test_kafka_is_apache_kafka_4_in_kraft_mode(services: dict[str, Any]) -> None:
    kafka = services["kafka"]
    image, tag = kafka["image"].split(":")
    assert image == "apache/kafka" and tag.startswith("4.")
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller" and "KAFKA_CONTROLLER_QUORUM_VOTERS" in env
    assert "zookeeper" not in COMPOSE.read_text().lower()


def test_topics_are_created_before_the_service_starts(services: dict[str, Any]) -> None:
    script = "\n".join(services["kafka-init"]["command"])
    for topic in ("driftwise.events", "driftwise.predictions", "driftwise.events.dlq", "driftwise.labels",
                  "driftwise.models"):
        assert f"--topic {topic} " in script
    assert "cleanup.policy=compact" in script  # the control topic keeps the latest announcement
    for name in ("driftwise", "driftwise-cpu"):
        assert services[name]["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"


def test_the_service_reserves_an_nvidia_gpu(services: dict[str, Any]) -> None:
    (device,) = _gpu_devices(services["driftwise"])
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert services["driftwise"]["environment"]["DRIFTWISE_DEVICE"] == "cuda"


def test_the_cpu_variant_reserves_no_gpu_and_answers_to_the_same_name(services: dict[str, Any]) -> None:
    cpu = services["driftwise-cpu"]
    assert not _gpu_devices(cpu) and cpu["environment"]["DRIFTWISE_DEVICE"] == "cpu"
    assert "driftwise" in cpu["networks"]["default"]["aliases"]
    assert services["driftwise"]["profiles"] == ["gpu"] and cpu["profiles"] == ["cpu"]


def test_the_service_is_configured_by_environment(services: dict[str, Any]) -> None:
    for name in ("driftwise", "driftwise-cpu"):
        env = services[name]["environment"]
        assert env["DRIFTWISE_HOST"] == "0.0.0.0" and env["DRIFTWISE_PORT"] == "8000"
        assert env["DRIFTWISE_BOOTSTRAP_SERVERS"] == "kafka:19092" and env["DRIFTWISE_NAME"]
        # Settings refuse a public bind without a token; compose refuses to start without one.
        assert env["DRIFTWISE_ALLOW_PUBLIC_BIND"] == "true" and ":?" in env["DRIFTWISE_ADMIN_TOKEN"]


def test_the_registry_is_a_named_volume_that_survives_restarts(compose: dict[str, Any],
                                                               services: dict[str, Any]) -> None:
    for name in ("driftwise", "driftwise-cpu"):
        mounts = dict(_volumes(services[name]))
        assert mounts["registry"] == services[name]["environment"]["DRIFTWISE_REGISTRY"]
    assert "registry" in compose["volumes"]


def test_every_published_port_is_bound_to_loopback(services: dict[str, Any]) -> None:
    published = [(name, port) for name, svc in services.items() for port in svc.get("ports", [])]
    assert published
    for name, port in published:
        assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_every_file_compose_mounts_or_builds_from_exists(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for source, _ in _volumes(service):
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name} mounts missing {source}"
        if "build" in service:
            context = REPO / service["build"]["context"]
            assert context.is_dir() and (context / service["build"]["dockerfile"]).is_file()


def test_prometheus_and_grafana_get_their_provisioning(services: dict[str, Any]) -> None:
    prometheus = dict(_volumes(services["prometheus"]))
    assert prometheus["./deploy/prometheus"] == "/etc/prometheus"
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]
    grafana = dict(_volumes(services["grafana"]))
    assert grafana["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    providers = yaml.safe_load((REPO / "deploy/grafana/provisioning/dashboards/driftwise.yml").read_text())
    (provider,) = providers["providers"]
    assert grafana["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert (REPO / "deploy/grafana/dashboards/driftwise.json").is_file()


def test_dockerfile_is_slim_python_311_and_runs_as_non_root(dockerfile: list[tuple[str, str]]) -> None:
    (base,) = [args for op, args in dockerfile if op == "FROM"]
    assert base.startswith("python:3.11-slim")
    users = [args for op, args in dockerfile if op == "USER"]
    assert users and users[-1] not in ("root", "0")


def test_dockerfile_installs_the_project_like_the_makefile(dockerfile: list[tuple[str, str]]) -> None:
    installs = [shlex.split(args) for op, args in dockerfile if op == "RUN" and "pip install" in args]
    assert len(installs) == 1
    words = installs[0] + ["&&"]
    arguments = words[words.index("install") + 1: words.index("&&")]
    assert arguments[-1] == ".", f"expected `pip install [options] .`, got {arguments}"
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"pip install .*'\.\[dev\]'", makefile), "the Makefile installs the project with pip too"


def test_docker_build_context_carries_what_pip_install_needs() -> None:
    allowed = {line[1:].rstrip("/") for line in DOCKERIGNORE.read_text().splitlines() if line.startswith("!")}
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "pyproject.toml" in allowed and project["project"]["readme"] in allowed
    folders = set(project["tool"]["setuptools"]["package-dir"].values())  # installed as driftwise.<folder>
    assert folders and folders <= allowed


def test_dockerfile_checks_health_and_serves_from_env(dockerfile: list[tuple[str, str]]) -> None:
    (health,) = [args for op, args in dockerfile if op == "HEALTHCHECK"]
    assert "/healthz" in health and "DRIFTWISE_PORT" in health
    (entrypoint,) = [args for op, args in dockerfile if op == "ENTRYPOINT"]
    (cmd,) = [args for op, args in dockerfile if op == "CMD"]
    assert yaml.safe_load(entrypoint) == ["driftwise"] and yaml.safe_load(cmd) == ["serve"]
    env = " ".join(args for op, args in dockerfile if op == "ENV")
    assert "DRIFTWISE_HOST=0.0.0.0" in env and "DRIFTWISE_PORT=8000" in env and "DRIFTWISE_REGISTRY=" in env
