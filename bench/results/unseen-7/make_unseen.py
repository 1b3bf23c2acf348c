"""A seventh new user's trial: data, a split and faults that no other file in the repository names. Report only.

`bench/results/unseen/` to `unseen-6/` are committed, so they are no longer unseen. This script writes new files
in their format (`bench/stream_files.py`). ``NAME-src.npz`` holds ``X`` and ``y`` (-1 = unlabeled): half of the
data, 10% of it labeled, at least 3 rows a class. ``NAME-fresh.npz`` holds ``X``, ``y`` and ``phase``: the other
half replayed as clean, then six faults, then clean again, 2,000 events a phase.

* digits: scikit-learn's digits, split by seed 271 (the benches use 0, 1, 2; the trials used 11, 23, 43, 67, 103).
  Six faults of paper, handwriting, cameras and image code, none in `drift/corruptions.py`, `models/augment.py` or
  an earlier trial: grid_paper, neighbour_intrusion, focus_tilt, median_denoise, bbox_stretch, phone_shadow.
* boiler (binary, ~70/30): a gas-fired steam boiler with an O2 trim. scikit-learn's ``make_regression`` (seed 349,
  also the tables' split) draws the operating point (its linear target is not used); the trim's setpoint curve, a
  CO onset that moves with the firing rate and the burner's state, the heat balance (steam tables, Siegert stack
  loss) and the fan law give eight logged readings. The class is "CO over 100 ppm", the permit limit, read by a
  CO analyser the model never sees.
* electrolyser (4 classes, ~58/23/14/5): a fleet of PEM electrolysis stacks following a wind farm.
  ``make_regression`` (seed 457) draws the load, the cooling water temperature, the control errors, each
  stack's spread and its condition. The polarisation curve (Nernst, Tafel, ohmic), hydrogen crossover and the
  stack's heat balance give nine logged readings. The class is the stack's condition from its last diagnostic:
  healthy, ohmic ageing, catalyst loss, membrane thinning.

Both tables log raw physical units (t/h, bar g, Nm3/h, %, degC, A, V, m3/h) with instrument noise, and get the
same six instrument, configuration and data-pipeline faults, none of them in `drift/sensor_shifts.py` or an
earlier trial. Three keep one law all phase long: setpoint_mapped, tc_type_mismatch, low_flow_cutoff. Three use
the event order: gap_interpolation (outages, filled from both sides), poll_jitter (late polls: a long minute, then
a short one) and supply_sag (sag episodes).

Each strength was first set from "plausible for a real instrument, camera or pipeline"; the reason sits next to
each constant. The script then scores one frozen check model per stream (`frozen_check`: a scikit-learn MLP fitted
on the source's labeled rows, not driftwise): its loss against its clean accuracy shows how hard each phase is.
After the first run most phases cost it over 2 points (all six on digits, 9 of 12 on the tables), so nothing was
widened or otherwise changed; no seed was changed and no driftwise result was seen. Fault scales come from the
source half (its range as a transmitter's span), never from the drifted events.

    .venv/bin/python bench/results/unseen-7/make_unseen.py /tmp/unseen7
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates, median_filter
from scipy.special import ndtr

DIGITS_SEED, TABLE_SEED, STACK_SEED = 271, 349, 457  # used by no other file here (tables' splits and the boiler
#                                                      generator 349, the electrolyser generator 457)
EVENTS = 2000  # events per phase, images and tables alike
LABELED, MIN_LABELED = 0.10, 3  # of the source half, per class (as the earlier trials)

# ---------------------------------------------------------------- image faults, (n, 1, 8, 8) in [0, 1], ink high
SQUARE, GRID_INK = 5.7, 0.25  # 5 mm squared paper under ~7 mm digits; a printed line adds 1/4 of full ink
OVERLAP = (-1, 0, 1)  # the neighbour's nearest stroke 1 px into ours, touching, or 1 px apart (a written amount)
TILT_BLUR = 1.0      # a desk camera looking at the form from its bottom edge: top row blurred by sigma 1 px
MEDIAN = 3           # "clean the speckle" added to the preprocessing: a 3 x 3 median (cv2.medianBlur(img, 3))
SHADOW_LIGHT, PENUMBRA = 0.45, 1.5  # a phone held over the form blocks the ceiling lamp: 45% light left


def grid_paper(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """Digits written on 5 mm squared paper (a school or lab notebook), scanned without a drop-out colour.

    The grid's lines lie every SQUARE px in both directions, at a random offset per image (the digit sits anywhere
    in its square); a line between two pixel centres splits its GRID_INK between them, and lines and strokes combine
    as inks do. Thin, faint and regular: not stripes (one or two random lines, towards full ink), dead_row (one row
    at 0) or hot_pixels (three fixed cells).
    """
    n, pos = len(x), np.arange(8.0)

    def lines(offset: np.ndarray) -> np.ndarray:
        d = np.abs((pos[None] - offset[:, None] + SQUARE / 2) % SQUARE - SQUARE / 2)  # px to the nearest line
        return GRID_INK * np.clip(1.0 - d, 0.0, None)

    rows = lines(r.uniform(0.0, SQUARE, n))[:, :, None]
    cols = lines(r.uniform(0.0, SQUARE, n))[:, None, :]
    grid = 1.0 - (1.0 - rows) * (1.0 - cols)
    return 1.0 - (1.0 - x) * (1.0 - grid[:, None])


def _ink_span(img: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """First and last row (axis=2) or column (axis=1) with any ink, per image of ``(n, 8, 8)``."""
    seen = (img > 0).any(axis=axis)
    return np.argmax(seen, axis=1), seen.shape[1] - 1 - np.argmax(seen[:, ::-1], axis=1)


def neighbour_intrusion(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """Digits cut from a handwritten string (an amount, a postcode) whose digits touch: the segmenter's crop keeps
    the neighbour's nearest strokes.

    The neighbour (another digit of the phase) sits left or right (random per image), its nearest ink 1 px into
    ours, touching, or 1 px away (OVERLAP); what falls inside the 8 x 8 crop is kept, and overlapping strokes take
    the darker ink. Not bleed_through (a faint mirrored digit over the whole image), ghosting (the same digit again)
    or occlusion (a grey square): full-strength strokes of another digit, at one edge.
    """
    n, img = len(x), x[:, 0]
    first, last = _ink_span(img, axis=1)
    other = r.integers(0, n - 1, n)
    other += other >= np.arange(n)
    right = r.random(n) < 0.5
    gap = r.choice(OVERLAP, n)
    out = img.copy()
    for i in range(n):
        j = other[i]
        move = last[i] + 1 + gap[i] - first[j] if right[i] else first[i] - 1 - gap[i] - last[j]
        moved = np.zeros((8, 8))
        if abs(move) < 8:
            if move >= 0:
                moved[:, move:] = img[j, :, :8 - move]
            else:
                moved[:, :8 + move] = img[j, :, -move:]
        out[i] = np.maximum(out[i], moved)
    return out[:, None]


def focus_tilt(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """A desk camera looking at the form from its bottom edge, focused there: the page's top is farther away and
    out of focus, the blur growing row by row to sigma TILT_BLUR at the top (a shallow depth of field).

    Each row is taken from the image blurred with that row's sigma. Not blur (the same everywhere), lens_smudge (a
    spot) or keystone (the geometry, which the capture app corrects; it cannot restore the focus).
    """
    out = np.empty_like(x)
    for row in range(8):
        sigma = TILT_BLUR * (7 - row) / 7
        blurred = gaussian_filter(x, sigma=(0, 0, sigma, sigma), mode="constant") if sigma > 0 else x
        out[:, :, row] = blurred[:, :, row]
    return out


def median_denoise(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """A "remove scanner speckle" step added to the preprocessing: a MEDIAN x MEDIAN median filter on the 8 x 8
    image (edges replicated, as cv2.medianBlur does).

    A rank filter: one-pixel strokes and stroke ends vanish, corners round off, thick strokes stay sharp. Not blur
    (a weighted mean: everything softens, nothing vanishes), thin_strokes (each pixel half way to its faintest
    neighbour) or pixelate (blocks).
    """
    return median_filter(x, size=(1, 1, MEDIAN, MEDIAN), mode="nearest")


def bbox_stretch(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """A new normalisation step, as older OCR pipelines do: each digit's ink bounding box is stretched to fill the
    8 x 8 frame, height and width separately (the aspect ratio is not kept).

    A narrow 1 becomes a wide bar; a digit that already fills the frame is unchanged. Per image and set by the
    digit itself: not zoom (one factor, both axes), aspect_squeeze (a fixed 3/4 of the width) or shift.
    """
    n, img = len(x), x[:, 0]
    r0, r1 = _ink_span(img, axis=2)
    c0, c1 = _ink_span(img, axis=1)
    u = np.arange(8.0)
    rows = (r0 - 0.5)[:, None] + (u[None] + 0.5) * ((r1 - r0 + 1) / 8)[:, None]  # pixel centres in the box
    cols = (c0 - 0.5)[:, None] + (u[None] + 0.5) * ((c1 - c0 + 1) / 8)[:, None]
    coords = [np.broadcast_to(np.arange(n, dtype=np.float64)[:, None, None], (n, 8, 8)),
              np.broadcast_to(rows[:, :, None] - 0.5, (n, 8, 8)), np.broadcast_to(cols[:, None, :] - 0.5, (n, 8, 8))]
    return map_coordinates(img, coords, order=1, mode="nearest")[:, None]


def phone_shadow(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """A phone held over the form under a ceiling lamp: its shadow, a half-plane with a soft edge (PENUMBRA px),
    crosses the digit at a random place and angle per image. In it SHADOW_LIGHT of the light is left (the room's
    ambient light); the exposure is set for the lit paper.

    Ink = 1 - light * (1 - ink): the shadowed paper turns grey (0.55) and the strokes there lose contrast. A hard
    edge across the image: not haze (a smooth random field), vignette (radial), specular_glare (a bright spot) or
    flicker_banding (periodic in the rows).
    """
    n = len(x)
    theta, edge = r.uniform(0.0, 2 * np.pi, n), r.uniform(-2.0, 2.0, n)
    yy, xx = np.meshgrid(np.arange(8.0) - 3.5, np.arange(8.0) - 3.5, indexing="ij")
    depth = xx[None] * np.cos(theta)[:, None, None] + yy[None] * np.sin(theta)[:, None, None] - edge[:, None, None]
    light = 1.0 - (1.0 - SHADOW_LIGHT) * np.clip(0.5 + depth / PENUMBRA, 0.0, 1.0)
    return 1.0 - light[:, None] * (1.0 - x)


IMAGE: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "grid_paper": grid_paper, "neighbour_intrusion": neighbour_intrusion, "focus_tilt": focus_tilt,
    "median_denoise": median_denoise, "bbox_stretch": bbox_stretch, "phone_shadow": phone_shadow}


# ---------------------------------------------------------------- sensor faults, (n, d) in stream order
@dataclass(frozen=True)
class Plant:
    """A table and what its columns are: flow meters, control loops (with their setpoints) and thermocouples."""

    X: np.ndarray
    y: np.ndarray
    columns: tuple[str, ...]
    rates: tuple[int, ...]          # flow meters (a totaliser behind each, a low-flow cutoff in each)
    controlled: tuple[int, ...]     # process values of control loops
    setpoint: Callable[[np.ndarray], np.ndarray]  # the loops' setpoints, (n, len(controlled)), from the readings
    thermocouples: tuple[int, ...]  # type K thermocouples


@dataclass(frozen=True)
class Ref:
    """The source half's range (a transmitter's span: its smallest and largest reading) and the plant's columns."""

    low: np.ndarray
    high: np.ndarray
    plant: Plant


