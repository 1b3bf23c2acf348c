"""Guardrails: a candidate serves only if every recorded check passes."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from driftwise.drift.adapter import AdaptConfig, adapt, predict_proba
from driftwise.drift.corruptions import corrupt
from driftwise.drift.guardrails import (LATEST_DOMAIN_INPUTS, LATEST_DOMAIN_P, Check, GuardrailConfig, GuardrailReport,
                                       anchor_accuracy, evaluate_candidate, latest_domain_check)
from driftwise.models.digits import load_digits_images
from tests.tiny_cnn import train_tiny

CONFIG = GuardrailConfig(confidence_threshold=0.9)


@pytest.fixture(scope="module")
def setup():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    x, y = load_digits_images()
    order = np.random.default_rng(0).permutation(len(y))
    train, test = order[:600], order[600:1100]
    model = train_tiny(x[train], y[train])
    window = corrupt(x[test], "gaussian_noise", severity=3, seed=1)
    p = predict_proba(model, window)
    sure = p.max(1) >= CONFIG.confidence_threshold
    yield model, x[train[:100]], y[train[:100]], window, y[test], (window[sure], p.argmax(1)[sure])
    torch.set_num_threads(threads)


def check(report, name):
    return next(c for c in report.checks if c.name == name)


def test_a_self_trained_candidate_on_noisy_digits_passes_every_check(setup):
    model, ax, ay, window, _, (hx, hy) = setup
    candidate = adapt(model, window_x=window, pseudo_x=None, pseudo_y=None, anchors_x=ax, anchors_y=ay,
                      config=AdaptConfig(steps=60, rounds=1, trainable="norm_head"), seed=0).candidate
    report = evaluate_candidate(model, candidate, window_x=window, anchors_x=ax, anchors_y=ay, pseudo_x=hx,
                                pseudo_y=hy, config=CONFIG)
    assert report.passed, report.reasons
    assert report.stats["mean_confidence_candidate"] > report.stats["mean_confidence_current"]


def test_a_candidate_trained_on_permuted_labels_is_rejected(setup):
    model, ax, ay, window, wy, (hx, hy) = setup
    permuted = (wy + 3) % 10
    candidate = adapt(model, window_x=window, pseudo_x=None, pseudo_y=None, anchors_x=ax, anchors_y=ay,
                      feedback_x=window, feedback_y=permuted,
                      config=AdaptConfig(steps=200, rounds=1, self_label_threshold=None), seed=0).candidate
    assert float((predict_proba(candidate, window).argmax(1) == permuted).mean()) > 0.5, "it did learn the new labels"
    report = evaluate_candidate(model, candidate, window_x=window, anchors_x=ax, anchors_y=ay, pseudo_x=hx,
                                pseudo_y=hy, config=CONFIG)
    assert not report.passed
    assert check(report, "agreement").value < 0.5, "it contradicts what the current model was sure of"
    assert any(r.startswith("agreement:") for r in report.reasons)


def test_a_candidate_that_forgot_the_anchors_fails_anchor_accuracy(setup):
    model, ax, ay, window, wy, (hx, hy) = setup
    no_replay = AdaptConfig(steps=100, rounds=1, self_label_threshold=None, anchor_weight=0.0)
    candidate = adapt(model, window_x=window, pseudo_x=None, pseudo_y=None, anchors_x=ax, anchors_y=ay,
                      feedback_x=window, feedback_y=(wy + 3) % 10, config=no_replay, seed=0).candidate
    report = evaluate_candidate(model, candidate, window_x=window, anchors_x=ax, anchors_y=ay, pseudo_x=hx,
                                pseudo_y=hy, config=CONFIG)
    assert not check(report, "anchor_accuracy").passed and check(report, "anchor_accuracy").value < 0.5


def test_a_collapsed_candidate_fails_the_class_checks(setup):
    model, ax, ay, window, _, (hx, hy) = setup
    collapsed = copy.deepcopy(model)
    with torch.no_grad():
        collapsed.head.bias[3] += 50.0
    report = evaluate_candidate(model, collapsed, window_x=window, anchors_x=ax, anchors_y=ay, pseudo_x=hx,
                                pseudo_y=hy, config=CONFIG)
    assert not check(report, "class_entropy").passed
    shift = check(report, "class_shift")
    assert not shift.passed and shift.detail.startswith("class 3: 100.0% of 500 predictions")


def test_too_few_confident_samples_cannot_vouch_for_a_candidate(setup):
    model, ax, ay, window, _, (hx, hy) = setup
    report = evaluate_candidate(model, model, window_x=window, anchors_x=ax, anchors_y=ay, pseudo_x=hx[:3],
                                pseudo_y=hy[:3], config=CONFIG)
    agreement = check(report, "agreement")
    assert not agreement.passed and "only 3 held-out confident samples" in agreement.detail


def test_anchor_accuracy_is_scored_in_the_anchors_own_domain(setup):
    model, ax, ay, window, _, _ = setup
    contrast_adapted = adapt(model, window_x=corrupt(ax, "contrast", 5), pseudo_x=None, pseudo_y=None,
                             anchors_x=ax, anchors_y=ay, config=AdaptConfig(self_label_threshold=None)).candidate
    assert anchor_accuracy(contrast_adapted, ax, ay) == anchor_accuracy(model, ax, ay), "same weights, same score"


def test_many_small_drops_cannot_add_up_past_the_baseline(setup):
    model, ax, ay, window, _, (hx, hy) = setup
    config = GuardrailConfig(confidence_threshold=0.9, baseline_anchor_accuracy=1.0, anchor_margin=0.0)
    worse = copy.deepcopy(model)
    with torch.no_grad():
        worse.head.weight.mul_(0.3).add_(0.05 * torch.randn_like(worse.head.weight))
    report = evaluate_candidate(model, worse, window_x=window, anchors_x=ax, anchors_y=ay, pseudo_x=hx,
                                pseudo_y=hy, config=config)
    base = check(report, "anchor_accuracy_vs_baseline")
    assert base.threshold == 1.0 and base.passed == (base.value >= 1.0)


def test_a_refinement_need_not_be_more_confident_than_the_candidate_it_would_replace(setup):
    model, ax, ay, window, _, (hx, hy) = setup
    softer = copy.deepcopy(model)  # the same answers, a little less sure of them
    with torch.no_grad():
        softer.temperature.mul_(1.015)
    common = dict(window_x=window, anchors_x=ax, anchors_y=ay, pseudo_x=hx, pseudo_y=hy, config=CONFIG)

    first = check(evaluate_candidate(model, softer, **common), "confidence_gain")
    refinement = check(evaluate_candidate(model, softer, refinement=True, **common), "confidence_gain")

    assert CONFIG.min_refinement_confidence_gain < first.value < CONFIG.min_confidence_gain
    assert not first.passed
    assert refinement.passed and refinement.threshold == CONFIG.min_refinement_confidence_gain


def test_the_report_is_plain_json_for_the_manifest(setup):
    model, ax, ay, window, _, (hx, hy) = setup
    report = evaluate_candidate(model, model, window_x=window, anchors_x=ax, anchors_y=ay, pseudo_x=hx, pseudo_y=hy,
                                config=CONFIG)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["passed"] is False and data["reasons"] == ["confidence_gain: 0 < 0.001"]
    assert {c["name"] for c in data["checks"]} >= {"anchor_accuracy", "class_entropy", "class_shift",
                                                    "pseudo_label_yield", "agreement", "confidence_gain"}
    assert all({"value", "threshold", "passed"} <= set(c) for c in data["checks"])


@pytest.mark.parametrize("kwargs", [dict(anchor_margin=-0.1), dict(min_agreement=1.5), dict(min_confident_samples=-1),
                                    dict(baseline_anchor_accuracy=2.0)])
def test_bad_thresholds_are_refused(kwargs):
    with pytest.raises(ValueError):
        GuardrailConfig(**kwargs)


def test_an_empty_window_is_refused(setup):
    model, ax, ay, window, _, (hx, hy) = setup
    with pytest.raises(ValueError, match="window_x is empty"):
        evaluate_candidate(model, model, window_x=window[:0], anchors_x=ax, anchors_y=ay, pseudo_x=hx, pseudo_y=hy)


def test_true_feedback_labels_outrank_the_current_models_confident_guesses(setup):
    model, ax, ay, *_ = setup
    x, y = load_digits_images()
    test = np.random.default_rng(0).permutation(len(y))[600:1100]
    inverted, labels = corrupt(x[test], "inversion", severity=3, seed=1), y[test]  # a label-changing shift
    p = predict_proba(model, inverted)
    sure = p.max(1) >= CONFIG.confidence_threshold
    guesses = dict(pseudo_x=inverted[sure], pseudo_y=p.argmax(1)[sure])
    candidate = adapt(model, window_x=inverted[:300], pseudo_x=None, pseudo_y=None, anchors_x=ax, anchors_y=ay,
                      feedback_x=inverted[:300], feedback_y=labels[:300],
                      config=AdaptConfig(steps=200, rounds=1, self_label_threshold=None), seed=0).candidate
    common = dict(window_x=inverted[:300], anchors_x=ax, anchors_y=ay, config=CONFIG, **guesses)

    judged_by_guesses = evaluate_candidate(model, candidate, **common)
    judged_by_labels = evaluate_candidate(model, candidate, feedback_x=inverted[300:], feedback_y=labels[300:],
                                          **common)
    same_model = evaluate_candidate(model, model, feedback_x=inverted[300:], feedback_y=labels[300:], **common)

    assert not judged_by_guesses.passed
    feedback = check(judged_by_labels, "feedback_accuracy")
    assert feedback.passed and feedback.value > feedback.threshold + 0.2, feedback
    assert check(judged_by_labels, "agreement").detail == "superseded by feedback labels"
    assert judged_by_labels.passed, judged_by_labels.reasons
    assert not check(same_model, "feedback_accuracy").passed  # no better on the labels: it may not serve


def test_a_candidate_is_stale_when_the_inputs_since_its_window_come_from_another_domain(setup):
    model, ax, ay, window, _, (hx, hy) = setup
    x, _ = load_digits_images()
    later = np.random.default_rng(1).permutation(len(x))[1100:1400]
    common = dict(window_x=window, anchors_x=ax, anchors_y=ay, pseudo_x=hx, pseudo_y=hy, config=CONFIG)

    same = check(evaluate_candidate(model, model, recent_x=corrupt(x[later], "gaussian_noise", 3, seed=2), **common),
                 "same_domain")
    moved = check(evaluate_candidate(model, model, recent_x=corrupt(x[later], "contrast", 3, seed=2), **common),
                  "same_domain")
    too_few = check(evaluate_candidate(model, model, recent_x=window[:10], **common), "same_domain")

    assert same.passed and same.value > 0.01
    assert not moved.passed and "moved on" in moved.detail
    assert too_few.passed and "too few" in too_few.detail


def test_a_change_that_began_among_the_latest_inputs_is_seen_on_them_alone(setup):
    model, *_, window, _, _ = setup
    x, _ = load_digits_images()
    later = np.random.default_rng(1).permutation(len(x))[1100:1400]
    same = corrupt(x[later], "gaussian_noise", 3, seed=2)
    began = np.concatenate([same[:200], corrupt(x[later[200:]], "contrast", 3, seed=2)])  # the last 100 moved

    assert latest_domain_check(model, window, same).passed
    moved = latest_domain_check(model, window, began)
    assert not moved.passed and moved.value < LATEST_DOMAIN_P
    assert latest_domain_check(model, window, began[-LATEST_DOMAIN_INPUTS + 1:]).passed  # too few to tell
    assert GuardrailReport([moved]).window_unfit  # its window's fault: the drift may still be learnt


def test_a_refusal_is_for_the_window_when_the_domain_moved_on_or_only_the_class_order_failed():
    def report(*failed: str) -> GuardrailReport:
        names = ("anchor_accuracy", "temporal_correlation", "same_domain")
        return GuardrailReport([Check(n, 0.0, 0.0, n not in failed) for n in names])

    assert report("same_domain").window_unfit
    assert report("same_domain", "anchor_accuracy").window_unfit  # made for a domain already left
    assert report("temporal_correlation").window_unfit  # a burst: its statistics are not the domain's
    assert not report("temporal_correlation", "anchor_accuracy").window_unfit  # the model failed too
    assert not report("anchor_accuracy").window_unfit
