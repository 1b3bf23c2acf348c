"""How `driftwise.bench.drift` scores adaptation: gap closed on held-out images, averaged per corruption."""

import math

import numpy as np

from driftwise.bench.drift import RunResult, _mean_gap, drift_metrics
from driftwise.drift.corruptions import Stream


def _run(pred: np.ndarray) -> RunResult:
    return RunResult(pred, np.ones(len(pred)), np.ones(len(pred), np.int64))


def test_gap_closed_ignores_events_whose_image_the_oracle_was_given():
    # 10 clean events, then 20 drifted ones; the adaptation window is events 10-14 (images 0-4).
    image = np.array(list(range(10)) + list(range(5)) + list(range(10)) + list(range(5)))
    y = np.zeros(30, np.int64)
    stream = Stream(np.zeros((30, 1)), y, np.array(["clean"] * 10 + ["blur"] * 20, dtype=object), [10], image)
    no_adapt = np.ones(30, np.int64)  # always wrong
    adapted = np.where(np.arange(30) >= 15, 0, 1)  # right from event 15 on
    oracle = np.where(np.arange(30) >= 15, 0, 1)
    oracle[(np.arange(30) >= 15) & np.isin(image, image[10:15])] = 0  # also right on the memorised images
    adapted[(np.arange(30) >= 15) & np.isin(image, image[10:15])] = 1  # but adaptation never learned those

    m = drift_metrics(stream, _run(no_adapt), _run(adapted), oracle, window=[10, 15])

    assert m["held_out_events"] == 5  # images 5-9, once each after the drift
    assert m["gap_closed"] == 1.0  # on images nobody was given, adaptation matches the oracle
    assert m["gap_closed_all_events"] < 0.5  # on all events the oracle's memory counts too


def test_mean_gap_averages_streams_then_corruptions_and_counts_refusals_as_zero():
    rows = [
        {"corruption": "blur", "promoted": 1, "gap_closed": 0.4},
        {"corruption": "blur", "promoted": 1, "gap_closed": 0.8},
        {"corruption": "inversion", "promoted": 0, "gap_closed": math.nan},
    ]
    assert math.isclose(_mean_gap(rows, "gap_closed"), (0.6 + 0.0) / 2)
