"""A real local Kafka broker for tests and ``driftwise demo``, by way of ``deploy/kafka/kafka.sh``.

The script is the one implementation (jars, format, start, wait, stop); this
module only calls it, so a developer's shell and the tests start the broker the
same way. Brokers listen on 127.0.0.1 only.

>>> kafka = LocalKafka(port=19192)
>>> kafka.bootstrap
'127.0.0.1:19192'
>>> LocalKafka(port=70000)
Traceback (most recent call last):
...
ValueError: port must be in 1..65533 (the controller uses port + 1), got 70000
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path
from types import TracebackType

SCRIPT = Path(__file__).resolve().parent.parent / "deploy" / "kafka" / "kafka.sh"


class KafkaScriptError(RuntimeError):
    """``kafka.sh`` failed; the message carries its output (it shows the broker log tail)."""


def _run(args: list[str], timeout: float) -> str:
    try:
        proc = subprocess.run(
            ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as exc:
        raise KafkaScriptError(f"kafka.sh {' '.join(args)} took longer than {timeout:.0f}s") from exc
    if proc.returncode != 0:
        raise KafkaScriptError(f"kafka.sh {' '.join(args)} failed (exit {proc.returncode}):\n"
                               f"{proc.stdout}{proc.stderr}".rstrip())
    return proc.stdout


def _addresses(bootstrap: str) -> list[tuple[str, int]]:
    out = []
    for part in bootstrap.split(","):
        host, _, port = part.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"bootstrap servers must look like HOST:PORT[,HOST:PORT], got {bootstrap!r}")
        out.append((host, int(port)))
    return out


def is_reachable(bootstrap: str, timeout: float = 5.0) -> bool:
    """True when a Kafka broker at ``bootstrap`` answers a metadata request within ``timeout`` seconds.

    A TCP check runs first so that a dead address costs milliseconds, not the full timeout.

    >>> is_reachable("127.0.0.1:1", timeout=1.0)
    False
    """
    addresses = _addresses(bootstrap)
    if not any(_port_open(host, port, timeout) for host, port in addresses):
        return False
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, bootstrap_timeout_ms=int(timeout * 1000),
                                 request_timeout_ms=int(timeout * 1000))
    except (KafkaError, OSError, ValueError):
        return False
    try:
        admin.list_topics()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


def _port_open(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=min(timeout, 2.0)):
            return True
    except OSError:
        return False


def _bindable(port: int) -> bool:
    """Whether a listener could bind 127.0.0.1:``port`` now: nothing listens there *and* no connection uses it as
    its local port (a connect test misses the second)."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_port_pair(start: int = 20000, stop: int = 32000, *, offsets: tuple[int, ...] = (0, 1)) -> int:
    """A port ``p`` in ``start..stop`` such that every ``p + offset`` can be bound on 127.0.0.1.

    The default offsets are a broker and its controller; a cluster passes
    `LocalKafkaCluster.port_offsets`. Starts from an OS-chosen port so parallel
    test sessions rarely pick the same one. The default range ends below Linux's
    ephemeral ports (32768-60999): there, the local end of any outgoing connection
    made between this check and the broker's start can take the port (two stream
    bench runs on 2026-12-07 lost their broker so, "Address already in use" on 42684).
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        seed = s.getsockname()[1]
    span = stop - start
    for i in range(0, span, 2):
        p = start + (seed - start + i) % span
        if all(_bindable(p + off) for off in offsets):
            return p
    raise RuntimeError(f"no free ports at offsets {offsets} from any port in {start}..{stop}")


class LocalKafka:
    """One single-node KRaft broker on ``127.0.0.1:port`` (controller on ``port + 1``).

    ``start()`` formats a fresh log dir and waits until the broker is ready;
    ``restart()`` keeps the data (committed offsets survive); ``kill()`` is a
    crash (SIGKILL). With ``tie_to_this_process`` the script also stops and
    purges the broker when this Python process exits, however it exits.
    ``purge_on_stop`` deletes the state dir on ``stop()``.
    """

    def __init__(self, port: int = 9092, *, tie_to_this_process: bool = False, purge_on_stop: bool = False,
                 timeout: float = 180.0) -> None:
        if not 0 < port < 65534:
            raise ValueError(f"port must be in 1..65533 (the controller uses port + 1), got {port}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.port = port
        self.tie_to_this_process = tie_to_this_process
        self.purge_on_stop = purge_on_stop
        self.timeout = timeout

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "LocalKafka":
        """Start (idempotent: an already running broker on this port is reused)."""
        args = ["start", "--port", str(self.port)]
        if self.tie_to_this_process:
            args += ["--watch-pid", str(os.getpid())]
        _run(args, self.timeout)
        return self

    def stop(self) -> None:
        """Clean shutdown (SIGTERM, then SIGKILL after a grace period)."""
        _run(["stop", "--port", str(self.port), *(["--purge"] if self.purge_on_stop else [])], self.timeout)

    def kill(self) -> None:
        """Crash the broker (SIGKILL); ``restart()`` brings it back on the same data."""
        _run(["kill", "--port", str(self.port)], self.timeout)

    def restart(self) -> None:
        """Stop if running, then start again on the same log dir."""
        _run(["restart", "--port", str(self.port)], self.timeout)

    @property
    def running(self) -> bool:
        proc = subprocess.run(["bash", str(SCRIPT), "status", "--port", str(self.port)], capture_output=True,
                              stdin=subprocess.DEVNULL, timeout=30)
        return proc.returncode == 0

    def __enter__(self) -> "LocalKafka":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class LocalKafkaCluster:
    """Three KRaft brokers on one host, node N on ``port + 10000 * (N - 1)``; for fault injection.

    Topics default to replication 3 with min ISR 2, so one node can die without losing
    acknowledged records or the controller quorum.

    >>> LocalKafkaCluster(port=19092).bootstrap
    '127.0.0.1:19092,127.0.0.1:29092,127.0.0.1:39092'
    """

    nodes = (1, 2, 3)
    port_offsets = (0, 1, 10000, 10001, 20000, 20001)  # broker and controller of each node

    def __init__(self, port: int = 19092, *, tie_to_this_process: bool = False, purge_on_stop: bool = False,
                 timeout: float = 240.0) -> None:
        if not 0 < port < 45535:
            raise ValueError(f"cluster port must be in 1..45534 (node 3 uses port + 20000), got {port}")
        self.port = port
        self.tie_to_this_process = tie_to_this_process
        self.purge_on_stop = purge_on_stop
        self.timeout = timeout

    def node_port(self, node: int) -> int:
        if node not in self.nodes:
            raise ValueError(f"nodes are 1, 2 and 3, got {node}")
        return self.port + 10000 * (node - 1)

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{self.node_port(n)}" for n in self.nodes)

    def start(self) -> "LocalKafkaCluster":
        """Start all three (or the ones that are down, keeping their data)."""
        args = ["cluster-start", "--port", str(self.port)]
        if self.tie_to_this_process:
            args += ["--watch-pid", str(os.getpid())]
        _run(args, self.timeout)
        return self

    def stop(self) -> None:
        _run(["cluster-stop", "--port", str(self.port), *(["--purge"] if self.purge_on_stop else [])], self.timeout)

    def kill_node(self, node: int) -> None:
        """SIGKILL one node (a crash)."""
        self.node_port(node)
        _run(["node-kill", str(node), "--port", str(self.port)], self.timeout)

    def start_node(self, node: int) -> None:
        """Bring one node back on its data."""
        self.node_port(node)
        _run(["node-start", str(node), "--port", str(self.port)], self.timeout)

    def __enter__(self) -> "LocalKafkaCluster":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
