"""A fifth new user's trial: data, a split and faults that no other file in the repository names. Report only.

`bench/results/unseen/` to `unseen-4/` are committed, so they are no longer unseen. This script writes new files
in their format (`bench/stream_files.py`). ``NAME-src.npz`` holds ``X`` and ``y`` (-1 = unlabeled): half of the
data, 10% of it labeled, at least 3 rows a class. ``NAME-fresh.npz`` holds ``X``, ``y`` and ``phase``: the other
half replayed as clean, then six faults, then clean again, 2,000 events a phase.

* digits: scikit-learn's digits, split by seed 67 (the benches use 0, 1, 2; the trials used 11, 23, 43). Six image
  faults of real printers, scanners and cameras, none in `drift/corruptions.py`, `models/augment.py` or an
  earlier trial: ordered_dither, column_fpn, aspect_squeeze, oversharpen, specular_glare, cis_seam.
* friedman (binary, 75/25): scikit-learn's ``make_friedman1``. Ten independent sensors; the process output
  depends on five of them and the other five are irrelevant. The class is "output in its top quarter". Each
  sensor is in its own raw units.
* rlc (3 classes, 70/20/10): a series RLC part on a test bench. ``make_friedman2`` draws R (ohm), the test
  frequency and L (H); C is taken in uF. The part is graded A/B/C by its measured impedance |Z|, with 3%
  meter noise. The features are already in physical units.

Both tables get the same six sensor and data-pipeline faults. None of them is in `drift/sensor_shifts.py` or
an earlier trial: ground_loop, excitation_ripple, delta_desync, historian_max, double_sqrt, burnout.
The brief's example ideas (quantize, saturate, unit change, zero fill, sign flip, channel swap, sample-and-hold,
a second population) were all used by earlier trials as quantize, saturate, unit_change, zero_imputed,
reversed_polarity, swap, deadband/dead_sensor and second_device, so this trial does not use them.

Each strength was first set from "plausible for a real instrument"; the reason sits next to each constant. The
script then scores one frozen check model per stream (`frozen_check`: a scikit-learn MLP fitted on the source's
labeled rows, not driftwise) so that most phases cost it 3-30 points. After its first run the table faults were
widened once: from a third of the features to half (one module or device of two), RIPPLE 0.08 -> 0.15, LOSS
1/150 -> 1/60, and ground_loop's sign made common to the module. No seed was changed and no driftwise result was
seen. Fault scales come from the source half (its std and range), never from the drifted events.

    .venv/bin/python bench/results/unseen-5/make_unseen.py /tmp/unseen5
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates

DIGITS_SEED, TABLE_SEED = 67, 139  # used by no other file here for a split or a generator
EVENTS = 2000  # events per phase, images and tables alike
LABELED, MIN_LABELED = 0.10, 3  # of the source half, per class (as the earlier trials)

# ---------------------------------------------------------------- image faults, (n, 1, 8, 8) in [0, 1], ink high
BAYER4 = np.array([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]]) / 16.0 + 1 / 32
FPN_SIGMA = 0.35     # column gains of an uncalibrated CMOS readout (flat-field correction off): ~ +-35%
SQUEEZE = 0.75       # a 4:3 frame shown in a 16:9 container, or vice versa: the width scaled by 3/4
SHARPEN, SHARPEN_SIGMA = 2.0, 1.0  # a phone's over-eager unsharp mask: amount 2, radius 1 px
GLARE_PEAK, GLARE_SIGMA = 0.9, 1.6  # a specular spot on glossy paper: up to 90% of the ink washed out, ~3 px wide
SEAM_COL = 4         # a contact image sensor of two butted chips; the right chip is mounted one line late


def ordered_dither(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """A thermal or fax printer prints grey as dots: each pixel is 1 where its ink exceeds a 4x4 Bayer threshold.

    The local mean ink is kept, but every pixel becomes 0 or 1 in a fixed checkered pattern. Posterize, by
    contrast, gives uniform levels with no spatial pattern.
    """
    thr = np.tile(BAYER4, (2, 2))
    return (x > thr).astype(np.float64)


def column_fpn(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """Column fixed-pattern noise: each column's amplifier has its own gain (log-normal, FPN_SIGMA), fixed a phase.

    Seen in cheap sensors whose flat-field calibration was lost or switched off. Stripes adds bright lines; this
    fault scales the ink in whole columns up or down.
    """
    g = np.exp(r.normal(0.0, FPN_SIGMA, 8))
    return x * g


def aspect_squeeze(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """The wrong pixel aspect ratio: the width is scaled by SQUEEZE about the centre (bilinear, blank outside).

    This happens when a capture's sample aspect ratio is ignored. The scaling is anisotropic, unlike zoom; it
    is the same for every row, unlike keystone; and it has no rotation or slant.
    """
    n = len(x)
    rows, cols = np.meshgrid(np.arange(8.0), np.arange(8.0), indexing="ij")
    coords = [np.broadcast_to(np.arange(n, dtype=np.float64)[:, None, None], (n, 8, 8)),
              np.broadcast_to(rows, (n, 8, 8)), np.broadcast_to(3.5 + (cols - 3.5) / SQUEEZE, (n, 8, 8))]
    return map_coordinates(x[:, 0], coords, order=1, mode="constant", cval=0.0)[:, None]


def oversharpen(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """An unsharp mask at amount SHARPEN: x + SHARPEN * (x - blur(x)), clipped later.

    Phones and document apps sharpen by default. The result has halos around strokes: ink pixels next to blank
    ones go to full ink, blank pixels next to ink clip to 0, and mid-grey edges are pushed to the extremes. This
    is the opposite of blur, and it is not a contrast change (it only acts near edges).
    """
    return x + SHARPEN * (x - gaussian_filter(x, (0, 0, SHARPEN_SIGMA, SHARPEN_SIGMA), mode="constant"))


def specular_glare(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """A reflection of the lamp on glossy paper washes out the ink under a gaussian spot at a random place per image.

    The effect is multiplicative: ink under the spot fades and blank paper stays blank. Occlusion, by contrast,
    pastes a grey square, and lens_smudge blurs a fixed spot.
    """
    n = len(x)
    cy, cx = r.uniform(1.5, 5.5, (2, n, 1, 1, 1))
    yy, xx = np.meshgrid(np.arange(8.0), np.arange(8.0), indexing="ij")
    spot = GLARE_PEAK * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * GLARE_SIGMA**2))
    return x * (1.0 - spot)


def cis_seam(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """Two butted sensor chips misregistered: columns from SEAM_COL on are one row late (shifted down, blank enters).

    A contact image sensor is a row of chips. If one is mounted a line pitch off, the page is torn at the seam.
    The whole right part moves together. scanline_jitter, by contrast, moves rows sideways by random amounts.
    """
    out = x.copy()
    out[..., 1:, SEAM_COL:] = x[..., :-1, SEAM_COL:]
    out[..., 0, SEAM_COL:] = 0.0
    return out


IMAGE: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "ordered_dither": ordered_dither, "column_fpn": column_fpn, "aspect_squeeze": aspect_squeeze,
    "oversharpen": oversharpen, "specular_glare": specular_glare, "cis_seam": cis_seam}


# ---------------------------------------------------------------- sensor faults, (n, d) in stream order
@dataclass(frozen=True)
class Ref:
    """The source half's statistics: every fault's yardstick."""

    std: np.ndarray
    low: np.ndarray   # the source's smallest and largest reading: the span a transmitter was ranged to
    high: np.ndarray


GROUND, MOTOR_DWELL = 1.0, 100  # a motor's return current on a shared common: 1 std; on/off dwell ~100 events
RIPPLE = 0.15        # bridge sensors fed by an unregulated wall adapter: +-15% (1 sigma) as its load varies
LOSS, KEYFRAME = 1 / 60, 250  # delta-encoded radio telemetry: 1.7% packets lost (1-10% is usual), keyframe every 250
AGGREGATE = 4        # historian aggregate switched from "interpolated" to "maximum" over 4 raw samples
BURNOUT = 1.0625     # NAMUR NE 43 upscale burnout: 21 mA on a 4-20 mA loop = 106.25% of span
OPEN_START, OPEN_LEN = 1 / 120, 25  # intermittent open circuit: a burst begins 1 in 120 events, lasts ~25


def _some(d: int, fraction: float, r: np.random.Generator, least: int = 1) -> np.ndarray:
    return r.permutation(d)[:max(least, int(round(fraction * d)))]


def _telegraph(n: int, dwell: float, r: np.random.Generator) -> np.ndarray:
    """An on/off process (a random telegraph): each event it flips with probability 1/dwell; starts at random."""
    flips = r.random(n) < 1.0 / dwell
    return (np.cumsum(flips) + r.integers(2)) % 2 == 1


def ground_loop(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """One input module of two (half of the features) shares a ground with a motor. While the motor runs, its return
    current lifts the module's common, and every channel reads GROUND of its stds off, all in the same direction.
    The direction is the same for the whole phase.

    The motor switches on and off at random, staying in each state for about MOTOR_DWELL events. The result is
    an intermittent common-mode step: not a constant offset, not a slow tempco, not a sinusoid. GROUND is gross
    (15-30% of a span) but real for single-ended inputs wired to a shared return. Uses the event order.
    """
    cols, out = _some(x.shape[1], 1 / 2, r), x.copy()
    on = _telegraph(len(x), MOTOR_DWELL, r)
    out[:, cols] += on[:, None] * GROUND * ref.std[cols] * r.choice([-1.0, 1.0])
    return out


def excitation_ripple(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """Bridge sensors (one module of two: half of the features) excited by an unregulated supply: the whole raw
    reading is scaled by one factor per event, 1 + RIPPLE * N(0, 1), shared by those channels.

    A ratiometric ADC would cancel this; a fixed reference does not. It is multiplicative about the raw zero
    and correlated across the hit channels, unlike noise (additive and independent) and gain (fixed).
    """
    cols, out = _some(x.shape[1], 1 / 2, r), x.copy()
    out[:, cols] *= 1.0 + RIPPLE * r.standard_normal((len(x), 1))
    return out


def delta_desync(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """One device of two (half of the features) sends deltas from its last reading, plus an absolute keyframe every
    KEYFRAME events. A lost packet (LOSS) drops its delta, so the receiver is off by minus that delta until
    the next keyframe.

    The errors add up as packet losses accumulate, and the keyframe clears them. This gives piecewise-constant
    offsets of random size and sign, resetting on a fixed schedule. Uses the event order.
    """
    cols, out = _some(x.shape[1], 1 / 2, r), x.copy()
    delta = np.diff(x[:, cols], axis=0, prepend=x[:1, cols])
    lost = (r.random(len(x)) < LOSS) & (np.arange(len(x)) % KEYFRAME != 0)  # a keyframe is absolute, never a delta
    err = np.zeros(len(cols))
    for t in range(len(x)):
        if t % KEYFRAME == 0:
            err[:] = 0.0
        if lost[t]:
            err -= delta[t]
        out[t, cols] += err
    return out


def historian_max(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """Half of the features (one unit's tags) come from a historian query whose aggregate was changed from
    "interpolated" to "maximum". Each event gets the largest of the last AGGREGATE raw readings.

    Each value is biased upwards and narrowed, and it carries over into the next events. This is a running
    maximum, not a lag (sluggish) or a hold (deadband). Uses the event order.
    """
    cols, out = _some(x.shape[1], 1 / 2, r), x.copy()
    padded = np.concatenate([np.repeat(x[:1, cols], AGGREGATE - 1, axis=0), x[:, cols]])
    out[:, cols] = np.lib.stride_tricks.sliding_window_view(padded, AGGREGATE, axis=0).max(axis=-1)
    return out


def double_sqrt(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """Square-root extraction done twice: a transmitter already linearised for flow, and the control system also
    set to take the square root, on one unit's tags (half of the features).

    Over the transmitter's span (the source's range) u in [0, 1] reads sqrt(u). Low readings are pushed far up
    (u = 0.25 reads 0.5), while the top of the range is kept. This is a classic commissioning error. It is a
    steep concave warp anchored at both ends of the span, not a table shift or an arcsinh compression about the
    mean.
    """
    cols, out = _some(x.shape[1], 1 / 2, r), x.copy()
    span = ref.high[cols] - ref.low[cols]
    u = np.maximum((x[:, cols] - ref.low[cols]) / span, 0.0)
    out[:, cols] = ref.low[cols] + span * np.sqrt(u)
    return out


def burnout(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """A loose common return on one terminal block (half of the features): in bursts those loops open and each
    transmitter drives its upscale burnout signal, BURNOUT of its span (21 mA on 4-20 mA).

    Bursts begin with probability OPEN_START per event and last about OPEN_LEN events. The reading is pinned above
    the range for a stretch of events. This is not spikes (single events, +-5 std) or stuck_zero (0, always).
    Uses the event order.
    """
    cols, out = _some(x.shape[1], 1 / 2, r), x.copy()
    start, stop = r.random(len(x)) < OPEN_START, r.random(len(x)) < 1.0 / OPEN_LEN
    open_, state = np.zeros(len(x), bool), False
    for t in range(len(x)):
        state = (state and not stop[t]) or start[t]
        open_[t] = state
    out[np.ix_(open_, cols)] = ref.low[cols] + BURNOUT * (ref.high[cols] - ref.low[cols])
    return out


TABULAR: dict[str, Callable[[np.ndarray, np.random.Generator, Ref], np.ndarray]] = {
    "ground_loop": ground_loop, "excitation_ripple": excitation_ripple, "delta_desync": delta_desync,
    "historian_max": historian_max, "double_sqrt": double_sqrt, "burnout": burnout}


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
    """Both files of one stream; returns the source (X, y) and the stream (X, y, phase) for the check."""
    rng = np.random.default_rng(seed)
    xs, ys, xp, yp = split(X.astype(np.float32), y.astype(np.int64), rng)
    np.savez(f"{out}/{name}-src.npz", X=xs, y=ys)
    if image:
        sx, sy, sp = stream(xp, yp, list(IMAGE), EVENTS, rng, lambda f, x: np.clip(IMAGE[f](x, rng), 0.0, 1.0))
    else:
        x64 = xs.astype(np.float64)
        ref = Ref(x64.std(axis=0) + 1e-6, x64.min(axis=0), x64.max(axis=0))
        sx, sy, sp = stream(xp, yp, list(TABULAR), EVENTS, rng, lambda f, x: TABULAR[f](x, rng, ref))
    np.savez(f"{out}/{name}-fresh.npz", X=sx, y=sy, phase=sp)
    return xs, ys, sx, sy, sp


def raw_units(X: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """Each feature in its own units: a scale of 0.1-100 and an offset of -3..3 scales (as the earlier trials)."""
    scale = 10 ** r.uniform(-1, 2, X.shape[1])
    return X * scale + r.uniform(-3, 3, X.shape[1]) * scale


def friedman() -> tuple[np.ndarray, np.ndarray]:
    """make_friedman1: y = 10 sin(pi x1 x2) + 20 (x3 - .5)^2 + 10 x4 + 5 x5 + noise; x6..x10 are irrelevant.

    Class 1 is an output in the top quarter (75/25). The noise std of 1.0 is ~20% of the output's std.
    """
    from sklearn.datasets import make_friedman1

    X, t = make_friedman1(n_samples=8000, n_features=10, noise=1.0, random_state=TABLE_SEED)
    y = (t > np.quantile(t, 0.75)).astype(np.int64)
    return raw_units(X, np.random.default_rng(TABLE_SEED)), y


def rlc() -> tuple[np.ndarray, np.ndarray]:
    """A series RLC part graded by |Z| = sqrt(R^2 + (wL - 1/(wC))^2) into A (70%), B (20%), C (10%, highest |Z|).

    make_friedman2's inputs are R in [0, 100] ohm, w in [40 pi, 560 pi] rad/s and L in [0, 1] H. C in
    [1, 11] is read as uF, which is physically sized, so that the capacitor matters (in farads it would not).
    The features are R (ohm), f = w / 2 pi (Hz), L (H) and C (uF). |Z| is read with 3% meter noise before grading.
    """
    from sklearn.datasets import make_friedman2

    X, _ = make_friedman2(n_samples=6000, random_state=TABLE_SEED + 1)
    R, w, L, C = X.T
    z = np.sqrt(R**2 + (w * L - 1.0 / (w * C * 1e-6)) ** 2)
    z *= np.exp(0.03 * np.random.default_rng(TABLE_SEED + 1).standard_normal(len(z)))
    y = np.digitize(z, np.quantile(z, [0.70, 0.90])).astype(np.int64)
    return np.column_stack([R, w / (2 * np.pi), L, C]), y


# ---------------------------------------------------------------- check: a frozen model's loss per phase
def frozen_check(name: str, xs: np.ndarray, ys: np.ndarray, sx: np.ndarray, sy: np.ndarray, sp: np.ndarray) -> None:
    """Fit a small MLP on the source's labeled rows (inputs standardised by the whole source) and score every phase.

    A sanity check on the strengths only: it is not driftwise, and it uses the labels driftwise never sees.
    Loss = mean accuracy on the two clean phases minus the phase's accuracy, in points.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    flat, fresh = xs.reshape(len(xs), -1), sx.reshape(len(sx), -1)
    lab = ys >= 0
    scaler = StandardScaler().fit(flat)
    model = make_pipeline(scaler, MLPClassifier((64, 64), alpha=1e-3, max_iter=2000, random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(flat[lab], ys[lab])
    n = int(np.flatnonzero(sp != sp[0])[0])
    acc = {i: float((model.predict(fresh[i:i + n]) == sy[i:i + n]).mean()) for i in range(0, len(sp), n)}
    clean = np.mean([a for i, a in acc.items() if sp[i] == "clean"])
    counts = np.bincount(ys[lab]).tolist()
    print(f"\n{name}: source {xs.shape}, labeled {int(lab.sum())} {counts}, stream {sx.shape}; "
          f"frozen MLP clean {clean:.3f}")
    for i, a in acc.items():
        print(f"  {str(sp[i]):<18} acc {a:.3f}  loss {100 * (clean - a):+6.1f}")


def main(out: str) -> None:
    from sklearn.datasets import load_digits

    os.makedirs(out, exist_ok=True)
    d = load_digits()
    frozen_check("digits", *write(out, "digits", (d.images / 16.0)[:, None], d.target, DIGITS_SEED, image=True))
    frozen_check("friedman", *write(out, "friedman", *friedman(), TABLE_SEED, image=False))
    frozen_check("rlc", *write(out, "rlc", *rlc(), TABLE_SEED, image=False))
    print("\nwritten to", out)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/unseen5")
