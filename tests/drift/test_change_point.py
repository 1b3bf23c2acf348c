"""Where the newest domain begins in a window: the change-point scan an interim's window is cut by."""

from __future__ import annotations

import numpy as np
import pytest

from driftwise.drift.change_point import latest_domain, split_scores


def _slow(n: int, d: int, coefficient: float, rng: np.random.Generator) -> np.ndarray:
    """A stationary first-order lag (a slow sensor): consecutive rows alike, no change anywhere."""
    noise, x = rng.normal(size=(n, d)), np.empty((n, d))
    x[0] = noise[0]
    for t in range(1, n):
        x[t] = coefficient * x[t - 1] + np.sqrt(1 - coefficient**2) * noise[t]
    return x


@pytest.mark.parametrize("start", [20, 64, 100])
def test_a_change_anywhere_in_the_window_is_found_where_it_is(start: int) -> None:
    rng = np.random.default_rng(start)
    z = rng.normal(size=(128, 8))
    z[start:] += 0.8
    found = latest_domain(z)
    assert found.p_value < 0.01 and abs(found.start - start) <= 2


def test_a_few_readings_far_out_at_the_start_are_found_too() -> None:
    # 11 rows of a register decoded unsigned (thousands of standard deviations out) before the next domain's 117.
    rng = np.random.default_rng(0)
    z = rng.normal(size=(128, 8))
    z[:11] += 5000.0
    assert latest_domain(z).start == 16  # as near as a segment of at least 16 rows allows: every far row cut


def test_a_window_of_one_domain_is_kept_whole_about_99_times_in_100() -> None:
    rng = np.random.default_rng(1)
    cut = [latest_domain(rng.normal(size=(128, 16)), seed=i).start > 0 for i in range(100)]
    assert sum(cut) <= 4


def test_a_slow_sensors_stationary_wander_is_cut_far_less_often_than_exchanging_single_rows_would() -> None:
    rng = np.random.default_rng(2)
    windows = [_slow(128, 8, 0.5, rng) for _ in range(40)]
    assert sum(latest_domain(z, seed=i).start > 0 for i, z in enumerate(windows)) <= 8
    still = [_slow(128, 8, 0.5, rng) for _ in range(10)]
    for z in still:
        z[64:] += 1.0
    assert all(abs(latest_domain(z).start - 64) <= 4 for z in still)  # a step in it is still found


def test_a_window_too_short_for_two_segments_is_not_split() -> None:
    found = latest_domain(np.zeros((20, 3)))
    assert (found.start, found.p_value) == (0, 1.0)


def test_split_scores_weigh_every_split_alike_when_nothing_changes() -> None:
    # All rows alike: every MMD is 0; the weight cannot make one split look better than another.
    assert np.allclose(split_scores(np.ones((32, 32)), 4), 0.0)


def test_split_scores_are_the_weighted_mmd_of_the_rows_before_and_after_each_split_in_every_order() -> None:
    rng = np.random.default_rng(3)
    z = rng.normal(size=(40, 3))
    k = np.exp(-((z[:, None] - z[None]) ** 2).sum(-1) / 3.0)
    orders = np.array([np.arange(40)] + [rng.permutation(40) for _ in range(20)])
    scores = split_scores(k, 5, orders, chunk=7)  # chunks that do not divide the orders evenly
    for p, order in enumerate(orders):
        kp = k[order][:, order]
        for i, s in enumerate(range(5, 36)):
            mmd2 = kp[:s, :s].mean() + kp[s:, s:].mean() - 2.0 * kp[:s, s:].mean()
            assert scores[p, i] == pytest.approx(s * (40 - s) / 40 * mmd2, abs=1e-12)
    assert np.allclose(split_scores(k, 5), scores[0])  # arrival order alone, one row of scores
