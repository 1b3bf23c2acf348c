"""driftwise.bench.label_shift: the shifted pools follow the prior asked for, and the summary counts what it says."""

from __future__ import annotations

import numpy as np

from driftwise.bench import label_shift as bl


def test_priors_are_distributions_split_into_dev_and_held_out() -> None:
    for k in (2, 3, 7):
        got = bl.priors(k, np.random.default_rng(0))
        assert {split for _, split, _ in got} == {"dev", "held-out"}
        for _, _, p in got:
            assert p.shape == (k,) and np.isclose(p.sum(), 1.0) and (p >= 0).all()
    names = [n for n, _, _ in bl.priors(3, np.random.default_rng(0))]
    assert names[:2] == ["80/15/5 on class 0", "80/15/5 on class 1"]


def test_resampling_follows_the_prior() -> None:
    y = np.repeat(np.arange(3), [500, 300, 200])
    idx = bl.resample(y, np.array([0.1, 0.1, 0.8]), np.random.default_rng(0))
    shares = np.bincount(y[idx], minlength=3) / len(idx)
    assert np.abs(shares - [0.1, 0.1, 0.8]).max() < 0.04


def test_the_summary_counts_recognitions_and_gains() -> None:
    row = {"dataset": "d", "seed": 0, "served": "label shift", "mmd_ratio": 0.1, "prior_error": 0.02,
           "bn_interim": 0.5}
    rows = [{**row, "kind": "label", "split": "dev", "explains": True, "frozen": 0.9, "accuracy": 0.95},
            {**row, "kind": "label", "split": "dev", "explains": False, "frozen": 0.9, "accuracy": 0.8}]
    (line,) = bl.summary(rows)
    assert "recognised as label shift 1/2" in line and "mean -2.5 points, worst -10.0" in line
    assert "BatchNorm interim alone would be mean -40.0" in line