COLD_JUNCTION = 30.0     # degC at the card's terminals, in a marshalling cabinet
LOW_FLOW_CUTOFF = 0.20   # "2,0" % of range typed into a tool that reads "," as a thousands separator: 20 %
UPLINK, OUTAGE = 120, 20  # a 4G router at the edge of coverage: up ~2 h, then down ~20 min (events are minutes)
POLL_LATE = 15.0         # s: a busy Modbus RTU gateway (9,600 baud, retries) reads the totalisers 0-15 s late
SAG_VOLTS, LIFT_OFF = 18.0, 10.5  # a failing 24 V supply sags to 18 V; a HART transmitter needs 10.5 V to work
LOOP_OHMS = 600.0        # the loop: card 250 + isolator 300 + cable 50 ohm
SAG_MA = (SAG_VOLTS - LIFT_OFF) / LOOP_OHMS * 1000.0  # 12.5 mA: the most a loop can drive while the supply sags
SAG_ON, SAG_OFF = 40, 80  # its sag episodes last ~40 min, ~80 min apart (the output capacitors heat up)


def _some(d: int, fraction: float, r: np.random.Generator, least: int = 1) -> np.ndarray:
    return r.permutation(d)[:max(least, int(round(fraction * d)))]


def _episodes(n: int, on: float, off: float, r: np.random.Generator) -> np.ndarray:
    """An on/off process in event order: on for ~``on`` events (geometric), off for ~``off``; starts stationary."""
    out, state, i = np.empty(n, bool), bool(r.random() < on / (on + off)), 0
    while i < n:
        k = int(r.geometric(1.0 / (on if state else off)))
        out[i:i + k] = state
        i, state = i + k, not state
    return out


