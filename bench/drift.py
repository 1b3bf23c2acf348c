"""`driftwise bench drift`: does the closed loop help, and does it know when not to act?

The simulation runs the service's own loop in-process, without Kafka:
`driftwise.drift.loop.DriftLoop` (monitor -> pseudo-label buffer -> recent window -> policy: the
decisions the service's controller makes too) -> `driftwise.drift.adapter` (in full mode in
its own process, started ahead, as the service does: `driftwise.drift.worker`) ->
`driftwise.drift.guardrails` -> swap. Events arrive in micro-batches on a simulated clock
(``event_rate`` events per second); the real seconds an adaptation takes are
converted to events that the old model keeps serving meanwhile, so accuracy is
prequential and honest about delays. Labels are only used to score, except where a
scenario says feedback labels exist.

Scenarios
---------
* digits-C abrupt, gradual (every corruption) and recurring: accuracy no-adapt /
  adapted / oracle, gap closed, detection delay, adaptations promoted / refined
  (the base adapted again on all the domain's events once enough have been seen,
  see `driftwise.drift.loop.Action.REFINE`) / rejected.
  The oracle is the same adaptation recipe given the *true* labels of the same
  window of events, served from the same event as the adapted model. Gap closed
  is scored on events whose pool image was not in that window: streams replay a
  pool of a few hundred images, and on repeats of the window's images the oracle
  shows what it memorised. The oracle gets the first window's labels only; a
  refinement learns, without labels, from later events, whose images the held-out
  score may include (learning from the unlabeled stream is what the loop is for).
  Abrupt shifts run on three streams per corruption
  (the bars average them: one 256-event window is a noisy sample).
* stationary clean stream (false alarms; clean accuracy loss).
* long continual stream cycling clean and the eight corruptions (2,000-event windows).
* concept drift (labels permuted, inputs unchanged): feedback labels must raise
  "labels needed", and a candidate fitted to the new labels must be rejected.
* river synthetic streams with known drift points (ConceptDriftStream over SEA,
  Hyperplane, RandomRBF, RandomRBFDrift): label-free detection delay and false
  alarms, and the feedback-label path.

Source model: a BN CNN fitted by `driftwise.models.pipeline.fit_model` (SSL pretraining on the
source split, 10% labels) and evaluated on a disjoint split. Method choices were
made on a separate validation split (``--split val``), never on the test stream.

Run ``python -m driftwise.bench.drift [--quick]``; writes ``bench/results/drift.md`` and ``drift.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from driftwise.drift.adapter import AdaptConfig, adapt, embed
from driftwise.drift.corruptions import CLEAN, CORRUPTION_NAMES, Stream, StreamBuilder
from driftwise.drift.embedding_drift import reference_statistics
from driftwise.drift.guardrails import GuardrailConfig, evaluate_candidate
from driftwise.drift.loop import Action, DriftLoop, LoopConfig
from driftwise.drift.normalize import back_to_source, check_interim, newest_domain, normalized_copy
from driftwise.drift.worker import prewarm, run_adaptation_in_subprocess
from driftwise.models.classifier import Classifier
from driftwise.models.config import ModelConfig
from driftwise.models.digits import load_digits_images, split_label_fraction
from driftwise.models.pipeline import fit_model

RESULTS = Path(__file__).resolve().parent / "results"


# ----------------------------------------------------------------------------- settings

@dataclass(frozen=True)
class Settings:
    """Everything a run depends on; written into the results."""

    quick: bool
    split: str = "test"
    seed: int = 0
    severity: int = 3
    label_fraction: float = 0.1
    objective: str = "ae"
    pretrain_epochs: int = 60
    batch: int = 25
    event_rate: float = 100.0
    abrupt_streams: int = 3
    """Streams per abrupt corruption (different images, draws and windows); the bars average over them."""
    n_before: int = 1000
    n_after: int = 4000
    n_transition: int = 2000
    recurring_segment: int = 2000
    recurring_repeats: int = 3
    recurring_corruptions: tuple[str, ...] = ("gaussian_noise", "contrast")
    gradual_corruptions: tuple[str, ...] = CORRUPTION_NAMES
    continual_events: int = 100_000
    continual_segment: int = 5000
    stationary_events: int = 50_000
    river_events: int = 20_000
    feedback_every: int = 10
    subprocess: bool = True
    loop: LoopConfig = field(default_factory=LoopConfig)
    """The service's loop settings at their defaults (the buffer threshold is taken from ``guardrails``)."""
    adapt: AdaptConfig = field(default_factory=lambda: AdaptConfig(
        steps=100, rounds=1, self_label_threshold=0.9, augment=True, trainable="all"))
    guardrails: GuardrailConfig = field(default_factory=lambda: GuardrailConfig(confidence_threshold=0.9))

    @classmethod
    def make(cls, quick: bool, split: str = "test") -> "Settings":
        if not quick:
            return cls(quick=False, split=split)
        return cls(quick=True, split=split, pretrain_epochs=25, abrupt_streams=1, n_before=600, n_after=2000,
                   n_transition=1000,
                   recurring_segment=1200, recurring_repeats=2, recurring_corruptions=("contrast",),
                   gradual_corruptions=("gaussian_noise", "contrast", "inversion"), continual_events=20_000,
                   continual_segment=2500, stationary_events=10_000, river_events=10_000, subprocess=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["adapt"], d["guardrails"], d["loop"] = asdict(self.adapt), asdict(self.guardrails), asdict(self.loop)
        return d


# ----------------------------------------------------------------------------- source model

@dataclass
class Source:
    """The served version 1 and the data around it."""

    model: Classifier
    reference: dict[str, np.ndarray]
    anchors_x: np.ndarray
    anchors_y: np.ndarray
    pool_x: np.ndarray
    pool_y: np.ndarray
    metrics: dict[str, Any]


def splits(y: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Disjoint stratified index sets: source 40% (training), ref 10% (for the reference), val 15%, test 35%."""
    idx = np.arange(len(y))
    source, rest = train_test_split(idx, train_size=0.40, stratify=y, random_state=seed)
    ref, rest = train_test_split(rest, train_size=0.10 / 0.60, stratify=y[rest], random_state=seed)
    val, test = train_test_split(rest, train_size=0.15 / 0.50, stratify=y[rest], random_state=seed)
    return {"source": source, "ref": ref, "val": val, "test": test}


@torch.inference_mode()
def predict(model: Classifier, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    logits, z = model.forward_with_embedding(torch.as_tensor(x))
    return torch.softmax(logits, dim=1).numpy(), z.numpy()


def _fit(X: np.ndarray, y: np.ndarray, s: Settings) -> tuple[Classifier, tuple[np.ndarray, np.ndarray]]:
    """`fit_model`, or its result from ``$DRIFTWISE_BENCH_CACHE`` (a folder; for re-runs while developing)."""
    config = ModelConfig(encoder="cnn", input_shape=(1, 8, 8), num_classes=10)
    cache = os.environ.get("DRIFTWISE_BENCH_CACHE")
    path = Path(cache) / f"source-{s.objective}-{s.pretrain_epochs}-{s.label_fraction}-{s.seed}.safetensors" \
        if cache else None
    if path is not None and path.exists():
        from safetensors.numpy import load_file
        from safetensors.torch import load_file as load_torch

        model = Classifier(config)
        model.load_state_dict(load_torch(str(path)))
        arrays = load_file(str(path.with_suffix(".anchors.safetensors")))
        return model.eval(), (arrays["x"], arrays["y"])
    result = fit_model(X, y, config, objective=s.objective, head="finetune", pretrain_epochs=s.pretrain_epochs,
                       device="cpu", seed=s.seed)
    if path is not None:
        from safetensors.numpy import save_file
        from safetensors.torch import save_file as save_torch

        path.parent.mkdir(parents=True, exist_ok=True)
        save_torch({k: v.contiguous() for k, v in result.model.state_dict().items()}, str(path))
        save_file({"x": result.anchors[0], "y": result.anchors[1]}, str(path.with_suffix(".anchors.safetensors")))
    return result.model.eval(), result.anchors


def build_source(s: Settings, log: Any = print) -> Source:
    X, y = load_digits_images()
    parts = splits(y, s.seed)
    partial = split_label_fraction(y[parts["source"]], s.label_fraction, seed=s.seed)
    t0 = time.perf_counter()
    model, anchors = _fit(X[parts["source"]], partial, s)
    # The monitor's reference: the source split (as `driftwise pretrain` publishes it) plus held-out clean data.
    p, z = predict(model, X[np.concatenate([parts["source"], parts["ref"]])])
    pool = parts[s.split]
    p_pool, _ = predict(model, X[pool])
    metrics = {"fit_seconds": round(time.perf_counter() - t0, 1), "n_labeled": int((partial >= 0).sum()),
               "n_source": len(parts["source"]), "n_pool": len(pool), "temperature": float(model.temperature),
               "clean_pool_accuracy": float((p_pool.argmax(1) == y[pool]).mean()),
               "objective": s.objective, "head": "finetune"}
    log(f"source model: {metrics}")
    reference = reference_statistics(z, p, false_alarm_rate=s.loop.reference_false_alarm_rate)
    return Source(model, reference, *anchors, X[pool], y[pool], metrics)


# ----------------------------------------------------------------------------- the loop

@dataclass
class Served:
    model: Classifier
    reference: dict[str, np.ndarray]
    version: int
    base: bool


@dataclass
class Pending:
    """An adaptation whose compute is done but whose result, in simulated time, is not in yet."""

    ready_at: int
    candidate: Classifier
    passed: bool
    record: dict[str, Any]


@dataclass
class RunResult:
    pred: np.ndarray
    confidence: np.ndarray
    version: np.ndarray
    detections: list[int] = field(default_factory=list)
    adaptations: list[dict[str, Any]] = field(default_factory=list)
    swaps: list[tuple[int, str, int]] = field(default_factory=list)
    normalizations: list[dict[str, Any]] = field(default_factory=list)
    labels_needed_at: int | None = None
    feedback: tuple[np.ndarray, np.ndarray] | None = None


def loop_config(s: Settings) -> LoopConfig:
    """The benchmark's settings for the shared `driftwise.drift.loop.DriftLoop` (the buffer threshold is the guardrails')."""
    return replace(s.loop, threshold=s.guardrails.confidence_threshold, seed=s.seed)


class Loop:
    """The service's drift loop (`driftwise.drift.loop.DriftLoop`) on one stream, with adaptation and swaps on a simulated clock.

    ``reset_on_detection`` (monitor-only runs) acknowledges each confirmed drift so alarms keep being counted.
    """

    def __init__(self, source: Source, s: Settings, *, adapt_enabled: bool = True, feedback_every: int = 0,
                 reset_on_detection: bool = False) -> None:
        self.s, self.source = s, source
        self.reset_on_detection = reset_on_detection
        self.feedback_every = feedback_every
        self.base = Served(source.model, source.reference, 1, True)
        self.current = self.base
        self.next_version = 2
        self.loop = DriftLoop(source.reference, source.model.config.num_classes, loop_config(s),
                              adapt=adapt_enabled, clock=lambda: self.loop.events / s.event_rate)
        self.reset_at = 0  # stream index of the monitor's last reset (its event indices count from there)
        self.pending: Pending | None = None
        self.interim_serves = False
        if s.subprocess and adapt_enabled:
            prewarm()  # as the service does at start-up: the adapter's process is started ahead

    def run(self, stream: Stream) -> RunResult:
        n, b = len(stream), self.s.batch
        out = RunResult(np.empty(n, np.int64), np.empty(n), np.empty(n, np.int64))
        fb_x, fb_y = [], []
        monitor = self.loop.monitor
        for start in range(0, n, b):
            end = min(start + b, n)
            x = stream.x[start:end]
            if self.pending is not None and start >= self.pending.ready_at:
                self._finish(start, out)
            p, z = predict(self.current.model, x)
            out.pred[start:end], out.confidence[start:end] = p.argmax(1), p.max(1)
            out.version[start:end] = self.current.version
            self.loop.update(x, p, z)
            if self.feedback_every:
                fb = np.arange(start, end)[np.arange(start, end) % self.feedback_every == 0]
                if len(fb):
                    self.loop.record_feedback(out.pred[fb], stream.y[fb], out.confidence[fb])
                    fb_x.append(stream.x[fb])
                    fb_y.append(stream.y[fb])
                    if self.loop.policy.labels_needed and out.labels_needed_at is None:
                        out.labels_needed_at = end
            action = self.loop.decide()
            if monitor.newly_confirmed:
                out.detections.append(self.reset_at + int(monitor.last_confirmation_index))
                if self.reset_on_detection:  # monitor-only runs: acknowledge and keep counting alarms
                    monitor.reset()
                    self.reset_at = end
            if action is Action.NORMALIZE:
                self._normalize(end, out)
            elif action is Action.CHECK_SOURCE:
                self._check_source(end, out)
            elif action is Action.CHECK_DOMAIN:  # the service's domain check (an interim's domain gone) is not
                self.loop.record_domain_check()  # simulated here: its benchmark is the real-time stream bench
            elif action is Action.CHECK_ALARM:  # neither is the service's check of an alarm against a candidate:
                self.loop.record_alarm_check(True)  # every alarm falls back, as before that check
            elif action is Action.FALL_BACK:
                self._serve(self.base, end, "fallback", out)
            elif action is Action.ROLLBACK:
                self._serve(self.base, end, "rollback", out)
            elif action in (Action.ADAPT, Action.REFINE):
                self._start(end, out, refinement=action is Action.REFINE)
        if self.pending is not None:
            self._finish(n, out)
        if fb_y:
            out.feedback = (np.concatenate(fb_x), np.concatenate(fb_y))
        return out

    def _serve(self, served: Served, at: int, kind: str, out: RunResult) -> None:
        self.current, self.interim_serves = served, False
        self.loop.serve(served.reference, base=served.base)
        self.reset_at = at
        out.swaps.append((at, kind, served.version))

    def _normalize(self, at: int, out: RunResult) -> None:
        """The interim, as the service makes it: the base with BatchNorm re-estimated on the latest inputs."""
        recent_x = self.loop.normalize_inputs()
        earlier_x, window_x, _ = newest_domain(self.base.model, recent_x)  # as the service: the newest domain only
        interim = normalized_copy(self.base.model, window_x)
        report = check_interim(self.base.model, interim, window_x, earlier_x=earlier_x)  # as the service: against the base
        out.normalizations.append({"at": at, "passed": report.passed, "reasons": report.reasons})
        if report.passed:
            self.current = Served(interim, self.base.reference, self.next_version, True)
            self.next_version += 1
            self.loop.serve_interim()
            out.swaps.append((at, "normalize", self.current.version))
            self.interim_serves = True
        elif self.interim_serves:  # made for a domain that has gone: the base serves the new one (nothing resets)
            self.current, self.interim_serves = self.base, False
            self.loop.serve_interim()
            out.swaps.append((at, "fallback", self.base.version))

    def _check_source(self, at: int, out: RunResult) -> None:
        """As the service: if the latest inputs look like the source again, the drift is over and the base serves."""
        back = back_to_source(embed(self.base.model, self.loop.normalize_inputs()), self.base.reference).passed
        adapted = not self.loop.serving_base
        returned = self.loop.record_source_check(back)
        if returned:
            self.reset_at = at  # the monitor starts afresh
        if returned and adapted:
            self._serve(self.base, at, "source", out)
        elif returned and self.interim_serves:
            self.current, self.interim_serves = self.base, False
            out.swaps.append((at, "source", self.base.version))

    def _start(self, end: int, out: RunResult, refinement: bool = False) -> None:
        s = self.s
        inputs = self.loop.adaptation_inputs()
        kwargs = dict(window_x=inputs.window_x, pseudo_x=inputs.train_x, pseudo_y=inputs.train_y,
                      anchors_x=self.source.anchors_x, anchors_y=self.source.anchors_y, config=s.adapt, seed=s.seed)
        start_from = self.base.model if refinement else self.current.model  # a refinement re-adapts the base
        t0 = time.perf_counter()
        if s.subprocess:
            result = run_adaptation_in_subprocess(start_from, threads=1, timeout=120.0, **kwargs)
        else:
            result = adapt(start_from, **kwargs)
        adapt_s = time.perf_counter() - t0
        # No recent_x: the simulation judges a candidate when it starts and simulates the events of its run after,
        # so the same_domain check has nothing to compare (it passes); the stream bench measures it.
        report = evaluate_candidate(self.current.model, result.candidate, window_x=inputs.window_x,
                                    anchors_x=self.source.anchors_x, anchors_y=self.source.anchors_y,
                                    pseudo_x=inputs.holdout_x, pseudo_y=inputs.holdout_y, config=s.guardrails)
        seconds = time.perf_counter() - t0
        detection = out.detections[-1] if out.detections else None
        attempt = 1 + sum(1 for a in out.adaptations if a["detection"] == detection and not a["refinement"])
        record = {"decided_at": end, "window": [end - len(inputs.window_x), end], "detection": detection,
                  "refinement": refinement, "attempt": attempt, "adapt_seconds": round(adapt_s, 3),
                  "compute_seconds": round(seconds, 3),
                  "passed": report.passed, "reasons": report.reasons, "stats": report.stats,
                  "n_pseudo": int(len(inputs.train_y) + len(inputs.holdout_y)), "rounds": result.log.get("rounds")}
        ready = end + math.ceil(seconds * s.event_rate)
        self.pending = Pending(ready, result.candidate, report.passed, record)

    def _finish(self, at: int, out: RunResult) -> None:
        pending, self.pending = self.pending, None
        record = pending.record
        if pending.passed and not self.loop.candidate_wanted():
            pending.passed, record["passed"] = False, False
            record["reasons"] = ["cancelled: a new drift or a rollback came while the refinement ran"]
        record["served_at"] = at if pending.passed else None
        if record["detection"] is not None and not record["refinement"]:
            record["detection_to_serving_s"] = round((at - record["detection"]) / self.s.event_rate, 2)
        if pending.passed:
            reference = self.loop.candidate_reference(pending.candidate, since_event=record["window"][1])
            self._serve(Served(pending.candidate, reference, self.next_version, False), at, "adapt", out)
            self.next_version += 1
        else:  # the loop resets the monitor: the drift must be confirmed afresh before the next try
            self.reset_at = at
        self.loop.record_result("promoted" if pending.passed else "rejected",
                                expected_confidence=record["stats"]["mean_confidence_candidate"])
        if self.loop.policy.labels_needed and out.labels_needed_at is None:
            out.labels_needed_at = at
        out.adaptations.append(record)


# ----------------------------------------------------------------------------- scenarios

def no_adapt_run(source: Source, s: Settings, stream: Stream, feedback_every: int = 0) -> RunResult:
    """Version 1 serves everything; detections counted with the monitor reset after each (monitor-only mode)."""
    return Loop(source, s, adapt_enabled=False, reset_on_detection=True, feedback_every=feedback_every).run(stream)


def _acc(pred: np.ndarray, y: np.ndarray) -> float:
    return float((pred == y).mean()) if len(y) else float("nan")


def oracle_predictions(source: Source, s: Settings, stream: Stream, na: RunResult, ad: RunResult,
                       after: int) -> tuple[np.ndarray, dict[str, Any]] | None:
    """The adaptation recipe given the true labels of the first window after ``after``; served from the same event."""
    first = next((a for a in ad.adaptations if a["decided_at"] > after and not a["refinement"]), None)
    if first is None:
        return None
    a, b = first["window"]
    config = replace(s.adapt, self_label_threshold=None, rounds=1)
    oracle = adapt(source.model, window_x=stream.x[a:b], pseudo_x=None, pseudo_y=None, anchors_x=source.anchors_x,
                   anchors_y=source.anchors_y, feedback_x=stream.x[a:b], feedback_y=stream.y[a:b], config=config,
                   seed=s.seed).candidate
    swap = first["served_at"] if first["served_at"] is not None else b + math.ceil(first["compute_seconds"]
                                                                                    * s.event_rate)
    pred = na.pred.copy()
    if swap < len(stream):
        pred[swap:] = np.concatenate([predict(oracle, stream.x[i:i + 2048])[0].argmax(1)
                                      for i in range(swap, len(stream), 2048)])
    return pred, {"window": [a, b], "served_at": swap}


def drift_promotions(run: RunResult) -> list[dict[str, Any]]:
    """Promoted adaptations made for a drift (a refinement of a promoted model is not one)."""
    return [a for a in run.adaptations if a["passed"] and not a["refinement"]]


def refined(run: RunResult) -> int:
    """Promoted refinements (`driftwise.drift.loop.Action.REFINE`)."""
    return sum(a["passed"] and a["refinement"] for a in run.adaptations)


def outcome_counts(run: RunResult) -> dict[str, int]:
    """Every scenario's row: candidates promoted for a drift, refinements promoted, candidates not served."""
    return {"promoted": len(drift_promotions(run)), "refined": refined(run),
            "rejected": sum(not a["passed"] for a in run.adaptations)}


def gap_closed(no_adapt: float, adapted: float, oracle: float) -> float:
    """(adapted - no-adapt) / (oracle - no-adapt); NaN when the oracle gains under half a point.

    >>> gap_closed(0.5, 0.75, 1.0), gap_closed(0.9, 0.8, 0.9)
    (0.5, nan)
    """
    return (adapted - no_adapt) / (oracle - no_adapt) if oracle - no_adapt > 0.005 else float("nan")


def drift_metrics(stream: Stream, na: RunResult, ad: RunResult, oracle: np.ndarray | None,
                  window: list[int] | None = None) -> dict[str, Any]:
    """Accuracies over the drifted part; gap closed also on events whose image the adaptation never saw.

    The stream replays a pool of a few hundred images, so most later events repeat
    an image of the adaptation ``window``. The oracle was given those images' true
    labels: scored on them it shows what it memorised. Events of other images
    (``held out``) measure what adaptation taught, for all three models alike.
    """
    dp = stream.drift_points[0]
    seg = np.arange(len(stream)) >= dp
    held = seg.copy()
    if window is not None and stream.image is not None:
        held &= ~np.isin(stream.image, stream.image[window[0]:window[1]])
    acc_na, acc_ad = _acc(na.pred[seg], stream.y[seg]), _acc(ad.pred[seg], stream.y[seg])
    acc_or = _acc(oracle[seg], stream.y[seg]) if oracle is not None else float("nan")
    held_na, held_ad = _acc(na.pred[held], stream.y[held]), _acc(ad.pred[held], stream.y[held])
    held_or = _acc(oracle[held], stream.y[held]) if oracle is not None else float("nan")
    after = [d for d in na.detections if d >= dp]
    promoted = drift_promotions(ad)
    return {
        "events": len(stream), "drift_point": dp,
        "accuracy_no_adapt": acc_na, "accuracy_adapted": acc_ad, "accuracy_oracle": acc_or,
        "gap_closed_all_events": gap_closed(acc_na, acc_ad, acc_or),
        "held_out_events": int(held.sum()), "held_out_accuracy_no_adapt": held_na,
        "held_out_accuracy_adapted": held_ad, "held_out_accuracy_oracle": held_or,
        "gap_closed": gap_closed(held_na, held_ad, held_or),
        "accuracy_before_drift": _acc(na.pred[:dp], stream.y[:dp]),
        "detection_delay": after[0] - dp if after else None,
        "false_alarms": len([d for d in na.detections if d < dp]),
        "false_alarms_per_10k": 1e4 * len([d for d in na.detections if d < dp]) / max(dp, 1),
        **outcome_counts(ad),
        "fallbacks": sum(1 for _, kind, _ in ad.swaps if kind == "fallback"),
        "rollbacks": sum(1 for _, kind, _ in ad.swaps if kind == "rollback"),
        "detection_to_serving_s": [a.get("detection_to_serving_s") for a in promoted],
        "serving_attempts": [a["attempt"] for a in promoted],
        "adapt_compute_s": [a["compute_seconds"] for a in ad.adaptations],
        "rejection_reasons": [a["reasons"] for a in ad.adaptations if not a["passed"]],
    }


def digits_c(source: Source, s: Settings, kind: str, name: str, seed: int, log: Any,
             stream_index: int = 0) -> dict[str, Any]:
    builder = StreamBuilder(source.pool_x, source.pool_y, severity=s.severity, seed=seed)
    if kind == "abrupt":
        stream = builder.abrupt(CLEAN, name, s.n_before, s.n_after)
    else:
        stream = builder.gradual(CLEAN, name, s.n_before, s.n_transition, s.n_after)
    na, ad = no_adapt_run(source, s, stream), Loop(source, s).run(stream)
    oracle_pred, oracle_info = oracle_predictions(source, s, stream, na, ad, stream.drift_points[0]) or (None, {})
    row = {"scenario": f"digits-C {kind}", "corruption": name, "stream": stream_index,
           **drift_metrics(stream, na, ad, oracle_pred, oracle_info.get("window"))}
    log(f"  {kind:8s} {stream_index} {name:16s} no-adapt {row['accuracy_no_adapt']:.3f} "
        f"adapted {row['accuracy_adapted']:.3f} "
        f"oracle {row['accuracy_oracle']:.3f} gap {row['gap_closed']:.2f} (all events "
        f"{row['gap_closed_all_events']:.2f}) delay {row['detection_delay']} "
        f"promoted {row['promoted']} rejected {row['rejected']} {row['rejection_reasons']}")
    return row


def recurring(source: Source, s: Settings, name: str, seed: int, log: Any) -> dict[str, Any]:
    builder = StreamBuilder(source.pool_x, source.pool_y, severity=s.severity, seed=seed)
    stream = builder.recurring(CLEAN, name, s.recurring_segment, s.recurring_repeats)
    na, ad = no_adapt_run(source, s, stream), Loop(source, s).run(stream)
    drifted = stream.domain != CLEAN
    onsets = [p for p in stream.drift_points if stream.domain[p] != CLEAN]  # returns to clean are no drift for v1
    delays = [min((d - p for d in na.detections if p <= d < p + s.recurring_segment), default=None) for p in onsets]
    promoted = drift_promotions(ad)
    row = {"scenario": "digits-C recurring", "corruption": name, "events": len(stream),
           "drift_points": stream.drift_points, "onsets": onsets, "detection_delays": delays,
           "accuracy_no_adapt": _acc(na.pred, stream.y), "accuracy_adapted": _acc(ad.pred, stream.y),
           "accuracy_no_adapt_drifted": _acc(na.pred[drifted], stream.y[drifted]),
           "accuracy_adapted_drifted": _acc(ad.pred[drifted], stream.y[drifted]),
           "accuracy_no_adapt_clean": _acc(na.pred[~drifted], stream.y[~drifted]),
           "accuracy_adapted_clean": _acc(ad.pred[~drifted], stream.y[~drifted]),
           **outcome_counts(ad),
           "fallbacks": sum(1 for _, kind, _ in ad.swaps if kind == "fallback"),
           "detection_to_serving_s": [a.get("detection_to_serving_s") for a in promoted],
           "serving_attempts": [a["attempt"] for a in promoted]}
    log(f"  recurring {name}: no-adapt {row['accuracy_no_adapt']:.3f} adapted {row['accuracy_adapted']:.3f} "
        f"delays {delays} promoted {row['promoted']} rejected {row['rejected']}")
    return row


def windowed_gain(y: np.ndarray, na: np.ndarray, ad: np.ndarray, width: int = 2000) -> list[float]:
    """Adapted minus no-adapt accuracy in consecutive windows of ``width`` events."""
    return [float((ad[i:i + width] == y[i:i + width]).mean() - (na[i:i + width] == y[i:i + width]).mean())
            for i in range(0, len(y) - width + 1, width)]


def continual(source: Source, s: Settings, seed: int, log: Any) -> dict[str, Any]:
    builder = StreamBuilder(source.pool_x, source.pool_y, severity=s.severity, seed=seed)
    stream = builder.continual([CLEAN, *CORRUPTION_NAMES], s.continual_segment, s.continual_events)
    t0 = time.perf_counter()
    na, ad = no_adapt_run(source, s, stream), Loop(source, s).run(stream)
    gains = windowed_gain(stream.y, na.pred, ad.pred)
    promoted = drift_promotions(ad)
    per_domain = {d: {"no_adapt": _acc(na.pred[stream.domain == d], stream.y[stream.domain == d]),
                      "adapted": _acc(ad.pred[stream.domain == d], stream.y[stream.domain == d])}
                  for d in [CLEAN, *CORRUPTION_NAMES]}
    row = {"scenario": "continual", "events": len(stream), "segment": s.continual_segment,
           "accuracy_no_adapt": _acc(na.pred, stream.y), "accuracy_adapted": _acc(ad.pred, stream.y),
           "window_gains": gains, "worst_window_gain": min(gains), "per_domain": per_domain,
           **outcome_counts(ad),
           "fallbacks": sum(1 for _, kind, _ in ad.swaps if kind == "fallback"),
           "rollbacks": sum(1 for _, kind, _ in ad.swaps if kind == "rollback"),
           "detections": len(na.detections), "drifts": len(stream.drift_points),
           "detection_to_serving_s": [a.get("detection_to_serving_s") for a in promoted],
           "serving_attempts": [a["attempt"] for a in promoted],
           "adapt_compute_s": [a["compute_seconds"] for a in ad.adaptations],
           "seconds": round(time.perf_counter() - t0, 1)}
    log(f"  continual: no-adapt {row['accuracy_no_adapt']:.3f} adapted {row['accuracy_adapted']:.3f} worst 2k-window "
        f"gain {row['worst_window_gain']:+.3f} promoted {row['promoted']} rejected {row['rejected']} "
        f"fallbacks {row['fallbacks']}")
    return row


def stationary(source: Source, s: Settings, seed: int, log: Any) -> dict[str, Any]:
    stream = StreamBuilder(source.pool_x, source.pool_y, severity=s.severity, seed=seed).segment(
        CLEAN, s.stationary_events)
    na, ad = no_adapt_run(source, s, stream), Loop(source, s).run(stream)
    row = {"scenario": "stationary clean", "events": len(stream), "false_alarms": len(na.detections),
           "false_alarm_indices": na.detections, "false_alarms_per_10k": 1e4 * len(na.detections) / len(stream),
           "accuracy_no_adapt": _acc(na.pred, stream.y), "accuracy_adapted": _acc(ad.pred, stream.y),
           **outcome_counts(ad)}
    log(f"  stationary: {row['false_alarms']} false alarms in {len(stream)} events; no-adapt "
        f"{row['accuracy_no_adapt']:.4f} adapted {row['accuracy_adapted']:.4f}")
    return row


def concept_drift(source: Source, s: Settings, seed: int, log: Any) -> dict[str, Any]:
    """Same inputs, permuted labels: nothing label-free can see it; feedback labels must stop adaptation."""
    builder = StreamBuilder(source.pool_x, source.pool_y, severity=s.severity, seed=seed)
    stream = builder.abrupt(CLEAN, CLEAN, s.n_before, s.n_after)
    dp = s.n_before
    rng = np.random.default_rng(seed)
    permutation = rng.permutation(10)
    while (permutation == np.arange(10)).any():  # every class changes its meaning
        permutation = rng.permutation(10)
    stream.y[dp:] = permutation[stream.y[dp:]]
    stream.drift_points = [dp]
    na = no_adapt_run(source, s, stream)
    ad = Loop(source, s, feedback_every=s.feedback_every).run(stream)
    fx, fy = ad.feedback
    post = np.arange(0, len(stream), s.feedback_every) >= dp
    window = stream.x[-s.loop.window:]
    forced = adapt(source.model, window_x=window, pseudo_x=None, pseudo_y=None, anchors_x=source.anchors_x,
                   anchors_y=source.anchors_y, feedback_x=fx[post], feedback_y=fy[post], config=s.adapt, seed=s.seed)
    p, _ = predict(source.model, window)
    sure = p.max(1) >= s.guardrails.confidence_threshold  # the confident slice, as the buffer would hold it
    report = evaluate_candidate(source.model, forced.candidate, window_x=window, anchors_x=source.anchors_x,
                                anchors_y=source.anchors_y, pseudo_x=window[sure], pseudo_y=p.argmax(1)[sure],
                                config=s.guardrails)
    row = {"scenario": "concept drift (labels permuted)", "events": len(stream), "drift_point": dp,
           "label_free_detections_after_drift": len([d for d in na.detections if d >= dp]),
           "false_alarms": len([d for d in na.detections if d < dp]),
           "feedback_every": s.feedback_every,
           "labels_needed_at": ad.labels_needed_at,
           "labels_needed_delay": None if ad.labels_needed_at is None else ad.labels_needed_at - dp,
           **outcome_counts(ad),
           "accuracy_no_adapt": _acc(na.pred[dp:], stream.y[dp:]),
           "accuracy_adapted": _acc(ad.pred[dp:], stream.y[dp:]),
           "forced_candidate": {"trained_on_feedback_labels": int(post.sum()), "passed": report.passed,
                                "reasons": report.reasons}}
    log(f"  concept drift: labels needed {row['labels_needed_delay']} events after the change; promoted "
        f"{row['promoted']}; a candidate fitted to the new labels: passed={report.passed} {report.reasons}")
    return row


# ----------------------------------------------------------------------------- river synthetic streams

def river_streams(position: int, seed: int) -> dict[str, Any]:
    """Streams with one known drift point at ``position`` (a 100-event sigmoid: river overflows on narrower ones)."""
    from river.datasets import synth

    def rbf(model: int) -> Any:
        return synth.RandomRBF(seed_model=model, seed_sample=seed, n_classes=4, n_features=10, n_centroids=20)

    def cds(a: Any, b: Any) -> Any:
        return synth.ConceptDriftStream(stream=a, drift_stream=b, position=position, width=100, seed=seed)

    return {
        "SEA variant 0 -> 2 (concept)": cds(synth.SEA(variant=0, seed=seed), synth.SEA(variant=2, seed=seed + 1)),
        "Hyperplane seed 1 -> 2 (concept)": cds(synth.Hyperplane(seed=1), synth.Hyperplane(seed=2)),
        "RandomRBF model 1 -> 2 (inputs and concept)": cds(rbf(1), rbf(2)),
        "RandomRBF -> RandomRBFDrift (moving centroids)": cds(rbf(1), synth.RandomRBFDrift(
            seed_model=1, seed_sample=seed + 7, n_classes=4, n_features=10, n_centroids=20, change_speed=0.01,
            n_drift_centroids=20)),
    }


def _train_mlp(x: np.ndarray, y: np.ndarray, k: int, seed: int) -> Classifier:
    torch.manual_seed(seed)
    model = Classifier(ModelConfig(encoder="mlp", input_shape=(x.shape[1],), num_classes=k, hidden=64, embed_dim=32))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    X, Y = torch.as_tensor(x), torch.as_tensor(y)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(30):
        for idx in torch.randperm(len(X), generator=generator).split(64):
            loss = torch.nn.functional.cross_entropy(model.raw_logits(X[idx]), Y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def river_scenario(name: str, dataset: Any, s: Settings, n_train: int, n_ref: int, log: Any) -> dict[str, Any]:
    """Label-free detection on a model trained before the drift; feedback labels every ``feedback_every`` events."""
    rows = list(dataset.take(s.river_events))
    keys = sorted(rows[0][0])
    x = np.array([[r[0][k] for k in keys] for r in rows], dtype=np.float32)
    y_raw = np.array([r[1] for r in rows])
    classes = sorted(set(y_raw.tolist()))
    y = np.array([classes.index(v) for v in y_raw], dtype=np.int64)
    mean, std = x[:n_train].mean(0), x[:n_train].std(0) + 1e-6
    x = (x - mean) / std
    k = max(len(classes), 2)
    model = _train_mlp(x[:n_train], y[:n_train], k, s.seed)
    p_ref, z_ref = predict(model, x[n_train:n_train + n_ref])
    source = Source(model, reference_statistics(z_ref, p_ref), x[:64], y[:64], x, y, {})
    start = n_train + n_ref
    position = s.river_events // 2
    stream = Stream(x[start:], y[start:], np.where(np.arange(start, len(y)) < position, "before", "after"),
                    [position - start])
    run = Loop(source, s, adapt_enabled=False, reset_on_detection=True, feedback_every=s.feedback_every).run(stream)
    dp = stream.drift_points[0]
    after = [d for d in run.detections if d >= dp]
    row = {"scenario": "river", "stream": name, "events": len(stream), "drift_point": dp,
           "accuracy_before": _acc(run.pred[:dp], stream.y[:dp]), "accuracy_after": _acc(run.pred[dp:], stream.y[dp:]),
           "detection_delay": after[0] - dp if after else None,
           "false_alarms": len([d for d in run.detections if d < dp]),
           "false_alarms_per_10k": 1e4 * len([d for d in run.detections if d < dp]) / dp,
           "labels_needed_delay": None if run.labels_needed_at is None else run.labels_needed_at - dp}
    log(f"  river {name}: accuracy {row['accuracy_before']:.3f} -> {row['accuracy_after']:.3f}, label-free delay "
        f"{row['detection_delay']}, false alarms {row['false_alarms']}, labels needed after "
        f"{row['labels_needed_delay']}")
    return row


# ----------------------------------------------------------------------------- bars and report

def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.median(present)) if present else None


def _by_corruption(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["corruption"], []).append(r)
    return out


def _mean_gap(rows: list[dict[str, Any]], key: str) -> float:
    """Mean over corruptions of each one's mean gap over its streams; no promotion counts as 0 (inversion)."""
    def gap(r: dict[str, Any]) -> float:
        return 0.0 if r["promoted"] == 0 and math.isnan(r[key]) else r[key]

    means = [np.nanmean([gap(r) for r in runs]) for runs in _by_corruption(rows).values()]
    return float(np.nanmean(means)) if means else float("nan")


def bars(results: dict[str, Any]) -> list[dict[str, Any]]:
    abrupt = [r for r in results["digits_c"] if r["scenario"] == "digits-C abrupt"]
    mean_gap, mean_gap_all = _mean_gap(abrupt, "gap_closed"), _mean_gap(abrupt, "gap_closed_all_events")
    gains = {name: float(np.mean([r["accuracy_adapted"] - r["accuracy_no_adapt"] for r in runs]))
             for name, runs in _by_corruption(abrupt).items()}
    worst = min(gains, key=gains.__getitem__)
    inversion = _by_corruption(abrupt).get("inversion", [])
    st, cont = results["stationary"], results["continual"]
    delays = [r["detection_delay"] for r in abrupt]
    undetected = sum(d is None for d in delays)
    pairs = [(t, n) for r in (*results["digits_c"], *results["recurring"], cont)
             for t, n in zip(r["detection_to_serving_s"], r["serving_attempts"]) if t is not None]
    serving = [t for t, n in pairs if n == 1]
    retried = [t for t, n in pairs if n > 1]
    compute = [t for r in [*results["digits_c"], cont] for t in r.get("adapt_compute_s", [])]
    out = [
        (f"Digits-C mean gap closed (8 abrupt corruptions x {results['settings']['abrupt_streams']} streams), "
         "on events of images not in the adaptation window",
         ">= 0.6", f"{mean_gap:.3f} (on all drifted events, repeats of window images included: {mean_gap_all:.3f})",
         mean_gap >= 0.6),
        ("Digits-C worst corruption, adapted - no-adapt", ">= -1 point",
         f"{100 * gains[worst]:+.2f} points ({worst})", gains[worst] >= -0.01),
        ("Inversion ends in a rejected candidate, no promotion (every stream)", "rejected >= 1, promoted 0",
         "n/a" if not inversion else f"rejected {[r['rejected'] for r in inversion]}, promoted "
         f"{[r['promoted'] for r in inversion]}",
         bool(inversion) and all(r["rejected"] >= 1 and r["promoted"] == 0 for r in inversion)),
        ("Clean stream accuracy loss", "<= 0.5 point",
         f"{100 * (st['accuracy_no_adapt'] - st['accuracy_adapted']):.2f} points",
         st["accuracy_no_adapt"] - st["accuracy_adapted"] <= 0.005),
        ("Long continual stream, worst 2,000-event window, adapted - no-adapt", ">= -1 point",
         f"{100 * cont['worst_window_gain']:+.2f} points over {cont['events']} events",
         cont["worst_window_gain"] >= -0.01),
        ("Median detection delay, abrupt digits-C", "<= 100 events",
         f"{_median(delays)} events ({undetected} of {len(delays)} not detected)",
         _median(delays) is not None and _median(delays) <= 100 and undetected == 0),
        ("False alarms in the stationary stream", f"0 in {st['events']} events", str(st["false_alarms"]),
         st["false_alarms"] == 0 and st["events"] >= 50_000),
        ("Detection -> new model serving (max over first-attempt promotions)", "<= 30 s",
         f"{max(serving) if serving else float('nan'):.1f} s simulated at {results['settings']['event_rate']:.0f} "
         f"events/s, incl. collecting {results['settings']['loop']['window']} fresh events "
         f"(adaptation + guardrail compute: "
         f"median {np.median(compute) if compute else float('nan'):.1f} s, max "
         f"{max(compute) if compute else float('nan'):.1f} s). Where a first candidate was rejected and a later "
         f"one promoted after the cooldown: {', '.join(f'{t:.1f} s' for t in retried) or 'none'}",
         bool(serving) and max(serving) <= 30.0),
    ]
    return [{"bar": b, "target": t, "measured": m, "met": bool(ok)} for b, t, m, ok in out]


def _f(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def write_report(results: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "drift.json").write_text(json.dumps(results, indent=2, default=float))
    lines = [
        "# Drift benchmark", "",
        f"Command: `{results['command']}`  ", f"Date: {results['date']}, {results['machine']}  ",
        f"Wall time: {results['wall_seconds']:.0f} s. Mode: {'quick' if results['settings']['quick'] else 'full'}, "
        f"stream pool: {results['settings']['split']} split.", "",
        "The loop is the service's own components run in-process on a simulated clock "
        f"({results['settings']['event_rate']:.0f} events/s; real adaptation seconds become events the old model "
        "keeps serving). Accuracy is prequential: every event is scored with the model serving it. The oracle is the "
        "same adaptation recipe given the true labels of the same window, served from the same event. "
        "Method choices were made on the validation split, not on this stream.", "",
        "## Bars", "", "| bar | target | measured | met |", "|---|---|---|---|",
        *[f"| {b['bar']} | {b['target']} | {b['measured']} | {'yes' if b['met'] else '**NO**'} |"
          for b in results["bars"]],
        "", "**Bars not met:** " + ("; ".join(f"{b['bar']}: {b['measured']} against {b['target']}"
                                              for b in results["bars"] if not b["met"]) or "none") + ".",
        "", "## Source model", "", "```", json.dumps(results["source"], indent=1), "```", "",
        "## Digits-C (accuracy over the drifted part of each stream)", "",
        "Gap closed is scored on the events whose image was not in the adaptation window (held out), as the bar is; "
        "the stream replays a pool of images and the oracle was given the window images' true labels. "
        "Accuracies are over all drifted events.", "",
        "| scenario | corruption | stream | no-adapt | adapted | oracle | gap closed (held out) | "
        "gap closed (all events) | "
        "detection delay | promoted / refined / rejected | detection -> serving (s) | why rejected |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["digits_c"]:
        lines.append(f"| {r['scenario']} | {r['corruption']} | {r.get('stream', 0)} | {_f(r['accuracy_no_adapt'])} | "
                     f"{_f(r['accuracy_adapted'])} | {_f(r['accuracy_oracle'])} | {_f(r['gap_closed'], 2)} | "
                     f"{_f(r['gap_closed_all_events'], 2)} | "
                     f"{_f(r['detection_delay'])} | {r['promoted']} / {r.get('refined', 0)} / {r['rejected']} | "
                     f"{', '.join(_f(t, 1) for t in r['detection_to_serving_s']) or '-'} | "
                     f"{'; '.join(', '.join(x) for x in r['rejection_reasons']) or '-'} |")
    abrupt = _by_corruption([r for r in results["digits_c"] if r["scenario"] == "digits-C abrupt"])
    lines += ["", "Abrupt, per corruption (mean over its streams):", "",
              "| corruption | streams | adapted - no-adapt (points) | gap closed (held out) | "
              "gap closed (all events) |",
              "|---|---|---|---|---|",
              *[f"| {name} | {len(runs)} | "
                f"{100 * np.mean([r['accuracy_adapted'] - r['accuracy_no_adapt'] for r in runs]):+.1f} | "
                f"{_f(_mean_gap(runs, 'gap_closed'), 2)} | {_f(_mean_gap(runs, 'gap_closed_all_events'), 2)} |"
                for name, runs in abrupt.items()]]
    lines += ["", "## Recurring", "", "| corruption | events | no-adapt | adapted | no-adapt (drifted) | "
              "adapted (drifted) | detection delays | promoted / refined / rejected / fallbacks |",
              "|---|---|---|---|---|---|---|---|"]
    for r in results["recurring"]:
        lines.append(f"| {r['corruption']} | {r['events']} | {_f(r['accuracy_no_adapt'])} | "
                     f"{_f(r['accuracy_adapted'])} | {_f(r['accuracy_no_adapt_drifted'])} | "
                     f"{_f(r['accuracy_adapted_drifted'])} | {r['detection_delays']} | "
                     f"{r['promoted']} / {r.get('refined', 0)} / {r['rejected']} / {r['fallbacks']} |")
    c, st, cd = results["continual"], results["stationary"], results["concept"]
    lines += ["", "## Long continual stream", "",
              f"{c['events']} events cycling clean and the 8 corruptions, {c['segment']} events each. Overall "
              f"no-adapt {_f(c['accuracy_no_adapt'])}, adapted {_f(c['accuracy_adapted'])}; worst 2,000-event window "
              f"{100 * c['worst_window_gain']:+.2f} points; promoted {c['promoted']}, refined "
              f"{c.get('refined', 0)}, rejected {c['rejected']}, "
              f"fallbacks to the base model {c['fallbacks']}, rollbacks {c['rollbacks']}.", "",
              "| domain | no-adapt | adapted |", "|---|---|---|",
              *[f"| {d} | {_f(v['no_adapt'])} | {_f(v['adapted'])} |" for d, v in c["per_domain"].items()],
              "", "## Stationary clean stream", "",
              f"{st['events']} events: {st['false_alarms']} false alarms "
              f"({_f(st['false_alarms_per_10k'], 2)} per 10k); "
              f"accuracy no-adapt {_f(st['accuracy_no_adapt'], 4)}, adapted {_f(st['accuracy_adapted'], 4)}; "
              f"adaptations promoted {st['promoted']}, rejected {st['rejected']}.", "",
              "## Concept drift (labels permuted, inputs unchanged)", "",
              f"Label-free detections after the change: {cd['label_free_detections_after_drift']} "
              "(nothing in the inputs "
              f"changed). Feedback labels on 1 event in {cd['feedback_every']}: labels needed "
              f"{cd['labels_needed_delay']} events after the change; adaptations promoted {cd['promoted']}, rejected "
              f"{cd['rejected']}. A candidate fitted to "
              f"{cd['forced_candidate']['trained_on_feedback_labels']} feedback "
              f"labels of the new concept: passed={cd['forced_candidate']['passed']}, reasons: "
              f"{'; '.join(cd['forced_candidate']['reasons'])}.", "",
              "## River synthetic streams (label-free detection on a model trained before the drift)", "",
              "| stream | accuracy before -> after | label-free detection delay | false alarms per 10k | "
              "labels needed after (feedback) |", "|---|---|---|---|---|"]
    for r in results["river"]:
        lines.append(f"| {r['stream']} | {_f(r['accuracy_before'])} -> {_f(r['accuracy_after'])} | "
                     f"{_f(r['detection_delay'])} | {_f(r['false_alarms_per_10k'], 2)} | "
                     f"{_f(r['labels_needed_delay'])} |")
    lines += ["", "A pure concept drift (SEA, Hyperplane) leaves the inputs unchanged: no label-free detector can "
              "see it, "
              "by construction. That is what the feedback path and \"labels needed\" are for.", "",
              "## Settings", "", "```", json.dumps(results["settings"], indent=1), "```", ""]
    path = out_dir / "drift.md"
    path.write_text("\n".join(lines))
    return path


def machine() -> str:
    """The machine and its load, for a results header (figures move with load on shared machines)."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return (f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
            f"load average at start {load[0]:.1f}")


def main(quick: bool = False, split: str = "test", out_dir: str | Path | None = None) -> dict[str, Any]:
    """Run every scenario; write drift.md and drift.json; return the results."""
    if split not in ("test", "val"):
        raise ValueError(f"split must be 'test' or 'val', got {split!r}")
    torch.set_num_threads(1)
    s = Settings.make(quick, split)
    started = time.perf_counter()
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    command = "python -m driftwise.bench.drift" + (" --quick" if quick else "") + (f" --split {split}" if split != "test" else "")
    machine_line = machine()
    source = build_source(s, log)
    results: dict[str, Any] = {"command": command, "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine_line,
                               "settings": s.to_dict(), "source": source.metrics}
    log("digits-C abrupt:")
    rows = [digits_c(source, s, "abrupt", name, s.seed + i + 1000 * k, log, k)
            for k in range(s.abrupt_streams) for i, name in enumerate(CORRUPTION_NAMES)]
    log("digits-C gradual:")
    rows += [digits_c(source, s, "gradual", name, s.seed + 100 + i, log)
             for i, name in enumerate(s.gradual_corruptions)]
    results["digits_c"] = rows
    log("recurring:")
    results["recurring"] = [recurring(source, s, name, s.seed + 200 + i, log)
                            for i, name in enumerate(s.recurring_corruptions)]
    log("stationary:")
    results["stationary"] = stationary(source, s, s.seed + 300, log)
    log("continual:")
    results["continual"] = continual(source, s, s.seed + 400, log)
    log("concept drift:")
    results["concept"] = concept_drift(source, s, s.seed + 500, log)
    log("river:")
    n_train, n_ref = 2000, 1000
    results["river"] = [river_scenario(name, ds, s, n_train, n_ref, log)
                        for name, ds in river_streams(s.river_events // 2, s.seed).items()]
    results["wall_seconds"] = time.perf_counter() - started
    results["bars"] = bars(results)
    path = write_report(results, Path(out_dir) if out_dir else RESULTS)
    for b in results["bars"]:
        log(f"{'MET ' if b['met'] else 'MISS'} {b['bar']}: {b['measured']} (target {b['target']})")
    log(f"wrote {path}")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short streams, in-process adaptation (minutes)")
    parser.add_argument("--split", default="test", choices=["test", "val"],
                        help="stream pool: the test split (results) or the validation split (method choices)")
    parser.add_argument("--out", default=None, help="results folder (default bench/results)")
    args = parser.parse_args()
    main(args.quick, args.split, args.out)
    sys.exit(0)
