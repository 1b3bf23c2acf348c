"""A third new user's trial: tabular data and sensor faults that no other file in the repository names. Report only.

`bench/results/unseen/` and `bench/results/unseen-2/` are committed and so no longer unseen; this writes fresh
files in their format (`bench/stream_files.py`): ``NAME-src.npz`` (``X``, ``y`` with -1 = unlabeled; half of
the data, 10% of it labeled, at least 3 a class) and ``NAME-fresh.npz`` (``X``, ``y``, ``phase``: the other
half replayed as clean, six faults, clean, 2,000 events a phase).

* hastie: scikit-learn's ``make_hastie_10_2`` (10 independent gaussian features, the class is whether the
  point lies outside the median sphere), the outer class thinned to an 80/20 prior; each feature put in its
  own raw units (a fixed scale and offset per feature), as a user's independent sensors.
* gquant: scikit-learn's ``make_gaussian_quantiles``, 3 classes (nested shells: nominal, warning, fault), 8
  features, read through a fixed rotation (each sensor sees a mix of the latent directions) and then put in
  raw units; the shells become correlated ellipsoids.
* blobs: scikit-learn's ``make_blobs``, 7 classes (operating modes) in 10 features, left in the generator's
  own units (centred, similar scales): the case of a user who already normalises upstream.

All three go through six sensor faults in neither `drift/sensor_shifts.py` nor the two earlier trials:
reversed_polarity, sluggish, lut_off_by_one, interference, zero_imputed, second_device.

Every strength was set from "plausible for a real instrument" alone (the reason is next to each constant);
no model was trained or scored to choose any of them, the seeds, the datasets or the generators' settings
(the blob overlap follows from the geometry: centre spacing against cluster spread). Fault scales come from
the source half (its mean, std and deciles), never from the drifted events.

    .venv/bin/python bench/results/unseen-3/make_unseen.py /tmp/unseen3
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np

TABLE_SEED = 59  # used by no other file here for a split or a generator
TABLE_EVENTS = 2000  # events per phase
LABELED, MIN_LABELED = 0.10, 3  # of the source half, per class (as the earlier trials)
MINORITY = 0.20  # hastie's prior after thinning the outer class: 80/20


# ---------------------------------------------------------------- sensor faults, (n, d) in stream order
@dataclass(frozen=True)
class Ref:
    """The source half's statistics: every fault's yardstick."""

    mean: np.ndarray
    std: np.ndarray
    table: np.ndarray  # (10, d): the 5th, 15th, ..., 95th percentiles, the breakpoints of a calibration table


Fault = Callable[[np.ndarray, np.random.Generator, Ref], np.ndarray]

POLARITY = 1 / 5    # share of the sensors (at least 1) whose two leads were swapped when refitted after maintenance
LAG = 0.25          # first-order lag per event: time constant ~3.5 samples (a fouled thermowell, a slow membrane)
HUM_STD, HUM_PERIOD = 0.5, 40  # pickup amplitude in stds, and its period in events (mains aliased by the sample clock)
MISSING = 0.10      # readings lost on the link; the new ingestion step fills them with 0 (fillna(0)), not the mean
DEVICE_SHARE = 0.30  # events from a second, uncalibrated unit of the same model
DEVICE_GAIN, DEVICE_OFFSET = 0.10, 0.5  # its per-feature gain within +-10%, offset within +-0.5 std (unit tolerance)


def _some(d: int, fraction: float, r: np.random.Generator, least: int = 1) -> np.ndarray:
    return r.permutation(d)[:max(least, int(round(fraction * d)))]


def reversed_polarity(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """A fifth of the features (at least 1) have their leads swapped: the raw reading's sign flips.

    In raw units this mirrors the feature about its zero, not its mean: a feature centred far from 0 jumps by
    twice its mean; one centred near 0 keeps its marginal and moves only against the other features.
    """
    cols, out = _some(x.shape[1], POLARITY, r), x.copy()
    out[:, cols] = -x[:, cols]
    return out


def sluggish(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """A third of the features respond with a first-order lag: each reading moves LAG of the way to the truth."""
    cols, out = _some(x.shape[1], 1 / 3, r), x.copy()
    level = x[0, cols].astype(np.float64)
    for t in range(len(x)):
        level = level + LAG * (x[t, cols] - level)
        out[t, cols] = level
    return out


def lut_off_by_one(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """A third of the features go through their calibration table loaded one entry off.

    The table's breakpoints are the source deciles (5th..95th percentile); a reading between entries i and i+1
    comes out between entries i+1 and i+2 (linear inside, the end segments' shift held beyond the table). The
    shift is about a decile's width: small in the dense middle, large in the tails.
    """
    cols, out = _some(x.shape[1], 1 / 3, r), x.copy()
    for c in cols:
        bp = ref.table[:, c]
        out[:, c] = x[:, c] + np.interp(x[:, c], bp[:-1], np.diff(bp))
    return out


def interference(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """A third of the features pick up a sinusoid over the events: HUM_STD stds, HUM_PERIOD events, own phase."""
    cols, out = _some(x.shape[1], 1 / 3, r), x.copy()
    t = np.arange(len(x))[:, None]
    out[:, cols] += HUM_STD * ref.std[cols] * np.sin(2 * np.pi * t / HUM_PERIOD + r.uniform(0, 2 * np.pi, len(cols)))
    return out


def zero_imputed(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """Each reading independently lost with probability MISSING and filled with 0.0 (in the feature's raw units)."""
    return np.where(r.random(x.shape) < MISSING, 0.0, x)


def second_device(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """DEVICE_SHARE of the events come from another unit: every feature through its own gain and offset."""
    d = x.shape[1]
    g = 1.0 + r.uniform(-DEVICE_GAIN, DEVICE_GAIN, d)
    o = r.uniform(-DEVICE_OFFSET, DEVICE_OFFSET, d) * ref.std
    rows, out = r.random(len(x)) < DEVICE_SHARE, x.copy()
    out[rows] = x[rows] * g + o
    return out


FAULTS: dict[str, Fault] = {"reversed_polarity": reversed_polarity, "sluggish": sluggish,
                            "lut_off_by_one": lut_off_by_one, "interference": interference,
                            "zero_imputed": zero_imputed, "second_device": second_device}


# ---------------------------------------------------------------- files
def split(X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Source half (10% labeled, at least 3 a class; -1 elsewhere) and the pool the stream replays."""
    o = rng.permutation(len(X))
    src, pool = o[: len(X) // 2], o[len(X) // 2:]
    ys = np.full(len(src), -1, np.int64)
    for c in np.unique(y):
        idx = np.flatnonzero(y[src] == c)
        lab = rng.choice(idx, max(MIN_LABELED, int(round(LABELED * len(idx)))), replace=False)
        ys[lab] = c
    return X[src], ys, X[pool], y[pool]


def stream(x: np.ndarray, y: np.ndarray, n: int, rng: np.random.Generator,
           ref: Ref) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """clean, each fault, clean: ``n`` events each, drawn in shuffled passes over the pool."""
    xs, ys, ps, order = [], [], [], np.empty(0, np.int64)
    for name in ["clean", *FAULTS, "clean"]:
        while len(order) < n:
            order = np.r_[order, rng.permutation(len(y))]
        idx, order = order[:n], order[n:]
        xs.append(x[idx] if name == "clean" else FAULTS[name](x[idx].astype(np.float64), rng, ref))
        ys.append(y[idx])
        ps += [name] * n
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.int64), np.array(ps)


def write(out: str, name: str, X: np.ndarray, y: np.ndarray) -> None:
    rng = np.random.default_rng(TABLE_SEED)
    xs, ys, xp, yp = split(X.astype(np.float32), y.astype(np.int64), rng)
    np.savez(f"{out}/{name}-src.npz", X=xs, y=ys)
    ref = Ref(xs.mean(axis=0), xs.std(axis=0) + 1e-6, np.percentile(xs, np.arange(5, 100, 10), axis=0))
    sx, sy, sp = stream(xp, yp, TABLE_EVENTS, rng, ref)
    np.savez(f"{out}/{name}-fresh.npz", X=sx, y=sy, phase=sp)


def raw_units(X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each feature in its own units: a scale of 0.1-100 and an offset of -3..3 scales (as unseen-2's mkclf)."""
    scale = 10 ** rng.uniform(-1, 2, X.shape[1])
    return X * scale + rng.uniform(-3, 3, X.shape[1]) * scale


def main(out: str) -> None:
    from sklearn.datasets import make_blobs, make_gaussian_quantiles, make_hastie_10_2

    os.makedirs(out, exist_ok=True)

    X, y = make_hastie_10_2(n_samples=10000, random_state=TABLE_SEED)  # y in {-1, 1}, about 50/50
    y = (y > 0).astype(np.int64)  # 1: outside the median sphere (the minority after thinning)
    r = np.random.default_rng(TABLE_SEED)
    inner, outer = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    keep = np.sort(np.r_[inner, r.choice(outer, int(round(len(inner) * MINORITY / (1 - MINORITY))), replace=False)])
    write(out, "hastie", raw_units(X[keep], r), y[keep])

    X, y = make_gaussian_quantiles(n_samples=6000, n_features=8, n_classes=3, random_state=TABLE_SEED)
    r = np.random.default_rng(TABLE_SEED + 1)
    rotation, _ = np.linalg.qr(r.standard_normal((8, 8)))
    write(out, "gquant", raw_units(X @ rotation, r), y)

    # centres uniform in [-3, 3]^10 lie ~7.7 apart on average, ~2.6 cluster stds from the midpoint: they overlap
    X, y = make_blobs(n_samples=7000, n_features=10, centers=7, cluster_std=1.5, center_box=(-3.0, 3.0),
                      random_state=TABLE_SEED)
    write(out, "blobs", X, y)
    print("written to", out)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/unseen3")
