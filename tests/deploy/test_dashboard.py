"""The Grafana dashboard is generated code: committed JSON matches, queries are sound."""

from __future__ import annotations

import doctest
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from deploy.grafana import dashboard as dashboard_module
from deploy.grafana.dashboard import OUTPUT, build_dashboard, metric_names, panels, queries, render
from driftwise.service.metrics import Metrics
from tests.prometheus_support import promtool  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
DATASOURCES = REPO / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"


def exposed_names(metrics: Metrics) -> dict[str, str]:
    """Series names Prometheus sees for each catalogue metric, mapped to the metric type."""
    suffixes = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_sum", "_count"]}
    return {
        family.name + suffix: family.type
        for family in metrics.registry.collect()
        for suffix in suffixes[family.type]
    }


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return build_dashboard()


def test_regenerating_the_dashboard_gives_the_committed_json(dashboard: dict) -> None:
    assert OUTPUT.read_text() == render(dashboard), "run: .venv/bin/python deploy/grafana/dashboard.py"


def test_generation_is_deterministic() -> None:
    assert render(build_dashboard()) == render(build_dashboard())


def test_every_panel_has_a_prometheus_query(dashboard: dict) -> None:
    assert len(panels(dashboard)) >= 15
    for panel in panels(dashboard):
        targets = panel.get("targets", [])
        assert targets and all(t.get("expr") for t in targets), panel["title"]
        assert [t["refId"] for t in targets] == list("ABCDEFGH"[: len(targets)]), panel["title"]


def test_panels_use_the_provisioned_datasource(dashboard: dict) -> None:
    provisioned = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    uids = {d["uid"] for d in provisioned if d["type"] == "prometheus"}
    used = [p["datasource"]["uid"] for p in panels(dashboard)]
    used += [a["datasource"]["uid"] for a in dashboard["annotations"]["list"]]
    assert set(used) <= uids


def test_panel_ids_are_unique(dashboard: dict) -> None:
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_every_query_reads_metrics_from_the_catalogue(dashboard: dict) -> None:
    known = exposed_names(Metrics())
    for expr in queries(dashboard):
        names = metric_names(expr)
        assert names, f"query reads no driftwise metric: {expr}"
        unknown = names - set(known)
        assert not unknown, f"{expr} reads {sorted(unknown)}, not exposed by driftwise.service.metrics.Metrics"


def test_every_catalogue_metric_is_on_the_dashboard(dashboard: dict) -> None:
    read = {name for expr in queries(dashboard) for name in metric_names(expr)}
    families = {f.name for f in Metrics().registry.collect()}
    missing = {f for f in families if not any(n.startswith(f) for n in read)}
    assert not missing, f"metrics with no panel: {sorted(missing)}"


def test_confidence_heatmap_reads_the_histogram_buckets(dashboard: dict) -> None:
    (heat,) = [p for p in panels(dashboard) if p["type"] == "heatmap"]
    (target,) = heat["targets"]
    assert "driftwise_confidence_bucket" in target["expr"] and "by (le)" in target["expr"]
    assert target["format"] == "heatmap" and heat["options"]["calculate"] is False


def test_drift_detections_are_annotated(dashboard: dict) -> None:
    annotated = {name for a in dashboard["annotations"]["list"] for name in metric_names(a["expr"])}
    assert {"driftwise_drift_detections_total", "driftwise_drift_confirmed_total"} <= annotated


def test_queries_never_filter_out_zero_series(dashboard: dict) -> None:
    # A `> 0` filter would make a healthy, quiet service look like "no data".
    for expr in queries(dashboard):
        assert ">" not in expr and "==" not in expr, expr


def test_every_query_is_valid_promql(dashboard: dict, promtool: str, tmp_path: Path) -> None:
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{i}", "expr": expr} for i, expr in enumerate(queries(dashboard))
    ]}]}
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_doctests_pass() -> None:
    failures, tried = doctest.testmod(dashboard_module)
    assert tried > 0 and failures == 0


def test_committed_json_is_plain_grafana_json() -> None:
    data = json.loads(OUTPUT.read_text())
    assert data["uid"] == "driftwise" and data["title"] == "driftwise"
    assert isinstance(data["schemaVersion"], int)
