"""A sixth new user's trial: data, a split and faults that no other file in the repository names. Report only.

`bench/results/unseen/` to `unseen-5/` are committed, so they are no longer unseen. This script writes new files
in their format (`bench/stream_files.py`). ``NAME-src.npz`` holds ``X`` and ``y`` (-1 = unlabeled): half of the
data, 10% of it labeled, at least 3 rows a class. ``NAME-fresh.npz`` holds ``X``, ``y`` and ``phase``: the other
half replayed as clean, then six faults, then clean again, 2,000 events a phase.

* digits: scikit-learn's digits, split by seed 103 (the benches use 0, 1, 2; the trials used 11, 23, 43, 67). Six
  image faults of real cameras, scanners and imaging code, none in `drift/corruptions.py`, `models/augment.py` or
  an earlier trial: shot_noise, mirror_readout, flicker_banding, frame_tear, uint8_wrap, spine_curl.
* pump (binary, ~74/26): a centrifugal pump lifting hot water from a vented tank. scikit-learn's
  ``make_sparse_uncorrelated`` draws the operating point (its linear target is not used); the pump and system
  curves, the affinity laws and water's vapour pressure give the seven logged readings. The class is "NPSH margin
  under 1.3": the suction head available over the pump's requirement, a cavitation risk.
* hx (3 classes, 80/15/5): a process cooler on cooling water. ``make_sparse_uncorrelated`` (another seed) draws
  the inlet temperatures, both flows and the tube-side fouling resistance; effectiveness-NTU for a counterflow
  exchanger gives the outlet temperatures, and the deposits' narrowing of the tubes the pressure drop. Graded by
  fouling: A (80%), B "plan a cleaning" (15%), C "clean now" (5%).

Both tables log raw physical units (degC, m, kPa, bar, m3/h, t/h, rpm, kW) with instrument noise, and get the same
six signal-chain and data-pipeline faults, none of them in `drift/sensor_shifts.py` or an earlier trial. Three keep
one law all phase long: sig_digits, undercounted_mean, outlier_filter. Three use the event order: emi_bursts
(switching), leakage_wander (wandering), totalizer_mapped (resetting).

Each strength was first set from "plausible for a real instrument, camera or pipeline"; the reason sits next to
each constant. The script then scores one frozen check model per stream (`frozen_check`: a scikit-learn MLP fitted
on the source's labeled rows, not driftwise): its loss against its clean accuracy shows how hard each phase is.
After the first run most phases cost it over 2 points (all six on digits, 7 of 12 on the tables), so nothing was
widened or otherwise changed; no seed was changed and no driftwise result was seen. Fault scales come from the
source half (its mean, median, std and range), never from the drifted events.

    .venv/bin/python bench/results/unseen-6/make_unseen.py /tmp/unseen6
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.ndimage import map_coordinates

DIGITS_SEED, TABLE_SEED = 103, 157  # used by no other file here for a split or a generator (pump 157, hx 158)
EVENTS = 2000  # events per phase, images and tables alike
LABELED, MIN_LABELED = 0.10, 3  # of the source half, per class (as the earlier trials)

# ---------------------------------------------------------------- image faults, (n, 1, 8, 8) in [0, 1], ink high
PHOTONS = 16         # a dim scene (~1 lux, a phone at 1/30 s): ~16 photo-electrons a pixel from blank paper
FLICKER, FLICKER_ROWS = 0.25, 6.0  # LED lamps on a cheap driver: +-25% at 100 Hz; one band every 6 rows
TEAR = 1             # a conveyor moves the form 1 px (1/8 of the digit) in one frame time
WRAP_NUM, WRAP_DEN = 3, 2  # "boost faint ink by 1.5" written as img * 3 // 2 on uint8: the product wraps at 256
CURL_START, CURL_RADIUS, GUTTER_LIGHT = 3.0, 3.5, 0.3  # a bound page lifts off the glass from column 3 (px)


def shot_noise(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """Photon shot noise of a dim scene: the paper's reflectance (1 - ink) is counted as Poisson(PHOTONS * (1 - ink)).

    The noise is largest on blank paper (std 1 / sqrt(PHOTONS) = 0.25 of white) and zero under full ink. Its negative
    half clips (paper brighter than white). gaussian_noise, by contrast, is the same everywhere, and speckle_noise
    scales with the ink and leaves the blank background blank.
    """
    return 1.0 - r.poisson(PHOTONS * (1.0 - x)) / PHOTONS


def mirror_readout(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """A replacement camera module whose sensor powers up with its horizontal-mirror readout bit set: every image is
    mirrored left to right for the phase.

    Not rotation or shear (no angle, nothing slants) and not bleed_through (a faint mirrored other digit over the
    upright one): the digit itself is the mirror image, at full ink.
    """
    return x[..., ::-1].copy()


def flicker_banding(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """A rolling shutter under mains-driven LED lighting: each row is exposed at another point of the 100 Hz flicker.

    The light on row i is 1 + FLICKER sin(2 pi i / FLICKER_ROWS + phi), phi random per image (the frame starts at
    any point of the cycle), and exposure is set for the mean light. Ink = 1 - light * reflectance: dim rows gain a
    grey background, bright rows lose faint ink. Periodic in the row, uniform along it: not stripes (single full
    lines at full ink), haze (a random smooth field) or vignette (radial, fixed).
    """
    phi = r.uniform(0.0, 2 * np.pi, (len(x), 1, 1, 1))
    light = 1.0 + FLICKER * np.sin(2 * np.pi * np.arange(8.0)[None, None, :, None] / FLICKER_ROWS + phi)
    return 1.0 - light * (1.0 - x)


def frame_tear(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """A camera over a conveyor with no vsync: rows from a random tear row (2-6) down come from the next frame, in
    which the form has moved TEAR px along the belt (blank enters behind it). The direction is the belt's, fixed for
    the phase.

    One break per image, below which every row moves by the same amount: not scanline_jitter (each row its own random
    move), shear (a move growing row by row) or cis_seam (columns moved down).
    """
    out, step = x.copy(), int(r.choice([-1, 1])) * TEAR
    for i, t in enumerate(r.integers(2, 7, len(x))):
        out[i, :, t:] = np.roll(x[i, :, t:], step, axis=-1)
        if step > 0:
            out[i, :, t:, :step] = 0.0
        else:
            out[i, :, t:, step:] = 0.0
    return out


def uint8_wrap(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """An image step that boosts faint ink by 1.5, written as ``img * 3 // 2`` on 8-bit pixels: the product wraps.

    Ink levels up to 85/255 come out 1.5x; from there the product passes 255 and wraps, so mid ink drops to near 0
    and full ink to 0.49. Non-monotone in the ink: not contrast or gamma (monotone), posterize (fewer levels) or
    inversion (the whole scale mirrored).
    """
    v = np.round(x * 255.0).astype(np.int64)
    return ((v * WRAP_NUM) % 256 // WRAP_DEN) / 255.0


def spine_curl(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """A bound register scanned on a flatbed: past CURL_START the page lifts off the glass round a cylinder of radius
    CURL_RADIUS towards the binding (left or right, per image: left and right pages alternate).

    A point at arc length s past the start shows at CURL_START + R sin(s / R), lit by cos(s / R) (Lambertian, with
    GUTTER_LIGHT of stray light): strokes near the binding are squeezed and shaded, and past the fold lies the dark
    gutter. One-sided and non-linear: not aspect_squeeze (a uniform scale), keystone (row by row) or barrel (radial).
    """
    n = len(x)
    cols = np.arange(8.0)
    d = cols - CURL_START
    inside = d < CURL_RADIUS
    theta = np.where(d > 0, np.arcsin(np.clip(d / CURL_RADIUS, 0.0, 1.0)), 0.0)
    src = np.where(d > 0, CURL_START + CURL_RADIUS * theta, cols)
    light = np.where(inside, GUTTER_LIGHT + (1 - GUTTER_LIGHT) * np.cos(theta), GUTTER_LIGHT)
    flip = r.random(n) < 0.5  # binding on the left: mirror, curl, mirror back
    img = np.where(flip[:, None, None], x[:, 0, :, ::-1], x[:, 0])
    rows = np.broadcast_to(np.arange(8.0)[None, :, None], (n, 8, 8))
    coords = [np.broadcast_to(np.arange(n, dtype=np.float64)[:, None, None], (n, 8, 8)), rows,
              np.broadcast_to(np.where(inside, src, 99.0)[None, None, :], (n, 8, 8))]
    seen = map_coordinates(img, coords, order=1, mode="constant", cval=0.0)
    out = 1.0 - light[None, None, :] * (1.0 - seen)
    return np.where(flip[:, None, None], out[..., ::-1], out)[:, None]


IMAGE: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "shot_noise": shot_noise, "mirror_readout": mirror_readout, "flicker_banding": flicker_banding,
    "frame_tear": frame_tear, "uint8_wrap": uint8_wrap, "spine_curl": spine_curl}


# ---------------------------------------------------------------- sensor faults, (n, d) in stream order
@dataclass(frozen=True)
class Ref:
    """The source half's statistics (every fault's yardstick) and the table's rate columns."""

    mean: np.ndarray
    median: np.ndarray
    std: np.ndarray
    low: np.ndarray   # the source's smallest and largest reading: the span a transmitter was ranged to
    high: np.ndarray
    rates: tuple[int, ...]  # flows and powers: the readings whose meters also keep a totalizer


