"""A real Prometheus for tests: find (or install) the binaries, run one, query it.

Prometheus comes from Debian's ``prometheus`` package (``deploy/install_prometheus.sh``
installs it when missing; ``.ci/run`` calls that). Tests that need it skip when
the binary is absent on a developer machine, and fail under ``CI=true``: CI must
never pass by skipping the real thing.

Import the fixtures into a test module to use them::

    from tests.prometheus_support import prometheus_server, promtool  # noqa: F401
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from driftwise.service.localhost import free_port, wait_until_ready


def find_binary(name: str) -> str | None:
    """``name`` on PATH, or where Debian's package puts it."""
    found = shutil.which(name)
    if found:
        return found
    candidate = Path("/usr/bin") / name
    return str(candidate) if candidate.exists() else None


def require_binary(name: str) -> str:
    """The binary's path; skip the test when missing, or fail when ``CI=true``."""
    path = find_binary(name)
    if path is None:
        message = f"{name} not found: run deploy/install_prometheus.sh (Debian package 'prometheus')"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


class PrometheusServer:
    """A Prometheus process scraping one target; query it through the HTTP API."""

    def __init__(self, url: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.url = url
        self.process = process
        self.log = log
        self._http = httpx.Client(base_url=url, timeout=10.0)

    def _get(self, path: str, **params: Any) -> Any:
        response = self._http.get(path, params=params)
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            raise AssertionError(f"Prometheus {path} {params}: {response.status_code} {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query now; the result vector (empty list = no data)."""
        data = self._get("/api/v1/query", query=expr)
        result = data["result"]
        return result if data["resultType"] in ("vector", "matrix") else [{"value": result}]

    def query_range(self, expr: str, seconds: float = 60.0, step: float = 1.0) -> list[dict[str, Any]]:
        """Range query over the last ``seconds``, as Grafana issues panel queries."""
        end = time.time()
        data = self._get("/api/v1/query_range", query=expr, start=end - seconds, end=end, step=step)
        return data["result"]

    def targets(self) -> list[dict[str, Any]]:
        return self._get("/api/v1/targets")["activeTargets"]

    def wait_for_scrapes(self, count: int = 3, timeout: float = 30.0) -> None:
        """Block until every target was scraped successfully ``count`` times (seen via ``up``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            samples = self.query("count_over_time(up[5m])")
            healthy = [t for t in self.targets() if t["health"] == "up"]
            if healthy and samples and min(float(s["value"][1]) for s in samples) >= count:
                return
            time.sleep(0.5)
        raise AssertionError(f"targets not scraped {count} times in {timeout}s: {self.targets()}\n{self.logs()}")

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def close(self) -> None:
        self._http.close()


@contextmanager
def running_prometheus(
    target: str,
    *,
    binary: str | None = None,
    scrape_interval: str = "1s",
    workdir: Path | None = None,
    timeout: float = 30.0,
) -> Iterator[PrometheusServer]:
    """Start Prometheus on 127.0.0.1 scraping ``target`` (``host:port``); stop it afterwards.

    The config and the TSDB live in a temporary directory, so runs never share state.
    """
    binary = binary or require_binary("prometheus")
    with tempfile.TemporaryDirectory(prefix="prometheus-", dir=workdir) as tmp:
        root = Path(tmp)
        config = {
            "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
            "scrape_configs": [{"job_name": "driftwise", "scrape_timeout": scrape_interval,
                                "static_configs": [{"targets": [target]}]}],
        }
        (root / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = root / "prometheus.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [binary, f"--config.file={root / 'prometheus.yml'}", f"--storage.tsdb.path={root / 'data'}",
                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                stdout=out, stderr=subprocess.STDOUT,
            )
        server: PrometheusServer | None = None
        try:
            wait_until_ready(f"{url}/-/ready", process, what="prometheus", timeout=timeout, log=log)
            server = PrometheusServer(url, process, log)
            yield server
        finally:
            if server is not None:
                server.close()
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def promtool_check_metrics(text: str, binary: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``promtool check metrics`` (the exposition-format linter) on ``text``."""
    binary = binary or require_binary("promtool")
    return subprocess.run([binary, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)


@pytest.fixture
def promtool() -> str:
    """Path to ``promtool``."""
    return require_binary("promtool")


@pytest.fixture
def prometheus_server(tmp_path: Path) -> Iterator[Callable[[str], PrometheusServer]]:
    """Factory: ``prometheus_server("127.0.0.1:8000")`` starts one; all are stopped at teardown."""
    binary = require_binary("prometheus")
    with ExitStack() as stack:

        def start(target: str, scrape_interval: str = "1s") -> PrometheusServer:
            return stack.enter_context(
                running_prometheus(target, binary=binary, scrape_interval=scrape_interval, workdir=tmp_path)
            )

        yield start
