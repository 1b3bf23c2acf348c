"""PriorDriftDetector: has the class prior of the predictions moved?

A label shift (one class arriving far more often, each class's inputs unchanged)
moves a weak model's embeddings too little for the embedding test to see: on
river's Agrawal (two classes, a source model 70-74% accurate), a 90/10 prior held
for 3,000 events at 100 events/s was never confirmed as drift, in either direction
or on either of two seeds (`driftwise bench stream --families prior`), so nothing
corrected for it. What does move is the prior the model's probabilities imply.

Every ``stride`` predictions, on the latest ``window``, the prior is estimated by EM
(`driftwise.drift.label_shift.estimate_prior`) against the model's own mean posterior
on its source inputs (``probability_mean`` of its reference statistics: with that as
the source prior, the source itself is EM's fixed point however the model is biased
class by class), and the likelihood-ratio test of `driftwise.drift.label_shift` says
whether it moved. Drift when ``p < p_value`` and the prior moved by at least
``min_shift`` (total variation). The test runs some 50 times in a 1,500-event
phase, so its level is strict: replayed on the base models and events of six
finished stream runs (digits, ImageSegments, Waveform 80/15/5, Agrawal), the
smallest p in 12 clean phases was 1e-4; covariate shifts and label shifts reached
1e-8 to 1e-140.

Cost, on the monitor's thread: about 10 us a prediction (the digits and Phishing
`--families prior` runs' base models, 6,000 events each). EM runs to convergence, so
flat probabilities cost more: 7 ms a test, 200 us a prediction, on random 10-class
Dirichlet draws.

>>> rng = np.random.default_rng(0)
>>> def predictions(n, share):  # a model 80% sure, right 80% of the time, classes at ``share`` / 1 - share
...     y = rng.random(n) < share
...     right = rng.random(n) < 0.8
...     p1 = np.where(y == right, 0.8, 0.2)
...     return np.column_stack([1 - p1, p1])
>>> detector = PriorDriftDetector(np.array([0.5, 0.5]))
>>> detector.update_many(predictions(1000, 0.5))
>>> detector.drift_detected
False
>>> detector.update_many(predictions(400, 0.9))
>>> detector.drift_detected, np.round(detector.prior, 1).tolist()
(True, [0.1, 0.9])
"""

from __future__ import annotations

import numpy as np
from scipy.stats import chi2

from driftwise.drift.label_shift import EPS, estimate_prior


class PriorDriftDetector:
    """EM's likelihood-ratio test of the predicted class prior, on a sliding window (see the module)."""

    def __init__(self, reference_prior: np.ndarray, *, window: int = 256, stride: int = 32, p_value: float = 1e-6,
                 min_shift: float = 0.05) -> None:
        reference_prior = np.asarray(reference_prior, dtype=np.float64).ravel()
        if len(reference_prior) < 2 or reference_prior.min() < 0 or not np.isclose(reference_prior.sum(), 1.0,
                                                                                    atol=1e-3):
            raise ValueError(f"reference_prior must be >= 2 shares summing to 1, got {reference_prior.tolist()}")
        if window < 2 or not 1 <= stride <= window:
            raise ValueError(f"need window >= 2 and 1 <= stride <= window, got {window}, {stride}")
        if not 0.0 < p_value < 1.0 or not 0.0 <= min_shift <= 1.0:
            raise ValueError(f"need p_value in (0, 1) and min_shift in [0, 1], got {p_value}, {min_shift}")
        self.reference_prior = reference_prior / reference_prior.sum()
        self.window, self.stride, self.p_value, self.min_shift = window, stride, p_value, min_shift
        self.n_detections = 0
        self.reset()

    def reset(self) -> None:
        self._probs = np.zeros((self.window, len(self.reference_prior)))
        self._filled = self._next = self._since_test = 0
        self.drift_detected = False
        self.last_p = 1.0
        self.prior = self.reference_prior.copy()

    @property
    def score(self) -> float:
        """``log p / log p_value``: 1 at the threshold, higher past it."""
        return float(np.log(max(self.last_p, 1e-300)) / np.log(self.p_value))

    def update_many(self, probabilities: np.ndarray) -> None:
        """Observe calibrated probabilities ``(n, k)``; test every ``stride`` of them once ``window`` have come."""
        probs = np.asarray(probabilities, dtype=np.float64)
        if probs.ndim != 2 or probs.shape[1] != len(self.reference_prior):
            raise ValueError(f"probabilities must be (n, {len(self.reference_prior)}), got {probs.shape}")
        for row_start in range(0, len(probs), self.stride):
            chunk = probs[row_start:row_start + self.stride][-self.window:]
            slots = (self._next + np.arange(len(chunk))) % self.window
            self._probs[slots] = chunk
            self._next = int((self._next + len(chunk)) % self.window)
            self._filled = min(self.window, self._filled + len(chunk))
            self._since_test += len(chunk)
            if self._filled == self.window and self._since_test >= self.stride:
                self._test()

    def _test(self) -> None:
        self._since_test = 0
        prior = estimate_prior(self._probs, self.reference_prior)
        weights = np.maximum(prior, EPS) / np.maximum(self.reference_prior, EPS)
        statistic = float(2.0 * np.log(np.maximum((self._probs * weights).sum(axis=1), EPS)).sum())
        self.last_p = float(chi2.sf(max(statistic, 0.0), df=len(prior) - 1))
        self.prior = prior
        moved = 0.5 * float(np.abs(prior - self.reference_prior).sum()) >= self.min_shift
        detected = self.last_p < self.p_value and moved
        if detected and not self.drift_detected:
            self.n_detections += 1
        self.drift_detected = detected
