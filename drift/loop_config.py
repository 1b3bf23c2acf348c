"""`LoopConfig`: every setting of the drift loop, in a module of its own so that reading them costs no torch import.

The service's settings take their defaults from here (`driftwise.service.settings`), and
the benchmarks run these defaults: what is measured is what users get.

>>> LoopConfig().threshold, LoopConfig(window=128).window
(0.9, 128)
"""

from __future__ import annotations

from dataclasses import dataclass, fields

MIN_WINDOW = 64  # fewer inputs cannot re-estimate BatchNorm or calibrate a reference (manual triggers)


@dataclass(frozen=True)
class LoopConfig:
    """Every setting of the loop; the defaults are those the benchmark was validated with."""

    window: int = 256
    """Fresh inputs (seen since drift was confirmed) that must arrive before adapting; the adaptation window: the
    candidate adapts on the latest this many (`DriftLoop.adaptation_inputs`)."""
    window_capacity: int = 1024
    """Recent inputs kept."""
    threshold: float = 0.9
    """Calibrated confidence a prediction needs to enter the pseudo-label buffer."""
    capacity_per_class: int = 100
    min_pseudo_labels: int = 0
    cooldown_seconds: float = 10.0
    max_wait_seconds: float = 10.0
    rollback_window: int = 300
    rollback_tolerance: float = 0.1
    holdout_fraction: float = 1.0
    """Share of the buffer's pseudo-labels kept out of training for the agreement guardrail."""
    reference_false_alarm_rate: float = 1e-4
    feedback_window: int = 60
    min_feedback: int = 30
    refine_after: int = 1024
    """Inputs of the drifted domain (since its confirmation) after which the promoted candidate is refined: the
    base adapted again on all of them, or the latest ``window_capacity`` (0: never). On the validation
    split (bench/results/refine-val.md, the first window and 512 more events) the refined candidate's held-out
    gain over no-adapt was +15.9 points against the first one's +14.7."""
    normalize_after: int = 32
    """Inputs that must arrive after a drift is confirmed before the interim normalised model (0: never)."""
    normalize_window: int = 128
    """Latest inputs the interim's BatchNorm statistics are estimated on."""
    normalize_window_max: int = 512
    """Inputs of its domain a serving interim grows to: it is made again on all of them each time they are twice
    as many as it was made on, up to this or ``window_capacity`` (``normalize_window``: never). 128 inputs are
    enough to respond fast, not to estimate statistics well: offline, on the development streams' phases
    (bench/results/interim-growth), an interim of the latest 512 inputs gained +6.5 / +3.0 / +1.8 points on digits /
    ImageSegments / Waveform against +6.1 / +2.4 / +1.9 with 128, and on clean phases (a false alarm's interim)
    +0.4 / +0.6 / +0.1 against +0.1 / +0.0 / -0.1."""
    domain_check_every: int = 32
    """While an interim serves, inputs between checks that the stream has moved on from the domain it was made for
    (`Action.CHECK_DOMAIN`, 0: only with the source check, every ``normalize_window``). As prompt as the interim
    itself (``normalize_after``): the base's monitor, its drift latched, does not see the stream leave an interim's
    domain, and on a fresh-data trial a register decoded unsigned kept its interim serving the next fault's first
    75-165 events, 70 points under the frozen model. Two answers in a row replace the interim
    (`driftwise.service.adaptation.AdaptationController._check_domain`)."""
    collapse_confidence: float = 0.8
    """A rejected candidate raises "labels needed" at once when the served model's mean confidence over the
    monitor's rolling window is below this fraction of its reference's (0: only repeated rejections do).
    Chosen on development shifts (`driftwise bench collapse`, bench/results/collapse-confidence.md): served by
    the BatchNorm interim, covariate shifts kept >= 0.87 of the reference mean confidence, the label-changing
    inversion <= 0.76. Inversion is the only concept family, so this is not held-out evidence."""
    order_events: int = 512
    """Latest served predictions whose order says whether classes arrive in runs (`DriftLoop.classes_in_runs`)."""
    max_stream_correlation: float = 0.2
    """Above this temporal correlation of those predictions (`driftwise.drift.guardrails.temporal_correlation`) no
    interim, correction or candidate is asked for: the stream's classes arrive in runs."""
    seed: int = 0
    """Seeds the monitor's sampling detectors."""

    def __post_init__(self) -> None:
        for name in ("window", "window_capacity", "capacity_per_class", "rollback_window", "feedback_window",
                     "min_feedback"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.window > self.window_capacity:
            raise ValueError(f"window ({self.window}) cannot exceed window_capacity ({self.window_capacity})")
        if self.refine_after < 0 or self.normalize_after < 0:
            raise ValueError(f"refine_after and normalize_after must be >= 0, got {self.refine_after}, "
                             f"{self.normalize_after}")
        if self.normalize_window < 2:
            raise ValueError(f"normalize_window must be >= 2, got {self.normalize_window}")
        if self.normalize_window_max < self.normalize_window:
            raise ValueError(f"normalize_window_max ({self.normalize_window_max}) cannot be under normalize_window "
                             f"({self.normalize_window})")
        if self.min_pseudo_labels < 0 or self.cooldown_seconds < 0 or self.max_wait_seconds < 0:
            raise ValueError("min_pseudo_labels, cooldown_seconds and max_wait_seconds must be >= 0")
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if self.order_events < 2:
            raise ValueError(f"order_events must be >= 2, got {self.order_events}")
        for name in ("rollback_tolerance", "holdout_fraction", "collapse_confidence", "max_stream_correlation"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 < self.reference_false_alarm_rate < 1.0:
            raise ValueError(f"reference_false_alarm_rate must be in (0, 1), got {self.reference_false_alarm_rate}")
        if self.min_feedback > self.feedback_window:
            raise ValueError(f"min_feedback ({self.min_feedback}) cannot exceed feedback_window "
                             f"({self.feedback_window})")

    def to_dict(self) -> dict[str, float | int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
