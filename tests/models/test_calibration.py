"""Temperature scaling recovers a known temperature; ECE matches a slow reference."""

import numpy as np
import pytest
import torch

from driftwise.models.calibration import expected_calibration_error, fit_temperature


def _calibrated_logits(n: int = 3000, k: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits whose softmax is the true label distribution (labels drawn from it)."""
    g = torch.Generator().manual_seed(seed)
    logits = 2.0 * torch.randn(n, k, generator=g)
    y = torch.multinomial(logits.softmax(1), 1, generator=g).squeeze(1)
    return logits, y


@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0])
def test_fit_temperature_recovers_the_temperature_that_distorted_calibrated_logits(temperature):
    logits, y = _calibrated_logits()
    assert fit_temperature(logits * temperature, y) == pytest.approx(temperature, rel=0.1)


def test_temperature_scaling_lowers_ece_of_an_overconfident_model():
    logits, y = _calibrated_logits()
    overconfident = 3.0 * logits
    t = fit_temperature(overconfident, y)
    before = expected_calibration_error(overconfident.softmax(1), y)
    after = expected_calibration_error((overconfident / t).softmax(1), y)
    assert after < 0.03 < before


def test_fit_temperature_stays_finite_on_a_tiny_all_correct_calibration_set():
    logits = torch.tensor([[5.0, 0.0], [0.0, 4.0], [6.0, 1.0]])
    t = fit_temperature(logits, torch.tensor([0, 1, 0]))
    assert 0.01 < t < 1.0


def _ece_reference(probs: np.ndarray, y: np.ndarray, n_bins: int) -> float:
    conf, pred = probs.max(1), probs.argmax(1)
    edges = np.linspace(0, 1, n_bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        in_bin = (conf > lo) & (conf <= hi)
        if in_bin.any():
            total += in_bin.mean() * abs(conf[in_bin].mean() - (pred[in_bin] == y[in_bin]).mean())
    return total


@pytest.mark.parametrize("n_bins", [1, 10, 15])
def test_ece_matches_a_slow_reference(n_bins):
    logits, y = _calibrated_logits(500, 5, seed=3)
    probs = (2.0 * logits).softmax(1)
    expected = _ece_reference(probs.numpy().astype(np.float64), y.numpy(), n_bins)
    assert expected_calibration_error(probs, y, n_bins) == pytest.approx(expected, abs=1e-5)


def test_ece_is_zero_when_confident_and_always_right():
    probs = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(probs, torch.tensor([0, 1])) == 0.0


def test_bad_inputs_raise_value_error():
    with pytest.raises(ValueError, match="labels must be in"):
        fit_temperature(torch.zeros(2, 3), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="expected"):
        expected_calibration_error(torch.zeros(3), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="n_bins"):
        expected_calibration_error(torch.ones(2, 2) / 2, torch.tensor([0, 1]), n_bins=0)
