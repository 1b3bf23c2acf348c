"""An eighth new user's trial: data, a split and faults that no other file in the repository names. Report only.

`bench/results/unseen/` to `unseen-7/` are committed, so they are no longer unseen. This script writes new files
in their format (`bench/stream_files.py`). ``NAME-src.npz`` holds ``X`` and ``y`` (-1 = unlabeled): half of the
data, 10% of it labeled, at least 3 rows a class. ``NAME-fresh.npz`` holds ``X``, ``y`` and ``phase``: the other
half replayed as clean, then six faults, then clean again, 2,000 events a phase.

* digits: scikit-learn's digits, split by seed 7349. Six faults of pens, forms and image code, none in
  `drift/corruptions.py` or an earlier trial: felt_tip_bleed, nearest_resize, pen_skip, form_box_edge,
  line_removal_overreach, fortran_reshape.
* aeration (binary, ~75/25): an activated-sludge aeration lane of a municipal wastewater plant. scikit-learn's
  ``make_low_rank_matrix`` (seed 8461, also the tables' split) draws correlated operating drivers (flow, load,
  temperature, sludge, DO loop error); a nitrification capacity (Monod in DO, Arrhenius in temperature) against
  the ammonium load gives the class, "effluent NH4-N over 2 mg/L" (read by a lab sample the model never sees).
* ro (3 classes, ~80/15/5): a brackish-water reverse osmosis train. ``make_low_rank_matrix`` (seed 5197) draws the
  feed's temperature, salinity, pressure and the recovery; the solution-diffusion model (water and salt
  permeability, temperature correction, osmotic pressure, feed-channel pressure drop) gives eight readings. The
  class is the membranes' state from the last autopsy/CIP review: normal, biofouling, scaling.

Both tables log raw physical units with instrument noise and get the same six instrument and data-pipeline faults,
none of them in `drift/sensor_shifts.py` or an earlier trial. Three keep one law all phase long: mux_crosstalk,
kfactor_stale, rtd_lead_resistance. Three use the event order: analyser_autocal (calibration cycles),
rolling_average_export (a 5-minute mean) and standby_sensor_switch (duty/standby switchovers).

Each strength was set from "plausible for a real instrument, pen or pipeline"; the reason sits next to each
constant. The script then scores one frozen check model per stream (`frozen_check`: a scikit-learn MLP fitted on
the source's labeled rows, not driftwise). Fault scales come from the source half (its range as a transmitter's
span), never from the drifted events.

    .venv/bin/python bench/results/unseen-8/make_unseen.py /tmp/unseen8
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.ndimage import gaussian_filter, grey_dilation, zoom

DIGITS_SEED, TABLE_SEED, RO_SEED = 7349, 8461, 5197  # used by no other file here
EVENTS = 2000  # events per phase, images and tables alike
LABELED, MIN_LABELED = 0.10, 3  # of the source half, per class (as the earlier trials)

# ---------------------------------------------------------------- image faults, (n, 1, 8, 8) in [0, 1], ink high
WICK = 0.45          # a felt-tip pen on absorbent form paper: ink wicks into each 4-neighbour at 45% strength
SKIP_SIGMA, SKIP_SHARE, SKIP_LEFT = 1.0, 0.35, 0.25  # a ballpoint skipping on glossy paper: 35% of the stroke
#                                                      area (smooth patches of ~1 px) keeps 25% of its ink
BOX_INK = 0.7        # a pre-printed comb box's border (a darker grey than the writing) inside the crop
RULED_RUN = 5        # a ruled-line remover deletes any row with 5 or more inked pixels (ink over 0.5)


def felt_tip_bleed(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """A felt-tip pen on absorbent (recycled, uncoated) form paper: the ink wicks into the fibres around each stroke.

    Each pixel takes the larger of its own ink and WICK x its darkest 4-neighbour's: strokes grow by about half a
    pixel on every side, and loops (0, 6, 8, 9) fill. Not blur (a mean: the stroke's core gets lighter) or
    thin_strokes (the opposite); the nearest is bleed_through (a mirrored digit from the back of the sheet).
    """
    cross = np.zeros((1, 1, 3, 3), bool)
    cross[0, 0, 1, :] = cross[0, 0, :, 1] = True
    cross[0, 0, 1, 1] = False
    return np.maximum(x, WICK * grey_dilation(x, footprint=cross, mode="constant", cval=0.0))


def nearest_resize(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """The scan-to-8x8 step switched to a "fast" resize: nearest neighbour (cv2.INTER_NEAREST) instead of the area
    average that made the 8 x 8 counts.

    The dataset's 8 x 8 values are the ink counts of 4 x 4 blocks of a 32 x 32 bitmap. Here the bitmap is rebuilt
    (bilinear, then 50% threshold) and one pixel per block is kept, at a random phase per image (where the page sat):
    grey values vanish, thin strokes break or vanish, others turn solid. Not pixelate (blocks of the mean) or
    ordered_dither (a fixed pattern).
    """
    big = zoom(x, (1, 1, 4, 4), order=1, mode="nearest", grid_mode=True) > 0.5
    off = r.integers(0, 4, (len(x), 2))
    rows = off[:, 0, None] + 4 * np.arange(8)[None]
    cols = off[:, 1, None] + 4 * np.arange(8)[None]
    n = np.arange(len(x))[:, None, None]
    return big[n, 0, rows[:, :, None], cols[:, None, :]][:, None].astype(np.float64)


def pen_skip(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """A ballpoint skipping on glossy (coated) paper: the ball slides without rolling in patches, leaving gaps.

    A smooth random field (sigma SKIP_SIGMA px) per image picks the SKIP_SHARE of the stroke area where the pen
    skipped; there only SKIP_LEFT of the ink is left. Patches along the strokes, not whole rows: not dead_row,
    stripes or occlusion (a square); not contrast (everything fainter).
    """
    field = gaussian_filter(r.standard_normal(x.shape), sigma=(0, 0, SKIP_SIGMA, SKIP_SIGMA))
    out = x.copy()
    for i in range(len(x)):
        ink = x[i] > 0.2
        if ink.sum() < 2:
            continue
        cut = np.quantile(field[i][ink], SKIP_SHARE)
        out[i][ink & (field[i] <= cut)] *= SKIP_LEFT
    return out


def form_box_edge(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """Digits written in a pre-printed comb box (a form's amount or postcode field). The segmenter crops a little
    inside the box, but the form sits a pixel off, so one border of the box (top, bottom, left or right, random per
    image) falls inside the crop, in its outermost row or column, at BOX_INK.

    A full-length line at the frame's edge, strokes kept: not grid_paper (faint, everywhere), dead_row (a row at 0)
    or stripes (random lines towards full ink).
    """
    out, side = x.copy(), r.integers(0, 4, len(x))
    for i, s in enumerate(side):  # 0 top, 1 bottom, 2 left, 3 right
        idx = (i, 0, 0 if s == 0 else 7, slice(None)) if s < 2 else (i, 0, slice(None), 0 if s == 2 else 7)
        out[idx] = np.maximum(out[idx], BOX_INK)
    return out


def line_removal_overreach(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """A "remove ruled lines" step for lined forms, turned on for every form: any row with RULED_RUN or more inked
    pixels (ink over 0.5) is taken for a ruled line and erased.

    The tops of 5 and 7, the bars of 4 and the bases of 2 go with it; narrow digits (1) are untouched. Set by each
    digit: not dead_row (one fixed row at 0) or median_denoise (thin strokes, everywhere).
    """
    run = (x > 0.5).sum(axis=3, keepdims=True) >= RULED_RUN
    return np.where(run, 0.0, x)


def fortran_reshape(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """A new loader reads the flat 64-value records with ``order="F"`` (a MATLAB/Fortran export, column-major):
    every image comes out transposed, mirrored about its main diagonal.

    The same law for every image; a 1 lies down, 6 and 9 change shape. Not rotation (a small angle), mirror_readout
    (an unseen-6 fault: one axis reversed) or shear.
    """
    return np.swapaxes(x, 2, 3).copy()


IMAGE: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "felt_tip_bleed": felt_tip_bleed, "nearest_resize": nearest_resize, "pen_skip": pen_skip,
    "form_box_edge": form_box_edge, "line_removal_overreach": line_removal_overreach,
    "fortran_reshape": fortran_reshape}


# ---------------------------------------------------------------- sensor faults, (n, d) in stream order
@dataclass(frozen=True)
class Plant:
    """A table and what its columns are: flow meters, RTDs, analysers (with their standards), duplicated ones."""

    X: np.ndarray
    y: np.ndarray
    columns: tuple[str, ...]
    flows: tuple[int, ...]          # magnetic / thermal flow meters, sized by their pipe's bore
    rtds: tuple[int, ...]           # Pt100 temperature sensors
    analysers: tuple[int, ...]      # online analysers with an automatic calibration cycle
    standards: tuple[float, ...]    # what each analyser reads during its calibration (its standard)
    duplicated: tuple[int, ...]     # readings with a duty and a standby transmitter


@dataclass(frozen=True)
class Ref:
    """The source half's range (a transmitter's span: its smallest and largest reading) and the plant's columns."""

    low: np.ndarray
    high: np.ndarray
    plant: Plant


SETTLE = 0.12            # a remote I/O card's multiplexer, its scan rate doubled by a firmware update, keeps 12% of
#                          the previous channel's signal (the sample-and-hold does not settle: ~2 time constants)
BORE_RATIO = 100.0 / 80.0  # meters swapped for one size smaller (DN80) in a retrofit, transmitters still set to DN100
LEAD_K = 6.0             # a Pt100 input set to 2-wire on a 3-wire run: 2 x 100 m of 1.5 mm2 copper = 2.3 ohm = +6 K
CAL_EVERY, CAL_LONG = 90, 8  # analysers calibrate every ~1.5 h for ~8 min; the hold flag is not mapped
AVERAGE = 5              # the export's retrieval mode switched from "sampled" to a 5-minute time-weighted average
STANDBY_ON, STANDBY_OFF = 60, 150  # the duty transmitter drops out (a loose terminal) for ~1 h every ~2.5 h
STANDBY_ZERO, STANDBY_GAIN = 0.04, 0.94  # the standby, not calibrated since commissioning: +4% of span, -6% gain


def _episodes(n: int, on: float, off: float, r: np.random.Generator) -> np.ndarray:
    """An on/off process in event order: on for ~``on`` events (geometric), off for ~``off``; starts stationary."""
    out, state, i = np.empty(n, bool), bool(r.random() < on / (on + off)), 0
    while i < n:
        k = int(r.geometric(1.0 / (on if state else off)))
        out[i:i + k] = state
        i, state = i + k, not state
    return out


def mux_crosstalk(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """A remote I/O card multiplexes all its inputs through one ADC. A firmware update doubled its scan rate, and the
    sample-and-hold no longer settles: each channel keeps SETTLE of the signal of the channel scanned before it
    (the column before; the first after the last), as a fraction of span.

    Every channel, one fixed law: not crosstalk (an unseen-2 fault: two channels pick up another's deviation) or
    duplicate_channel (one channel replaced).
    """
    span = ref.high - ref.low
    frac = (x - ref.low) / span
    mixed = (1.0 - SETTLE) * frac + SETTLE * np.roll(frac, 1, axis=1)
    return ref.low + mixed * span


def kfactor_stale(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """In a retrofit the flow meters were replaced by one size smaller (DN80 for DN100); their transmitters were
    configured from the old meters' data sheets, bore included. A magnetic (or insertion thermal) meter measures
    velocity and multiplies by the configured bore's area: every flow reads (100/80)^2 = 1.56 x.

    The flows only, one factor set by two pipe sizes: not gain (random factors on random features) or unit_change.
    """
    cols, out = list(ref.plant.flows), x.copy()
    out[:, cols] *= BORE_RATIO ** 2
    return out


def rtd_lead_resistance(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """A replacement temperature input is set to 2-wire; the Pt100 runs are 3-wire, 100 m of 1.5 mm2 copper. The lead
    resistance is no longer compensated: 2 x 1.15 ohm = 2.3 ohm = +6.0 K on every RTD reading.

    The RTDs only, a fixed offset in kelvin: not offset (random offsets on random features), ground_loop (an unseen-5
    fault) or tc_type_mismatch (an unseen-7 fault, a gain about the terminals' temperature).
    """
    cols, out = list(ref.plant.rtds), x.copy()
    out[:, cols] += LEAD_K
    return out


def analyser_autocal(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """The online analysers run an automatic calibration every ~CAL_EVERY minutes for ~CAL_LONG minutes. Their
    "hold during calibration" flag was not mapped in a new gateway, so the historian logs the calibration standard
    (with 1% scatter) instead of the process.

    Uses the event order; the analysers only. Not dead_sensor (a frozen last reading) or setpoint_mapped (an
    unseen-7 fault): a known standard's value, in short episodes.
    """
    cols, out = list(ref.plant.analysers), x.copy()
    cal = _episodes(len(x), CAL_LONG, CAL_EVERY, r)
    std = np.asarray(ref.plant.standards)
    out[np.ix_(cal, cols)] = std[None] * (1.0 + 0.01 * r.standard_normal((int(cal.sum()), len(cols))))
    return out


def rolling_average_export(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """The export job's retrieval mode was switched from "sampled" to a time-weighted average over AVERAGE minutes:
    every reading is the mean of itself and the AVERAGE - 1 before it (fewer at the phase's start).

    Uses the event order; all features alike. Not gap_interpolation (an unseen-7 fault: lines across outages) or
    sluggish (an unseen-3 fault: a slow sensor). The replay's minutes are independent, so the average mixes
    unrelated operating points: harsher here than on a real, slowly moving plant.
    """
    c = np.cumsum(np.vstack([np.zeros((1, x.shape[1])), x]), axis=0)
    i = np.arange(1, len(x) + 1)
    lo = np.maximum(i - AVERAGE, 0)
    return (c[i] - c[lo]) / (i - lo)[:, None]


def standby_sensor_switch(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """The duplicated readings have a duty and a standby transmitter. A loose terminal makes the duty one drop out for
    ~STANDBY_ON minutes every ~STANDBY_OFF, and the DCS switches to the standby, never calibrated since commissioning:
    its zero sits STANDBY_ZERO of the span high and its gain is STANDBY_GAIN.

    Uses the event order; the duplicated readings only. Not intermittent_offset (an offset on random features) or
    second_device (an unseen-3 fault).
    """
    cols, out = list(ref.plant.duplicated), x.copy()
    on = _episodes(len(x), STANDBY_ON, STANDBY_OFF, r)
    low, span = ref.low[cols], ref.high[cols] - ref.low[cols]
    out[np.ix_(on, cols)] = low + STANDBY_GAIN * (x[np.ix_(on, cols)] - low) + STANDBY_ZERO * span
    return out


TABULAR: dict[str, Callable[[np.ndarray, np.random.Generator, Ref], np.ndarray]] = {
    "mux_crosstalk": mux_crosstalk, "analyser_autocal": analyser_autocal, "kfactor_stale": kfactor_stale,
    "rolling_average_export": rolling_average_export, "rtd_lead_resistance": rtd_lead_resistance,
    "standby_sensor_switch": standby_sensor_switch}


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
        ref = Ref(x64.min(axis=0), x64.max(axis=0), plant)
        sx, sy, sp = stream(xp, yp, list(TABULAR), EVENTS, rng, lambda f, x: TABULAR[f](x, rng, ref))
    np.savez(f"{out}/{name}-fresh.npz", X=sx, y=sy, phase=sp)
    return xs, ys, sx, sy, sp


# ---------------------------------------------------------------- tables: two plants in physical units
def _drivers(n: int, d: int, seed: int) -> np.ndarray:
    """Correlated operating drivers, one row per logged minute: scikit-learn's make_low_rank_matrix (rank ~3 of d:
    a few weather and demand patterns move everything), each column standardised."""
    from sklearn.datasets import make_low_rank_matrix

    z = make_low_rank_matrix(n_samples=n, n_features=d, effective_rank=3, tail_strength=0.6, random_state=seed)
    return (z - z.mean(axis=0)) / z.std(axis=0)


def o2_saturation(t: np.ndarray) -> np.ndarray:
    """Dissolved oxygen at saturation (mg/L) in fresh water at t degC, sea level (a fit to the APHA table)."""
    return 14.62 - 0.3898 * t + 0.006969 * t ** 2 - 5.897e-5 * t ** 3


def aeration() -> Plant:
    """One aeration lane (10,000 m3, fine-bubble diffusers at 5 m) of a municipal activated-sludge plant.

    Drivers (correlated: rain brings more, colder and more dilute sewage): influent flow 1,500 m3/h (x/÷ 1.4),
    influent ammonium 35 mg/L NH4-N (x/÷ 1.3), water 15 +- 4 degC, sludge (MLSS) 3.5 +- 0.5 g/L, dissolved oxygen at
    its 2.0 mg/L setpoint +- 0.5 (the blowers' control error), and the nitrifiers' activity (sludge age, inhibitors:
    x/÷ 1.25, not read). Nitrification capacity = MLSS x activity x 1.07^(T - 20) x DO / (0.5 + DO); the load is
    flow x ammonium. Effluent NH4-N (Monod steady state) = 1.0 x rho / (1 - rho) mg/L with 20% scatter, rho = load /
    capacity. Class 1 (~25%): over 2 mg/L, the permit's limit.

    The air follows the oxygen demand (carbon and 4.57 kg O2 per kg N nitrified) over the transfer efficiency and the
    driving force (saturation - DO); the blower's discharge pressure is the water depth plus the diffusers' loss;
    nitrification eats alkalinity, so the pH falls with the nitrified load. Logged: influent flow (m3/h, magnetic),
    influent NH4-N (mg/L, ion-selective analyser), basin temperature (degC, Pt100), MLSS (g/L, optical), DO (mg/L,
    optical), air flow (Nm3/h, thermal), blower discharge (mbar g), pH.
    """
    n = 8000
    z = _drivers(n, 6, TABLE_SEED)
    noise = np.random.default_rng(TABLE_SEED).standard_normal((n, 10))
    flow = np.clip(1500.0 * np.exp(0.34 * z[:, 0]), 400.0, 5000.0)
    nh4_in = np.clip(35.0 * np.exp(0.26 * z[:, 1]), 8.0, 80.0)
    temp = np.clip(15.0 + 4.0 * z[:, 2], 7.0, 26.0)
    mlss = np.clip(3.5 + 0.5 * z[:, 3], 2.0, 5.5)
    do = np.clip(2.0 + 0.5 * z[:, 4], 0.3, 4.0)
    activity = np.exp(0.22 * z[:, 5])
    load = flow * nh4_in / 1000.0  # kg N/h
    capacity = 56.0 * mlss * activity * 1.07 ** (temp - 20.0) * do / (0.5 + do)  # kg N/h
    rho = load / capacity
    eff = np.where(rho < 0.98, rho / np.maximum(1.0 - rho, 0.02), 50.0) * np.exp(0.2 * noise[:, 9])
    y = (eff > 2.0).astype(np.int64)
    nitrified = np.maximum(load - flow * np.minimum(eff, nh4_in) / 1000.0, 0.0)  # kg N/h
    demand = 0.12 * flow + 4.57 * nitrified  # kg O2/h
    cs = o2_saturation(temp)
    air = demand / (0.28 * 0.25 * 0.6) * cs / np.maximum(cs - do, 0.5)  # Nm3/h: 0.28 kg O2/Nm3, 25% SOTE, alpha 0.6
    blower = 500.0 + 35.0 + 60.0 * (air / 10000.0) ** 2  # mbar g: 5 m of water, pipework, diffusers
    ph = 7.35 - 0.012 * nitrified / flow * 1000.0 + 0.05 * noise[:, 8]
    X = np.column_stack([flow * (1 + 0.005 * noise[:, 0]), nh4_in * (1 + 0.05 * noise[:, 1]),
                         temp + 0.1 * noise[:, 2], mlss * (1 + 0.03 * noise[:, 3]), do + 0.05 * noise[:, 4],
                         air * (1 + 0.015 * noise[:, 5]), blower + 2.0 * noise[:, 6], ph + 0.02 * noise[:, 7]])
    columns = ("influent flow m3/h", "influent NH4-N mg/L", "basin temperature degC", "MLSS g/L", "DO mg/L",
               "air flow Nm3/h", "blower discharge mbar g", "pH")
    # NH4 analyser reads its 10.0 mg/L standard; the optical DO probe its air calibration (9.09 mg/L, 20 degC)
    return Plant(X, y, columns, flows=(0, 5), rtds=(2,), analysers=(1, 4), standards=(10.0, 9.09),
                 duplicated=(3, 4))


def ro() -> Plant:
    """A brackish-water reverse osmosis train (2 stages, ~80 m3/h of permeate at 75% recovery).

    Drivers (correlated: a borehole field's mix): feed 18 +- 5 degC, feed conductivity 2,500 uS/cm (x/÷ 1.2), feed
    pressure 14 +- 1.2 bar g (the high-pressure pump's speed), recovery 75 +- 2%, acid dosing's pH 7.0 +- 0.15. The
    membranes' state is the class: normal (80%), biofouling (15%: water permeability -10 to -25%, feed-channel
    pressure drop x1.4-2.0) and scaling (5%: permeability -8 to -20%, salt permeability x1.6-3.0, in the tail
    elements). Solution-diffusion: permeate = A x TCF x (feed pressure - half the channel drop - mean osmotic
    pressure - permeate back-pressure); salt passage ~ B x TCF x mean concentrate over the flux. Logged: feed
    pressure and channel differential pressure (bar), permeate and concentrate flow (m3/h, magnetic), feed and
    permeate conductivity (uS/cm), feed temperature (degC, Pt100), feed pH.
    """
    n = 6000
    z = _drivers(n, 6, RO_SEED)
    noise = np.random.default_rng(RO_SEED).standard_normal((n, 12))
    u = np.random.default_rng(RO_SEED + 1).random((n, 2))
    temp = np.clip(18.0 + 5.0 * z[:, 0], 6.0, 32.0)
    cond = 2500.0 * np.exp(0.18 * z[:, 1])
    p_feed = 14.0 + 1.2 * z[:, 2]
    rec = np.clip(0.75 + 0.02 * z[:, 3], 0.68, 0.80)
    ph = 7.0 + 0.15 * z[:, 4]
    y = np.digitize(u[:, 0], [0.80, 0.95]).astype(np.int64)
    sev = u[:, 1]
    a = np.exp(0.04 * noise[:, 8]) * np.where(y == 1, 0.90 - 0.15 * sev, np.where(y == 2, 0.92 - 0.12 * sev, 1.0))
    b = np.exp(0.08 * noise[:, 9]) * np.where(y == 2, 1.6 + 1.4 * sev, 1.0)
    foul = np.where(y == 1, 1.4 + 0.6 * sev, 1.0) * np.exp(0.05 * noise[:, 10])
    tcf = np.exp(2640.0 * (1.0 / 298.15 - 1.0 / (273.15 + temp)))
    cf = np.log(1.0 / (1.0 - rec)) / rec  # mean concentration factor along the train
    osmotic = 0.00045 * cond * cf  # bar (~0.7 bar per 1,000 mg/L of NaCl)
    qp = np.full(n, 90.0)
    for _ in range(8):  # permeate and the channel drop (set by the feed flow) settle together
        dp = 1.6 * foul * (qp / rec / 120.0) ** 1.5
        qp = np.maximum(9.0 * a * tcf * (p_feed - dp / 2 - osmotic - 0.3), 5.0)
    qc = qp * (1.0 - rec) / rec
    perm = 0.012 * b * tcf * cond * cf * 90.0 / qp * (1.0 + 0.1 * (ph - 7.0))
    X = np.column_stack([p_feed + 0.03 * noise[:, 0], dp + 0.01 * noise[:, 1], qp * (1 + 0.005 * noise[:, 2]),
                         qc * (1 + 0.005 * noise[:, 3]), cond * (1 + 0.01 * noise[:, 4]),
                         perm * (1 + 0.02 * noise[:, 5]), temp + 0.1 * noise[:, 6], ph + 0.02 * noise[:, 7]])
    columns = ("feed pressure bar g", "differential pressure bar", "permeate flow m3/h", "concentrate flow m3/h",
               "feed conductivity uS/cm", "permeate conductivity uS/cm", "feed temperature degC", "feed pH")
    # conductivity cells' check standards: 1,413 uS/cm (feed), 146.9 uS/cm (permeate); duty/standby: feed pressure
    # (the high-pressure trip's pair) and differential pressure
    return Plant(X, y, columns, flows=(2, 3), rtds=(6,), analysers=(4, 5), standards=(1413.0, 146.9),
                 duplicated=(0, 1))


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
    for name, plant in (("aeration", aeration()), ("ro", ro())):
        print(f"\n{name} prior {np.round(np.bincount(plant.y) / len(plant.y), 3).tolist()}")
        frozen_check(name, *write(out, name, plant.X, plant.y, TABLE_SEED, plant))
    print("\nwritten to", out)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/unseen8")
