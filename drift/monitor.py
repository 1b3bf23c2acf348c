"""DriftMonitor: every label-free detector on one stream of predictions, and the rule that confirms drift.

One noisy detector must not retrain a model. The monitor feeds each prediction's
signals (`driftwise.drift.signals`) to river's scalar detectors (`driftwise.drift.detectors`) and its
embedding to the MMD test against the model's reference (`driftwise.drift.embedding_drift`),
and *confirms* drift only when the embedding test fires, or the test of the
predicted class prior (`driftwise.drift.prior_drift`, when the reference has the
model's mean probabilities), or when ``min_votes`` scalar detectors fired within
``vote_window`` events of each other. A confirmed
drift stays confirmed until `DriftMonitor.reset` (after an adaptation or a swap).

It knows nothing of Prometheus or HTTP: `DriftMonitor.snapshot` returns a plain
JSON-able dict that the service maps to metrics and serves at ``GET /drift``.
Event indices count predictions since the last reset, from 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from driftwise.drift.detectors import ScalarDetector, make_detector
from driftwise.drift.embedding_drift import EmbeddingDriftDetector
from driftwise.drift.prior_drift import PriorDriftDetector
from driftwise.drift.signals import SIGNAL_NAMES, compute_signals

EMBEDDING = "embedding"
PRIOR = "prior"
MIN_SCALE = 0.05  # floor on a signal's reference std, so a model sure of everything does not make tests hair-trigger


@dataclass(frozen=True)
class DetectorSpec:
    """Which detector (``kind``, with ``params``) watches which signal."""

    signal: str
    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)


DEFAULT_DETECTORS: dict[str, DetectorSpec] = {
    "adwin": DetectorSpec("margin", "adwin"),
    "page_hinkley": DetectorSpec("entropy", "page_hinkley", {"mode": "up"}),
}
"""The scalar detectors a monitor runs unless told otherwise.