# NIST ITS-90 reference functions, 0-760 degC (J) and 0-1372 degC (K): emf in uV
_J = (0.0, 5.0381187815e1, 3.0475836930e-2, -8.5681065720e-5, 1.3228195295e-7, -1.7052958337e-10,
      2.0946090697e-13, -1.2538395336e-16, 1.5631725697e-20)
_K = (-1.7600413686e1, 3.8921204975e1, 1.8558770032e-2, -9.9457592874e-5, 3.1840945719e-7, -5.6072844889e-10,
      5.6075059059e-13, -3.2020720003e-16, 9.7151147152e-20, -1.2104721275e-23)


def emf_j(t: np.ndarray | float) -> np.ndarray:
    """Type J thermocouple emf (mV) at t degC."""
    return np.polyval(_J[::-1], t) / 1000.0


def emf_k(t: np.ndarray | float) -> np.ndarray:
    """Type K thermocouple emf (mV) at t degC."""
    return (np.polyval(_K[::-1], t) + 118.5976 * np.exp(-1.183432e-4 * (np.asarray(t) - 126.9686) ** 2)) / 1000.0


def setpoint_mapped(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """A historian migration's tag import picked each control loop's setpoint item (.SP) for its process value
    (.PV), the next item in the tag browser: the controlled readings show what the loop was asked for.

    A setpoint can move (the boiler's O2 setpoint follows the firing rate) but carries none of the loop's error,
    which is where the boiler's CO and the stacks' heat balance show. Not dead_sensor (a frozen last reading) or
    duplicate_channel (another slot's reading): a sibling quantity that looks right.
    """
    out = x.copy()
    out[:, list(ref.plant.controlled)] = ref.plant.setpoint(x)
    return out


def tc_type_mismatch(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """A replacement thermocouple input card is configured for type J; the sensors are type K.

    The card adds the type J emf of its terminals (COLD_JUNCTION) to the measured type K emf and converts with the
    type J table: readings come out 22-25% closer to the terminals' temperature, slightly curved (250 degC reads
    195, 57 reads 51, 18 reads 20.6). A law fixed by two emf tables, about the cabinet's temperature and on the
    thermocouples only: not gain or calibration_drift (random factors about zero on random features) or
    unit_change.
    """
    cols, out = list(ref.plant.thermocouples), x.copy()
    grid = np.linspace(-50.0, 800.0, 85001)
    emf = emf_k(x[:, cols]) - emf_k(COLD_JUNCTION) + emf_j(COLD_JUNCTION)
    out[:, cols] = np.interp(emf, emf_j(grid), grid)
    return out


def low_flow_cutoff(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """The flow meters' low-flow cutoff, meant as 2.0 % of range, was typed "2,0" into a configuration tool that
    reads "," as a thousands separator: 20 %. Any flow under 20 % of the meter's range (the source's largest
    reading) reads 0.

    A dead zone at the bottom of the flows, exact above it: not saturate (a ceiling), stuck_zero (always 0),
    zero_imputed (random readings) or outlier_filter (both tails, to the median).
    """
    cols, out = list(ref.plant.rates), x.copy()
    v = x[:, cols]
    out[:, cols] = np.where(v < LOW_FLOW_CUTOFF * ref.high[cols], 0.0, v)
    return out


def gap_interpolation(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """One remote skid's gateway (half of the features) reaches the historian over a 4G router at the edge of
    coverage: its link drops for ~OUTAGE events every ~UPLINK. The historian's interpolated retrieval fills each gap
    with a straight line from the last value before it to the first after it (held at the phase's ends).

    Uses the event order, and the values on both sides of the gap. Not dropout_mean (single readings, the source
    mean), deadband or dead_sensor (a value held): a line between two real readings, on all the gateway's tags.
    """
    cols, out = _some(x.shape[1], 1 / 2, r), x.copy()
    down = _episodes(len(x), OUTAGE, UPLINK, r)
    t = np.arange(len(x))
    if down.all():
        return out
    for c in cols:
        out[down, c] = np.interp(t[down], t[~down], x[~down, c])
    return out


def poll_jitter(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """The flow readings are rates a busy gateway computes from the meters' totalisers: the volume between two polls
    divided by the nominal minute. Its polls come 0-POLL_LATE s late, so an event's interval is 60 + e_k - e_(k-1) s.

    The volume is the event's own rate times the true interval: each flow reads (60 + e_k - e_(k-1)) / 60 of
    itself, up to +-25%, the same factor for every meter on the gateway, and a long minute is followed by a short
    one (the total stays right). Uses the event order. Not excitation_ripple (independent per event, unbounded, on
    any sensor) or clock_jitter (a reading from another event).
    """
    cols, out = list(ref.plant.rates), x.copy()
    late = r.uniform(0.0, POLL_LATE, len(x) + 1)
    out[:, cols] *= ((60.0 + late[1:] - late[:-1]) / 60.0)[:, None]
    return out


def supply_sag(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """The 24 V supply of one cabinet's 4-20 mA loops (half of the features) is failing and sags to SAG_VOLTS in
    episodes (~SAG_ON events long, ~SAG_OFF apart). A loop of LOOP_OHMS whose transmitter needs LIFT_OFF volts can
    then drive at most SAG_MA = (SAG_VOLTS - LIFT_OFF) / LOOP_OHMS = 12.5 mA: while it sags, a reading above 53% of
    its span (the source's range) reads 53%.

    Uses the event order. Not saturate (one ceiling, always, on every feature), burnout (pinned above the span) or
    emi_bursts (noise while a drive runs): the upper half of the span cut off, only during the sags.
    """
    cols, out = _some(x.shape[1], 1 / 2, r), x.copy()
    sag = _episodes(len(x), SAG_ON, SAG_OFF, r)
    top = ref.low[cols] + (SAG_MA - 4.0) / 16.0 * (ref.high[cols] - ref.low[cols])
    out[np.ix_(sag, cols)] = np.minimum(x[np.ix_(sag, cols)], top)
    return out


TABULAR: dict[str, Callable[[np.ndarray, np.random.Generator, Ref], np.ndarray]] = {
    "setpoint_mapped": setpoint_mapped, "gap_interpolation": gap_interpolation,
    "tc_type_mismatch": tc_type_mismatch, "poll_jitter": poll_jitter,
    "low_flow_cutoff": low_flow_cutoff, "supply_sag": supply_sag}


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
def _operating_points(n: int, d: int, seed: int) -> np.ndarray:
    """Independent standard normal draws, one row per logged minute: scikit-learn's make_regression's X."""
    from sklearn.datasets import make_regression

    z, _ = make_regression(n_samples=n, n_features=d, random_state=seed)
    return z


FULL_STEAM, STEAM_ENTHALPY, GAS_LHV, STOICH_AIR = 10.0, 2781.0, 10.0, 9.52  # t/h; kJ/kg; kWh/Nm3; Nm3/Nm3 gas


def o2_setpoint(load: np.ndarray) -> np.ndarray:
    """The O2 trim's setpoint curve (% O2, dry) over the firing rate: 2.0 at full fire, 4.0 at the lowest (12%)."""
    return 2.0 + 2.6 * (1.0 - np.clip(load, 0.12, 1.0)) ** 2


def saturation_temperature(p_bar_abs: np.ndarray) -> np.ndarray:
    """Water's boiling point (degC) at p bar abs (Antoine, 100-374 degC)."""
    return 1810.94 / (8.14019 - np.log10(p_bar_abs * 750.062)) - 244.485


def boiler() -> Plant:
    """A gas-fired fire-tube steam boiler (10 t/h, 10 bar g) whose burner (8:1 turndown) has an O2 trim.

    Operating point: firing rate anywhere from 12 to 100% (the site's demand), boiler-house air 18 +- 6 degC,
    deaerated feedwater 104 +- 2.5 degC, steam pressure 10 +- 0.12 bar g (the pressure loop's error). The trim holds
    the flue O2 at its setpoint curve (`o2_setpoint`) to +-0.5% (gas quality, air density, damper hysteresis).
    CO rises steeply once O2 falls near an onset that is higher at low fire (poorer mixing) and moves +-0.2% with
    the burner's state: CO = 25 + 1800 exp(-(O2 - onset) / 0.3) ppm, with 25% scatter. Class 1 (~30%): CO over
    100 ppm, the permit limit.

    The heat balance gives the gas flow: steam enthalpy over feedwater's, over the efficiency (Siegert stack loss for
    natural gas plus a radiation loss of 0.8% of full load); the stack runs 12 K + 40 K x load above the steam and
    warmer with excess air. Combustion air = 9.52 Nm3 per Nm3 of gas x the air ratio; the FD fan's speed follows the
    air volume (a 25% floor). Logged: steam flow (t/h), steam pressure (bar g), gas flow (Nm3/h), FD fan speed (%),
    flue O2 (% dry), stack and combustion air temperatures (degC, type K), feedwater temperature (degC), each with its
    instrument's noise.
    """
    n = 8000
    z = _operating_points(n, 6, TABLE_SEED)
    noise = np.random.default_rng(TABLE_SEED).standard_normal((n, 9))
    load = 0.12 + 0.88 * ndtr(z[:, 0])
    t_air = np.clip(18.0 + 6.0 * z[:, 1], 1.0, 40.0)
    t_feed = 104.0 + 2.5 * z[:, 2]
    pressure = 10.0 + 0.12 * z[:, 5]
    o2 = np.maximum(o2_setpoint(load) + 0.5 * z[:, 4], 0.3)
    onset = 0.8 + 2.4 * (1.0 - load) ** 2 + 0.2 * z[:, 3]
    co = 25.0 + 1800.0 * np.exp(-(o2 - onset) / 0.3) * np.exp(0.25 * noise[:, 8])
    y = (co > 100.0).astype(np.int64)
    air_ratio = 1.0 + o2 / (20.9 - o2)
    steam = FULL_STEAM * load
    t_stack = saturation_temperature(pressure + 1.013) + 12.0 + 40.0 * load + 30.0 * (air_ratio - 1.0)
    loss = (t_stack - t_air) * (0.66 / (20.9 - o2) + 0.009) + 0.8 / load  # % of the fuel's heat
    gas = steam * 1000 / 3600 * (STEAM_ENTHALPY - 4.19 * t_feed) / (1.0 - loss / 100) / GAS_LHV
    air = gas * STOICH_AIR * air_ratio * (273.15 + t_air) / 273.15  # m3/h at the fan
    fan = np.maximum(25.0, 100.0 * air / 9200.0)
    X = np.column_stack([steam * (1 + 0.015 * noise[:, 0]), pressure + 0.02 * noise[:, 1],
                         gas * (1 + 0.01 * noise[:, 2]), fan + 0.3 * noise[:, 3], o2 + 0.05 * noise[:, 4],
                         t_stack + 1.0 * noise[:, 5], t_air + 0.3 * noise[:, 6], t_feed + 0.3 * noise[:, 7]])

    def setpoint(x: np.ndarray) -> np.ndarray:  # pressure 10.0 bar g; O2 on the firing rate (the steam flow)
        return np.column_stack([np.full(len(x), 10.0), o2_setpoint(x[:, 0] / FULL_STEAM)])

    columns = ("steam flow t/h", "steam pressure bar g", "gas flow Nm3/h", "FD fan speed %", "flue O2 % dry",
               "stack temperature degC", "combustion air degC", "feedwater degC")
    return Plant(X, y, columns, rates=(0, 2), controlled=(1, 4), setpoint=setpoint, thermocouples=(5, 6))


CELLS, AREA, FARADAY = 250, 1000.0, 96485.0  # cells per stack, active area (cm2), C/mol
STACK_SP, PRESSURE_SP, LOSS_UA = 65.0, 30.0, 250.0  # degC, bar g, W/K lost by a stack's water loop to its room


def cell_voltage(j: np.ndarray, t: np.ndarray, p: np.ndarray, r65: np.ndarray, j065: np.ndarray) -> np.ndarray:
    """A PEM cell's voltage (V) at j A/cm2, t degC and hydrogen at p bar g (oxygen at 1 bar abs).

    Nernst potential; anode activation (Tafel, 30 mV per e-fold at 65 degC, exchange current j0 with 50 kJ/mol);
    the membrane's resistance (r Ohm cm2 at 65 degC, Arrhenius in its conductivity); a little mass transport.
    """
    tk, inv = t + 273.15, 1.0 / (t + 273.15) - 1.0 / 338.15
    nernst = 1.229 - 0.00085 * (t - 25.0) + 8.314 * tk / (2 * FARADAY) * np.log(p + 1.013)
    activation = 0.030 * tk / 338.15 * np.log(j / (j065 * np.exp(-6000.0 * inv)))
    return nernst + activation + j * r65 * np.exp(1268.0 * inv) + 0.015 * j ** 2


def electrolyser() -> Plant:
    """A fleet of 1 MW PEM electrolysis stacks (250 cells of 1,000 cm2, up to 2 A/cm2) following a wind farm.

    Operating point: current 10-100% of 2,000 A (the wind), cooling water from a dry cooler at 20 +- 6 degC,
    hydrogen at 30 +- 0.25 bar g, stack outlet held at 65 degC to +-0.6 K. Each stack's membrane resistance
    (0.13 Ohm cm2, +-6%), exchange current (3e-6 A/cm2, +-25%) and crossover (+-15%) vary a little. Its condition,
    from its last diagnostic (polarisation curve and crossover test), is the class: healthy (58%), ohmic ageing
    (23%: resistance +0.025-0.085 Ohm cm2, corroded contacts), catalyst loss (14%: j0 down 2.7-12x, +30-75 mV) or
    membrane thinning (5%: crossover x2-4, resistance -10%).

    A stack's heat (cells x current x (V - 1.481)) goes to its room (LOSS_UA) and the cooling water; when it makes
    less than the room takes at 65 degC, it runs cooler and the cooling valve shuts. The water leaves 8 K under the
    stack. Hydrogen in oxygen (% vol) is the crossover (~ pressure, faster when hot) over the oxygen made (~ current):
    highest at low load. Logged: current (A), stack voltage (V), stack outlet (degC), hydrogen pressure (bar g) and
    production (Nm3/h), hydrogen in oxygen (% vol), cooling water flow (m3/h), supply and return (degC, type K),
    each with its instrument's noise.
    """
    n = 6000
    z = _operating_points(n, 9, STACK_SEED)
    noise = np.random.default_rng(STACK_SEED).standard_normal((n, 9))
    current = 2000.0 * (0.10 + 0.90 * ndtr(z[:, 0]))
    j = current / AREA
    t_supply = np.clip(20.0 + 6.0 * z[:, 1], 5.0, 38.0)
    p_h2 = PRESSURE_SP + 0.25 * z[:, 2]
    y = np.digitize(ndtr(z[:, 3]), [0.58, 0.81, 0.95]).astype(np.int64)
    severity = ndtr(z[:, 4])
    r65 = 0.13 * np.exp(0.06 * z[:, 5])
    j065 = 3e-6 * np.exp(0.25 * z[:, 6])
    crossover = np.exp(0.15 * z[:, 7])
    r65 = np.where(y == 1, r65 + 0.025 + 0.06 * severity, np.where(y == 3, 0.9 * r65, r65))
    j065 = np.where(y == 2, j065 * np.exp(-(1.0 + 1.5 * severity)), j065)
    crossover = np.where(y == 3, crossover * (2.0 + 2.0 * severity), crossover)
    held = STACK_SP + 0.6 * z[:, 8]
    t = held.copy()
    for _ in range(6):  # the stack's temperature and voltage settle together
        heat = CELLS * current * (cell_voltage(j, t, p_h2, r65, j065) - 1.481)  # W
        t = np.minimum(held, t_supply + heat / LOSS_UA)
    volts = CELLS * cell_voltage(j, t, p_h2, r65, j065)
    heat = CELLS * current * (volts / CELLS - 1.481)
    cooling = np.maximum(heat - LOSS_UA * (t - t_supply), 0.0)
    rise = np.maximum(t - 8.0 - t_supply, 3.0)
    flow = cooling / (4180.0 * rise) * 3.6  # m3/h
    t_return = t_supply + rise * np.clip(flow / 0.3, 0.0, 1.0)  # a still return line sits near the supply
    h2_in_o2 = 0.0025 * crossover * (p_h2 + 1.013) * np.exp(0.025 * (t - STACK_SP)) / j
    h2 = CELLS * current / (2 * FARADAY) * 0.022414 * 3600 * (1.0 - h2_in_o2 / 200)
    X = np.column_stack([current * (1 + 0.002 * noise[:, 0]), volts + 0.3 * noise[:, 1], t + 0.15 * noise[:, 2],
                         p_h2 + 0.03 * noise[:, 3], h2 * (1 + 0.015 * noise[:, 4]),
                         h2_in_o2 * (1 + 0.03 * noise[:, 5]), flow * (1 + 0.01 * noise[:, 6]),
                         t_supply + 0.3 * noise[:, 7], t_return + 0.3 * noise[:, 8]])

    def setpoint(x: np.ndarray) -> np.ndarray:  # stack outlet 65 degC, hydrogen 30 bar g
        return np.column_stack([np.full(len(x), STACK_SP), np.full(len(x), PRESSURE_SP)])

    columns = ("current A", "stack voltage V", "stack outlet degC", "H2 pressure bar g", "H2 production Nm3/h",
               "H2 in O2 % vol", "cooling water m3/h", "cooling supply degC", "cooling return degC")
    return Plant(X, y, columns, rates=(4, 6), controlled=(2, 3), setpoint=setpoint, thermocouples=(7, 8))


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
        print(f"  {str(sp[i]):<20} acc {a:.3f}  loss {100 * (clean - a):+6.1f}")


def main(out: str) -> None:
    from sklearn.datasets import load_digits

    os.makedirs(out, exist_ok=True)
    d = load_digits()
    frozen_check("digits", *write(out, "digits", (d.images / 16.0)[:, None], d.target, DIGITS_SEED))
    for name, plant in (("boiler", boiler()), ("electrolyser", electrolyser())):
        frozen_check(name, *write(out, name, plant.X, plant.y, TABLE_SEED, plant))
    print("\nwritten to", out)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/unseen7")
