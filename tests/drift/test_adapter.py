"""Adaptation: BatchNorm re-estimation + pseudo-label fine-tuning with anchor replay."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from driftwise.drift.adapter import AdaptConfig, adapt, predict_proba
from driftwise.drift.corruptions import corrupt
from driftwise.models.classifier import Classifier
from driftwise.models.digits import load_digits_images
from tests.tiny_cnn import train_tiny

FAST = AdaptConfig(steps=30, rounds=1, batch_size=32, anchor_batch_size=16)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: what the adapter worker gets, and far faster on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def setup(one_thread):
    x, y = load_digits_images()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    train, test = order[:600], order[600:1100]
    model = train_tiny(x[train], y[train])
    anchors = train[:100]
    window = corrupt(x[test], "gaussian_noise", severity=4, seed=1)
    return model, x[anchors], y[anchors], window, y[test], x[test]


def accuracy(model: Classifier, x: np.ndarray, y: np.ndarray) -> float:
    return float((predict_proba(model, x).argmax(1) == y).mean())


def test_batchnorm_reestimation_alone_recovers_low_contrast_digits(setup):
    model, ax, ay, _, wy, clean = setup
    window = corrupt(clean, "contrast", severity=3, seed=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    bn_only = AdaptConfig(self_label_threshold=None, rounds=1)
    result = adapt(model, window_x=window, pseudo_x=None, pseudo_y=None, anchors_x=ax, anchors_y=ay,
                   config=bn_only, seed=0)
    source_acc, adapted_acc = accuracy(model, window, wy), accuracy(result.candidate, window, wy)
    assert adapted_acc > source_acc + 0.1, (source_acc, adapted_acc)
    assert result.log["rounds"][0]["skipped"] == "too few labels"
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "the current model is untouched"


def test_adapted_candidate_beats_source_on_noisy_digits(setup):
    model, ax, ay, window, wy, _ = setup
    p = predict_proba(model, window)
    confident = p.max(1) >= 0.99
    result = adapt(model, window_x=window, pseudo_x=window[confident], pseudo_y=p.argmax(1)[confident],
                   anchors_x=ax, anchors_y=ay, config=AdaptConfig(steps=60, rounds=2), seed=0)
    source_acc, adapted_acc = accuracy(model, window, wy), accuracy(result.candidate, window, wy)
    assert adapted_acc > source_acc + 0.01, (source_acc, adapted_acc)
    assert [r["steps"] for r in result.log["rounds"]] == [60, 60] and result.log["total_s"] < 30
    assert result.candidate.temperature.item() == pytest.approx(model.temperature.item())
    assert not result.candidate.training


def test_same_seed_same_candidate(setup):
    model, ax, ay, window, wy, _ = setup
    kwargs = dict(window_x=window[:200], pseudo_x=window[:40], pseudo_y=wy[:40], anchors_x=ax, anchors_y=ay,
                  config=FAST, seed=3)
    a, b = adapt(model, **kwargs).candidate, adapt(model, **kwargs).candidate
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())


def test_feedback_labels_are_trained_on(setup):
    model, ax, ay, window, wy, _ = setup
    result = adapt(model, window_x=window, pseudo_x=None, pseudo_y=None, anchors_x=ax, anchors_y=ay,
                   feedback_x=window[:50], feedback_y=wy[:50], config=AdaptConfig(steps=20, rounds=1,
                                                                                   self_label_threshold=None))
    assert result.log["n_feedback"] == 50 and result.log["rounds"][0]["n_train"] == 50


def test_bad_inputs_are_refused(setup):
    model, ax, ay, window, wy, _ = setup
    with pytest.raises(ValueError, match="window_x must have shape"):
        adapt(model, window_x=window[:, 0], pseudo_x=None, pseudo_y=None, anchors_x=ax, anchors_y=ay)
    with pytest.raises(ValueError, match="pseudo_y"):
        adapt(model, window_x=window, pseudo_x=window[:3], pseudo_y=np.array([0, 1, 99]), anchors_x=ax,
              anchors_y=ay)
    with pytest.raises(ValueError, match="steps"):
        AdaptConfig(steps=0)
    with pytest.raises(ValueError, match="rotate_degrees"):
        AdaptConfig(rotate_degrees=-5)
    with pytest.raises(ValueError, match="finetuned_weight"):
        AdaptConfig(finetuned_weight=1.5)


def test_the_candidate_lies_between_the_batchnorm_adapted_start_and_the_fine_tuned_weights(setup):
    """WiSE-FT: ``finetuned_weight`` mixes the two in weight space; 0 keeps the BN-adapted start's weights."""
    model, ax, ay, window, wy, _ = setup
    kwargs = dict(window_x=window[:200], pseudo_x=window[:60], pseudo_y=wy[:60], anchors_x=ax, anchors_y=ay, seed=3)
    runs = {w: adapt(model, config=AdaptConfig(steps=30, rounds=1, finetuned_weight=w), **kwargs)
            for w in (0.0, 0.5, 1.0)}
    start, mid, tuned = (dict(runs[w].candidate.named_parameters()) for w in (0.0, 0.5, 1.0))
    assert all(torch.equal(start[k], v) for k, v in dict(model.named_parameters()).items())
    assert all(torch.allclose(mid[k], (start[k] + tuned[k]) / 2, atol=1e-6) for k in mid)
    assert any(not torch.equal(start[k], tuned[k]) for k in mid), "fine-tuning moved the weights"
    assert runs[0.5].log["finetuned_weight"] == 0.5 and not runs[0.5].candidate.training