DIGITS = 2           # a '%.2g' number format in one device's export script: two significant digits
SAMPLES, SAMPLE_LOSS = 10, 0.05  # a logged value is the mean of 10 radio samples; 5% are lost (1-10% is usual)
QUIET = 0.5          # a despiker's 3-sigma limits, its sigma estimated on a steady week with half the usual spread
EMI, EMI_DWELL = 0.08, 120  # a drive's cable in the same tray: 8% of span rms (1.3 mA) while it runs, ~120 events
WANDER = 0.12        # leakage in a wet junction box: rms 12% of span (~2 mA) after a phase, drawn from 0
HOUR = 60            # one event a minute; the meters' totalizers reset on the hour


def _some(d: int, fraction: float, r: np.random.Generator, least: int = 1) -> np.ndarray:
    return r.permutation(d)[:max(least, int(round(fraction * d)))]


def _telegraph(n: int, dwell: float, r: np.random.Generator) -> np.ndarray:
    """An on/off process (a random telegraph): each event it flips with probability 1/dwell; starts at random."""
    flips = r.random(n) < 1.0 / dwell
    return (np.cumsum(flips) + r.integers(2)) % 2 == 1


def sig_digits(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """One device of two (half of the features) is exported through a script that writes numbers as '%.2g': each
    reading keeps DIGITS significant digits.

    The step is set by the reading's own size: 1 for 10-99, 10 for 100-999, 100 for 1000-9999. So 1,534 rpm logs
    as 1,500 and 112.7 kPa as 110, while 84.6 degC logs as 85. Not quantize (one grid per feature): here a reading
    just above a power of ten gets a step ten times as coarse as one just below.
    """
    cols, out = _some(x.shape[1], 1 / 2, r), x.copy()
    v = x[:, cols]
    step = 10.0 ** (np.floor(np.log10(np.maximum(np.abs(v), 1e-12))) - (DIGITS - 1))
    out[:, cols] = np.where(v == 0, 0.0, np.round(v / step) * step)
    return out


def undercounted_mean(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """One radio device of two (half of the features) logs the mean of SAMPLES samples per event. Its gateway divides
    the received samples' sum by SAMPLES, not by the number received, so each lost sample (SAMPLE_LOSS) counts as 0.

    Every channel of the device is scaled by the same received/SAMPLES on an event: 60% of events are exact, 31% read
    10% low, 9% read 20% or more low. One-sided and multiplicative about the raw zero: not excitation_ripple
    (symmetric, on every event), dropout_mean or zero_imputed (a whole reading replaced).
    """
    cols, out = _some(x.shape[1], 1 / 2, r), x.copy()
    out[:, cols] *= (r.binomial(SAMPLES, 1.0 - SAMPLE_LOSS, len(x)) / SAMPLES)[:, None]
    return out


def outlier_filter(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """A despiking step added to one site's ingestion job (half of the features) replaces a reading outside its mean
    +- 3 sigma with its median. Its sigma was estimated on a steady week, QUIET of the usual spread, so the limits
    are at +-1.5 std.

    The tails are not clipped to the limit (saturate) but moved to the middle, and only readings past the limits
    are touched (dropout_mean replaces random readings).
    """
    cols, out = _some(x.shape[1], 1 / 2, r), x.copy()
    v = x[:, cols]
    far = np.abs(v - ref.mean[cols]) > 3 * QUIET * ref.std[cols]
    out[:, cols] = np.where(far, ref.median[cols], v)
    return out


def emi_bursts(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """One card's 4-20 mA cables (half of the features) share a tray with a variable-speed drive's motor cable. While
    the drive runs, it couples the same noise current into every loop: N(0, EMI) of span per event, one draw for all
    the card's channels.

    The drive starts and stops at random (a telegraph, dwell ~EMI_DWELL events). Not noise (always on, independent
    per feature), ground_loop (a constant step while on) or excitation_ripple (multiplicative, always). Uses the
    event order.
    """
    cols, out = _some(x.shape[1], 1 / 2, r), x.copy()
    burst = _telegraph(len(x), EMI_DWELL, r) * r.standard_normal(len(x)) * EMI
    out[:, cols] += burst[:, None] * (ref.high[cols] - ref.low[cols])
    return out


def leakage_wander(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """Water in one junction box (half of the features): each loop leaks part of its current to earth through the
    wet terminals, so its reading is low by the leak. Each terminal's leak wanders with the condensation on its own,
    from 0 at the phase start: a reflected random walk reaching an rms of WANDER of span by the phase's end.

    One-sided, per channel, non-stationary and never coming back: not tempco (one shared, mean-reverting ambient),
    baseline_ramp (a straight line) or calibration_drift (fixed). Uses the event order.
    """
    cols, out = _some(x.shape[1], 1 / 2, r), x.copy()
    leak = np.abs(np.cumsum(r.standard_normal((len(x), len(cols))), axis=0)) * WANDER / np.sqrt(len(x))
    out[:, cols] -= leak * (ref.high[cols] - ref.low[cols])
    return out


def totalizer_mapped(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """A gateway map change points the flow and power meters' tags (the rate columns) at their hourly totalizers,
    not their rates: each reads the volume (or energy) since the top of the hour, which resets every HOUR events.

    With a reading a minute, the total climbs from ~1/60 of the rate to ~the hour's mean rate and drops back: a
    sawtooth in the right range of numbers (the first hour's minutes before the phase count at the source mean).
    Not baseline_ramp (one ramp, added) or delta_desync (random offsets cleared by a keyframe). Uses the event order.
    """
    cols, out = list(ref.rates), x.copy()
    t = np.arange(len(x)) + r.integers(HOUR)  # the phase starts at some minute of the hour
    start = np.arange(len(x)) - t % HOUR      # the event at the top of this event's hour (may be before the phase)
    cum = np.vstack([np.zeros((1, len(cols))), np.cumsum(x[:, cols] / HOUR, axis=0)])
    before = np.maximum(-start, 0)[:, None] * ref.mean[cols] / HOUR  # minutes of the first hour before the phase
    out[:, cols] = cum[1:] - cum[np.maximum(start, 0)] + before
    return out


TABULAR: dict[str, Callable[[np.ndarray, np.random.Generator, Ref], np.ndarray]] = {
    "sig_digits": sig_digits, "undercounted_mean": undercounted_mean, "outlier_filter": outlier_filter,
    "emi_bursts": emi_bursts, "leakage_wander": leakage_wander, "totalizer_mapped": totalizer_mapped}


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


def write(out: str, name: str, X: np.ndarray, y: np.ndarray, seed: int, image: bool,
          rates: tuple[int, ...] = ()) -> tuple[np.ndarray, ...]:
    """Both files of one stream; returns the source (X, y) and the stream (X, y, phase) for the check."""
    rng = np.random.default_rng(seed)
    xs, ys, xp, yp = split(X.astype(np.float32), y.astype(np.int64), rng)
    np.savez(f"{out}/{name}-src.npz", X=xs, y=ys)
    if image:
        sx, sy, sp = stream(xp, yp, list(IMAGE), EVENTS, rng, lambda f, x: np.clip(IMAGE[f](x, rng), 0.0, 1.0))
    else:
        x64 = xs.astype(np.float64)
        ref = Ref(x64.mean(axis=0), np.median(x64, axis=0), x64.std(axis=0) + 1e-6, x64.min(axis=0),
                  x64.max(axis=0), rates)
        sx, sy, sp = stream(xp, yp, list(TABULAR), EVENTS, rng, lambda f, x: TABULAR[f](x, rng, ref))
    np.savez(f"{out}/{name}-fresh.npz", X=sx, y=sy, phase=sp)
    return xs, ys, sx, sy, sp


# ---------------------------------------------------------------- tables: two plants in physical units
GRAVITY = 9.81


def _operating_points(n: int, seed: int) -> np.ndarray:
    """Independent standard normal draws, one row per logged minute: scikit-learn's make_sparse_uncorrelated's X."""
    from sklearn.datasets import make_sparse_uncorrelated

    z, _ = make_sparse_uncorrelated(n_samples=n, n_features=6, random_state=seed)
    return z


def vapour_pressure(t: np.ndarray) -> np.ndarray:
    """Water's vapour pressure in kPa at t degC (Antoine, 1-100 degC)."""
    return 0.133322 * 10 ** (8.07131 - 1730.63 / (233.426 + t))


def pump() -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """A centrifugal pump (1,780 rpm nominal, best efficiency at 100 m3/h) lifting hot water from a vented tank.

    Operating point: tank temperature 100 - 15 exp(0.3 z) degC (held near 85 by steam, dipping after cold make-up,
    never boiling), level 1.5 exp(0.3 z) m above the pump, demand 75 exp(0.2 z) m3/h, barometer 101.3 +- 1 kPa.
    A speed controller meets the demand on a system curve of 25 m static + friction (pump head 60 (N/N0)^2 -
    0.0015 Q^2 m), with 0.5% speed error. The suction line and strainer lose 0.002 Q^2 kPa.

    NPSH available = (suction pressure - vapour pressure) / rho g + v^2 / 2g; required = 2.0 (N/N0)^2 + 2.5
    (Q/100)^2 m (scaled by the affinity laws). Class 1 (26%): margin ratio under 1.3, a common minimum for hot water.
    Logged: temperature (degC), level (m), suction pressure (kPa abs), discharge pressure (bar g), flow (m3/h),
    speed (rpm), motor power (kW), each with its instrument's noise.
    """
    z = _operating_points(8000, TABLE_SEED)
    noise = np.random.default_rng(TABLE_SEED).standard_normal((8000, 7))
    t = 100.0 - 15.0 * np.exp(0.3 * z[:, 0])
    level = 1.5 * np.exp(0.3 * z[:, 1])
    q = 75.0 * np.exp(0.2 * z[:, 2])
    p_atm = 101.3 + 1.0 * z[:, 3]
    n0, h0, h_static, k_pump, k_system, q_bep = 1780.0, 60.0, 25.0, 1.5e-3, 2.0e-3, 100.0
    speed = n0 * np.sqrt((h_static + (k_system + k_pump) * q**2) / h0) * (1 + 0.005 * z[:, 4])
    head = h0 * (speed / n0) ** 2 - k_pump * q**2
    rho = 1000.0 - 0.005 * (t - 4.0) ** 2
    p_suction = p_atm + rho * GRAVITY * level / 1000 - 2.0e-3 * q**2
    v = q / 3600 / (np.pi * 0.075**2)  # DN150 suction
    npsh_a = (p_suction - vapour_pressure(t)) * 1000 / (rho * GRAVITY) + v**2 / (2 * GRAVITY)
    npsh_r = 2.0 * (speed / n0) ** 2 + 2.5 * (q / q_bep) ** 2
    y = (npsh_a < 1.3 * npsh_r).astype(np.int64)
    eff = np.clip(0.80 * (1 - (q * n0 / (speed * q_bep) - 1) ** 2), 0.3, None)
    power = rho * GRAVITY * q / 3600 * head / eff / 1000 / 0.93  # kW at the motor (93% efficient)
    p_discharge = (p_suction - p_atm + rho * GRAVITY * head / 1000) / 100
    X = np.column_stack([t + 0.2 * noise[:, 0], level + 0.01 * noise[:, 1], p_suction * (1 + 0.003 * noise[:, 2]),
                         p_discharge * (1 + 0.003 * noise[:, 3]), q * (1 + 0.01 * noise[:, 4]),
                         speed + 2.0 * noise[:, 5], power * (1 + 0.01 * noise[:, 6])])
    return X, y, (4, 6)


def _effectiveness(ntu: np.ndarray, cr: np.ndarray) -> np.ndarray:
    """A counterflow exchanger's effectiveness (cr < 1)."""
    e = np.exp(-ntu * (1 - cr))
    return (1 - e) / (1 - cr * e)


def hx() -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """A counterflow process cooler (45 m2): an organic liquid (cp 2.3 kJ/kg K) on cooling water, hand-set valve.

    Operating point: process inlet 120 +- 6 degC at 10 exp(0.15 z) kg/s, water inlet 24 +- 4 degC at 22 exp(0.12 z)
    kg/s (the header pressure varies). Film coefficients 1,200 (process) and 5,000 W/m2 K (water), each ~ flow^0.8.
    The tube-side fouling resistance is log-normal, median 2.5e-4 m2 K/W, spread exp(0.6 z): deposits build at a
    rate that varies from campaign to campaign. The outlets follow from effectiveness-NTU; the water-side pressure
    drop (40 kPa at 22 kg/s, ~ flow^1.8) rises as a deposit of conductivity 1 W/m K narrows the 19 mm tubes (~d^-5).

    Graded by fouling resistance: A (80%), B "plan a cleaning" (next 15%), C "clean now" (top 5%).
    Logged: process in/out, water in/out (degC), process flow (t/h), water flow (m3/h), water-side dP (kPa), each with
    its instrument's noise.
    """
    z = _operating_points(6000, TABLE_SEED + 1)
    noise = np.random.default_rng(TABLE_SEED + 1).standard_normal((6000, 7))
    t_hot, t_cold = 120.0 + 6.0 * z[:, 0], 24.0 + 4.0 * z[:, 1]
    m_hot, m_cold = 10.0 * np.exp(0.15 * z[:, 2]), 22.0 * np.exp(0.12 * z[:, 3])
    fouling = 2.5e-4 * np.exp(0.6 * z[:, 4])
    ua = 45.0 / (1 / (1200.0 * (m_hot / 10.0) ** 0.8) + 1 / (5000.0 * (m_cold / 22.0) ** 0.8) + fouling) / 1000
    c_hot, c_cold = m_hot * 2.3, m_cold * 4.18  # kW/K
    c_min, c_max = np.minimum(c_hot, c_cold), np.maximum(c_hot, c_cold)
    duty = _effectiveness(ua / c_min, c_min / c_max) * c_min * (t_hot - t_cold)
    dp = 40.0 * (m_cold / 22.0) ** 1.8 * (1 - 2 * 1.0 * fouling / 0.019) ** -5
    y = np.digitize(fouling, np.quantile(fouling, [0.80, 0.95])).astype(np.int64)
    X = np.column_stack([t_hot + 0.2 * noise[:, 0], t_hot - duty / c_hot + 0.2 * noise[:, 1],
                         t_cold + 0.2 * noise[:, 2], t_cold + duty / c_cold + 0.2 * noise[:, 3],
                         m_hot * 3.6 * (1 + 0.01 * noise[:, 4]), m_cold * 3.6 * (1 + 0.01 * noise[:, 5]),
                         dp * (1 + 0.01 * noise[:, 6])])
    return X, y, (4, 5)


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
    X, y, rates = pump()
    frozen_check("pump", *write(out, "pump", X, y, TABLE_SEED, image=False, rates=rates))
    X, y, rates = hx()
    frozen_check("hx", *write(out, "hx", X, y, TABLE_SEED, image=False, rates=rates))
    print("\nwritten to", out)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/unseen6")
