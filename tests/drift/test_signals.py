import math

import numpy as np
import pytest

from driftwise.drift.signals import SIGNAL_NAMES, compute_signals, confidence, entropy, margin


def _probabilities(n: int = 200, k: int = 7, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet([0.3] * k, size=n)


def _slow_signals(row: list[float]) -> tuple[float, float, float]:
    """Row-by-row reference implementation."""
    ordered = sorted(row, reverse=True)
    h = -sum(p * math.log(p) for p in row if p > 0) / math.log(len(row))
    return ordered[0], h, ordered[0] - ordered[1]


def test_signals_match_a_row_by_row_reference():
    p = _probabilities()
    expected = np.array([_slow_signals(row) for row in p.tolist()])
    np.testing.assert_allclose(confidence(p), expected[:, 0])
    np.testing.assert_allclose(entropy(p), expected[:, 1], atol=1e-12)
    np.testing.assert_allclose(margin(p), expected[:, 2])


def test_compute_signals_agrees_with_the_single_functions():
    p = _probabilities(seed=1)
    s = compute_signals(p)
    assert len(s) == len(p)
    np.testing.assert_array_equal(s.confidence, confidence(p))
    np.testing.assert_array_equal(s.entropy, entropy(p))
    np.testing.assert_array_equal(s.margin, margin(p))
    for name in SIGNAL_NAMES:
        assert s.get(name) is getattr(s, name)


def test_entropy_is_zero_for_one_hot_and_one_for_uniform_whatever_k():
    for k in (2, 3, 10, 100):
        p = np.vstack([np.eye(k)[0], np.full(k, 1.0 / k)])
        np.testing.assert_allclose(entropy(p), [0.0, 1.0], atol=1e-12)
        np.testing.assert_allclose(margin(p), [1.0, 0.0], atol=1e-12)


def test_signals_stay_in_their_ranges():
    p = _probabilities(n=1000, k=4, seed=2)
    s = compute_signals(p)
    assert np.all((s.confidence >= 0.25 - 1e-12) & (s.confidence <= 1))
    assert np.all((s.entropy >= 0) & (s.entropy <= 1))
    assert np.all((s.margin >= 0) & (s.margin <= 1))


def test_float32_calibrated_probabilities_are_accepted():
    p = _probabilities(seed=3).astype(np.float32)
    assert compute_signals(p).confidence.dtype == np.float64


def test_an_empty_batch_gives_empty_signals():
    s = compute_signals(np.zeros((0, 3)))
    assert len(s) == 0 and s.entropy.shape == (0,)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.array([0.5, 0.5]), r"shape \(n, k\)"),
        (np.ones((3, 1)), "at least 2 classes"),
        (np.array([[0.5, np.nan]]), "finite"),
        (np.array([[0.7, 0.7]]), "sum to 1"),
        (np.array([[1.5, -0.5]]), "non-negative"),
    ],
)
def test_signals_reject_what_is_not_a_batch_of_probabilities(bad, message):
    with pytest.raises(ValueError, match=message):
        compute_signals(bad)


def test_unknown_signal_name_is_refused():
    with pytest.raises(ValueError, match="unknown signal"):
        compute_signals(_probabilities(n=2)).get("variance")
