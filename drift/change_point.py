"""Where the newest domain begins inside a window of inputs: one kernel change-point scan.

Why: an interim's BatchNorm statistics are the means and variances of its window, the
latest inputs. When it is made shortly after the stream changed, part of that window is
still the domain before, and means and variances are not robust: on a fresh-data trial
11 readings of a register decoded unsigned (values thousands of standard deviations out)
at the start of a window of 128 made the next domain's interim serve 41 points under the
frozen model for 123 events. The interim should be normalised on the newest domain only.

How: in the window's embeddings (arrival order), every split ``s`` leaving at least
``min_segment`` rows on each side is scored by ``s (n - s) / n`` times the RBF-kernel MMD²
between the rows before and after it (the weight makes the biased MMD²'s offset the same at
every split, so the scan does not favour its ends); the best split is the change's estimate.
Whether there is a change at all is a permutation test of the best score, exchanging
rows in blocks as `driftwise.drift.embedding_drift.mmd_permutation_test` does (single rows
when the rows are independent; blocks twice the dependence when they come through a slow
sensor, whose stationary drift would otherwise pass for a change).

>>> rng = np.random.default_rng(0)
>>> one = rng.normal(size=(128, 4))
>>> latest_domain(one).start
0
>>> two = np.r_[rng.normal(size=(40, 4)) + 3.0, rng.normal(size=(88, 4))]
>>> found = latest_domain(two)
>>> found.start, found.p_value < 0.01
(40, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from driftwise.drift.embedding_drift import _sq_dists, permutation_block

MIN_SEGMENT = 16
"""Rows each side of a split must keep at least: the newest domain an interim is normalised on is never shorter."""
ALPHA = 0.01
"""Level of the permutation test below which the window holds a change (1 window in 100 split without one)."""


@dataclass(frozen=True)
class ChangePoint:
    """``start``: index of the first row of the newest domain in the window (0: no change found);
    ``split``: the best-scoring split, whether significant or not; ``p_value``: the permutation test's."""

    start: int
    split: int
    p_value: float


def split_scores(k: np.ndarray, min_segment: int, orders: np.ndarray | None = None, *,
                 chunk: int = 16) -> np.ndarray:
    """``s (n - s) / n * MMD²(rows[:s], rows[s:])`` for every split ``s`` in ``[min_segment, n - min_segment]``,
    from the kernel matrix ``k`` ``(n, n)``, with the rows in each order of ``orders`` ``(P, n)`` (P orderings scored
    at once, shape ``(P, splits)``; default: arrival order alone, shape ``(splits,)``).

    Every MMD² comes from three running sums over the ordered rows: the kernel of each row with the rows
    before it, the rows' kernel totals and the diagonal. ``chunk`` orderings are taken at a time, so a
    permutation test of a 512-row window stays in cache (4 s for 200 permutations when they were one
    ``(P, n, n)`` array with two-dimensional prefix sums; 0.3 s so).
    """
    single = orders is None
    n = k.shape[-1]
    orders = np.arange(n)[None, :] if orders is None else np.asarray(orders)
    rowsum, diag, total = k.sum(1), np.diagonal(k), k.sum()
    below = np.tril(np.ones((n, n)), -1)  # row t: the rows ordered before it
    s = np.arange(min_segment, n - min_segment + 1)
    scores = np.empty((len(orders), len(s)))
    for at in range(0, len(orders), chunk):
        o = orders[at:at + chunk]
        with_earlier = (k[o[:, :, None], o[:, None, :]] * below).sum(-1)
        before = np.cumsum(2.0 * with_earlier + diag[o], axis=1)[:, s - 1]  # sum of k over rows[:s] x rows[:s]
        across = np.cumsum(rowsum[o], axis=1)[:, s - 1] - before            # rows[:s] x rows[s:]
        after = total - before - 2.0 * across
        mmd2 = before / s**2 + after / (n - s) ** 2 - 2.0 * across / (s * (n - s))
        scores[at:at + chunk] = s * (n - s) / n * mmd2
    return scores[0] if single else scores


def latest_domain(z: np.ndarray, *, min_segment: int = MIN_SEGMENT, alpha: float = ALPHA,
                  permutations: int = 200, seed: int = 0) -> ChangePoint:
    """Find where the newest domain begins in ``z`` ``(n, d)``, rows in arrival order (see the module).

    Windows shorter than two segments cannot be split: ``start`` 0, p-value 1.
    """
    z = np.asarray(z, dtype=np.float64)
    n = len(z)
    if n < 2 * min_segment or min_segment < 1:
        return ChangePoint(0, 0, 1.0)
    block = permutation_block(z)
    skip = n % block  # the oldest rows that do not fill a block stay in place, first
    d2 = _sq_dists(z, z)
    bandwidth = float(np.median(d2[np.triu_indices(n, 1)])) or 1.0
    k = np.exp(-d2 / bandwidth)
    rng = np.random.default_rng(seed)
    blocks = (n - skip) // block
    orders = np.empty((permutations + 1, n), dtype=np.int64)
    orders[0] = np.arange(n)
    within = np.arange(block)
    for j in range(1, permutations + 1):
        orders[j, :skip] = np.arange(skip)
        orders[j, skip:] = skip + (rng.permutation(blocks)[:, None] * block + within).ravel()
    scores = split_scores(k, min_segment, orders)
    best = scores.max(axis=1)
    split = int(min_segment + np.argmax(scores[0]))
    p = float((1 + np.sum(best[1:] >= best[0] - 1e-9 * max(1.0, abs(best[0])))) / (1 + permutations))
    return ChangePoint(split if p < alpha else 0, split, p)
