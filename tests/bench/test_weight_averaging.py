"""The weight-averaging bench's summary: gains in points over the frozen model and over the interim."""

from __future__ import annotations

import pytest

from driftwise.bench.weight_averaging import summarise


def test_gains_are_points_over_the_frozen_model_and_the_interim_mean_and_worst_window() -> None:
    rows = [{"frozen": 0.70, "interim": 0.80, "weight 1.0": 0.90, "weight 0.75": 0.88, "weight 0.5": 0.85},
            {"frozen": 0.70, "interim": 0.80, "weight 1.0": 0.74, "weight 0.75": 0.78, "weight 0.5": 0.81}]
    s = summarise(rows)
    assert s["weight 1.0"]["mean_gain"] == pytest.approx(12.0)
    assert s["weight 1.0"]["worst_vs_interim"] == pytest.approx(-6.0)
    assert s["weight 0.5"]["worst_vs_interim"] == pytest.approx(1.0)
    assert s["interim"]["mean_vs_interim"] == pytest.approx(0.0)
