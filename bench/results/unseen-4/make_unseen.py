"""A fourth new user's trial: data, a split and faults that no other file in the repository names. Report only.

The three earlier trials (`bench/results/unseen/`, `unseen-2/`, `unseen-3/`) are committed and so no longer unseen;
this writes fresh files in their format (`bench/stream_files.py`): ``NAME-src.npz`` (``X``, ``y`` with -1 =
unlabeled; half of the data, 10% of it labeled, at least 3 a class) and ``NAME-fresh.npz`` (``X``, ``y``,
``phase``: the other half replayed as clean, six faults, clean, in blocks of equal length).

* digits: scikit-learn's digits, split by seed 43 (the benches use 0, 1, 2, the trials 11 and 23), 1,500 events
  a phase, six image faults of a real scanner or camera in neither `drift/corruptions.py` nor an earlier trial:
  thin_strokes, lens_smudge, dead_row, keystone, line_doubling, ghosting.
* moons: scikit-learn's ``make_moons`` (two interleaved half circles: a curved boundary), the lower moon thinned
  to an 85/15 prior; the 2-D process state read by 8 redundant sensors (each a fixed mix of the two state
  variables plus its own noise), then put in raw units (a scale and an offset per sensor).
* swissroll: scikit-learn's ``make_swiss_roll``, the class is the stage along the roll (6 equal spans of its
  angle; the height is irrelevant), read by 9 redundant sensors as above and left in their own units.

Both tables go through six sensor faults in neither `drift/sensor_shifts.py` nor an earlier trial:
stuck_bit, deadband, unsigned_decode, tempco, field_slip, range_switch_step.

Every strength was set from "plausible for a real instrument" alone (the reason is next to each constant); no
model was trained or scored to choose any of them, the seeds, the datasets or the generators' settings. Fault
scales come from the source half (its mean, std, range and upper quartile), never from the drifted events.

    .venv/bin/python bench/results/unseen-4/make_unseen.py /tmp/unseen4
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates

DIGITS_SEED, TABLE_SEED = 43, 107  # used by no other file here for a split or a generator
IMAGE_EVENTS, TABLE_EVENTS = 1500, 2000  # events per phase
LABELED, MIN_LABELED = 0.10, 3  # of the source half, per class (as the earlier trials)
MINORITY = 0.15  # moons' prior after thinning the lower moon: 85/15
STAGES = 6  # swissroll's classes: equal spans of the roll's angle, so about equal priors


# ---------------------------------------------------------------- image faults, (n, 1, 8, 8) in [0, 1], ink high
ERODE = 0.5        # a toner-starved printer / drying pen: half a pixel of a 1-2 px stroke's edge lost
SMUDGE_SIGMA, SMUDGE_PEAK, SMUDGE_BLUR = 1.5, 0.8, 1.0  # a fingerprint on the lens: ~3 px across, scatters 80%
KEYSTONE = 0.25    # a page photographed from below at ~20 degrees: the top row 25% narrower than the bottom
GHOST, GHOST_PX = 0.3, 2  # analog multipath echo: about -10 dB, a couple of pixels late on the line


def thin_strokes(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """Strokes lose their edges: each pixel moves ERODE of the way to its faintest 4-neighbour (zero outside).

    A morphological erosion, so full-strength ink at a stroke's edge goes as well as faint ink (gamma, by
    contrast, fades faint pixels wherever they are and leaves a dark edge whole).
    """
    p = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    low = np.minimum.reduce([x, p[..., :-2, 1:-1], p[..., 2:, 1:-1], p[..., 1:-1, :-2], p[..., 1:-1, 2:]])
    return x + ERODE * (low - x)


def lens_smudge(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """A greasy spot, fixed for the phase: inside it the image is blurred, outside it is as it was."""
    cy, cx = r.uniform(2.0, 5.0, 2)  # somewhere over the digit, not in the margin
    yy, xx = np.meshgrid(np.arange(8.0), np.arange(8.0), indexing="ij")
    m = SMUDGE_PEAK * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * SMUDGE_SIGMA**2))
    return x + m * (gaussian_filter(x, (0, 0, SMUDGE_BLUR, SMUDGE_BLUR), mode="constant") - x)


def dead_row(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """A failed row driver of the sensor: one row (not the border), fixed for the phase, reads 0."""
    out = x.copy()
    out[:, :, r.integers(1, 7)] = 0.0
    return out


def keystone(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """Perspective from a tilted camera: row i is narrowed about the centre by KEYSTONE * (7 - i) / 7 (bilinear)."""
    rows, cols = np.meshgrid(np.arange(8.0), np.arange(8.0), indexing="ij")
    width = 1.0 - KEYSTONE * (7.0 - rows) / 7.0
    n = len(x)
    coords = [np.broadcast_to(np.arange(n, dtype=np.float64)[:, None, None], (n, 8, 8)),
              np.broadcast_to(rows, (n, 8, 8)), np.broadcast_to(3.5 + (cols - 3.5) / width, (n, 8, 8))]
    return map_coordinates(x[:, 0], coords, order=1, mode="constant", cval=0.0)[:, None]


def line_doubling(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """An interlaced camera lost a field and the deinterlacer doubled the other: each odd row repeats the row above."""
    out = x.copy()
    out[:, :, 1::2] = x[:, :, 0::2]
    return out


def ghosting(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """A reflected copy of the image, GHOST as strong and GHOST_PX pixels to the right (a multipath echo)."""
    out = x.copy()
    out[..., GHOST_PX:] += GHOST * x[..., :-GHOST_PX]
    return out


IMAGE: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "thin_strokes": thin_strokes, "lens_smudge": lens_smudge, "dead_row": dead_row, "keystone": keystone,
    "line_doubling": line_doubling, "ghosting": ghosting}


# ---------------------------------------------------------------- sensor faults, (n, d) in stream order
@dataclass(frozen=True)
class Ref:
    """The source half's statistics: every fault's yardstick."""

    mean: np.ndarray
    std: np.ndarray
    low: np.ndarray    # the source's smallest and largest reading: the span a transmitter was ranged to
    high: np.ndarray
    upper: np.ndarray  # the 75th percentile: where an autoranging input switches to its high range
    peak: np.ndarray   # the largest |reading|: what a register's scaling was chosen to hold


ADC_BITS, STUCK_BIT = 12, 9  # a 12-bit converter; a shorted data line, 3rd from the top: 1/8 of the span
DEADBAND = 0.5     # a historian's exception deviation: 2% of a span ranged ~25 stds wide (for start-up, not operation)
TEMPCO = 0.4       # an uncompensated temperature coefficient: a day's ambient swing moves a reading tenths of a std
AMBIENT_EVENTS = 300  # the ambient's correlation time in events (a slow swing, many within a phase)
SLIP = 0.10        # events whose optional field is empty (a sensor that reports only when it has a new value)
STEP = 0.5         # the high range's zero off by 0.5% of its span, which is ~100 stds (10x the low range)


def _some(d: int, fraction: float, r: np.random.Generator, least: int = 1) -> np.ndarray:
    return r.permutation(d)[:max(least, int(round(fraction * d)))]


def stuck_bit(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """The channels of one converter of three (a third of the features) have data line STUCK_BIT stuck high.

    The converter spans the source's range; a reading whose code has that bit low comes out 2**STUCK_BIT codes
    (an eighth of the span) higher, one with it high is untouched: a sawtooth warp that folds separate values
    together. The sub-code fraction is kept (the converter's own quantization is far below the sensor noise).
    """
    cols, out = _some(x.shape[1], 1 / 3, r), x.copy()
    lsb = (ref.high[cols] - ref.low[cols]) / 2**ADC_BITS
    code = np.floor((x[:, cols] - ref.low[cols]) / lsb).astype(np.int64)
    out[:, cols] += np.where(code & (1 << STUCK_BIT), 0.0, lsb * (1 << STUCK_BIT))
    return out


def deadband(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """A third of the features go through a historian's exception reporting: the stored value is held until
    the reading moves more than DEADBAND stds from it. Uses the event order."""
    cols, out = _some(x.shape[1], 1 / 3, r), x.copy()
    band, held = DEADBAND * ref.std[cols], x[0, cols].copy()
    for t in range(len(x)):
        moved = np.abs(x[t, cols] - held) > band
        held = np.where(moved, x[t, cols], held)
        out[t, cols] = held
    return out


def unsigned_decode(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """Half of the registers (one device model of two, after a gateway's map change) are decoded as uint16, not int16.

    Each register holds counts of 10**k units, the finest power of ten whose int16 range holds the source's
    largest reading; a negative reading then comes out 65536 counts higher. Features that never go negative
    in their units are untouched; the others jump by twice the register's full scale.
    """
    cols, out = _some(x.shape[1], 1 / 2, r), x.copy()
    res = 10.0 ** np.ceil(np.log10(ref.peak[cols] / 32767))
    out[:, cols] = np.where(x[:, cols] < 0, x[:, cols] + 65536 * res, x[:, cols])
    return out


def tempco(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """A third of the features pick up the ambient temperature, TEMPCO stds per ambient std, their own sign.

    The ambient is one slow AR(1) shared by all of them (correlation time AMBIENT_EVENTS): the hit features
    wander together, which moves their joint structure more than their marginals. Uses the event order.
    """
    cols, out = _some(x.shape[1], 1 / 3, r), x.copy()
    phi = 1.0 - 1.0 / AMBIENT_EVENTS
    kicks = r.standard_normal(len(x)) * np.sqrt(1.0 - phi**2)
    ambient = np.empty(len(x))
    ambient[0] = r.standard_normal()  # start anywhere in the stationary range
    for t in range(1, len(x)):
        ambient[t] = phi * ambient[t - 1] + kicks[t]
    out[:, cols] += TEMPCO * ref.std[cols] * r.choice([-1.0, 1.0], len(cols)) * ambient[:, None]
    return out


def field_slip(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """An optional field in the first half of the record is empty on SLIP of the events; a whitespace-split reader
    collapses it, every later field slides one column left, and the missing last one gets its source mean."""
    d, out = x.shape[1], x.copy()
    c, rows = r.integers(0, d // 2), np.flatnonzero(r.random(len(x)) < SLIP)
    out[np.ix_(rows, np.arange(c, d - 1))] = x[np.ix_(rows, np.arange(c + 1, d))]
    out[rows, d - 1] = ref.mean[d - 1]
    return out


def range_switch_step(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """A third of the features come from autoranging inputs whose high range has a zero error: readings above
    the source's upper quartile (the switch point) come out STEP stds off, random sign per feature."""
    cols, out = _some(x.shape[1], 1 / 3, r), x.copy()
    step = STEP * ref.std[cols] * r.choice([-1.0, 1.0], len(cols))
    out[:, cols] += np.where(x[:, cols] > ref.upper[cols], step, 0.0)
    return out


TABULAR: dict[str, Callable[[np.ndarray, np.random.Generator, Ref], np.ndarray]] = {
    "stuck_bit": stuck_bit, "deadband": deadband, "unsigned_decode": unsigned_decode, "tempco": tempco,
    "field_slip": field_slip, "range_switch_step": range_switch_step}


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


def stream(x: np.ndarray, y: np.ndarray, names: list[str], n: int, rng: np.random.Generator,
           apply: Callable[[str, np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """clean, each fault, clean: ``n`` events each, drawn in shuffled passes over the pool."""
    xs, ys, ps, order = [], [], [], np.empty(0, np.int64)
    for name in ["clean", *names, "clean"]:
        while len(order) < n:
            order = np.r_[order, rng.permutation(len(y))]
        idx, order = order[:n], order[n:]
        xs.append(x[idx] if name == "clean" else apply(name, x[idx].astype(np.float64)))
        ys.append(y[idx])
        ps += [name] * n
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.int64), np.array(ps)


def write(out: str, name: str, X: np.ndarray, y: np.ndarray, seed: int, image: bool) -> tuple[np.ndarray, ...]:
    """Both files of one stream; returns the source rows and the stream (X, phase) for the statistics."""
    rng = np.random.default_rng(seed)
    xs, ys, xp, yp = split(X.astype(np.float32), y.astype(np.int64), rng)
    np.savez(f"{out}/{name}-src.npz", X=xs, y=ys)
    if image:
        sx, sy, sp = stream(xp, yp, list(IMAGE), IMAGE_EVENTS, rng,
                            lambda f, x: np.clip(IMAGE[f](x, rng), 0.0, 1.0))
    else:
        x64 = xs.astype(np.float64)
        ref = Ref(x64.mean(axis=0), x64.std(axis=0) + 1e-6, x64.min(axis=0), x64.max(axis=0),
                  np.percentile(x64, 75, axis=0), np.abs(x64).max(axis=0))
        sx, sy, sp = stream(xp, yp, list(TABULAR), TABLE_EVENTS, rng, lambda f, x: TABULAR[f](x, rng, ref))
    np.savez(f"{out}/{name}-fresh.npz", X=sx, y=sy, phase=sp)
    return xs, ys, sx, sp


def sensors(state: np.ndarray, d: int, noise: float, r: np.random.Generator) -> np.ndarray:
    """``d`` redundant sensors of a low-dimensional process state: each a fixed random mix plus its own noise."""
    return state @ r.standard_normal((state.shape[1], d)) + noise * r.standard_normal((len(state), d))


def raw_units(X: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """Each feature in its own units: a scale of 0.1-100 and an offset of -3..3 scales (as unseen-3's tables)."""
    scale = 10 ** r.uniform(-1, 2, X.shape[1])
    return X * scale + r.uniform(-3, 3, X.shape[1]) * scale


# ---------------------------------------------------------------- statistics the README quotes (no model)
def report(name: str, xs: np.ndarray, ys: np.ndarray, sx: np.ndarray, sp: np.ndarray) -> None:
    """Per phase, against the source half, from the inputs alone.

    Tables, per feature in source stds: the largest mean move, the range of std ratios, the largest change of a
    feature pair's correlation and the largest lag-1 autocorrelation (the faults that use the event order).
    Images, in intensity (0-1): the mean ink, the largest move of a pixel's mean and the range of std ratios
    over the pixels that vary in the source (std > 0.1; the margins are nearly always blank).
    """
    labeled = np.bincount(ys[ys >= 0])
    print(f"\n{name}: source {xs.shape}, labeled {labeled.sum()} {labeled.tolist()}, stream {sx.shape}")
    src, fresh = xs.reshape(len(xs), -1).astype(np.float64), sx.reshape(len(sx), -1).astype(np.float64)
    mu, sd = src.mean(axis=0), src.std(axis=0)
    n = int(np.flatnonzero(sp != sp[0])[0])  # phases are blocks of equal length
    for i in range(0, len(sp), n):
        x, ph = fresh[i:i + n], str(sp[i])
        if xs.ndim > 2:
            live = sd > 0.1
            move, ratio = np.abs(x.mean(axis=0) - mu), x.std(axis=0)[live] / sd[live]
            print(f"  {ph:<18} mean ink {x.mean():.3f} (source {src.mean():.3f}), pixel mean move max {move.max():.2f}"
                  f" (row {move.argmax() // 8}, col {move.argmax() % 8}), "
                  f"std ratio {ratio.min():.2f}-{ratio.max():.2f}")
            continue
        move, ratio = np.abs(x.mean(axis=0) - mu) / sd, x.std(axis=0) / sd
        dcorr = np.abs(np.corrcoef(x, rowvar=False) - np.corrcoef(src, rowvar=False))
        xc = x - x.mean(axis=0)
        lag1 = (xc[1:] * xc[:-1]).mean(axis=0) / xc.var(axis=0)
        print(f"  {ph:<18} mean move max {move.max():6.2f} (feature {move.argmax()}), std ratio "
              f"{ratio.min():.2f}-{ratio.max():.2f}, corr change max {dcorr.max():.2f}, "
              f"lag-1 autocorr max {lag1.max():.2f}")


def main(out: str) -> None:
    from sklearn.datasets import load_digits, make_moons, make_swiss_roll

    os.makedirs(out, exist_ok=True)
    d = load_digits()
    report("digits", *write(out, "digits", (d.images / 16.0)[:, None], d.target, DIGITS_SEED, image=True))

    X, y = make_moons(n_samples=10000, noise=0.25, random_state=TABLE_SEED)  # 50/50; 0.25: the moons just touch
    r = np.random.default_rng(TABLE_SEED)
    upper, lower = np.flatnonzero(y == 0), np.flatnonzero(y == 1)  # 1: the lower moon, the minority after thinning
    keep = np.sort(np.r_[upper, r.choice(lower, int(round(len(upper) * MINORITY / (1 - MINORITY))), replace=False)])
    # sensor noise 0.2 in the state's units (its two variables have stds ~0.9 and ~0.5)
    report("moons", *write(out, "moons", raw_units(sensors(X[keep], 8, 0.2, r), r), y[keep], TABLE_SEED, image=False))

    # the roll's angle spans [1.5 pi, 4.5 pi]; one turn (2 pi of radius) separates its windings, noise 0.5 of that
    X, t = make_swiss_roll(n_samples=6000, noise=0.5, random_state=TABLE_SEED + 1)
    y = np.minimum(((t - 1.5 * np.pi) / (3 * np.pi) * STAGES).astype(np.int64), STAGES - 1)
    r = np.random.default_rng(TABLE_SEED + 1)
    # each sensor's own noise 1.0 in the roll's units (its coordinates have stds ~6-7)
    report("swissroll", *write(out, "swissroll", sensors(X, 9, 1.0, r), y, TABLE_SEED, image=False))
    print("\nwritten to", out)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/unseen4")
