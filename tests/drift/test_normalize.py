"""The interim normalised model: BatchNorm statistics of the drifted inputs, and the cheap checks that guard it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from driftwise.drift.adapter import predict_proba
from driftwise.drift.guardrails import correlation_check, temporal_correlation
from driftwise.drift.normalize import NormalizeConfig, check_interim, newest_domain, normalized_copy
from driftwise.models.classifier import Classifier
from driftwise.models.config import ModelConfig

K, D = 3, 8
CENTERS = np.eye(K, D, dtype=np.float32) * 4.0


def _blobs(n: int, seed: int, shift: float = 0.0, gain: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, n)
    x = (CENTERS[y] + rng.normal(0.0, 1.0, (n, D))) * gain + shift
    return x.astype(np.float32), y


def _trained(x: np.ndarray, y: np.ndarray) -> Classifier:
    torch.manual_seed(0)
    model = Classifier(ModelConfig(encoder="mlp", input_shape=(D,), num_classes=K, hidden=32, embed_dim=16))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(150):
        loss = torch.nn.functional.cross_entropy(model.raw_logits(torch.as_tensor(x)), torch.as_tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def model() -> Classifier:
    return _trained(*_blobs(600, seed=0))


def _accuracy(model: Classifier, x: np.ndarray, y: np.ndarray) -> float:
    return float((predict_proba(model, x).argmax(1) == y).mean())


def test_temporal_correlation_is_zero_for_independent_arrivals_whatever_the_class_shares() -> None:
    rng = np.random.default_rng(0)
    skewed = rng.choice(3, size=2000, p=[0.8, 0.15, 0.05])
    assert abs(temporal_correlation(skewed)) < 0.05
    assert temporal_correlation(np.sort(skewed)) > 0.95  # the same labels, in runs
    assert temporal_correlation(np.zeros(10, int)) == 0.0  # one class: no evidence of order


def test_a_client_repeating_recent_inputs_is_not_classes_in_runs() -> None:
    # 50 events/s in random class order, and 20/s of a client re-sending the latest event (as the soak does).
    rng = np.random.default_rng(0)
    events = rng.normal(size=(500, 8))
    labels = rng.integers(0, 10, size=500)
    order = np.concatenate([[i, i] if rng.random() < 0.4 else [i] for i in range(500)])
    inputs, predictions = events[order], labels[order]
    assert not correlation_check(predictions, 0.2).passed  # a repeat next to its original looks like a run
    assert correlation_check(predictions, 0.2, inputs).passed
    runs = np.sort(labels)  # real runs of a class stay runs, repeats or not
    assert not correlation_check(runs, 0.2, events[np.argsort(labels)]).passed


def test_the_interim_recovers_a_sensor_gain_and_offset_without_labels(model: Classifier) -> None:
    x, y = _blobs(2000, seed=1, shift=3.0, gain=0.5)  # 0.66 accuracy before, 0.99 after
    window, rest = slice(0, 128), slice(128, None)
    interim = normalized_copy(model, x[window])
    assert _accuracy(interim, x[rest], y[rest]) > _accuracy(model, x[rest], y[rest]) + 0.1
    report = check_interim(model, interim, x[window])
    assert report.passed, report.reasons
    assert model.training is False and interim.training is False


def test_a_window_of_class_bursts_is_refused(model: Classifier) -> None:
    x, y = _blobs(2000, seed=2, shift=3.0, gain=0.5)
    runs = np.concatenate([np.flatnonzero(y == c)[:50] for c in (0, 1, 2, 0)])  # runs of 50 of one class each
    bursts = x[runs][:128]  # as a correlated stream sends them
    report = check_interim(model, normalized_copy(model, bursts), bursts)
    assert not report.passed
    assert any(r.startswith("temporal_correlation") for r in report.reasons)


def test_an_interim_less_confident_than_the_base_may_serve_unless_a_confidence_gain_is_asked_for(
        model: Classifier) -> None:
    x, _ = _blobs(128, seed=3)  # clean inputs: the source statistics were already right
    assert check_interim(model, model, x).passed  # confidence is not evidence of accuracy under a shift
    strict = check_interim(model, model, x, NormalizeConfig(min_confidence_gain=0.0))
    assert [c.name for c in strict.checks if not c.passed] == ["confidence_gain"]


SKEWED = (0.8, 0.15, 0.05)


def _skewed_blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.choice(K, n, p=SKEWED)
    return (CENTERS[y] * 0.625 + rng.normal(0.0, 1.0, (n, D))).astype(np.float32), y


@pytest.fixture(scope="module")
def skewed_model() -> Classifier:
    """Trained under an 80/15/5 prior, as a user's fault classes are."""
    model = _trained(*_skewed_blobs(1500, seed=0))
    model.class_prior.copy_(torch.tensor(SKEWED))
    return model


