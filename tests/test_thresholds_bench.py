"""driftwise.bench.thresholds: its scoring by hand on tiny arrays, its source model pinned to `driftwise pretrain`'s
defaults, and one --quick run end to end."""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path

import numpy as np
import pytest

from driftwise.bench import thresholds as bt
from driftwise.drift.corruptions import DEVELOPMENT_FAMILIES


def _p(rows: list[list[float]]) -> np.ndarray:
    return np.array(rows, dtype=np.float64)


# confidences 0.95, 0.85, 0.6, 0.99; predictions 0, 1, 1, 2
P = _p([[0.95, 0.05, 0.0], [0.1, 0.85, 0.05], [0.3, 0.6, 0.1], [0.0, 0.01, 0.99]])
Y = np.array([0, 2, 1, 2])  # row 1 is wrong, the others right


def test_global_precision_and_yield_by_hand() -> None:
    assert bt.counts(P, Y, 0.9) == (2, 2, 4)  # rows 0 and 3, both right
    assert bt.precision_yield(bt.counts(P, Y, 0.9)) == (1.0, 0.5)
    assert bt.counts(P, Y, 0.8) == (3, 2, 4)  # row 1 joins, wrong
    assert bt.precision_yield((3, 2, 4)) == pytest.approx((2 / 3, 0.75))
    assert bt.counts(P, Y, 0.5) == (4, 3, 4)
    n_conf, n_right, n = bt.counts(P, Y, 0.999)
    assert (n_conf, n_right, n) == (0, 0, 4)
    prec, yld = bt.precision_yield((n_conf, n_right, n))
    assert math.isnan(prec) and yld == 0.0


def test_freematch_thresholds_by_hand() -> None:
    m = P.mean(axis=0)  # (0.3375, 0.3775, 0.2875): class 1 is the best learned
    expected = 0.9 * m / m.max()
    assert bt.class_thresholds(P, 0.9, "freematch") == pytest.approx(expected)
    assert bt.class_thresholds(P, 0.9, "freematch").max() == pytest.approx(0.9)
    # bars: class 0 ~0.805, class 1 0.9, class 2 ~0.685 -> rows 0 and 3 pass, row 1 (0.85 < 0.9) does not
    assert bt.confident(P, 0.9, "freematch").tolist() == [True, False, False, True]


def test_classconf_thresholds_by_hand() -> None:
    # mean confidence of events predicted 0: 0.95, predicted 1: (0.85 + 0.6) / 2 = 0.725, predicted 2: 0.99
    bars = bt.class_thresholds(P, 0.9, "classconf")
    assert bars == pytest.approx([0.9 * 0.95 / 0.99, 0.9 * 0.725 / 0.99, 0.9])
    assert bt.confident(P, 0.9, "classconf").tolist() == [True, True, False, True]
    assert bt.counts(P, Y, 0.9, "classconf") == (3, 2, 4)
    # a class never predicted gets the top bar and changes nothing
    assert bt.class_thresholds(_p([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0]]), 0.9, "classconf")[2] == pytest.approx(0.9)
    with pytest.raises(ValueError):
        bt.confident(P, 0.9, "nope")


def test_summary_and_choice() -> None:
    taus = (0.8, 0.9)
    table = {
        "a": {m: {0.8: [10, 9, 20], 0.9: [5, 5, 20]} for m in bt.MODES},
        "b": {m: {0.8: [8, 8, 10], 0.9: [0, 0, 10]} for m in bt.MODES},
    }
    s = bt.summarize(table, ["a", "b"], taus)["bn/global"]
    assert s[0.8]["precision"] == pytest.approx((0.9 + 1.0) / 2)
    assert s[0.8]["worst_precision"] == pytest.approx(0.9)
    assert s[0.8]["yield"] == pytest.approx((0.5 + 0.8) / 2)
    assert s[0.9]["precision"] == 1.0 and s[0.9]["families_with_labels"] == 1  # b has no labels: left out
    assert s[0.9]["yield"] == pytest.approx(0.125)
    assert bt.best_threshold(s, 0.95) == 0.8  # both pass, 0.8 yields more
    assert bt.best_threshold(s, 0.99) == 0.9
    assert bt.best_threshold({0.9: {"precision": 0.5, "yield": 1.0}}, 0.9) is None


def test_families_are_the_development_ones() -> None:
    assert set(bt.FAMILIES) == set(DEVELOPMENT_FAMILIES) and "inversion" not in bt.FAMILIES


def test_source_model_is_driftwise_pretrain_with_no_flags(tmp_path: Path) -> None:
    """The benchmark measures what users get: every field the CLI sets from a default is that default."""
    from driftwise.service.cli import pretrain

    defaults = {k: v.default for k, v in inspect.signature(pretrain).parameters.items()
                if v.default is not inspect.Parameter.empty}
    request = bt.pretrain_request(np.zeros((2, 1, 8, 8), np.float32), np.array([0, 1]), tmp_path, bt.Settings())
    assert request.objective == defaults["objective"] == "simclr"
    for field in ("encoder", "input_shape", "head", "epochs", "device", "seed"):
        assert getattr(request, field) == defaults[field], field


def test_quick_run_end_to_end(tmp_path: Path) -> None:
    results = bt.main(["--quick", "--windows", "1", "--out", str(tmp_path / "out"),
                       "--cache-dir", str(tmp_path / "cache")])
    saved = json.loads((tmp_path / "out" / "thresholds-quick.json").read_text())
    md = (tmp_path / "out" / "thresholds-quick.md").read_text()
    assert "Command: `python -m driftwise.bench.thresholds --windows 1 --quick`" in md
    assert saved["families"] == list(bt.FAMILIES) and set(saved["table"]) == {"clean", *bt.FAMILIES}
    for family in saved["table"].values():
        for mode in bt.MODES:
            n_conf = [family[mode][str(t)][0] for t in bt.THRESHOLDS]
            assert all(c[2] == bt.WINDOW for c in family[mode].values())
            if mode.endswith("global"):
                assert n_conf == sorted(n_conf, reverse=True)  # a higher bar never keeps more
    assert results["choices"].keys() == set(bt.MODES)
