"""deploy/kafka: the Maven pins, the log config, and kafka.sh's behaviour (clear errors, idempotent start)."""

from __future__ import annotations

import re
import socket
import subprocess
import xml.etree.ElementTree as ET

import pytest

from driftwise.service.kafka_local import SCRIPT, LocalKafka, free_port_pair, is_reachable
from tests.kafka_support import broker_unavailable

KAFKA_DIR = SCRIPT.parent
NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def kafka_sh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def test_pom_pins_kafka_and_the_slf4j_1_binding() -> None:
    pom = ET.parse(KAFKA_DIR / "pom.xml").getroot()
    props = {p.tag.split("}")[1]: p.text for p in pom.find("m:properties", NS)}
    assert pom.find("m:packaging", NS).text == "pom"
    assert props["kafka.version"] == "4.1.1"
    assert props["log4j.version"] == "2.24.3"
    assert props["slf4j.version"] == "1.7.36"
    deps = {d.find("m:artifactId", NS).text for d in pom.find("m:dependencies", NS)}
    assert deps == {"kafka_2.13", "slf4j-api", "log4j-slf4j-impl", "log4j-api", "log4j-core"}


def test_log_config_keeps_the_readiness_line_and_silences_the_rest() -> None:
    text = (KAFKA_DIR / "log4j2.properties").read_text()
    assert re.search(r"^rootLogger\.level\s*=\s*WARN$", text, re.M)
    assert re.search(r"^logger\.\w+\.name\s*=\s*kafka\.server\.KafkaRaftServer$", text, re.M)
    assert re.search(r"^logger\.\w+\.level\s*=\s*INFO$", text, re.M)


def test_a_port_pair_for_a_broker_is_below_the_ephemeral_ports_and_free_of_connections_too() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    with server, client:  # nothing listens on the client's local port, yet no broker could bind it
        taken = client.getsockname()[1]
        assert free_port_pair(taken, taken + 4, offsets=(0,)) != taken
        port = free_port_pair()
        assert 20000 <= port < 32000  # outgoing connections take their local ports from 32768 up


def test_status_of_a_broker_that_is_not_running_exits_3() -> None:
    port = free_port_pair()
    result = kafka_sh("status", "--port", str(port))
    assert result.returncode == 3
    assert "stopped" in result.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["start", "--bogus"], "unknown argument '--bogus'"),
    (["status", "--port", "http"], "--port must be a port number"),
    (["node-kill", "4"], "cluster nodes are 1, 2 and 3"),
    (["frobnicate"], "usage: kafka.sh"),
    (["restart", "--port", "1"], "nothing to restart on port 1"),
])
def test_bad_commands_fail_with_a_clear_message(args: list[str], message: str) -> None:
    result = kafka_sh(*args)
    assert result.returncode != 0
    assert message in result.stderr


def test_start_refuses_a_port_that_another_process_holds() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = kafka_sh("start", "--port", str(port))
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr


@pytest.mark.kafka
@pytest.mark.timeout(300)
def test_start_is_idempotent_and_stop_frees_the_ports() -> None:
    kafka = LocalKafka(free_port_pair(), tie_to_this_process=True, purge_on_stop=True)
    try:
        kafka.start()
    except Exception as exc:  # noqa: BLE001 - reported as unavailable (fails in CI)
        broker_unavailable(str(exc))
    try:
        pid = (KAFKA_DIR / "run" / str(kafka.port) / "kafka.pid").read_text().strip()
        assert kafka.running and is_reachable(kafka.bootstrap)
        again = kafka_sh("start", "--port", str(kafka.port))
        assert again.returncode == 0 and f"already running on 127.0.0.1:{kafka.port} (pid {pid})" in again.stdout
    finally:
        kafka.stop()
    assert not kafka.running
    assert not is_reachable(kafka.bootstrap, timeout=1.0)
    assert not (KAFKA_DIR / "run" / str(kafka.port)).exists()  # purged