def test_an_interim_that_puts_a_skewed_prior_back_is_not_a_collapse(skewed_model: Classifier) -> None:
    x, y = _skewed_blobs(2000, seed=1)
    x[:, 2] += 3.0  # a sensor offset towards the rarest class: the base spreads its predictions over it
    interim = normalized_copy(skewed_model, x[:128])
    assert _accuracy(interim, x[128:], y[128:]) > _accuracy(skewed_model, x[128:], y[128:]) + 0.2
    report = check_interim(skewed_model, interim, x[:128])
    assert report.passed, report.reasons
    # Its predicted classes are far less even than the base's (0.59 against 0.91 of the most even): an entropy
    # ratio to the base's took that for a collapse.
    assert report.stats["class_entropy_interim"] < 0.7 * report.stats["class_entropy_current"]


def test_an_interim_collapsed_onto_the_majority_class_is_refused(skewed_model: Classifier) -> None:
    x, _ = _skewed_blobs(2000, seed=1)
    x[:, 2] += 3.0
    collapsed = normalized_copy(skewed_model, x[:128])
    with torch.no_grad():
        collapsed.head.bias[0] += 8.0  # nearly every prediction the majority class: more than its 80% prior
    report = check_interim(skewed_model, collapsed, x[:128])
    assert [c.name for c in report.checks if not c.passed] == ["class_shift"]


@pytest.mark.parametrize("kwargs", [dict(max_correlation=1.5), dict(min_entropy_ratio=-0.1),
                                    dict(min_confidence_gain=2.0)])
def test_normalize_config_refuses_values_out_of_range(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        NormalizeConfig(**kwargs)


def test_a_candidate_made_on_a_window_of_class_bursts_is_refused_by_the_guardrails_too(model: Classifier) -> None:
    from driftwise.drift.guardrails import evaluate_candidate

    x, y = _blobs(2000, seed=4, shift=3.0, gain=0.5)
    runs = np.concatenate([np.flatnonzero(y == c)[:50] for c in (0, 1, 2, 0, 1)])
    bursts = x[runs]
    report = evaluate_candidate(model, normalized_copy(model, bursts), window_x=bursts, anchors_x=x[:300],
                                anchors_y=y[:300], pseudo_x=x[:0], pseudo_y=y[:0])
    assert any(r.startswith("temporal_correlation") for r in report.reasons)
    shuffled = bursts[np.random.default_rng(0).permutation(len(bursts))]
    report = evaluate_candidate(model, normalized_copy(model, shuffled), window_x=shuffled, anchors_x=x[:300],
                                anchors_y=y[:300], pseudo_x=x[:0], pseudo_y=y[:0])
    assert not any(r.startswith("temporal_correlation") for r in report.reasons)


def test_with_a_confidence_loss_set_an_interim_is_refused_when_the_base_is_as_sure_as_on_the_source(
        model: Classifier) -> None:
    clean, shifted = _blobs(400, seed=7)[0], _blobs(400, seed=8, shift=3.0, gain=0.5)[0]
    source = float(predict_proba(model, clean).max(1).mean())
    config = NormalizeConfig(min_confidence_loss=0.05)

    def loss_check(window: np.ndarray, reference: float | None):
        report = check_interim(model, normalized_copy(model, window), window, config, reference_confidence=reference)
        return next((c for c in report.checks if c.name == "confidence_loss"), None)

    untouched = loss_check(clean[:128], source)
    assert not untouched.passed and "as sure as on the source" in untouched.detail
    shaken = loss_check(shifted[:128], source)
    assert shaken.passed and shaken.value >= 0.05, shaken
    assert loss_check(shifted[:128], None) is None  # no reference statistics: nothing to compare with


def test_an_interim_made_just_after_a_change_is_normalised_on_the_new_domain_alone(model: Classifier) -> None:
    # The latest 128 inputs: 20 of a domain with a sensor reading thousands of units out, then 108 of the new one.
    old, _ = _blobs(20, seed=5)
    old[:, 0] += 5000.0
    new, y = _blobs(2000, seed=6, shift=3.0, gain=0.5)
    recent = np.concatenate([old, new[:108]])
    earlier, window, found = newest_domain(model, recent)
    assert found.start == 20 and len(earlier) == 20 and len(window) == 108
    cut, whole = normalized_copy(model, window), normalized_copy(model, recent)
    assert _accuracy(cut, new[108:], y[108:]) > _accuracy(whole, new[108:], y[108:]) + 0.2
    # The base put every far-out reading in one class: judged whole, the window looks like a run of it; it is not.
    assert not correlation_check(predict_proba(model, recent).argmax(1), 0.2, recent).passed
    assert check_interim(model, cut, window, earlier_x=earlier).passed


def test_a_window_cut_to_one_class_run_is_still_judged_on_the_whole_windows_arrival_order(model: Classifier) -> None:
    x, y = _blobs(2000, seed=7)
    runs = np.concatenate([np.flatnonzero(y == c)[:50] for c in (0, 1, 2)])[:128]  # 50, 50, then 28 of class 2
    recent = x[runs]
    last_run = recent[100:]  # one class alone: no evidence of order either way
    interim = normalized_copy(model, last_run)
    assert not any(r.startswith("temporal_correlation") for r in check_interim(model, interim, last_run).reasons)
    refused = check_interim(model, interim, last_run, earlier_x=recent[:100])
    assert any(r.startswith("temporal_correlation") for r in refused.reasons)
