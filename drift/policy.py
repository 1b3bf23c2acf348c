"""When to adapt, when to stop and ask for labels, and when to undo a swap.

Pure decisions, no I/O: the service (or the benchmark's simulation) tells the
policy what happened and reads back what to do.

* **Adapt** when drift is confirmed, ``min_fresh_events`` predictions have been
  observed since (adapting on a window that is mostly pre-drift inputs would
  re-estimate BatchNorm on the old domain; `fresh_events` says how many recent
  inputs are post-drift), no adaptation is running, the cooldown since the last
  one has passed, and the buffer holds ``min_pseudo_labels`` (or drift has been
  waiting ``max_wait_seconds``: then the guardrails decide, and a starved
  candidate is rejected for its low yield rather than waited on forever).
* **Fall back** to the base model (the labeled original) as soon as a new drift is
  confirmed while an adapted model serves: that model was specialised to a domain
  that has just gone away, and may be worse than the base on the new one. The next
  candidate is then made from the base, so adaptations never compound.
* **Labels needed** (concept drift): pseudo-labels can only fix a change of the
  inputs, not of what the right answer is. When ``max_consecutive_rejections``
  candidates in a row are rejected (or rolled back), or one is rejected while the
  served model's confidence has collapsed (``confidence_collapsed`` from the
  caller: a model that no longer knows what it sees will not teach itself), or
  the feedback labels show
  live accuracy under ``min_live_accuracy`` or more than ``max_confidence_gap``
  under what the model's own calibrated confidence promised, the policy stops
  adapting and says labels are needed, until `resolve_labels_needed`. When it was
  rejections that raised it and the drift then ends (``clear_after_calm_events``
  predictions with no drift confirmed), or the stream moves on to another drift
  (`drift_left`), it clears itself: that drift needs no labels any more.
  Feedback-raised alarms wait for labels.
* **Rollback**: after a promotion, the mean confidence of the next
  ``rollback_window`` predictions is compared with what the candidate showed on
  the drifted window; if it is lower by more than ``rollback_tolerance``,
  `rollback_needed` turns on.
* **Refine** once (``refine_after_events`` > 0): a candidate is made from the first
  few hundred drifted inputs, because every second it waits the old model serves
  the new domain badly. Once it is promoted and ``refine_after_events`` inputs of
  the domain have been seen since the drift was confirmed (`domain_events`: the
  first window, what arrived while it was adapted, and after), `should_refine`
  says to adapt once more, from the base model again, on all of them. It does not
  wait for the cooldown or the promoted model's watch: it is the same drift's
  adaptation finished on more data, and each event it waits is served by the
  weaker first candidate. A refinement is not refined again; a new drift or a
  rollback cancels it, even while it runs (`refinement_cancelled`).

Examples
--------
>>> t = [0.0]
>>> policy = AdaptationPolicy(cooldown_seconds=60, min_pseudo_labels=50, rollback_window=3, min_fresh_events=100,
...                           clock=lambda: t[0])
>>> policy.should_adapt(drift_confirmed=True, pseudo_count=80)  # drift just confirmed: no fresh inputs yet
False
>>> policy.observe([0.7] * 100); policy.fresh_events
100
>>> policy.should_adapt(drift_confirmed=True, pseudo_count=10)  # too few pseudo-labels yet
False
>>> policy.should_adapt(drift_confirmed=True, pseudo_count=80)
True
>>> policy.adaptation_started(); policy.record_outcome("promoted", expected_confidence=0.9)
>>> t[0] = 30.0
>>> policy.should_adapt(drift_confirmed=True, pseudo_count=80)  # cooling down
False
>>> policy.observe([0.5, 0.6, 0.55]); policy.rollback_needed
True
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Callable, Iterable, Literal

import numpy as np

Outcome = Literal["promoted", "rejected", "failed"]
OUTCOMES = ("promoted", "rejected", "failed")


class AdaptationPolicy:
    """The adaptation state machine; every hyperparameter is a public, validated attribute.

    Parameters
    ----------
    cooldown_seconds
        Least time between the end of one adaptation (or a rollback) and the start of the next.
    min_pseudo_labels
        Pseudo-labels the buffer must hold before adapting.
    min_fresh_events
        Predictions that must be observed after drift is confirmed before adapting.
    max_wait_seconds
        After drift has been confirmed this long, adapt even with fewer pseudo-labels.
    max_consecutive_rejections
        Rejected (or rolled-back) candidates in a row that mean "labels needed".
    rollback_window
        Predictions watched after a promotion.
    rollback_tolerance
        Drop of mean confidence, below the candidate's expectation, that triggers a rollback.
    feedback_window
        Most recent (prediction, label) feedback pairs that live accuracy is taken over.
    min_feedback
        Feedback pairs needed before live accuracy is trusted.
    min_live_accuracy
        Live accuracy under which labels are needed.
    max_confidence_gap
        Labels are needed when live accuracy falls this far under the mean confidence of the same predictions.
    clear_after_calm_events
        Predictions without confirmed drift after which a rejection-raised "labels needed" clears (0: never).
    refine_after_events
        Inputs of the drifted domain, counted from the drift's confirmation, after which a promoted candidate is
        refined once (0: never).
    clock
        Seconds, monotone; ``time.monotonic`` unless a simulation supplies its own.
    """

    def __init__(
        self,
        cooldown_seconds: float = 120.0,
        min_pseudo_labels: int = 50,
        max_consecutive_rejections: int = 3,
        rollback_window: int = 500,
        rollback_tolerance: float = 0.05,
        *,
        max_wait_seconds: float = 60.0,
        min_fresh_events: int = 256,
        feedback_window: int = 200,
        min_feedback: int = 50,
        min_live_accuracy: float = 0.5,
        max_confidence_gap: float = 0.2,
        clear_after_calm_events: int = 1000,
        refine_after_events: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if cooldown_seconds < 0 or max_wait_seconds < 0:
            raise ValueError("cooldown_seconds and max_wait_seconds must be >= 0")
        if min_pseudo_labels < 0 or min_fresh_events < 0:
            raise ValueError(f"min_pseudo_labels and min_fresh_events must be >= 0, got {min_pseudo_labels}, "
                             f"{min_fresh_events}")
        if max_consecutive_rejections < 1:
            raise ValueError(f"max_consecutive_rejections must be >= 1, got {max_consecutive_rejections}")
        if rollback_window < 1 or feedback_window < 1 or min_feedback < 1:
            raise ValueError("rollback_window, feedback_window and min_feedback must be >= 1")
        if clear_after_calm_events < 0 or refine_after_events < 0:
            raise ValueError(f"clear_after_calm_events and refine_after_events must be >= 0, got "
                             f"{clear_after_calm_events}, {refine_after_events}")
        if min_feedback > feedback_window:
            raise ValueError(f"min_feedback ({min_feedback}) cannot exceed feedback_window ({feedback_window})")
        for name, value in (("rollback_tolerance", rollback_tolerance), ("min_live_accuracy", min_live_accuracy),
                            ("max_confidence_gap", max_confidence_gap)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        self.cooldown_seconds = cooldown_seconds
        self.min_pseudo_labels = min_pseudo_labels
        self.max_consecutive_rejections = max_consecutive_rejections
        self.rollback_window = rollback_window
        self.rollback_tolerance = rollback_tolerance
        self.max_wait_seconds = max_wait_seconds
        self.min_fresh_events = min_fresh_events
        self.feedback_window = feedback_window
        self.min_feedback = min_feedback
        self.min_live_accuracy = min_live_accuracy
        self.max_confidence_gap = max_confidence_gap
        self.clear_after_calm_events = clear_after_calm_events
        self.refine_after_events = refine_after_events
        self.clock = clock
        self._reset()

    def _reset(self) -> None:
        self.counts = {**{o: 0 for o in OUTCOMES}, "rolled_back": 0, "fallbacks": 0, "refinements": 0}
        self.consecutive_rejections = 0
        self.in_flight = False
        self.refining = False
        self.refinement_cancelled = False
        """A fallback or rollback came while the refinement ran: its candidate must not be served."""
        self.refine_due = False
        """A promoted candidate awaits its refinement (`should_refine` says when)."""
        self.domain_events = 0
        """Predictions since the drift was confirmed, through its adaptation and promotion, until the next one."""
        self.labels_needed = False
        self.labels_needed_reason: str | None = None
        self._labels_needed_by_feedback = False
        self._labels_unused = False
        """Labels resolved "labels needed" and no adaptation started since has ended: the feedback that keeps
        arriving is the old model's mistakes on them, not news (see `record_feedback`), and a candidate started
        before they came did not learn from them (its rejection asks for nothing more)."""
        self._run_has_labels = False  # the adaptation in flight started after labels resolved "labels needed"
        self._asked_while_trying = False  # "labels needed" was raised as the adaptation in flight started
        self._drift_now = False
        self._calm_events = 0
        self._last_finished: float | None = None
        self._drift_since: float | None = None
        self.fresh_events = 0
        self._feedback: deque[tuple[bool, float]] = deque(maxlen=self.feedback_window)
        self._watch_expected: float | None = None
        self._watch_sum = 0.0
        self._watch_seen = 0
        self.rollback_needed = False

    # -- adapting --------------------------------------------------------------------
    def _now(self, now: float | None) -> float:
        return self.clock() if now is None else float(now)

    def cooldown_remaining(self, now: float | None = None) -> float:
        if self._last_finished is None:
            return 0.0
        return max(0.0, self.cooldown_seconds - (self._now(now) - self._last_finished))

    def should_adapt(self, now: float | None = None, *, drift_confirmed: bool, pseudo_count: int) -> bool:
        """Whether to start an adaptation now (call `adaptation_started` when you do)."""
        now = self._now(now)
        self._drift_now = drift_confirmed
        if not drift_confirmed:
            self._drift_since = None
            return False
        if self._drift_since is None:
            self._drift_since, self.fresh_events, self.domain_events = now, 0, 0
        if self._held_back:
            return False
        if self.cooldown_remaining(now) > 0 or self.fresh_events < self.min_fresh_events:
            return False
        waited = now - self._drift_since
        return pseudo_count >= self.min_pseudo_labels or waited >= self.max_wait_seconds

    def domain_moved(self) -> None:
        """The drift stays confirmed but its inputs have moved on to another domain: the adaptation waits for
        ``min_fresh_events`` of the new one, so that its window does not straddle the change (a candidate made
        on a straddling window is refused as stale by its guardrails once it is done)."""
        if self._drift_since is not None:
            self.fresh_events = self.domain_events = 0

    def should_refine(self, *, drift_confirmed: bool) -> bool:
        """Whether to refine the promoted model now (call `adaptation_started` with ``refinement=True``).

        Neither the cooldown nor the promoted model's watch holds it back (see the module's docstring).
        """
        if not self.refine_due or self.domain_events < self.refine_after_events or drift_confirmed:
            return False
        return not self._blocked

    @property
    def _blocked(self) -> bool:
        """No adaptation of any kind may start: one runs, labels are needed, or a promotion failed its watch."""
        return self.in_flight or self.labels_needed or self.rollback_needed

    @property
    def _held_back(self) -> bool:
        """No adaptation for a drift may start: `_blocked`, or a promotion is still on watch."""
        return self._blocked or self._watch_expected is not None

    def should_roll_back(self) -> bool:
        """Whether to undo the last promotion now: its watch failed. Not while an adaptation for a drift runs
        (none can start during a watch); while a refinement runs, yes: it is cancelled."""
        return self.rollback_needed and (not self.in_flight or self.refining)

    def should_fall_back(self, *, drift_confirmed: bool, serving_base: bool) -> bool:
        """Whether to serve the base model again now (a new drift while an adapted model serves).

        Not while an adaptation for the base runs; while a refinement runs, yes: it is cancelled.
        """
        return drift_confirmed and not serving_base and (not self.in_flight or self.refining)

    def record_fallback(self, now: float | None = None) -> None:
        """The base model serves again: any post-swap watch ends; drift must be re-confirmed against the base.

        A refinement still running is cancelled: its domain has gone (see `refinement_cancelled`).
        """
        self.refinement_cancelled = self.in_flight and self.refining
        self._watch_expected = None
        self.rollback_needed = False
        self._drift_since = None
        self.refine_due = False
        self.counts["fallbacks"] += 1

    def adaptation_started(self, now: float | None = None, *, refinement: bool = False) -> None:
        """An adaptation starts (``refinement``: the base again, for the promoted model's domain; `should_refine`)."""
        if self.in_flight:
            raise RuntimeError("an adaptation is already running")
        self.in_flight = True
        self._run_has_labels = self._labels_unused
        self._asked_while_trying = False
        self.refining = refinement
        self.refinement_cancelled = False
        self.refine_due = False
        if refinement:
            self.counts["refinements"] += 1

    def record_outcome(self, outcome: Outcome, now: float | None = None, *,
                       expected_confidence: float | None = None, confidence_collapsed: str | None = None,
                       window_unfit: bool = False) -> None:
        """What became of the adaptation; a promotion starts the post-swap watch.

        ``expected_confidence`` is the candidate's mean confidence on the drifted
        window (from the guardrail report); without it nothing is watched.
        ``confidence_collapsed`` (why, or None) makes one rejection enough for "labels needed"; a rejection for an
        unfit window (the domain moved on while the candidate was made, or its classes came in runs) says nothing of
        the drift and is not counted.
        """
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
        if self._run_has_labels:
            self._labels_unused = False
        self._run_has_labels = False
        asked, self._asked_while_trying = self._asked_while_trying, False
        self.in_flight = False
        self._last_finished = self._now(now)
        self._drift_since = None
        self.counts[outcome] += 1
        refinement, self.refining = self.refining, False
        if outcome == "promoted" and not refinement and self.refine_after_events > 0:
            self.refine_due = True
        if outcome == "promoted":
            if asked and self.labels_needed:  # the candidate did what labels were asked for
                self._clear_labels_needed()
            self.consecutive_rejections = 0
            if expected_confidence is not None:
                self._watch_expected, self._watch_sum, self._watch_seen = float(expected_confidence), 0.0, 0
        elif outcome == "rejected" and not refinement and not window_unfit and not self._labels_unused:
            # (a refused refinement leaves a good model; with labels not yet learnt from, the next try uses them)
            self._count_rejection("guardrails rejected")
            if confidence_collapsed and not self.labels_needed:
                self._need_labels(f"guardrails rejected the candidate and {confidence_collapsed}")

    def _count_rejection(self, what: str) -> None:
        self.consecutive_rejections += 1
        if self.consecutive_rejections >= self.max_consecutive_rejections and not self.labels_needed:
            self._need_labels(f"{what} {self.consecutive_rejections} candidates in a row")

    def _need_labels(self, reason: str, *, by_feedback: bool = False) -> None:
        self.labels_needed = True
        self.labels_needed_reason = reason
        self._labels_needed_by_feedback = by_feedback
        self._calm_events = 0

    def ask_for_labels(self, why: str) -> None:
        """Self-training starts though the served model's confidence has collapsed: ask for labels now, not when
        the candidate is refused seconds later. A promotion clears the request; with labels already arrived and
        not yet learnt from, nothing is asked."""
        if not self.labels_needed and not self._labels_unused:
            self._need_labels(why)
            self._asked_while_trying = self.in_flight

    def resolve_labels_needed(self) -> None:
        """Labels arrived (or an operator decided): adapting may resume."""
        self._clear_labels_needed()
        self._feedback.clear()
        self._labels_unused = True

    @property
    def labels_needed_for_a_drift(self) -> bool:
        """Labels are needed because self-training failed on a drift (rejections, a collapse), not because the
        feedback labels disagreed: the alarm belongs to that drift and ends with it (`drift_left`)."""
        return self.labels_needed and not self._labels_needed_by_feedback

    def drift_left(self) -> None:
        """The stream has left the drift that asked for labels for another one: its alarm goes (one raised by
        feedback waits for labels). Nothing was learnt, so nothing counts as labels unused."""
        if self.labels_needed_for_a_drift:
            self._clear_labels_needed()

    def _clear_labels_needed(self) -> None:
        self.labels_needed = False
        self.labels_needed_reason = None
        self._labels_needed_by_feedback = False
        self.consecutive_rejections = 0

    # -- post-swap watch ---------------------------------------------------------------
    def observe(self, confidences: Iterable[float]) -> None:
        """Confidences of served predictions: counted as fresh after a drift, and watched after a promotion."""
        c = np.asarray(list(confidences), dtype=np.float64)
        if self._drift_since is not None:
            self.fresh_events += len(c)
        if self._drift_since is not None or self.refine_due:
            self.domain_events += len(c)
        self._calm_events = 0 if self._drift_now else self._calm_events + len(c)
        if (self.labels_needed and not self._labels_needed_by_feedback and self.clear_after_calm_events
                and self._calm_events >= self.clear_after_calm_events):
            self.resolve_labels_needed()
        if self._watch_expected is None:
            return
        c = c[: self.rollback_window - self._watch_seen]
        self._watch_sum += float(c.sum())
        self._watch_seen += len(c)
        if self._watch_seen >= self.rollback_window:
            if self._watch_sum / self._watch_seen < self._watch_expected - self.rollback_tolerance:
                self.rollback_needed = True
            self._watch_expected = None

    @property
    def watching(self) -> bool:
        return self._watch_expected is not None

    def record_rollback(self, now: float | None = None) -> None:
        """The swap was undone; the cooldown restarts and the candidate counts as rejected.

        A refinement still running is cancelled (see `refinement_cancelled`).
        """
        self.refinement_cancelled = self.in_flight and self.refining
        self.rollback_needed = False
        self._watch_expected = None
        self._last_finished = self._now(now)
        self.refine_due = False
        self.counts["rolled_back"] += 1
        self._count_rejection("rolled back")

    # -- feedback labels ----------------------------------------------------------------
    def record_feedback(self, predictions: Iterable[int], labels: Iterable[int],
                        confidences: Iterable[float] | None = None) -> None:
        """(served prediction, true label[, its confidence]) triples from the feedback topic.

        Live accuracy too low (or too far under the promised confidence) raises "labels needed", except between
        `resolve_labels_needed` and the end of the next adaptation: those labels are what it will learn from, and
        the model that served them is the one they were asked for. (On the concept bench the labels that arrived
        after the first 200 raised it again at once, and no candidate ever learnt from them.)"""
        p, y = np.asarray(list(predictions)), np.asarray(list(labels))
        c = np.full(p.shape, np.nan) if confidences is None else np.asarray(list(confidences), dtype=np.float64)
        if p.shape != y.shape or p.shape != c.shape:
            raise ValueError(f"got {p.size} predictions, {y.size} labels and {c.size} confidences")
        self._feedback.extend(zip((p == y).tolist(), c.tolist()))
        accuracy, expected = self.live_accuracy, self.expected_accuracy
        if accuracy is None or self.labels_needed or self._labels_unused:
            return
        if accuracy < self.min_live_accuracy:
            self._need_labels(f"live accuracy {accuracy:.3f} < {self.min_live_accuracy} on feedback labels",
                              by_feedback=True)
        elif expected is not None and accuracy < expected - self.max_confidence_gap:
            self._need_labels(f"live accuracy {accuracy:.3f} is {expected - accuracy:.3f} under the model's "
                              f"confidence {expected:.3f} on feedback labels", by_feedback=True)

    @property
    def live_accuracy(self) -> float | None:
        """Accuracy over the last ``feedback_window`` feedback pairs; None before ``min_feedback``."""
        if len(self._feedback) < self.min_feedback:
            return None
        return float(np.mean([ok for ok, _ in self._feedback]))

    @property
    def expected_accuracy(self) -> float | None:
        """Mean calibrated confidence of the same feedback predictions (what accuracy should be)."""
        conf = [c for _, c in self._feedback if not np.isnan(c)]
        if len(conf) < self.min_feedback:
            return None
        return float(np.mean(conf))

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        """Plain JSON types, for ``GET /drift`` and metrics."""
        return {
            "labels_needed": self.labels_needed,
            "labels_needed_reason": self.labels_needed_reason,
            "in_flight": self.in_flight,
            "refining": self.refining,
            "refine_due": self.refine_due,
            "fresh_events": self.fresh_events,
            "domain_events": self.domain_events,
            "cooldown_remaining_s": self.cooldown_remaining(now),
            "consecutive_rejections": self.consecutive_rejections,
            "outcomes": dict(self.counts),
            "live_accuracy": self.live_accuracy,
            "expected_accuracy": self.expected_accuracy,
            "feedback_count": len(self._feedback),
            "watch": {"active": self.watching, "seen": self._watch_seen, "expected_confidence": self._watch_expected,
                      "mean_confidence": self._watch_sum / self._watch_seen if self._watch_seen else None},
            "rollback_needed": self.rollback_needed,
        }
