"""A ninth new user's trial: data, a split and faults that no other file in the repository names. Report only.

`bench/results/unseen/` to `unseen-8/` are committed, so they are no longer unseen. This script writes new files
in their format (`bench/stream_files.py`). ``NAME-src.npz`` holds ``X`` and ``y`` (-1 = unlabeled): half of the
data, 10% of it labeled, at least 3 rows a class. ``NAME-fresh.npz`` holds ``X``, ``y`` and ``phase``: the other
half replayed as clean, then six faults, then clean again, 2,000 events a phase.

* digits: scikit-learn's digits, split by seed 52183. Six faults of forms, clerks and image code, none in
  `drift/corruptions.py` or an earlier trial: checker_tick, histogram_equalise, moment_deslant, segment_guide,
  adaptive_threshold, letterbox_black.
* dryer (binary, ~75/25): a continuous mixed-flow grain dryer drying maize at harvest. Correlated drivers (weather,
  wet grain, throughput, plenum temperature, the grain column's resistance, the kernels' drying rate, the fan's
  speed) come from a correlation matrix drawn by scikit-learn's ``make_spd_matrix`` (seed 37019, also the tables'
  split). Fan and system curves, a first-order drying law, the heat balance and psychrometrics give nine readings.
  The class is "outlet moisture over 15.5% wet basis", from the elevator's moisture tester, which the model never
  sees.
* turbine (3 classes, ~75/18/7): a 2 MW pitch-regulated wind turbine through a winter. ``make_spd_matrix`` (seed
  64231) draws the wind, the weather and the turbulence; a Cp(lambda, beta) rotor, the torque law below rated and
  the pitch loop above it give nine readings. The class is the rotor's state from the ice detector and the yaw
  audit: normal, iced blades, static yaw misalignment.

Both tables log raw physical units with instrument noise and get the same six instrument and data-pipeline faults,
none of them in `drift/sensor_shifts.py` or an earlier trial. Three keep one law all phase long:
soft_sensor_substitution, live_zero_mismatch, apparent_power_mapped. Three use the event order:
radiation_shield_lost (the sun over the day), lead_compensation_left (each reading against the one before) and
rh_probe_wet_up (a wet probe dries out over minutes).

Each strength was set from "plausible for a real instrument, form or pipeline"; the reason sits next to each
constant. The script then scores one frozen check model per stream (`frozen_check`: a scikit-learn MLP fitted on
the source's labeled rows, not driftwise). Fault scales come from the instruments' physical ranges or the source
half, never from the drifted events.

    .venv/bin/python bench/results/unseen-9/make_unseen.py /tmp/unseen9
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.ndimage import affine_transform, uniform_filter, zoom

DIGITS_SEED, TABLE_SEED, TURBINE_SEED = 52183, 37019, 64231  # used by no other file here
EVENTS = 2000  # events per phase, images and tables alike
LABELED, MIN_LABELED = 0.10, 3  # of the source half, per class (as the earlier trials)

# ---------------------------------------------------------------- image faults, (n, 1, 8, 8) in [0, 1], ink high
# The dataset's 8 x 8 values are ink counts of 4 x 4 blocks of a bilevel 32 x 32 bitmap, so marks added on paper are
# drawn bilevel on that 32 x 32 grid and counted the same way.
TICK_SHARE = 0.40    # a checker's tick across an amount field (~1.5 digits wide) catches ~40% of the digit crops
TICK_SIZE = (12.0, 20.0)  # the tick's long stroke, in 32-grid pixels (a tick about as tall as the writing)
TICK_PEN = 1.0       # a ballpoint line ~0.5 mm: 2 px wide on the 32 grid (within 1 px of the stroke's centre line)
GUIDE_LINES = {"rows": (1, 15, 30), "cols": (5, 26)}  # a 7-segment "8" guide, 1 px lines on the 32 grid
EQUALISE_BINS = 256  # cv2.equalizeHist on the 8-bit crop
THRESH_BLOCK, THRESH_C = 3, 2  # cv2.adaptiveThreshold(MEAN_C, blockSize=3, C=2) on the 8 x 8 crop


def _reduce(big: np.ndarray) -> np.ndarray:
    """Area reduction of (n, 32, 32) bilevel marks to (n, 1, 8, 8) counts, as the dataset was made."""
    return big.reshape(len(big), 8, 4, 8, 4).mean(axis=(2, 4))[:, None]


def _combine(x: np.ndarray, mark: np.ndarray) -> np.ndarray:
    """Ink on ink: a mark over the strokes, where it overlaps them at random within a block."""
    return 1.0 - (1.0 - x) * (1.0 - mark)


def _stroke(cy: np.ndarray, cx: np.ndarray, a: np.ndarray, b: np.ndarray, half: float) -> np.ndarray:
    """Pixels (centres cy, cx) within ``half`` of the segment a-b (each a (y, x) pair)."""
    d = b - a
    t = np.clip(((cy - a[0]) * d[0] + (cx - a[1]) * d[1]) / max(float(d @ d), 1e-9), 0.0, 1.0)
    return np.hypot(cy - a[0] - t * d[0], cx - a[1] - t * d[1]) <= half


def checker_tick(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """A new procedure has a clerk tick each amount in ballpoint once it is checked, before the forms are scanned
    (they used to be scanned first). The pen is dark, so the form's drop-out colour does not remove it.

    A tick (a short down-stroke, then a long up-stroke, a random size, place and tilt) crosses TICK_SHARE of the
    digit crops; what falls inside the crop is kept. Not stripes (straight full-length lines), occlusion (a grey
    square) or neighbour_intrusion (another digit's strokes at one edge).
    """
    cy, cx = np.mgrid[0:32, 0:32] + 0.5
    out = x.copy()
    for i in np.flatnonzero(r.random(len(x)) < TICK_SHARE):
        size, tilt = r.uniform(*TICK_SIZE), np.deg2rad(r.uniform(-15.0, 15.0))
        vertex = np.array([r.uniform(18.0, 30.0), r.uniform(6.0, 24.0)])  # (y, x): the tick's bottom
        rot = np.array([[np.cos(tilt), -np.sin(tilt)], [np.sin(tilt), np.cos(tilt)]])
        start = vertex + rot @ np.array([-0.35, -0.35]) * size
        end = vertex + rot @ np.array([-0.9, 0.6]) * size
        mark = _stroke(cy, cx, start, vertex, TICK_PEN) | _stroke(cy, cx, vertex, end, TICK_PEN)
        out[i] = _combine(x[i], _reduce(mark[None].astype(np.float64))[0])
    return out


def histogram_equalise(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """An "auto-enhance" step added to the preprocessing: ``cv2.equalizeHist`` on each 8-bit crop (paper high, as the
    scanner gives it), before the inversion to ink high.

    Each grey level goes to its rank among the crop's pixels: blank paper stays blank, full ink stays full, and the
    faint rims of the strokes (1/16 ink) jump to about half ink, because half the crop is blank paper below them.
    Set per image by its histogram. Not gamma or contrast (one fixed curve), uint8_wrap (a wrapped product) or
    felt_tip_bleed (new ink around the strokes; here only existing faint ink grows).
    """
    v = np.rint(255.0 * (1.0 - x)).astype(np.int64).reshape(len(x), -1)
    out = np.empty(v.shape)
    for i, row in enumerate(v):
        h = np.bincount(row, minlength=EQUALISE_BINS)
        first = int(np.flatnonzero(h)[0])
        if h[first] == row.size:  # a uniform crop: cv2 leaves it as it is
            out[i] = row
            continue
        lut = np.rint((np.cumsum(h) - h[first]) * 255.0 / (row.size - h[first]))
        out[i] = np.clip(lut, 0, 255)[row]
    return (1.0 - out / 255.0).reshape(x.shape)


def moment_deslant(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """A deslant step added to the preprocessing, the usual moment-based deskew of handwritten digits: each digit is
    sheared so that its ink's principal axis is vertical, and its centre of mass moved to the frame's centre.

    The source digits were never deslanted: a slanted 1 or 7 stands up, round digits barely change. Set per image
    by the digit itself: not shear (a random shear), rotation or shift (random moves).
    """
    yy, xx = np.mgrid[0:8, 0:8].astype(np.float64)
    out = np.empty_like(x)
    for i in range(len(x)):
        img = x[i, 0]
        m = img.sum()
        if m <= 0:
            out[i, 0] = img
            continue
        cy, cx = (yy * img).sum() / m, (xx * img).sum() / m
        mu11 = ((yy - cy) * (xx - cx) * img).sum() / m
        mu02 = ((yy - cy) ** 2 * img).sum() / m
        alpha = mu11 / mu02
        matrix = np.array([[1.0, 0.0], [alpha, 1.0]])
        offset = np.array([cy, cx]) - matrix @ np.array([3.5, 3.5])
        out[i, 0] = affine_transform(img, matrix, offset=offset, order=1, mode="grid-constant", cval=0.0)
    return out


def segment_guide(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """The forms were reprinted with a writing guide in each box, a 7-segment "8" of thin lines in a pale colour the
    scanner's drop-out filter does not remove. The bilevel scan keeps the 1-pixel lines (32 grid), so every crop
    carries the guide at a quarter ink (a corner, where two lines meet, at 7/16).

    The same pattern in every image, over and around the strokes: not grid_paper (lines every 5.7 px at a random
    offset), form_box_edge (one border of the box) or hot_pixels (three cells).
    """
    big = np.zeros((32, 32))
    top, bottom = GUIDE_LINES["rows"][0], GUIDE_LINES["rows"][-1]
    left, right = GUIDE_LINES["cols"]
    for row in GUIDE_LINES["rows"]:
        big[row, left:right + 1] = 1.0
    for col in GUIDE_LINES["cols"]:
        big[top:bottom + 1, col] = 1.0
    return _combine(x, _reduce(big[None]))


def adaptive_threshold(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """A binarisation step for a bilevel ICR engine: ``cv2.adaptiveThreshold(ADAPTIVE_THRESH_MEAN_C, blockSize=3,
    C=2)`` on the 8-bit crop (paper high). A pixel is ink where it is darker than its 3 x 3 mean by more than C.

    Block 3 is the page setting scaled down to the crop, and on 8 x 8 digits it is as wide as a stroke: a pixel
    inside a thick stroke is no darker than its neighbourhood and turns to paper, so thick strokes come out
    hollow, as outlines, and grey rims vanish. Local: not posterize (fixed levels) or ordered_dither (a fixed
    pattern); thin_strokes and median_denoise keep grey levels.
    """
    v = np.rint(255.0 * (1.0 - x[:, 0]))
    mean = np.rint(uniform_filter(v, size=(1, THRESH_BLOCK, THRESH_BLOCK), mode="nearest"))
    return (v - mean <= -THRESH_C).astype(np.float64)[:, None]


def letterbox_black(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """A rewrite of the crop step makes each digit's box square with Pillow's ``ImageOps.pad`` before the resize.
    Its ``color`` defaults to black, and the crop is still paper high there, so the side margins of a digit
    narrower than it is tall are filled with full ink.

    The digits are scaled to the frame's height and centred (the 32 x 32 bitmap is rebuilt: bilinear, 50%
    threshold): every 32-grid column left or right of the ink turns black, counted into the 8 x 8 blocks. A 1
    sits between wide black bars; a wide 0 gets a column at each side. Not form_box_edge (one border line at 0.7),
    occlusion (a grey square) or inversion (the whole scale mirrored).
    """
    big = zoom(x[:, 0], (1, 4, 4), order=1, mode="nearest", grid_mode=True) > 0.5
    cols = big.any(axis=1)  # (n, 32): 32-grid columns with ink
    pad = np.zeros((len(x), 32, 32))
    for i, c in enumerate(cols):
        inked = np.flatnonzero(c)
        if inked.size == 0:
            continue
        pad[i, :, :inked[0]] = 1.0
        pad[i, :, inked[-1] + 1:] = 1.0
    return np.minimum(1.0, x + _reduce(pad))


IMAGE: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "checker_tick": checker_tick, "histogram_equalise": histogram_equalise, "moment_deslant": moment_deslant,
    "segment_guide": segment_guide, "adaptive_threshold": adaptive_threshold, "letterbox_black": letterbox_black}


# ---------------------------------------------------------------- sensor faults, (n, d) in stream order
@dataclass(frozen=True)
class Plant:
    """A table and what its columns are, by the kinds of instrument the faults hit."""

    X: np.ndarray
    y: np.ndarray
    columns: tuple[str, ...]
    key: int                                  # the reading the process is run on, with a soft sensor for it
    card: tuple[int, ...]                     # 4-20 mA loops wired to one replaced analog input card
    card_range: tuple[tuple[float, float], ...]  # their transmitters' ranges (LRV, URV), in their units
    power: int                                # the electrical power meter (kW)
    kva: Callable[[np.ndarray], np.ndarray]   # the meter's apparent power (kVA) as a function of its kW
    probes: tuple[int, ...]                   # process temperature probes with a dynamic compensation block
    rh: tuple[int, ...]                       # capacitive relative humidity probes (%)
    weather: tuple[int, int]                  # the outdoor probe: air temperature (degC), RH (%)
    wind: int | None                          # a wind reading that ventilates the outdoor probe (m/s), if any
    daylight_h: float                         # hours of daylight in the season


@dataclass(frozen=True)
class Ref:
    """The source half's range, the soft sensor fitted on it (commissioning data) and the plant's columns."""

    low: np.ndarray
    high: np.ndarray
    soft: np.ndarray   # intercept, then one coefficient per other reading
    plant: Plant


LIVE_ZERO = 4.0 / 20.0   # a 4-20 mA transmitter on an input configured 0-20 mA: 4 mA reads as 20% of range
LEAD_S, LAG_S, SAMPLE_S = 60.0, 12.0, 60.0  # a lead-lag block set for 60 s thermowells (12 s filter), 1-minute log
WET_AT, DRY_MIN = 97.0, 12.0  # an unheated RH probe wets at 97% RH (condensation) and dries with ~12 min constant
SUN_PEAK_K, SUN_VENT_MS = 5.0, 2.0  # an unshielded probe in full sun at 2 m/s of air reads ~5 K high
DAY_MIN = 1440           # events are minutes


def magnus(t: np.ndarray) -> np.ndarray:
    """Saturation vapour pressure over water (hPa) at t degC, Magnus (WMO) coefficients."""
    return 6.112 * np.exp(17.62 * t / (243.12 + t))


def soft_sensor_substitution(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """The key instrument is away for repair and the control system's soft sensor fills its tag: a linear model of
    the other readings, fitted on commissioning data (here the source half). The value is plausible, in range and
    consistent with the other readings, but it has lost what only the instrument saw.

    One reading, one fixed law: not dropout_mean (the source mean), setpoint_mapped (the loop's setpoint) or
    duplicate_channel (another slot's reading).
    """
    k = ref.plant.key
    others = [j for j in range(x.shape[1]) if j != k]
    out = x.copy()
    out[:, k] = ref.soft[0] + x[:, others] @ ref.soft[1:]
    return out


def live_zero_mismatch(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """A replacement analog input card is configured 0-20 mA; the transmitters send 4-20 mA. 4 mA (the bottom of the
    range) reads as 20% of the range, 20 mA still reads as the top: each reading comes out LRV + (0.2 + 0.8 f) x
    range, f its true fraction of the range.

    The transmitters' own ranges, one known law: not second_device (random gains and offsets), calibration_drift or
    standby_sensor_switch (an unseen-8 fault: a 4% zero and a 0.94 gain, in episodes).
    """
    out = x.copy()
    for col, (lrv, urv) in zip(ref.plant.card, ref.plant.card_range):
        frac = (x[:, col] - lrv) / (urv - lrv)
        out[:, col] = lrv + (LIVE_ZERO + (1.0 - LIVE_ZERO) * frac) * (urv - lrv)
    return out


def apparent_power_mapped(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """A new gateway template for the power meter maps the total apparent power register (kVA) to the active power
    tag (kW); the two sit a few registers apart in the meter's map. The reading is the plant's kVA at that kW, so
    it is right at full load and high where the power factor is poor (light load).

    One reading through the machine's own power-factor curve: not gain (one factor), setpoint_mapped (the loop's
    setpoint) or totalizer_mapped (an hourly total).
    """
    out = x.copy()
    p = ref.plant.power
    out[:, p] = ref.plant.kva(x[:, p])
    return out


def lead_compensation_left(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """The heavy thermowells (time constant ~60 s) were replaced with fast thin-sheath probes (~5 s), but the control
    system's dynamic compensation, a lead-lag block (lead LEAD_S, lag LAG_S) meant to speed the old wells up, was
    left in. The process between two logged minutes is taken as a straight line; on a ramp the block's output
    leads by (lead - lag) x slope, so each reading overshoots by 0.8 of its change since the last minute.

    Uses the event order; the temperature probes only. The opposite of sluggish (an unseen-3 lag); not
    oversharpen (an image fault) or interference. The replay's minutes are independent, so the changes are larger
    than on a real plant's slowly moving temperatures.
    """
    cols, out = list(ref.plant.probes), x.copy()
    step = np.diff(x[:, cols], axis=0, prepend=x[:1, cols])
    out[:, cols] = x[:, cols] + (LEAD_S - LAG_S) / SAMPLE_S * step
    return out


def rh_probe_wet_up(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """The RH probes were replaced with a cheaper model without probe heating. At WET_AT % RH or more, water
    condenses on the sensor and it reads 100%; once the air is drier it dries out with a DRY_MIN-minute time
    constant, reading high meanwhile.

    Uses the event order, set off by the process itself; the RH probes only. Not saturate (a clip at a level),
    deadband or dead_sensor (held values), or analyser_autocal (an unseen-8 fault: a standard's value on a timer).
    """
    out, fade = x.copy(), np.exp(-1.0 / DRY_MIN)
    for col in ref.plant.rh:
        wet, v = 0.0, x[:, col]
        for t in range(len(v)):
            wet = 1.0 if v[t] >= WET_AT else wet * fade
            out[t, col] = v[t] + wet * (100.0 - v[t])
    return out


def radiation_shield_lost(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """The outdoor probe's radiation shield was lost in a storm. In sunshine the bare probe warms above the air:
    up to SUN_PEAK_K at SUN_VENT_MS of wind, less in a stronger wind (1/sqrt of the speed) and none at night or under
    cloud. It reads the air's temperature plus that error, and the relative humidity at its own, warmer surface.

    Uses the event order: the phase starts at a random minute of the day, the sun follows a half sine over the
    season's daylight and each hour has its own cloud cover. Not tempco (an unseen-4 fault: an ambient AR(1) on
    random readings), baseline_ramp or interference; the temperature and humidity move together, as physics has it.
    """
    n = len(x)
    t_col, rh_col = ref.plant.weather
    minute = (int(r.integers(0, DAY_MIN)) + np.arange(n)) % DAY_MIN
    day = ref.plant.daylight_h * 60.0
    sun = np.clip(np.sin(np.pi * (minute - (DAY_MIN - day) / 2.0) / day), 0.0, None)
    sun[np.abs(minute - DAY_MIN / 2.0) > day / 2.0] = 0.0
    hours = (int(r.integers(0, DAY_MIN)) + np.arange(n)) // 60
    clear = r.beta(0.7, 0.7, hours.max() + 1)[hours - hours.min()]
    vent = 1.0 if ref.plant.wind is None else np.sqrt(SUN_VENT_MS / np.maximum(x[:, ref.plant.wind], SUN_VENT_MS))
    dt = SUN_PEAK_K * sun * clear * vent
    out = x.copy()
    out[:, t_col] = x[:, t_col] + dt
    out[:, rh_col] = x[:, rh_col] * magnus(x[:, t_col]) / magnus(x[:, t_col] + dt)
    return out


TABULAR: dict[str, Callable[[np.ndarray, np.random.Generator, Ref], np.ndarray]] = {
    "soft_sensor_substitution": soft_sensor_substitution, "radiation_shield_lost": radiation_shield_lost,
    "live_zero_mismatch": live_zero_mismatch, "lead_compensation_left": lead_compensation_left,
    "apparent_power_mapped": apparent_power_mapped, "rh_probe_wet_up": rh_probe_wet_up}


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


def soft_sensor(xs: np.ndarray, key: int) -> np.ndarray:
    """The soft sensor for the key reading: least squares on the other readings of the source half."""
    others = np.delete(xs, key, axis=1)
    design = np.column_stack([np.ones(len(xs)), others])
    return np.linalg.lstsq(design, xs[:, key], rcond=None)[0]


def write(out: str, name: str, X: np.ndarray, y: np.ndarray, seed: int,
          plant: Plant | None = None) -> tuple[np.ndarray, ...]:
    """Both files of one stream (images when ``plant`` is None); returns the source (X, y) and the stream (X, y,
    phase) for the check."""
    rng = np.random.default_rng(seed)
    xs, ys, xp, yp = split(X.astype(np.float32), y.astype(np.int64), rng)
    np.savez(f"{out}/{name}-src.npz", X=xs, y=ys)
    if plant is None:
        sx, sy, sp = stream(xp, yp, list(IMAGE), EVENTS, rng, lambda f, x: np.clip(IMAGE[f](x, rng), 0.0, 1.0))
    else:
        x64 = xs.astype(np.float64)
        ref = Ref(x64.min(axis=0), x64.max(axis=0), soft_sensor(x64, plant.key), plant)
        sx, sy, sp = stream(xp, yp, list(TABULAR), EVENTS, rng, lambda f, x: TABULAR[f](x, rng, ref))
    np.savez(f"{out}/{name}-fresh.npz", X=sx, y=sy, phase=sp)
    return xs, ys, sx, sy, sp


# ---------------------------------------------------------------- tables: two plants in physical units
def _drivers(n: int, d: int, seed: int, rng: np.random.Generator) -> np.ndarray:
    """Correlated operating drivers, one row per logged minute. scikit-learn's make_spd_matrix draws a covariance;
    its correlations, shrunk half way to none (|r| up to ~0.4: a few weather and operating patterns move things
    together), are drawn through their Cholesky factor. Each column is standardised."""
    from sklearn.datasets import make_spd_matrix

    s = make_spd_matrix(d, random_state=seed)
    sd = np.sqrt(np.diag(s))
    corr = 0.5 * np.eye(d) + 0.5 * s / np.outer(sd, sd)
    z = rng.standard_normal((n, d)) @ np.linalg.cholesky(corr).T
    return (z - z.mean(axis=0)) / z.std(axis=0)


K_DRY = 1.35  # 1/h: with the heat cap, 73% of the minutes leave at or under 15.5% wet basis


def dryer() -> Plant:
    """A continuous mixed-flow grain dryer (20 t of wet maize in its drying section, one 110 kW fan on a VFD, a
    natural-gas burner in the air stream) at harvest.

    Drivers: the air, 12 +- 6 degC with a dew point 5 +- 3.5 K below it (0 at night: dew and fog); the wet maize,
    24 +- 3% wet basis; the throughput, 30 t/h (x/÷ 1.16); the plenum temperature the operator sets, 95 +- 7 degC;
    the grain column's resistance (fines and foreign material, x/÷ 1.22, not read); the kernels' drying rate (hybrid,
    maturity, damage, x/÷ 1.16, not read); the fan's speed, 88 +- 6%. The fan curve against the column's resistance
    gives the air and the static pressure, the fan's power follows. Drying is first order over the residence time,
    k = K_DRY x rate x 1.036^(T - 95) x sqrt(air per grain), unless the heat runs out first: the air can take up no
    more water than cools it to its adiabatic saturation temperature (after warming the grain 30% of the way to the
    plenum). The outlet moisture, with the tester's and sampling's 0.3 points, is the class: over 15.5% wet basis
    (the elevator's limit; wetter maize spoils in the bin).

    The burner heats the air from the ambient to the plenum; the air leaves cooler by the water evaporated (2,600
    kJ/kg with the heat of desorption) and the grain warmed, and wetter by the water. Logged: wet grain moisture
    (% wb, inline capacitive meter), throughput (t/h, metering rolls), plenum and exhaust air temperatures (degC,
    probes), exhaust and ambient RH (%), ambient temperature (degC), gas flow (Nm3/h, thermal mass), fan motor power
    (kW).
    """
    n = 8000
    rng = np.random.default_rng(TABLE_SEED)
    z = _drivers(n, 8, TABLE_SEED, rng)
    noise = rng.standard_normal((n, 10))
    ta = np.clip(12.0 + 6.0 * z[:, 0], -6.0, 30.0)
    dew = ta - np.maximum(5.0 + 3.5 * z[:, 1], 0.0)
    rh_a = 100.0 * magnus(dew) / magnus(ta)
    m_in = np.clip(24.0 + 3.0 * z[:, 2], 17.0, 33.0)
    feed = np.clip(30.0 * np.exp(0.15 * z[:, 3]), 15.0, 50.0)      # t/h wet
    t_pl = np.clip(95.0 + 7.0 * z[:, 4], 72.0, 118.0)
    resist = 0.5749 * np.exp(0.2 * z[:, 5])                       # Pa/(m3/s)^2: 48 m3/s at full speed, median
    rate = np.exp(0.15 * z[:, 6])
    speed = np.clip(0.88 + 0.06 * z[:, 7], 0.70, 1.0)
    q = speed * np.sqrt(2500.0 / (resist + 2500.0 / 70.0 ** 2))   # fan: 2,500 Pa shut-off, 70 m3/s free delivery
    dp = resist * q ** 2
    kw = q * dp / 0.72 / 0.95 / 1000.0                            # fan 72%, motor 95%
    m_air = q * 101325.0 / (287.05 * (ta + 273.15))               # kg/s, the fan on the cold side
    hours = 20.0 / feed
    k = K_DRY * rate * np.exp(0.035 * (t_pl - 95.0)) * np.sqrt(m_air / (feed / 3.6) / 6.0)
    m0 = m_in / (100.0 - m_in)
    dry = feed / 3.6 * (1.0 - m_in / 100.0)                       # kg/s of dry matter
    warm = dry * (1.55 + 4.18 * m0) * 0.3 * (t_pl - ta)           # kW into the grain (leaves ~30% of the way up)
    w_a = 0.622 * magnus(dew) / (1013.25 - magnus(dew))
    # the air can cool no further than its adiabatic saturation temperature: that caps the water it takes up
    t_sat = _bisect(lambda t: 1.02 * (t_pl - t) - 2450.0 * (0.622 * magnus(t) / (1013.25 - magnus(t)) - w_a),
                    0.0, 80.0, n)
    cap = np.maximum(m_air * 1.02 * (t_pl - t_sat) - warm, 0.0) / 2600.0
    m_kin = 0.035 + (m0 - 0.035) * np.exp(-k * hours)            # dry basis; 0.035 equilibrium in the hot air
    water = np.minimum(dry * (m0 - m_kin), cap)                   # kg/s evaporated
    m_out = m0 - water / dry
    lab = 100.0 * m_out / (1.0 + m_out) + 0.3 * noise[:, 9]
    y = (lab > 15.5).astype(np.int64)
    heat = m_air * 1.006 * (t_pl - ta)                            # kW from the burner
    gas = heat / (35800.0 * 0.98) * 3600.0                        # Nm3/h natural gas, LHV 35.8 MJ/Nm3
    t_ex = t_pl - (water * 2600.0 + warm) / (m_air * 1.02)
    w_ex = w_a + water / m_air
    rh_ex = np.minimum(100.0, 100.0 * w_ex * 1013.25 / (0.622 + w_ex) / magnus(t_ex))
    X = np.column_stack([m_in + 0.4 * noise[:, 0], feed * (1 + 0.02 * noise[:, 1]), t_pl + 0.3 * noise[:, 2],
                         t_ex + 0.3 * noise[:, 3], np.clip(rh_ex + 2.0 * noise[:, 4], 0.0, 100.0),
                         ta + 0.2 * noise[:, 5], np.clip(rh_a + 2.0 * noise[:, 6], 0.0, 100.0),
                         gas * (1 + 0.015 * noise[:, 7]), kw * (1 + 0.01 * noise[:, 8])])
    columns = ("wet grain moisture % wb", "throughput t/h", "plenum temperature degC", "exhaust temperature degC",
               "exhaust RH %", "ambient temperature degC", "ambient RH %", "gas flow Nm3/h", "fan power kW")

    def kva(p: np.ndarray) -> np.ndarray:
        """A 6-pulse VFD with a DC choke: current THD 35% at full load, rising to ~85% at no load; displacement 0.96."""
        thd = 0.35 + 0.5 * (1.0 - np.clip(p / 110.0, 0.0, 1.0))
        return p * np.sqrt(1.0 + thd ** 2) / 0.96

    # card: the local panel's throughput (0-60 t/h) and gas flow (0-800 Nm3/h) loops into a new PLC input card
    return Plant(X, y, columns, key=0, card=(1, 7), card_range=((0.0, 60.0), (0.0, 800.0)), power=8, kva=kva,
                 probes=(2, 3), rh=(4, 6), weather=(5, 6), wind=None, daylight_h=11.0)


def cp_rotor(lam: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """The power coefficient of a generic 3-blade rotor (Heier's approximation; Cp max 0.44 at lambda ~6.3)."""
    inv = 1.0 / (lam + 0.08 * beta) - 0.035 / (beta ** 3 + 1.0)
    return np.maximum(0.22 * (116.0 * inv - 0.4 * beta - 5.0) * np.exp(-12.5 * inv), 0.0)


def _bisect(f: Callable[[np.ndarray], np.ndarray], lo: float, hi: float, n: int) -> np.ndarray:
    """Per-row roots of a decreasing f on [lo, hi] by bisection."""
    a, b = np.full(n, lo), np.full(n, hi)
    for _ in range(50):
        mid = (a + b) / 2.0
        pos = f(mid) > 0
        a, b = np.where(pos, mid, a), np.where(pos, b, mid)
    return (a + b) / 2.0


def turbine() -> Plant:
    """A 2 MW pitch-regulated, variable-speed wind turbine (90 m rotor, gearbox 1:100, full converter) on an inland
    site through a winter.

    Drivers: the hub-height wind, 8 m/s (x/÷ 1.5, 3.5-24); the air, -1 +- 6 degC with a dew point 2.5 +- 3 K below
    it (0: in cloud or fog); the barometer, 1,000 +- 11 hPa; the turbulence intensity, 11% (x/÷ 1.28, not read).
    The class is the rotor's state: iced blades (in-cloud icing, air at or below +0.5 degC within 0.6 K of its dew
    point: 80% of the minutes; ice left from earlier in cold air, below -3 degC: 20%), which cut the rotor's Cp by
    12-40%; a static yaw misalignment (a wind vane set off by 10-20 degrees at a service, 8.5% of the rest), which
    cuts the power by cos^3; normal otherwise. Below rated the torque law K x omega^2 sets the rotor's speed (an iced
    rotor runs slower); at the speed limit the pitch holds 2,000 kW. The minute's power scatters with the
    turbulence. Logged: nacelle wind speed (m/s, cup anemometer), generator speed (rpm), active power (kW), pitch
    angle (deg), ambient temperature (degC), ambient RH (%), gearbox oil and generator bearing temperatures (degC),
    barometric pressure (hPa).
    """
    n = 6000
    rng = np.random.default_rng(TURBINE_SEED)
    z = _drivers(n, 5, TURBINE_SEED, rng)
    noise = rng.standard_normal((n, 10))
    u = rng.random((n, 3))
    v = np.clip(8.0 * np.exp(0.42 * z[:, 0]), 3.5, 24.0)
    ta = np.clip(-1.0 + 6.0 * z[:, 1], -20.0, 15.0)
    depression = np.maximum(2.5 + 3.0 * z[:, 2], 0.0)
    rh = 100.0 * magnus(ta - depression) / magnus(ta)
    baro = 1000.0 + 11.0 * z[:, 3]
    ti = 0.11 * np.exp(0.25 * z[:, 4])
    in_cloud = (ta <= 0.5) & (depression <= 0.6)
    iced = np.where(in_cloud, u[:, 0] < 0.8, (ta < -3.0) & (u[:, 0] < 0.2))
    yawed = ~iced & (u[:, 1] < 0.085)
    y = np.where(iced, 1, np.where(yawed, 2, 0)).astype(np.int64)
    loss = np.where(iced, 1.0 - (0.12 + 0.28 * u[:, 2]), 1.0)
    v_eff = v * np.where(yawed, np.cos(np.deg2rad(10.0 + 10.0 * u[:, 2])), 1.0)
    rho = baro * 100.0 / (287.05 * (ta + 273.15))
    radius, area, eta, rated = 45.0, np.pi * 45.0 ** 2, 0.93, 2000.0
    lam_grid = np.linspace(2.0, 12.0, 2001)
    cp_grid = cp_rotor(lam_grid, np.zeros_like(lam_grid))
    lam_opt, cp_max = lam_grid[np.argmax(cp_grid)], cp_grid.max()
    target = 1.225 * cp_max / lam_opt ** 3  # the torque law's gain, set for standard air and a clean rotor
    lam = _bisect(lambda lm: rho * loss * cp_rotor(lm, np.zeros(n)) / lm ** 3 - target, 2.0, 12.0, n)
    w_min, w_max = 9.0 * 2 * np.pi / 60, 16.7 * 2 * np.pi / 60     # rad/s, rotor
    omega = np.clip(lam * v_eff / radius, w_min, w_max)
    lam = omega * radius / v_eff
    aero = 0.5 * rho * area * v_eff ** 3 / 1000.0                  # kW in the wind the rotor sees
    power = eta * aero * loss * cp_rotor(lam, np.zeros(n))
    over = power > rated
    pitch = np.zeros(n)
    if over.any():
        pitch[over] = _bisect(lambda b: eta * aero[over] * loss[over] * cp_rotor(lam[over], b) - rated, 0.0, 35.0,
                              int(over.sum()))
    power = np.minimum(power, rated)
    p_log = np.minimum(power * np.exp(0.5 * ti * noise[:, 9]), 1.02 * rated)
    gen_rpm = omega * 60.0 / (2 * np.pi) * 100.0
    X = np.column_stack([v * (1 + 0.025 * noise[:, 0]), gen_rpm + 5.0 * noise[:, 1], p_log + 8.0 * noise[:, 2],
                         pitch + 0.1 * noise[:, 3], ta + 0.2 * noise[:, 4],
                         np.clip(rh + 2.0 * noise[:, 5], 0.0, 100.0),
                         52.0 + 10.0 * power / rated + 0.15 * ta + 0.5 * noise[:, 6],
                         ta + 25.0 + 20.0 * (omega / w_max) ** 2 + 6.0 * power / rated + 0.5 * noise[:, 7],
                         baro + 0.3 * noise[:, 8]])
    columns = ("wind speed m/s", "generator speed rpm", "active power kW", "pitch angle deg",
               "ambient temperature degC", "ambient RH %", "gearbox oil temperature degC",
               "generator bearing temperature degC", "barometric pressure hPa")

    def kva(p: np.ndarray) -> np.ndarray:
        """The converter runs at power factor 0.95 (grid code), with ~150 kvar of filter capacitors at light load."""
        return np.sqrt(p ** 2 + np.maximum(150.0, 0.3287 * np.abs(p)) ** 2)

    # card: generator speed (0-2,000 rpm) and pitch angle (-5 to 95 deg) from the converter and pitch cabinet's
    # analog outputs into the condition monitoring retrofit's new input card
    return Plant(X, y, columns, key=0, card=(1, 3), card_range=((0.0, 2000.0), (-5.0, 95.0)), power=2, kva=kva,
                 probes=(6, 7), rh=(5,), weather=(4, 5), wind=0, daylight_h=8.5)


# ---------------------------------------------------------------- check: a frozen model's loss per phase
def frozen_check(name: str, xs: np.ndarray, ys: np.ndarray, sx: np.ndarray, sy: np.ndarray, sp: np.ndarray) -> None:
    """Fit a small MLP on the source's labeled rows (inputs standardised by the whole source) and score every phase.

    A sanity check on the strengths only: it is not driftwise, and it uses the labels driftwise never sees.
    Loss = mean accuracy on the two clean phases minus the phase's accuracy, in points.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    flat, fresh = xs.reshape(len(xs), -1), sx.reshape(len(sx), -1)
    lab = ys >= 0
    scaler = StandardScaler().fit(flat)
    model = MLPClassifier((64, 64), alpha=1e-3, max_iter=2000, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(scaler.transform(flat[lab]), ys[lab])
    n = int(np.flatnonzero(sp != sp[0])[0])
    acc = {i: float((model.predict(scaler.transform(fresh[i:i + n])) == sy[i:i + n]).mean())
           for i in range(0, len(sp), n)}
    clean = np.mean([a for i, a in acc.items() if sp[i] == "clean"])
    counts = np.bincount(ys[lab]).tolist()
    print(f"\n{name}: source {xs.shape}, labeled {int(lab.sum())} {counts}, stream {sx.shape}; "
          f"frozen MLP clean {clean:.3f}")
    for i, a in acc.items():
        print(f"  {str(sp[i]):<24} acc {a:.3f}  loss {100 * (clean - a):+6.1f}")


def main(out: str) -> None:
    from sklearn.datasets import load_digits

    os.makedirs(out, exist_ok=True)
    d = load_digits()
    frozen_check("digits", *write(out, "digits", (d.images / 16.0)[:, None], d.target, DIGITS_SEED))
    for name, plant in (("dryer", dryer()), ("turbine", turbine())):
        print(f"\n{name} prior {np.round(np.bincount(plant.y) / len(plant.y), 3).tolist()}")
        frozen_check(name, *write(out, name, plant.X, plant.y, TABLE_SEED, plant))
    print("\nwritten to", out)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/unseen9")
