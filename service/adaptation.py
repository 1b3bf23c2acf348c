"""The adaptation controller: the loop no serving stack closes.

It observes every predicted batch (HTTP and Kafka) and feeds the drift monitor,
the pseudo-label buffer and the recent-input window. When the monitor confirms
drift and the policy agrees (cooldown, enough pseudo-labels, no "labels needed"),
it fine-tunes a candidate in a separate process, runs the guardrails, publishes
the candidate (approved or rejected: rejected ones are kept, never served), and on
approval swaps it in and announces it on the control topic so every replica
follows. After a promotion it watches confidence and rolls back on its own if
the new model does worse than it promised.

With ``--no-adapt`` it monitors and reports only.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np
import torch

from drift.adapter import AdaptationFailed, AdaptConfig, start_adaptation
from drift.buffer import PseudoLabelBuffer, RecentWindow
from drift.embedding_drift import reference_statistics
from drift.guardrails import GuardrailConfig, evaluate_candidate
from drift.monitor import DriftMonitor
from drift.policy import AdaptationPolicy
from models.classifier import Classifier
from service.runtime import BatchPrediction, ModelSnapshot, load_from_registry
from service.state import ServiceState

log = logging.getLogger(__name__)

WINDOW_CAPACITY = 1000
FEEDBACK_CAPACITY = 2000
LABELS_TO_RESUME = 200  # feedback labels that must arrive before a "labels needed" service adapts again
MIN_WINDOW = 64  # fewer inputs than this cannot re-estimate BatchNorm or calibrate a reference
HOLDOUT_FRACTION = 0.2  # of the pseudo-labels, kept out of training so the agreement guardrail means something
ADAPT_TIMEOUT_S = 120.0


@torch.inference_mode()
def window_reference(model: Classifier, window_x: np.ndarray) -> dict[str, np.ndarray]:
    """Reference statistics of a promoted candidate, on the domain it was adapted to."""
    model = model.eval().cpu()
    logits, z = model.forward_with_embedding(torch.as_tensor(window_x))
    return reference_statistics(z.numpy(), torch.softmax(logits, 1).numpy(), window=min(200, len(window_x) // 4))


class AdaptationController:
    """Watches predictions for drift and, unless ``adapt`` is off, adapts safely."""

    def __init__(self, state: ServiceState, *, adapt: bool = True, adapt_config: AdaptConfig | None = None,
                 guardrail_config: GuardrailConfig | None = None) -> None:
        s = state.settings
        self.state = state
        self.adapt_enabled = adapt
        self.adapt_config = adapt_config or AdaptConfig()
        self.guardrail_config = guardrail_config or GuardrailConfig(anchor_margin=s.anchor_max_drop,
                                                                    confidence_threshold=s.confidence_threshold)
        self.policy = AdaptationPolicy(cooldown_seconds=s.cooldown_seconds, min_pseudo_labels=s.min_pseudo_labels,
                                       rollback_window=s.rollback_window)
        self.window = RecentWindow(WINDOW_CAPACITY)
        self.monitor = DriftMonitor(None)  # given the served model's reference on the first batch
        self.buffer: PseudoLabelBuffer | None = None
        self.monitored_version: str | None = None
        self.serving_base = True
        self.last_adaptation: dict[str, Any] | None = None
        self._seen_detections: dict[str, int] = {}
        self.feedback_x: np.ndarray | None = None  # labeled samples from the feedback topic, newest last
        self.feedback_y = np.empty(0, np.int64)
        self._feedback_since_labels_needed = 0
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._stopping = threading.Event()
        state.metrics.labels_needed.set(0)
        state.metrics.live_accuracy.set(float("nan"))  # unknown until feedback labels arrive, not 0%

    # -- observing (called after every predicted batch, serialised by ServiceState) ----------------------------
    def observe(self, X: np.ndarray, prediction: BatchPrediction, source: str) -> None:
        snapshot = self.state.runtime.snapshot
        if snapshot is None or prediction.model_version != snapshot.version:
            return  # a batch finished on a model that has just been replaced
        with self._lock:
            if prediction.model_version != self.monitored_version:
                self._follow(snapshot)
            self.monitor.update(prediction.probabilities, prediction.embeddings)
            accepted, rejected = self.buffer.offer(X, prediction.probabilities)
            self.window.add(X)
            self.policy.observe(prediction.confidence.tolist())
            start = self.adapt_enabled and self.policy.should_adapt(
                drift_confirmed=self.monitor.drift_confirmed, pseudo_count=int(self.buffer.class_counts.sum()))
            rollback = self.adapt_enabled and self.policy.rollback_needed
            fall_back = self.adapt_enabled and not start and self.policy.should_fall_back(
                drift_confirmed=self.monitor.drift_confirmed, serving_base=self.serving_base)
            if start:
                self.policy.adaptation_started()
        self._export(accepted, rejected)
        if rollback:
            self._spawn(self._rollback)
        elif fall_back:
            self._spawn(self._fall_back)
        elif start:
            self._spawn(self._adapt, self.monitor.reason or "drift confirmed")

    def _follow(self, snapshot: ModelSnapshot) -> None:
        """A new model is being served (adapted, activated, rolled back or announced): start watching afresh."""
        self.monitor.reset(snapshot.reference or None)
        self.buffer = PseudoLabelBuffer(num_classes=snapshot.num_classes, capacity_per_class=100,
                                        threshold=self.state.settings.confidence_threshold)
        self.window.clear()
        self.monitored_version = snapshot.version
        base = self._base_version(snapshot)
        self.serving_base = base is None or str(base) == snapshot.version

    def _export(self, accepted: int, rejected: int) -> None:
        m, snap = self.state.metrics, self.monitor.snapshot()
        for name, det in snap["detectors"].items():
            m.drift_score.labels(name).set(det["score"])
            counter = m.drift_detections.labels(name)  # exists at 0 before the first detection, so increase() sees it
            new = det["detections"] - self._seen_detections.get(name, 0)
            if new > 0:
                counter.inc(new)
            self._seen_detections[name] = det["detections"]
        if self.monitor.newly_confirmed:
            m.drift_confirmed.inc()
        for signal, value in snap["signals"].items():
            if value is not None:
                m.signal_mean.labels(signal).set(value)
        m.pseudo_labels.labels("accepted").inc(accepted)
        m.pseudo_labels.labels("rejected").inc(rejected)
        m.pseudo_buffer_size.set(int(self.buffer.class_counts.sum()))
        m.labels_needed.set(1 if self.policy.labels_needed else 0)

    # -- feedback labels (from the labels topic, joined to what was served) ---------------------------------------
    def on_feedback(self, X: np.ndarray, served: np.ndarray, labels: np.ndarray, confidences: np.ndarray) -> None:
        """Live accuracy, the concept-drift alarm, and labeled samples for the next adaptation."""
        with self._lock:
            self.policy.record_feedback(served, labels, confidences)
            x = X if self.feedback_x is None else np.concatenate([self.feedback_x, X])
            y = np.concatenate([self.feedback_y, labels.astype(np.int64)])
            self.feedback_x, self.feedback_y = x[-FEEDBACK_CAPACITY:], y[-FEEDBACK_CAPACITY:]
            if self.policy.labels_needed:
                self._feedback_since_labels_needed += len(labels)
                if self._feedback_since_labels_needed >= LABELS_TO_RESUME:
                    log.info("%d labels arrived since labels were needed: adapting may resume with them",
                             self._feedback_since_labels_needed)
                    self.policy.resolve_labels_needed()
                    self._feedback_since_labels_needed = 0
            accuracy = self.policy.live_accuracy
        m = self.state.metrics
        m.feedback_labels.inc(len(labels))
        if accuracy is not None:
            m.live_accuracy.set(accuracy)
        m.labels_needed.set(1 if self.policy.labels_needed else 0)

    # -- acting (background threads; serving never waits on them) -----------------------------------------------
    def _spawn(self, target: Any, *args: Any) -> None:
        if self._worker is not None and self._worker.is_alive():
            return
        self._worker = threading.Thread(target=target, args=args, name="driftwise-adaptation", daemon=True)
        self._worker.start()

    def trigger(self) -> dict[str, Any]:
        """Adapt now, whatever the monitor says (operators' override; guardrails still apply)."""
        with self._lock:
            if self.policy.in_flight or (self._worker is not None and self._worker.is_alive()):
                return {"started": False, "detail": "an adaptation is already running"}
            if self.buffer is None or len(self.window) < MIN_WINDOW:
                return {"started": False, "detail": f"not enough recent traffic to adapt on (need {MIN_WINDOW} inputs)"}
            self.policy.adaptation_started()
        self._spawn(self._adapt, "manual trigger")
        return {"started": True}

    def _inputs(self) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        with self._lock:
            # Only inputs seen since the drift was confirmed (all of them on a manual trigger):
            # BatchNorm must learn the new domain, not the old.
            fresh = max(self.policy.fresh_events or len(self.window), MIN_WINDOW)
            window_x = self.window.array()[-fresh:].copy()
            px, py = self.buffer.samples()
        order = np.random.default_rng(len(py)).permutation(len(py))
        n_hold = int(round(len(py) * HOLDOUT_FRACTION))
        hold, train = order[:n_hold], order[n_hold:]
        return window_x, (px[train], py[train]), (px[hold], py[hold])

    def _adapt(self, reason: str) -> None:
        started = time.perf_counter()
        outcome, record = "failed", {"reason": reason}
        try:
            snapshot = self.state.runtime.snapshot
            current = snapshot.model if snapshot.device.type == "cpu" else _cpu_copy(snapshot.model)
            window_x, (px, py), (hx, hy) = self._inputs()
            ax = snapshot.anchors_x if snapshot.anchors_x is not None else np.empty((0, *snapshot.input_shape), np.float32)
            ay = snapshot.anchors_y if snapshot.anchors_y is not None else np.empty(0, np.int64)
            with self._lock:
                fx, fy = self.feedback_x, (self.feedback_y if self.feedback_x is not None else None)
            job = start_adaptation(current, window_x=window_x, pseudo_x=px, pseudo_y=py, anchors_x=ax, anchors_y=ay,
                                   feedback_x=fx, feedback_y=fy,
                                   config=self.adapt_config, device=str(snapshot.device), threads=1)
            result = job.result(ADAPT_TIMEOUT_S)
            candidate = result.candidate
            report = evaluate_candidate(current, candidate, window_x=window_x, anchors_x=ax, anchors_y=ay,
                                        pseudo_x=hx, pseudo_y=hy, config=self.guardrail_config)
            outcome = "promoted" if report.passed else "rejected"
            record.update(guardrails=report.to_dict(), adapt_log=result.log)
            published = self.state.registry.publish(
                self.state.settings.name, candidate, reason=f"adapt: {reason}",
                parent=int(snapshot.version) if snapshot.version.isdigit() else None,
                metrics={k: float(v) for k, v in report.stats.items()},
                reference=window_reference(candidate, window_x) if report.passed else None,
                anchors=(ax, ay), objective=snapshot.info.manifest.get("objective") if snapshot.info else None,
                extra={"guardrails": report.to_dict(), "adaptation": result.log, "drift": reason},
                status="approved" if report.passed else "rejected", activate=report.passed,
            )
            record["version"] = published.version
            if report.passed:
                self._serve(published.version, reason="adapt")
            else:
                log.warning("candidate v%s rejected: %s", published.version, "; ".join(report.reasons))
            expected = report.stats.get("mean_confidence_candidate")
        except AdaptationFailed as exc:
            record["error"] = str(exc)
            expected = None
            log.error("adaptation failed: %s", exc)
        except Exception as exc:  # noqa: BLE001 - a failed adaptation must never take serving down
            record["error"] = f"{type(exc).__name__}: {exc}"
            expected = None
            log.exception("adaptation failed")
        seconds = time.perf_counter() - started
        with self._lock:
            self.policy.record_outcome(outcome, expected_confidence=expected if outcome == "promoted" else None)
            self.last_adaptation = {**record, "outcome": outcome, "seconds": round(seconds, 3), "finished": time.time()}
        self.state.metrics.adaptations.labels(outcome).inc()
        self.state.metrics.adaptation_seconds.observe(seconds)
        self.state.metrics.labels_needed.set(1 if self.policy.labels_needed else 0)
        log.info("adaptation %s in %.1fs (%s)", outcome, seconds, reason)

    def _serve(self, version: int, reason: str) -> None:
        """Swap ``version`` in here and tell the other replicas through the control topic."""
        s = self.state.settings
        with self.state.model_lock:
            snapshot = load_from_registry(self.state.registry, s.name, version, device=self.state.runtime.device)
            self.state.runtime.swap(snapshot, reason=reason)
        if s.bootstrap_servers:
            from service.control import announce_model

            try:
                announce_model(s.bootstrap_servers, s.models_topic, s.name, version)
            except Exception:  # noqa: BLE001 - this replica already serves it; others catch up on restart
                log.exception("could not announce version %s on %s", version, s.models_topic)

    def _base_version(self, snapshot: ModelSnapshot) -> int | None:
        """The labeled original this model descends from (follow ``parent`` up to the root)."""
        info = snapshot.info
        while info is not None and info.manifest.get("parent") is not None:
            info = self.state.registry.get(info.name, int(info.manifest["parent"]))
        return None if info is None else info.version

    def _fall_back(self) -> None:
        """A new drift while an adapted model serves: that model's domain has gone, so serve the base again.

        Drift is then re-confirmed against the base, and the next candidate is made
        from it, so adaptations never compound on each other's mistakes.
        """
        s = self.state.settings
        try:
            base = self._base_version(self.state.runtime.snapshot)
            if base is None:
                return
            self.state.registry.activate(s.name, base)
            self._serve(base, reason="rollback")
            self.state.metrics.rollbacks.labels("fallback").inc()
            log.warning("new drift while an adapted model served: fell back to the base model v%s", base)
        except Exception:  # noqa: BLE001
            log.exception("falling back to the base model failed")
        with self._lock:
            self.policy.record_fallback()

    def _rollback(self) -> None:
        s = self.state.settings
        try:
            target = self.state.registry.rollback(s.name)
            self._serve(target.version, reason="rollback")
            self.state.metrics.rollbacks.labels("auto").inc()
            log.warning("post-swap confidence fell short of the candidate's promise: rolled back to v%s",
                        target.version)
        except Exception:  # noqa: BLE001
            log.exception("automatic rollback failed")
        with self._lock:
            self.policy.record_rollback()

    # -- reporting ------------------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """``GET /drift``: detectors, signals, buffer, policy and the last adaptation."""
        with self._lock:
            monitor = self.monitor.snapshot()
            policy = self.policy.snapshot()
            counts = self.buffer.class_counts.tolist() if self.buffer is not None else []
            if policy["in_flight"]:
                state = "adapting"
            elif policy["labels_needed"]:
                state = "labels needed"
            elif monitor["drift_confirmed"]:
                state = "drift confirmed" if self.adapt_enabled else "drift confirmed (monitor only)"
            else:
                state = "stable"
            return {
                "state": state,
                "adapt": self.adapt_enabled,
                "model_version": self.monitored_version,
                "confirmed_drifts": self.monitor.confirmations,
                "last_reason": monitor["reason"],
                "monitor": monitor,
                "policy": policy,
                "pseudo_labels": {"per_class": counts, "threshold": self.state.settings.confidence_threshold},
                "window": len(self.window),
                "last_adaptation": self.last_adaptation,
            }

    def stop(self) -> None:
        self._stopping.set()
        if self._worker is not None:
            self._worker.join(timeout=ADAPT_TIMEOUT_S)


def _cpu_copy(model: Classifier) -> Classifier:
    import copy

    return copy.deepcopy(model).cpu().eval()


def build_controller(state: ServiceState) -> AdaptationController:
    """The controller for this service's settings, hooked into every predicted batch."""
    controller = AdaptationController(state, adapt=not state.settings.no_adapt)
    state.controller = controller
    state.observers.append(controller.observe)
    return controller
