"""driftwise.drift.prior_drift: a moved class prior is seen from the predictions alone, and a steady one is not."""

import numpy as np
import pytest

from driftwise.drift.prior_drift import PriorDriftDetector


def _predictions(n: int, prior: list[float], seed: int, source: list[float] | None = None,
                 accuracy: float = 0.75) -> np.ndarray:
    """Classes drawn from ``prior``; a guess right ``accuracy`` of the time; the probabilities the guess implies
    under ``source`` (default ``prior``), the prior the model was trained under: a calibrated model under a label
    shift."""
    rng = np.random.default_rng(seed)
    k = len(prior)
    y = rng.choice(k, size=n, p=prior)
    guess = np.where(rng.random(n) < accuracy, y, (y + rng.integers(1, k, size=n)) % k)
    channel = np.full((k, k), (1 - accuracy) / (k - 1)) + np.eye(k) * (accuracy - (1 - accuracy) / (k - 1))
    posterior = np.asarray(source or prior)[None, :] * channel[:, guess].T  # p(y | guess) up to a constant
    return posterior / posterior.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("prior", [[0.5, 0.5], [0.8, 0.15, 0.05]])
def test_twenty_thousand_predictions_at_the_reference_prior_raise_nothing(prior):
    detector = PriorDriftDetector(np.array(prior))
    for start in range(0, 20_000, 50):
        detector.update_many(_predictions(50, prior, seed=start))
        assert not detector.drift_detected, (start, detector.last_p)
    assert detector.n_detections == 0 and detector.score < 1.0


@pytest.mark.parametrize("prior,new", [([0.5, 0.5], [0.1, 0.9]), ([0.8, 0.15, 0.05], [0.2, 0.1, 0.7])])
def test_a_moved_prior_is_detected_within_a_window_and_estimated(prior, new):
    detector = PriorDriftDetector(np.array(prior))
    detector.update_many(_predictions(1000, prior, seed=0))
    seen = None
    for start in range(0, 600, 16):
        detector.update_many(_predictions(16, new, seed=100 + start, source=prior))
        if detector.drift_detected:
            seen = start + 16
            break
    assert seen is not None and seen <= detector.window  # before the window holds only the new prior
    detector.update_many(_predictions(detector.window, new, seed=1, source=prior))
    assert detector.prior == pytest.approx(new, abs=0.1) and detector.n_detections == 1


def test_reset_forgets_the_window():
    detector = PriorDriftDetector(np.array([0.5, 0.5]))
    detector.update_many(_predictions(600, [0.1, 0.9], seed=0))
    assert detector.drift_detected
    detector.reset()
    assert not detector.drift_detected and detector.last_p == 1.0
    detector.update_many(_predictions(100, [0.1, 0.9], seed=1))  # fewer than a window: not tested yet
    assert not detector.drift_detected


def test_bad_arguments_are_refused_with_what_is_wrong():
    with pytest.raises(ValueError, match="summing to 1"):
        PriorDriftDetector(np.array([0.5, 0.6]))
    with pytest.raises(ValueError, match="stride"):
        PriorDriftDetector(np.array([0.5, 0.5]), window=10, stride=20)
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        PriorDriftDetector(np.array([0.5, 0.5])).update_many(np.ones((4, 3)) / 3)
