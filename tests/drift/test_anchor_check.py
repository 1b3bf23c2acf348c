"""The anchor check refuses a candidate for what it forgot, not for the anchors' sampling noise.

Scripted models (`tests.drift.test_guardrails_class_balance.scripted`) read the class they
predict from their half of each input, so which anchors each model gets right is exact.
"""

from __future__ import annotations

import numpy as np
import pytest

from driftwise.drift.guardrails import GuardrailConfig, chance_anchor_loss, evaluate_candidate
from tests.drift.test_guardrails_class_balance import inputs, scripted


def anchor_check(n: int, lost: int, gained: int, k: int = 3, config: GuardrailConfig | None = None):
    """The anchor_accuracy check of a candidate that gets ``lost`` of ``n`` anchors wrong that the current model
    gets right, and ``gained`` right that it gets wrong."""
    y = np.arange(n) % k
    current, candidate = y.copy(), y.copy()
    candidate[:lost] = (y[:lost] + 1) % k
    current[lost:lost + gained] = (y[lost:lost + gained] + 1) % k
    anchors = inputs(current, candidate, k)
    report = evaluate_candidate(scripted(k, 0), scripted(k, 1), window_x=anchors, anchors_x=anchors, anchors_y=y,
                                pseudo_x=anchors[:0], pseudo_y=y[:0], config=config)
    return next(c for c in report.checks if c.name == "anchor_accuracy")


def test_one_anchor_lost_net_of_a_few_dozen_is_noise_and_passes():
    check = anchor_check(n=47, lost=2, gained=1)
    assert 46 / 47 - check.value > GuardrailConfig().anchor_margin, "2.1 points down: past the margin alone"
    assert check.passed
    assert check.detail == "2 lost, 1 gained of 47 anchors"


def test_a_candidate_that_loses_anchors_and_gains_none_is_refused():
    check = anchor_check(n=47, lost=7, gained=0)  # p = 1/128 that chance did this
    assert not check.passed
    assert check.reason().startswith("anchor_accuracy: 0.8511 < ")


def test_the_same_drop_is_evidence_on_many_anchors():
    assert anchor_check(n=47, lost=2, gained=1).passed
    assert not anchor_check(n=1000, lost=30, gained=10).passed  # 2 points down, 40 discordant: p < 0.01


def test_the_margin_still_allows_a_small_drop_that_is_significant():
    config = GuardrailConfig(anchor_margin=0.05)
    assert anchor_check(n=1000, lost=30, gained=0, config=config).passed  # 3 points down, within 5


@pytest.mark.parametrize("discordant", [0, 1, 5, 12, 40, 200])
def test_chance_anchor_loss_is_the_largest_net_loss_mcnemar_keeps(discordant):
    from math import comb
    def p_value(lost: int) -> float:  # P(at least `lost` of the discordant anchors lost, by chance)
        return sum(comb(discordant, i) for i in range(lost, discordant + 1)) / 2 ** discordant
    allowed = chance_anchor_loss(discordant, 0.05)
    lost = (discordant + allowed) // 2
    assert p_value(lost) >= 0.05
    assert lost == discordant or p_value(lost + 1) < 0.05
