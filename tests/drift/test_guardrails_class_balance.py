"""Class balance: a candidate's class shares are judged against the evidence, not against a fixed share.

The models here are scripted: each input holds the class the current model predicts and the class the candidate
predicts, one-hot, side by side; each model reads its own half. So the class shares on the window are exact.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from driftwise.drift.guardrails import GuardrailConfig, class_shift, evaluate_candidate
from driftwise.models.classifier import Classifier
from driftwise.models.config import ModelConfig


def scripted(k: int, half: int) -> Classifier:
    """Predicts, with high confidence, the class marked in half ``half`` (0: current's, 1: candidate's)."""
    model = Classifier(ModelConfig(encoder="mlp", input_shape=(2 * k,), num_classes=k, embed_dim=2 * k))
    model.encoder = nn.Identity()
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.weight[:, half * k:(half + 1) * k] = 10.0 * torch.eye(k)
        model.head.bias.zero_()
    return model.eval()


def labels(shares: list[float], n: int, seed: int) -> np.ndarray:
    """``n`` labels with exactly these class shares, shuffled."""
    counts = np.round(np.asarray(shares) * n).astype(int)
    counts[0] += n - counts.sum()
    return np.random.default_rng(seed).permutation(np.repeat(np.arange(len(shares)), counts))


def inputs(current: np.ndarray, candidate: np.ndarray, k: int) -> np.ndarray:
    eye = np.eye(k, dtype=np.float32)
    return np.concatenate([eye[current], eye[candidate]], axis=1)


def class_checks(prior: list[float], current: list[float], candidate: list[float], n: int = 500,
                 anchor_shares: list[float] | None = None):
    """The class_entropy and class_shift checks of a candidate with these shares on a window of ``n``; the
    current model was trained under ``prior``, and its anchors have ``anchor_shares`` (default: the prior's)."""
    k = len(prior)
    window = inputs(labels(current, n, seed=1), labels(candidate, n, seed=2), k)
    anchors_y = labels(anchor_shares or prior, 200, seed=3)
    trained = scripted(k, 0)
    trained.class_prior.copy_(torch.tensor(prior))
    report = evaluate_candidate(trained, scripted(k, 1), window_x=window,
                                anchors_x=inputs(anchors_y, anchors_y, k), anchors_y=anchors_y,
                                pseudo_x=window[:0], pseudo_y=anchors_y[:0])
    checks = {c.name: c for c in report.checks}
    assert checks["anchor_accuracy"].value == 1.0, "the scripted models know the anchors"
    return checks["class_entropy"], checks["class_shift"]


def test_binary_candidate_with_skewed_window_passes_class_balance():
    entropy, shift = class_checks(prior=[0.5, 0.5], current=[0.58, 0.42], candidate=[0.62, 0.38])
    assert entropy.passed and shift.passed, (entropy.reason(), shift.reason())
    assert shift.value == pytest.approx(0.04) and shift.detail.startswith("class 0: 62.0% of 500 predictions")


def test_a_skewed_three_class_prior_passes_when_the_candidate_keeps_it():
    entropy, shift = class_checks(prior=[0.8, 0.15, 0.05], current=[0.78, 0.16, 0.06], candidate=[0.81, 0.14, 0.05])
    assert entropy.passed and shift.passed, (entropy.reason(), shift.reason())
    assert entropy.detail == "relative to the prior's", "the skewed prior is the lower entropy, and the reference"


def test_a_candidate_collapsing_onto_the_majority_class_is_refused():
    entropy, shift = class_checks(prior=[0.5, 0.5], current=[0.6, 0.4], candidate=[0.97, 0.03])
    assert not shift.passed and shift.value == pytest.approx(0.37)
    assert shift.detail == "class 0: 97.0% of 500 predictions; current 60.0%, prior 50.0%"
    assert not entropy.passed


def test_a_rare_class_may_not_double_on_a_skewed_prior():
    _, shift = class_checks(prior=[0.8, 0.15, 0.05], current=[0.79, 0.16, 0.05], candidate=[0.75, 0.13, 0.12],
                            n=256)
    assert not shift.passed and shift.detail.startswith("class 2: 12.1% of 256 predictions")


def test_a_rare_class_the_current_model_misses_may_come_back_to_its_prior():
    _, shift = class_checks(prior=[0.8, 0.15, 0.05], current=[0.82, 0.16, 0.02], candidate=[0.79, 0.14, 0.07],
                            n=256)
    assert shift.passed, shift.reason()


@pytest.mark.parametrize("candidate", [[0.55] + [0.05] * 9, [0.3, 0.3] + [0.05] * 8], ids=["one class", "two classes"])
def test_a_ten_class_balanced_problem_still_catches_a_collapse_onto_one_or_two_classes(candidate):
    _, shift = class_checks(prior=[0.1] * 10, current=[0.1] * 10, candidate=candidate)
    assert not shift.passed and shift.detail.startswith("class 0:")


def test_class_shift_catches_a_partial_collapse_the_entropy_ratio_misses():
    entropy, shift = class_checks(prior=[0.1] * 10, current=[0.1] * 10, candidate=[0.3, 0.3] + [0.05] * 8)
    assert entropy.passed and not shift.passed


def test_class_shift_tolerances_shrink_as_the_window_grows():
    share = np.array([0.5, 0.5])
    allowed = [class_shift(share, share, share, n)[1][0] for n in (50, 500, 5000, 500_000)]
    assert allowed == sorted(allowed, reverse=True) and allowed[-1] == pytest.approx(0.05, abs=0.003)
    rises = np.array([0.6, 0.4])  # ten points more for class 0: chance in a small window, a shift in a large one
    gain, allowed_small = class_shift(rises, share, share, 100)
    _, allowed_large = class_shift(rises, share, share, 10_000)
    assert gain[0] <= allowed_small[0] and gain[0] > allowed_large[0]


def test_class_shift_tolerances_follow_the_reference_share():
    gain, allowed = class_shift(np.array([0.5, 0.4, 0.1]), np.array([0.5, 0.4, 0.1]), None, 400)
    assert (gain == 0).all() and allowed[0] > allowed[1] > allowed[2] > 0.05, "binomial noise is largest at q = 0.5"


def test_without_anchors_the_current_model_alone_is_the_evidence():
    gain, _ = class_shift(np.array([0.7, 0.3]), np.array([0.6, 0.4]), None, 500)
    assert gain.tolist() == pytest.approx([0.1, -0.1])
    with pytest.raises(ValueError, match="n must be > 0"):
        class_shift(np.array([0.7, 0.3]), np.array([0.6, 0.4]), None, 0)


@pytest.mark.parametrize("kwargs", [dict(class_shift_z=-1.0), dict(class_shift_slack=1.5),
                                    dict(class_shift_slack=-0.1)])
def test_bad_class_shift_tolerances_are_refused(kwargs):
    with pytest.raises(ValueError):
        GuardrailConfig(**kwargs)


def test_the_prior_is_the_one_trained_under_not_the_anchors_shares():
    # Anchors hold up to 20 of each class: on an 80/15/5 problem their shares are nearly equal. A candidate that
    # moves the 15% class to 36% of its predictions (as one did on river's Waveform drawn to 80/15/5) is refused.
    entropy, shift = class_checks(prior=[0.8, 0.15, 0.05], current=[0.8, 0.155, 0.045], candidate=[0.6, 0.36, 0.04],
                                  anchor_shares=[20 / 48, 20 / 48, 8 / 48])
    assert not shift.passed and shift.detail.startswith("class 1: 36.0%"), shift.reason()
