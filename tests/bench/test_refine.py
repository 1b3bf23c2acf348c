"""driftwise.bench.refine: a first candidate and its refinement, scored on the same later held-out events."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from driftwise.bench.drift import gap_closed
from driftwise.bench.recipes import BASE
from driftwise.bench.refine import compare, summarise, write_report
from driftwise.models.classifier import Classifier
from driftwise.models.digits import load_digits_images
from tests.tiny_cnn import train_tiny

FAST = replace(BASE, steps=10, rounds=2, batch_size=32, anchor_batch_size=16)
SMALL = {"window": 64, "scored": 300, "refine_after": 100}


@pytest.fixture(scope="module")
def setup() -> tuple[Classifier, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x, y = load_digits_images()
    order = np.random.default_rng(0).permutation(len(y))
    train, pool = order[:500], order[500:800]
    return train_tiny(x[train], y[train], epochs=8), x[train[:100]], y[train[:100]], x[pool], y[pool]


def test_the_refined_candidate_is_scored_beside_the_first_on_events_after_its_window(setup) -> None:
    model, ax, ay, px, py = setup
    rows = compare(model, ax, ay, px, py, seeds=[0], config=FAST, corruptions=["contrast", "inversion"],
                   log=lambda m: None, **SMALL)
    assert [r["corruption"] for r in rows] == ["contrast"]  # the loop refuses inversion before any refinement
    r = rows[0]
    assert 0 < r["held_out_events"] < SMALL["scored"] - SMALL["refine_after"]
    for key in ("no_adapt", "first", "refined", "oracle"):
        assert 0.0 <= r[key] <= 1.0
    assert r["first"] > r["no_adapt"] and r["refined"] > r["no_adapt"]  # contrast: pseudo-labels always help here
    assert r["gap_closed_refined"] == pytest.approx(gap_closed(r["no_adapt"], r["refined"], r["oracle"]),
                                                    nan_ok=True)


def test_summary_counts_the_refused_corruption_as_zero_and_the_report_says_so(setup, tmp_path) -> None:
    model, ax, ay, px, py = setup
    rows = compare(model, ax, ay, px, py, seeds=[0], config=FAST, corruptions=["contrast"], log=lambda m: None,
                   **SMALL)
    summary = summarise(rows)
    assert summary["mean_gap_closed_refined"] == pytest.approx(rows[0]["gap_closed_refined"] / 2)  # inversion: 0
    assert summary["mean_gain_refined"] == pytest.approx(rows[0]["refined"] - rows[0]["no_adapt"])
    results = {"command": "test", "date": "now", "machine": "here", "split": "val", "windows": 1,
               "refine_after": SMALL["refine_after"], "wall_seconds": 1.0, "summary": summary, "rows": rows}
    md = write_report(results, tmp_path).read_text()
    assert "| contrast |" in md and "refined better in" in md
    assert json.loads((tmp_path / "refine-val.json").read_text())["summary"]["draws"] == 1


def test_a_refinement_window_longer_than_the_scored_stream_is_refused(setup) -> None:
    model, ax, ay, px, py = setup
    with pytest.raises(ValueError, match="refine_after"):
        compare(model, ax, ay, px, py, seeds=[0], refine_after=300, window=64, scored=300)