def test_a_candidate_trained_on_feedback_labels_keeps_its_fine_tuned_weights_whole(setup):
    """True labels are not guesses: after a label-changing drift the new labelling must serve, not half of it."""
    model, ax, ay, window, wy, _ = setup
    permuted = (wy[:200] + 3) % 10
    result = adapt(model, window_x=window[:200], pseudo_x=None, pseudo_y=None, anchors_x=ax, anchors_y=ay,
                   feedback_x=window[:200], feedback_y=permuted,
                   config=AdaptConfig(steps=100, rounds=1, self_label_threshold=None, finetuned_weight=0.5), seed=0)
    assert result.log["finetuned_weight"] == 1.0
    assert accuracy(result.candidate, window[:200], permuted) > 0.5


class _Clock:
    """A perf_counter that advances a second each time it is read (every fine-tuning step costs one), and
    ``slow_after`` its seconds, three: the machine got busier."""

    def __init__(self, slow_after: float = float("inf")) -> None:
        self.now, self.slow_after = 0.0, slow_after

    def __call__(self) -> float:
        self.now += 1.0 if self.now < self.slow_after else 3.0
        return self.now


def test_a_round_the_budget_cannot_hold_is_not_started_and_the_candidate_is_the_last_complete_round(setup,
                                                                                                   monkeypatch):
    model, ax, ay, window, _, _ = setup
    monkeypatch.setattr("driftwise.drift.adapter.time.perf_counter", _Clock())
    config = AdaptConfig(steps=10, rounds=3, batch_size=32, anchor_batch_size=16, max_seconds=30.0)
    result = adapt(model, window_x=window, pseudo_x=None, pseudo_y=None, anchors_x=ax, anchors_y=ay,
                   config=config, seed=0)
    rounds = result.log["rounds"]
    assert [r.get("steps") for r in rounds[:2]] == [10, 10]
    assert rounds[2] == {"round": 2, "skipped": "out of time"}  # ~13 s a round, ~4 left: not started


def test_a_later_round_cut_short_by_the_budget_is_discarded(setup, monkeypatch):
    model, ax, ay, window, _, _ = setup
    config = AdaptConfig(steps=10, rounds=2, batch_size=32, anchor_batch_size=16, max_seconds=30.0)
    kept = adapt(model, window_x=window, pseudo_x=None, pseudo_y=None, anchors_x=ax, anchors_y=ay,
                 config=AdaptConfig(**{**config.to_dict(), "rounds": 1, "max_seconds": 1e9}), seed=0)
    monkeypatch.setattr("driftwise.drift.adapter.time.perf_counter", _Clock(slow_after=16.0))
    result = adapt(model, window_x=window, pseudo_x=None, pseudo_y=None, anchors_x=ax, anchors_y=ay,
                   config=config, seed=0)
    first, second = result.log["rounds"]
    assert first["steps"] == 10 and second["steps"] < 10 and "discarded" in second
    for name, tensor in kept.candidate.state_dict().items():  # the first round's candidate, not the cut one
        assert torch.equal(tensor, result.candidate.state_dict()[name]), name