KSWIN (`KSWIN_ON_CONFIDENCE`) is not among them: river runs a scipy KS test per value it is fed, so even
testing one prediction in 4 it was 60-64% of the monitor's CPU (72-74 -> 28-30 us an event on digits, 138-145 ->
50-52 on tables), and replayed on nine stream runs' pretrained models and events it confirmed 3 of 48 drifted
phases sooner, by 8-16 events, with no false confirmation in 20,000 clean events either way
(bench/results/detector-value.md). ADWIN and Page-Hinkley each confirmed 2-3 of 7 image phases sooner.
"""

KSWIN_ON_CONFIDENCE = DetectorSpec("confidence", "kswin", {"window_size": 100, "stat_size": 30, "subsample": 4})
"""KSWIN as the defaults ran it until they dropped it; to run it again:
``DriftMonitor(reference, detectors={**DEFAULT_DETECTORS, "kswin": KSWIN_ON_CONFIDENCE})``."""


class DriftMonitor:
    """Watches predictions for drift without labels.

    Parameters
    ----------
    reference
        The arrays saved with the model (`driftwise.drift.embedding_drift.reference_statistics`);
        ``None`` runs the scalar detectors only.
    detectors
        Scalar detectors by name; `DEFAULT_DETECTORS` when ``None``.
    min_votes
        Scalar detectors that must fire within ``vote_window`` events to confirm.
    vote_window
        Events within which the votes must fall.
    embedding_confirms
        Whether the embedding test alone confirms (otherwise it is one more vote).
    embedding_stride
        Events between two embedding tests.
    rolling_window
        Predictions the signal means are taken over.
    seed
        Seeds the detectors that sample (KSWIN).

    Examples
    --------
    >>> from driftwise.drift.embedding_drift import reference_statistics
    >>> rng = np.random.default_rng(0)
    >>> def batch(n, shifted=False):
    ...     logits = rng.normal(size=(n, 5))
    ...     logits[:, 0] += 2.0 if shifted else 5.0
    ...     p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    ...     return p, rng.normal(size=(n, 8)) + (0.3 if shifted else 0.0)
    >>> p, z = batch(600)
    >>> monitor = DriftMonitor(reference_statistics(z, p, window=100))
    >>> for start in range(0, 2000, 20):
    ...     monitor.update(*batch(20, shifted=start >= 1000))
    ...     if monitor.newly_confirmed:
    ...         print(monitor.last_confirmation_index, monitor.reason)
    1039 2 detectors within 200 events: adwin, page_hinkley
    >>> monitor.snapshot()["detectors"]["embedding"]["detected"]
    True
    """

    def __init__(
        self,
        reference: Mapping[str, np.ndarray] | None = None,
        *,
        detectors: Mapping[str, DetectorSpec] | None = None,
        min_votes: int = 2,
        vote_window: int = 200,
        embedding_confirms: bool = True,
        embedding_stride: int = 10,
        rolling_window: int = 500,
        seed: int = 0,
    ) -> None:
        specs = dict(DEFAULT_DETECTORS if detectors is None else detectors)
        for name, spec in specs.items():
            if spec.signal not in SIGNAL_NAMES:
                raise ValueError(f"detector {name!r} watches unknown signal {spec.signal!r}; use one of {SIGNAL_NAMES}")
        if EMBEDDING in specs or PRIOR in specs:
            raise ValueError(f"{EMBEDDING!r} and {PRIOR!r} are reserved for the embedding and class-prior detectors")
        voters = len(specs) + (0 if embedding_confirms or reference is None else 1)
        if not 1 <= min_votes <= max(voters, 1):
            raise ValueError(f"min_votes must be between 1 and the {voters} voting detectors, got {min_votes}")
        if vote_window < 1 or rolling_window < 1 or embedding_stride < 1:
            raise ValueError("vote_window, rolling_window and embedding_stride must be >= 1")
        self.specs = specs
        self.min_votes = min_votes
        self.vote_window = vote_window
        self.embedding_confirms = embedding_confirms
        self.embedding_stride = embedding_stride
        self.rolling_window = rolling_window
        self.seed = seed
        self.events_seen = 0
        self.confirmations = 0
        self.last_confirmation_reason: str | None = None
        """Why the latest confirmation happened; kept across resets, like ``confirmations``."""
        self._detections = {name: 0 for name in [*specs, EMBEDDING, PRIOR]}
        self._build(reference)
        self._reset()

    def _build(self, reference: Mapping[str, np.ndarray] | None) -> None:
        self.reference = None if reference is None else dict(reference)
        self._scalar: dict[str, ScalarDetector] = {}
        for name, spec in self.specs.items():
            params = dict(spec.params)
            if spec.kind == "kswin":
                params.setdefault("seed", self.seed)
            if spec.kind == "page_hinkley" and self.reference and f"{spec.signal}_std" in self.reference:
                params.setdefault("scale", max(float(self.reference[f"{spec.signal}_std"][0]), MIN_SCALE))
            self._scalar[name] = make_detector(spec.kind, **params)
        self._embedding = None
        if self.reference is not None:
            self._embedding = EmbeddingDriftDetector.from_reference(self.reference, stride=self.embedding_stride)
        self._prior = None
        if self.reference is not None and "probability_mean" in self.reference:
            self._prior = PriorDriftDetector(np.asarray(self.reference["probability_mean"], dtype=np.float64))

    def _reset(self) -> None:
        for det in self._scalar.values():
            det.reset()
        if self._embedding is not None:
            self._embedding.reset()
        if self._prior is not None:
            self._prior.reset()
        self.events_since_reset = 0
        self.drift_confirmed = False
        self.newly_confirmed = False
        self.reason: str | None = None
        self.confirmed_by: str | None = None
        """The detector whose firing confirmed the drift latched now (``"embedding"``, ``"prior"``, or the vote's
        last); None while none is confirmed or when the loop holds it (`hold_confirmed`)."""
        self.confirmed_prior: np.ndarray | None = None
        """The predicted class prior the prior test estimated when it confirmed the drift latched now."""
        self.last_confirmation_index: int | None = None
        self._last_fired: dict[str, int | None] = {name: None for name in self._detections}
        self._signals = np.zeros((self.rolling_window, len(SIGNAL_NAMES)))
        self._signals_filled = 0
        self._signals_next = 0

    def reset(self, reference: Mapping[str, np.ndarray] | None = None) -> None:
        """Start over (after an adaptation or swap); pass the new model's reference to replace the old one.

        Detection and confirmation counts are kept, so they stay monotone.
        """
        if reference is not None:
            self._build(reference)
        self._reset()

    def update(self, probabilities: np.ndarray, embeddings: np.ndarray | None = None) -> None:
        """Observe one batch: calibrated probabilities ``(n, k)`` and, optionally, embeddings ``(n, dim)``."""
        signals = compute_signals(probabilities)
        n = len(signals)
        if embeddings is not None and np.shape(embeddings)[0] != n:
            raise ValueError(f"got {n} probabilities but {np.shape(embeddings)[0]} embeddings")
        self.newly_confirmed = False
        if n == 0:
            return
        start = self.events_since_reset
        fired: list[tuple[int, str]] = []
        for name, det in self._scalar.items():
            for i, x in enumerate(signals.get(self.specs[name].signal).tolist()):
                det.update(x)
                if det.drift_detected:
                    fired.append((start + i, name))
        if self._embedding is not None and embeddings is not None:
            before = self._embedding.n_detections
            self._embedding.update_many(embeddings)
            self._detections[EMBEDDING] += self._embedding.n_detections - before
            if self._embedding.drift_detected:
                fired.append((start + n - 1, EMBEDDING))
        if self._prior is not None:
            before = self._prior.n_detections
            self._prior.update_many(probabilities)
            self._detections[PRIOR] += self._prior.n_detections - before
            if self._prior.drift_detected:
                fired.append((start + n - 1, PRIOR))
        self._record_signals(np.column_stack([signals.get(s) for s in SIGNAL_NAMES]))
        self.events_since_reset += n
        self.events_seen += n
        for index, name in sorted(fired):
            if name != EMBEDDING:
                self._detections[name] += 1
            self._last_fired[name] = index
            if not self.drift_confirmed:
                self._apply_rule(index, name)

    def _apply_rule(self, index: int, name: str) -> None:
        if name == EMBEDDING and self.embedding_confirms:
            self._confirm(index, f"embedding MMD over its calibrated threshold (score {self._embedding.score:.2f})",
                          name)
            return
        if name == PRIOR:
            self.confirmed_prior = self._prior.prior.copy()
            shares = "/".join(f"{q:.2f}" for q in self.confirmed_prior)
            self._confirm(index, f"predicted class prior moved to {shares} (p={self._prior.last_p:.1e})", name)
            return
        votes = [
            d for d, last in self._last_fired.items()
            if last is not None and index - last < self.vote_window and d != PRIOR
            and not (d == EMBEDDING and self.embedding_confirms)
        ]
        if len(votes) >= self.min_votes:
            self._confirm(index, f"{len(votes)} detectors within {self.vote_window} events: {', '.join(votes)}",
                          name)

    def hold_confirmed(self, reason: str) -> None:
        """Count the drift as confirmed on the loop's own evidence, not on a detector's (no ``newly_confirmed``:
        nothing restarts, and `confirmations` counts detectors' confirmations only)."""
        self.drift_confirmed = True
        self.reason = reason

    def _confirm(self, index: int, reason: str, by: str) -> None:
        self.drift_confirmed = True
        self.newly_confirmed = True
        self.reason = reason
        self.confirmed_by = by
        self.last_confirmation_reason = reason
        self.last_confirmation_index = index
        self.confirmations += 1

    @property
    def prior_alone(self) -> bool:
        """Whether the drift latched now was confirmed on the predicted class prior and the embedding test has
        stayed under its threshold since: a new class mix, as far as the features can tell.

        Read when answered, not when confirmed: the prior test can confirm first while the features are moving, and
        the embedding test, over its threshold later, no longer confirms anything (the drift is latched). Taken then as "the prior alone" for good, a covariate drift had its BatchNorm interims refused and
        no candidate made: on the held-out images (seed 0, 48af844) the base served gamma, shear and stripes at
        +0.0 points (44 interims refused on ``prior_only``, 5,400 events).
        """
        if self.confirmed_by != PRIOR or self.last_confirmation_index is None:
            return False
        moved = self._last_fired.get(EMBEDDING)
        return moved is None or moved < self.last_confirmation_index

    def _record_signals(self, rows: np.ndarray) -> None:
        rows = rows[-self.rolling_window:]
        slots = (self._signals_next + np.arange(len(rows))) % self.rolling_window
        self._signals[slots] = rows
        self._signals_next = int((self._signals_next + len(rows)) % self.rolling_window)
        self._signals_filled = min(self.rolling_window, self._signals_filled + len(rows))

    @property
    def signal_means(self) -> dict[str, float | None]:
        """Mean of each signal over the last ``rolling_window`` predictions (``None`` before any)."""
        if self._signals_filled == 0:
            return {s: None for s in SIGNAL_NAMES}
        means = self._signals[: self._signals_filled].mean(axis=0)
        return {s: float(m) for s, m in zip(SIGNAL_NAMES, means)}

    def snapshot(self) -> dict[str, Any]:
        """State for ``GET /drift`` and metrics; plain JSON types only.

        Per detector: ``score`` (>= 1 at its threshold), ``detected`` (a scalar
        detector fired within the last ``vote_window`` events; the embedding test
        is over its threshold now), ``detections`` (total, monotone).
        """
        now = self.events_since_reset
        detectors: dict[str, dict[str, Any]] = {}
        for name, det in self._scalar.items():
            last = self._last_fired[name]
            detectors[name] = {
                "kind": det.kind, "signal": self.specs[name].signal, "score": _finite(det.score),
                "detected": last is not None and now - 1 - last < self.vote_window,
                "detections": self._detections[name], "last_detection_index": last,
            }
        if self._embedding is not None:
            detectors[EMBEDDING] = {
                "kind": "mmd", "signal": "embedding", "score": _finite(self._embedding.score),
                "detected": bool(self._embedding.drift_detected), "detections": self._detections[EMBEDDING],
                "last_detection_index": self._last_fired[EMBEDDING],
            }
        if self._prior is not None:
            detectors[PRIOR] = {
                "kind": "em_likelihood_ratio", "signal": "class prior", "score": _finite(self._prior.score),
                "detected": bool(self._prior.drift_detected), "detections": self._detections[PRIOR],
                "last_detection_index": self._last_fired[PRIOR],
                "prior": [round(float(q), 4) for q in self._prior.prior],
            }
        return {
            "events_seen": self.events_seen,
            "events_since_reset": now,
            "drift_confirmed": self.drift_confirmed,
            "reason": self.reason,
            "confirmations": self.confirmations,
            "last_confirmation_reason": self.last_confirmation_reason,
            "last_confirmation_index": self.last_confirmation_index,
            "rule": {"min_votes": self.min_votes, "vote_window": self.vote_window,
                     "embedding_confirms": self.embedding_confirms},
            "detectors": detectors,
            "signals": self.signal_means,
        }


def _finite(x: float, cap: float = 1e6) -> float:
    """JSON has no inf or nan."""
    return 0.0 if np.isnan(x) else float(min(max(x, 0.0), cap))
