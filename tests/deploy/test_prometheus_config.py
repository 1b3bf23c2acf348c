"""deploy/prometheus: promtool accepts the config and the rules, and the rules behave."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from driftwise.service.metrics import Metrics
from tests.prometheus_support import promtool  # noqa: F401

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERT_TESTS = PROMETHEUS_DIR / "alerts_test.yml"


def _promtool(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60, cwd=PROMETHEUS_DIR)


def test_promtool_check_config_passes(promtool: str) -> None:
    result = _promtool(promtool, "check", "config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout + result.stderr


def test_promtool_check_rules_passes(promtool: str) -> None:
    result = _promtool(promtool, "check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_fire_as_their_unit_tests_expect(promtool: str) -> None:
    result = _promtool(promtool, "test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_the_compose_service() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "driftwise"]
    (discovery,) = job["dns_sd_configs"]  # every replica of the compose service `driftwise`, on port 8000
    assert discovery["names"] == ["driftwise"] and discovery["type"] == "A" and discovery["port"] == 8000
    assert job.get("metrics_path", "/metrics") == "/metrics"


def test_the_alerts_the_design_asks_for_exist() -> None:
    rules = [r for group in yaml.safe_load(ALERTS.read_text())["groups"] for r in group["rules"]]
    names = {r["alert"] for r in rules}
    assert {"DriftConfirmed", "LabelsNeeded", "AdaptationFailed", "DeadLetterRateHigh"} <= names
    for rule in rules:
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}
        assert rule["annotations"]["summary"]


def test_alert_rules_read_only_catalogue_metrics() -> None:
    families = {f.name: f.type for f in Metrics().registry.collect()}
    exposed = {f"{n}_total" if t == "counter" else n for n, t in families.items()}
    exposed |= {f"{n}_{s}" for n, t in families.items() if t == "histogram" for s in ("bucket", "sum", "count")}
    rules = [r for group in yaml.safe_load(ALERTS.read_text())["groups"] for r in group["rules"]]
    for rule in rules:
        unknown = set(re.findall(r"\bdriftwise_[a-z0-9_]+", rule["expr"])) - exposed
        assert not unknown, f"{rule['alert']} reads {sorted(unknown)}"
