"""Every Prometheus metric driftwise exports, in one place.

Names are part of the public contract: the Grafana dashboard (deploy/grafana) and
alerting rules query them. Each metric lives in its own `CollectorRegistry` so
tests and several apps in one process never collide; `/metrics` serves it.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999, 1.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
    """The service's metrics; create one per app (``Metrics()``) and pass it around."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # Serving
        self.predictions = Counter(
            "driftwise_predictions", "Predictions made, by source (http|kafka)", ["source"], registry=r
        )
        self.request_latency = Histogram(
            "driftwise_request_latency_seconds", "HTTP /predict latency", buckets=LATENCY_BUCKETS, registry=r
        )
        self.batch_latency = Histogram(
            "driftwise_batch_latency_seconds", "Model forward latency per batch, by source", ["source"],
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.batch_size = Histogram(
            "driftwise_batch_size", "Instances per forward pass, by source", ["source"], buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.confidence = Histogram(
            "driftwise_confidence", "Calibrated max-probability confidence of each prediction",
            buckets=CONFIDENCE_BUCKETS, registry=r,
        )
        self.bad_requests = Counter(
            "driftwise_bad_requests", "Rejected HTTP requests, by status code", ["status"], registry=r
        )
        self.admin_auth_failures = Counter(
            "driftwise_admin_auth_failures", "Admin calls refused, by reason (missing|invalid|not_configured)",
            ["reason"], registry=r,
        )
        # Models
        self.model_version = Gauge("driftwise_model_version", "Version number of the model being served", registry=r)
        self.model_swaps = Counter("driftwise_model_swaps", "Model swaps, by reason", ["reason"], registry=r)
        self.control_ignored = Counter(
            "driftwise_control_announcements_ignored",
            "Control-topic announcements not followed, by reason (unknown_version|rejected)", ["reason"], registry=r,
        )
        # Roles (`driftwise.service.election`, `driftwise.service.observations`)
        self.adapter = Gauge(
            "driftwise_adapter", "1 while this process is the adapter (watches the whole stream, adapts, announces)",
            registry=r,
        )
        self.observations = Counter(
            "driftwise_observations",
            "Predicted batches on the observations topic, by outcome (sent; received; dropped: received while the "
            "adapter's monitor was behind)", ["outcome"], registry=r,
        )
        # Stream
        self.dlq = Counter("driftwise_dlq", "Events sent to the dead-letter topic, by reason", ["reason"], registry=r)
        self.consumer_lag = Gauge(
            "driftwise_consumer_lag", "Events behind the end of the events topic, by partition", ["partition"],
            registry=r,
        )
        self.events_consumed = Counter("driftwise_events_consumed", "Events read from the events topic", registry=r)
        # Drift
        self.drift_score = Gauge(
            "driftwise_drift_score", "Current drift statistic relative to its threshold (>=1 means drift), by detector",
            ["detector"], registry=r,
        )
        self.drift_detections = Counter(
            "driftwise_drift_detections", "Drift detections, by detector", ["detector"], registry=r
        )
        self.drift_confirmed = Counter("driftwise_drift_confirmed", "Drifts confirmed by the voting rule", registry=r)
        self.false_alarms = Counter(
            "driftwise_drift_false_alarms",
            "Drifts confirmed against an adapted model while the inputs had not left its domain: it served on",
            registry=r)
        self.signal_mean = Gauge(
            "driftwise_signal_mean", "Rolling mean of a label-free signal (confidence|entropy|margin)", ["signal"],
            registry=r,
        )
        self.pseudo_labels = Counter(
            "driftwise_pseudo_labels", "Pseudo-label candidates, by outcome (accepted|rejected)", ["outcome"],
            registry=r,
        )
        self.pseudo_buffer_size = Gauge("driftwise_pseudo_buffer_size", "Pseudo-labels held in the buffer", registry=r)
        self.adaptations = Counter(
            "driftwise_adaptations", "Adaptations, by outcome (promoted|rejected|failed)", ["outcome"], registry=r
        )
        self.adaptation_seconds = Histogram(
            "driftwise_adaptation_seconds", "Time from confirmed drift to a decision on the candidate",
            buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300), registry=r,
        )
        self.normalizations = Counter(
            "driftwise_normalizations", "Interim normalised models (BatchNorm re-estimated on a drift), by outcome",
            ["outcome"], registry=r)
        self.rollbacks = Counter("driftwise_rollbacks", "Automatic or manual rollbacks", ["trigger"], registry=r)
        self.labels_needed = Gauge(
            "driftwise_labels_needed", "1 while the service believes the concept moved and asks for labels", registry=r
        )
        self.feedback_labels = Counter("driftwise_feedback_labels", "Labels received on the feedback topic", registry=r)
        self.live_accuracy = Gauge(
            "driftwise_live_accuracy", "Accuracy over recent predictions that received a feedback label", registry=r
        )
