"""The driftwise Grafana dashboard, written as code with grafana-foundation-sdk.

Grafana cannot run on the build machines, so the dashboard is generated here and
checked two ways: the committed ``dashboards/driftwise.json`` must equal what this
script generates, and every PromQL expression in it must return data from a real
Prometheus scraping a running service (tests/integration).

Regenerate after editing::

    .venv/bin/python deploy/grafana/dashboard.py

Queries use fixed windows (``[1m]``, ``[5m]``, ``[1h]``) rather than Grafana's
``$__rate_interval`` so that the very same text can be evaluated by Prometheus'
HTTP API in tests; the compose Prometheus scrapes every 5s, so a 1m window always
holds enough samples. Every query is written so that a series that exists but sits
at zero still returns data (``sum by (...) (rate(...))``, never ``... > 0``).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import heatmap, prometheus, stat, statetimeline, timeseries
from grafana_foundation_sdk.builders.common import (
    GraphThresholdsStyleConfig,
    ReduceDataOptions,
    VizLegendOptions,
    VizTooltipOptions,
)
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import (
    BigValueGraphMode,
    GraphDrawStyle,
    GraphTresholdsStyleMode,
    LegendDisplayMode,
    LegendPlacement,
    SortOrder,
    TooltipDisplayMode,
)
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    ValueMap,
    ValueMappingResult,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

OUTPUT = Path(__file__).resolve().parent / "dashboards" / "driftwise.json"
UID = "driftwise"
# Must match the uid in provisioning/datasources/prometheus.yml.
DATASOURCE = DataSourceRef(type_val="prometheus", uid="driftwise-prometheus")

Target = tuple[str, str]  # (PromQL expression, legend format)
_LEGEND = VizLegendOptions().display_mode(LegendDisplayMode.LIST).placement(LegendPlacement.BOTTOM).show_legend(True)


def _targets(panel: Any, targets: list[Target], fmt: PromQueryFormat | None = None) -> Any:
    for ref, (expr, legend) in zip("ABCDEFGH", targets):
        query = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref)
        if fmt is not None:
            query = query.format(fmt)
        panel = panel.with_target(query)
    return panel.datasource(DATASOURCE)


def _timeseries(title: str, description: str, targets: list[Target], unit: str = "short",
                bars: bool = False, width: int = 12) -> timeseries.Panel:
    panel = (
        timeseries.Panel().title(title).description(description).unit(unit).span(width).height(8)
        .legend(_LEGEND).tooltip(VizTooltipOptions().mode(TooltipDisplayMode.MULTI).sort(SortOrder.DESCENDING))
    )
    if bars:
        panel = panel.draw_style(GraphDrawStyle.BARS).fill_opacity(60)
    return _targets(panel, targets)


def _stat(title: str, description: str, target: Target, unit: str = "none", width: int = 6) -> stat.Panel:
    panel = (
        stat.Panel().title(title).description(description).unit(unit).span(width).height(8)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .graph_mode(BigValueGraphMode.AREA)
    )
    return _targets(panel, [target])


def _steps(*steps: tuple[float | None, str]) -> dash.ThresholdsConfig:
    return dash.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(
        [Threshold(value=v, color=c) for v, c in steps]
    )


def _serving() -> list[Any]:
    return [
        _timeseries("Predictions per second", "Predictions served, by source; events read from Kafka; rejected "
                    "HTTP requests by status code.", [
                        ("sum by (source) (rate(driftwise_predictions_total[1m]))", "{{source}}"),
                        ("sum(rate(driftwise_events_consumed_total[1m]))", "events consumed"),
                        ("sum by (status) (rate(driftwise_bad_requests_total[1m]))", "rejected {{status}}"),
                    ], unit="reqps", width=8),
        _timeseries("Latency", "HTTP /predict latency (p50, p99) and model forward time per batch (p99).", [
            ("histogram_quantile(0.5, sum by (le) (rate(driftwise_request_latency_seconds_bucket[1m])))",
             "http p50"),
            ("histogram_quantile(0.99, sum by (le) (rate(driftwise_request_latency_seconds_bucket[1m])))",
             "http p99"),
            ("histogram_quantile(0.99, sum by (le, source) (rate(driftwise_batch_latency_seconds_bucket[1m])))",
             "forward p99 {{source}}"),
        ], unit="s", width=8),
        _timeseries("Micro-batch size", "Mean instances per forward pass, by source.", [
            ("sum by (source) (rate(driftwise_batch_size_sum[1m])) "
             "/ sum by (source) (rate(driftwise_batch_size_count[1m]))", "{{source}}"),
        ], width=8),
    ]


def _confidence() -> list[Any]:
    distribution = (
        heatmap.Panel().title("Confidence distribution").description(
            "Max-probability confidence of each prediction per minute; drift shows as mass sliding down.")
        .calculate(False).show_tooltip().span(12).height(8)
        .y_axis(heatmap.YAxisConfig().unit("percentunit"))
    )
    return [
        _targets(distribution, [("sum by (le) (increase(driftwise_confidence_bucket[1m]))", "{{le}}")],
                 fmt=PromQueryFormat.HEATMAP),
        _timeseries("Label-free signals", "Rolling means of confidence, entropy and margin.", [
            ("max by (signal) (driftwise_signal_mean)", "{{signal}}"),
        ]),
    ]


def _drift() -> list[Any]:
    score = _timeseries("Drift score per detector", "Detector statistic over its threshold: 1 or more means "
                        "that detector sees drift.", [("max by (detector) (driftwise_drift_score)", "{{detector}}")])
    score = score.thresholds(_steps((None, "green"), (1.0, "red"))).thresholds_style(
        GraphThresholdsStyleConfig().mode(GraphTresholdsStyleMode.LINE))
    labels_needed = (
        statetimeline.Panel().title("Labels needed").description(
            "Raised when signals say the concept moved (not just the inputs): self-training is paused until "
            "labels arrive on the feedback topic.").span(6).height(8).legend(_LEGEND)
        .mappings([ValueMap({"0": ValueMappingResult(text="ok", color="green"),
                             "1": ValueMappingResult(text="labels needed", color="red")})])
    )
    return [
        score,
        _timeseries("Detections", "Per-detector detections, drifts confirmed by the voting rule, and confirmations "
                    "against an adapted model whose inputs had not left its domain (false alarms: it served on) "
                    "(5m).", [
            ("sum by (detector) (increase(driftwise_drift_detections_total[5m]))", "{{detector}}"),
            ("sum(increase(driftwise_drift_confirmed_total[5m]))", "confirmed"),
            ("sum(increase(driftwise_drift_false_alarms_total[5m]))", "false alarms"),
        ], bars=True, width=6),
        _targets(labels_needed, [("max(driftwise_labels_needed)", "labels needed")]),
    ]


def _adaptation() -> list[Any]:
    return [
        _timeseries("Pseudo-labels", "Candidates accepted into or rejected from the pseudo-label buffer.", [
            ("sum by (outcome) (rate(driftwise_pseudo_labels_total[1m]))", "{{outcome}}"),
        ], unit="ops", width=9),
        _stat("Pseudo-label buffer", "Pseudo-labels held for the next adaptation.",
              ("sum(driftwise_pseudo_buffer_size)", "buffer"), width=3),
        _timeseries("Adaptations by outcome", "Candidates promoted, rejected by guardrails, or failed, and interim "
                    "normalised models served or refused by their cheap checks (1h).", [
            ("sum by (outcome) (increase(driftwise_adaptations_total[1h]))", "{{outcome}}"),
            ("sum by (outcome) (increase(driftwise_normalizations_total[1h]))", "interim {{outcome}}"),
        ], bars=True, width=9),
        _stat("Time to decision (p90)", "From confirmed drift to a decision on the candidate, over the last hour.",
              ("histogram_quantile(0.9, sum by (le) (rate(driftwise_adaptation_seconds_bucket[1h])))", "p90"),
              unit="s", width=3),
        _stat("Model version", "Version being served (max over replicas).",
              ("max(driftwise_model_version)", "version"), width=4),
        _timeseries("Model swaps and rollbacks", "Swaps by reason and rollbacks by trigger (1h).", [
            ("sum by (reason) (increase(driftwise_model_swaps_total[1h]))", "swap {{reason}}"),
            ("sum by (trigger) (increase(driftwise_rollbacks_total[1h]))", "rollback {{trigger}}"),
        ], bars=True, width=12),
        _timeseries("Refused model changes", "Admin calls refused (no token, wrong token, or no token configured) "
                    "and control-topic announcements not followed, by reason (1h).", [
            ("sum by (reason) (increase(driftwise_admin_auth_failures_total[1h]))", "admin {{reason}}"),
            ("sum by (reason) (increase(driftwise_control_announcements_ignored_total[1h]))",
             "announcement {{reason}}"),
        ], bars=True, width=8),
    ]


def _stream() -> list[Any]:
    return [
        _timeseries("Dead-letter rate", "Events sent to the DLQ topic, by reason.", [
            ("sum by (reason) (rate(driftwise_dlq_total[1m]))", "{{reason}}"),
        ], unit="ops", width=8),
        _timeseries("Consumer lag", "Events behind the end of the events topic, by partition.", [
            ("sum by (partition) (driftwise_consumer_lag)", "partition {{partition}}"),
        ], width=8),
        _timeseries("Live accuracy", "Accuracy of recent predictions that got a label on the feedback topic.", [
            ("max(driftwise_live_accuracy)", "accuracy"),
        ], unit="percentunit", width=4),
        _stat("Feedback labels", "Labels received per second on the feedback topic.",
              ("sum(rate(driftwise_feedback_labels_total[1m]))", "labels/s"), unit="ops", width=4),
    ]


def _replicas() -> list[Any]:
    return [
        _timeseries("Adapter", "1 for the replica that holds the adapter role (elected through Kafka: it watches the "
                    "whole stream, adapts and announces), 0 for the others.", [
                        ("max by (instance) (driftwise_adapter)", "{{instance}}"),
                    ], width=8),
        _timeseries("Served version by replica", "The model version each replica serves: after a promotion they "
                    "all follow the adapter's announcement.", [
                        ("max by (instance) (driftwise_model_version)", "{{instance}}"),
                    ], width=8),
        _timeseries("Observations", "Predicted batches replicas send to the adapter, the adapter receives, and "
                    "drops while its monitor is behind (its own traffic first).", [
            ("sum by (outcome) (rate(driftwise_observations_total[1m]))", "{{outcome}}"),
        ], unit="ops", width=8),
    ]


ANNOTATIONS = [
    ("Drift confirmed", "red", "sum(increase(driftwise_drift_confirmed_total[1m]))"),
    ("Detector fired", "orange", "sum by (detector) (increase(driftwise_drift_detections_total[1m]))"),
    ("Model swap", "blue", "sum by (reason) (increase(driftwise_model_swaps_total[1m]))"),
]


def build_dashboard() -> dict[str, Any]:
    """The dashboard as the JSON object Grafana provisions."""
    board = (
        dash.Dashboard("driftwise").uid(UID).tags(["driftwise", "drift", "mlops"]).refresh("10s")
        .time("now-30m", "now").timezone("browser")
        .description("Predictions, confidence, drift, self-training and model versions of a driftwise service.")
    )
    # Grafana shows an annotation wherever an annotation query's value is above zero.
    for name, color, expr in ANNOTATIONS:
        board = board.annotation(dash.AnnotationQuery().name(name).datasource(DATASOURCE).enable(True)
                                 .icon_color(color).expr(expr))
    sections = [("Serving", _serving), ("Confidence", _confidence), ("Drift", _drift),
                ("Self-training and models", _adaptation), ("Stream and feedback", _stream), ("Replicas", _replicas)]
    panel_id = 0
    for title, panels in sections:
        panel_id += 1
        board = board.with_row(dash.Row(title).id(panel_id))
        for panel in panels():
            panel_id += 1
            board = board.with_panel(panel.id(panel_id))
    return json.loads(JSONEncoder(sort_keys=True).encode(board.build()))


def render(dashboard: dict[str, Any]) -> str:
    """The exact text committed to ``dashboards/driftwise.json``."""
    return json.dumps(dashboard, indent=2, sort_keys=True) + "\n"


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every non-row panel, including panels nested in collapsed rows."""
    found = []
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            found.extend(panels(panel))
        else:
            found.append(panel)
    return found


def queries(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression in the dashboard: panel targets, then annotations."""
    exprs = [t["expr"] for p in panels(dashboard) for t in p.get("targets", []) if t.get("expr")]
    exprs += [a["expr"] for a in dashboard.get("annotations", {}).get("list", []) if a.get("expr")]
    return exprs


def metric_names(expr: str) -> set[str]:
    """The ``driftwise_*`` series names a PromQL expression reads.

    >>> sorted(metric_names("sum by (le) (rate(driftwise_confidence_bucket[1m])) / driftwise_model_version"))
    ['driftwise_confidence_bucket', 'driftwise_model_version']
    """
    return set(re.findall(r"\bdriftwise_[a-z0-9_]+", expr))


def main(argv: list[str] | None = None) -> int:
    """Write the dashboard JSON; with ``--check``, fail if the committed file is stale."""
    text = render(build_dashboard())
    if argv and "--check" in argv:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(f"{OUTPUT} is stale: run python deploy/grafana/dashboard.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT} ({len(panels(json.loads(text)))} panels, {len(queries(json.loads(text)))} queries)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
