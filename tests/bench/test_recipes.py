"""driftwise.bench.recipes: one variant, one corruption, one small window on a tiny real model."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from driftwise.bench.drift import gap_closed
from driftwise.bench.recipes import (BASE, compare, conclusion, draws, parse_variants, summarise,
                           variant_config, write_report)
from driftwise.models.classifier import Classifier
from driftwise.models.digits import load_digits_images
from tests.tiny_cnn import TINY

FAST = replace(BASE, steps=10, rounds=2, batch_size=32, anchor_batch_size=16)
SMALL = {"window": 64, "scored": 200}


@pytest.fixture(scope="module")
def setup() -> tuple[Classifier, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x, y = load_digits_images()
    order = np.random.default_rng(0).permutation(len(y))
    train, pool = order[:500], order[500:800]
    torch.manual_seed(0)
    model = Classifier(TINY)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    X, Y = torch.as_tensor(x[train]), torch.as_tensor(y[train])
    model.train()
    for _ in range(8):
        for idx in torch.randperm(len(X)).split(64):
            loss = F.cross_entropy(model.raw_logits(X[idx]), Y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval(), x[train[:100]], y[train[:100]], x[pool], y[pool]


def test_compare_scores_a_variant_against_its_oracle_on_held_out_events(setup) -> None:
    model, ax, ay, px, py = setup
    rows = compare(model, ax, ay, px, py, {"fast": FAST}, seeds=[0], corruptions=["contrast"], log=lambda m: None,
                   **SMALL)
    assert len(rows) == 1
    r = rows[0]
    assert (r["variant"], r["corruption"], r["seed"]) == ("fast", "contrast", 0)
    assert 0 < r["held_out_events"] < SMALL["scored"]
    for key in ("no_adapt", "adapted", "oracle", "held_out_no_adapt", "held_out_adapted", "held_out_oracle"):
        assert 0.0 <= r[key] <= 1.0
    assert r["oracle"] > r["no_adapt"]  # true labels on a contrast shift always help this model
    expected = gap_closed(r["held_out_no_adapt"], r["held_out_adapted"], r["held_out_oracle"])
    assert r["gap_closed_held_out"] == pytest.approx(expected, nan_ok=True)


def test_summary_and_report_name_the_best_variant_and_the_ones_not_run(setup, tmp_path) -> None:
    model, ax, ay, px, py = setup
    rows = compare(model, ax, ay, px, py, {"default": FAST}, seeds=[0], corruptions=["inversion"],
                   log=lambda m: None, **SMALL)
    assert rows[0]["gap_closed_held_out"] == 0.0 and rows[0]["gap_closed_all_events"] == 0.0  # refused
    summary = summarise(rows)
    assert summary["default"]["mean_gap_closed_held_out"] == 0.0
    line = conclusion(summary, ["one round"])
    assert line.startswith("Best by mean held-out gap closed: default") and "not run: one round" in line
    results = {"command": "test", "date": "now", "machine": "here", "split": "val", "windows": 1,
               "wall_seconds": 1.0, "base": {}, "not_run": ["one round"], "summary": summary, "conclusion": line}
    md = write_report(results, tmp_path).read_text()
    assert "| one round | rounds=1 | not run |" in md and line in md
    assert json.loads((tmp_path / "recipes.json").read_text())["conclusion"] == line


def test_a_corruption_draws_the_same_events_whichever_others_run() -> None:
    x, y = load_digits_images()
    alone = draws(x[:300], y[:300], seed=1, corruptions=["blur"], **SMALL)["blur"]
    together = draws(x[:300], y[:300], seed=1, **SMALL)["blur"]
    assert np.array_equal(alone.scored_x, together.scored_x) and np.array_equal(alone.held_out, together.held_out)


def test_variants_are_adapt_configs_and_unknown_names_are_a_clear_error() -> None:
    assert variant_config("shifts only").rotate_degrees == 0 and variant_config("default") == BASE
    assert parse_variants("default, shifts only") == ["default", "shifts only"] and parse_variants("") is None
    with pytest.raises(ValueError, match="unknown variant 'nope'"):
        parse_variants("default,nope")
    assert math.isnan(gap_closed(0.9, 0.95, 0.902))
