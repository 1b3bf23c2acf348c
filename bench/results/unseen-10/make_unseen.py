"""A tenth new user's trial: data, a split and faults that no other file in the repository names. Report only.

`bench/results/unseen/` to `unseen-9/` are committed, so they are no longer unseen. This script writes new files
in their format (`bench/stream_files.py`). ``NAME-src.npz`` holds ``X`` and ``y`` (-1 = unlabeled): half of the
data, 10% of it labeled, at least 3 rows a class. ``NAME-fresh.npz`` holds ``X``, ``y`` and ``phase``: the other
half replayed as clean, then six faults, then clean again, 2,000 events a phase.

* digits: scikit-learn's digits, split by seed 40927. Six faults of cameras, scanners, faxes, compression and OCR
  code, none in `drift/corruptions.py` or an earlier trial: exif_orientation_ignored, tiff_fill_order,
  jbig2_substitution, fax_mh_line_error, zhang_suen_thinning, keep_largest_blob.
* mill (binary, ~75/25): a ball mill in closed circuit with hydrocyclones at a copper concentrator. Correlated
  drivers (ore hardness and size, the feed rate, the cyclone feed's solids, the ball charge, the water's
  temperature, the cyclones open) come through a sparse precision matrix drawn by scikit-learn's
  ``make_sparse_spd_matrix`` (seed 731459, also the tables' split). Mill power (Hogg-Fuerstenau), Bond's law, the
  slurry's mass balance, the cyclones' pressure-flow law and a heat balance give ten readings. The class is "product
  P80 over 150 um", from the shift's sieve analysis, which the model never sees.
* column (3 classes, ~75/18/7): a 30-tray methanol-water distillation column. ``make_sparse_spd_matrix`` (seed
  265903) draws the feed, its methanol, the steam, the top pressure, the distillate draw and an unread foaming and
  tray damage. Antoine boiling points, the vapour load against Fair's flooding limit and a tray pressure-drop law give
  nine readings. The class is the trays' hydraulic state from the shift's DP and gamma-scan review: normal,
  flooding, weeping.

Both tables log raw physical units with instrument noise and get the same six instrument and data-pipeline faults,
none of them in `drift/sensor_shifts.py` or an earlier trial. Three keep one law all phase long:
level_density_default, velocity_head_tap, tc_copper_extension. Three use the event order: false_echo_lock (a radar
level locks on an obstacle), per_file_minmax (each hourly file rescaled by its own range) and roc_validation_hold
(a rate-of-change check holds the last accepted value).

Each strength was set from "plausible for a real instrument, device or pipeline"; the reason sits next to each
constant. The script then scores one frozen check model per stream (`frozen_check`: a scikit-learn MLP fitted on
the source's labeled rows, not driftwise). Fault scales come from physics, the instruments' ranges or the source
half, never from the drifted events.

    .venv/bin/python bench/results/unseen-10/make_unseen.py /tmp/unseen10
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.ndimage import label, zoom

DIGITS_SEED, TABLE_SEED, COLUMN_SEED = 40927, 731459, 265903  # used by no other file here
EVENTS = 2000  # events per phase, images and tables alike
LABELED, MIN_LABELED = 0.10, 3  # of the source half, per class (as the earlier trials)

# ---------------------------------------------------------------- image faults, (n, 1, 8, 8) in [0, 1], ink high
# The dataset's 8 x 8 values are ink counts of 4 x 4 blocks of a bilevel 32 x 32 bitmap, so faults of bilevel
# devices act on that 32 x 32 grid and are counted back the same way.
PAGE = 40            # digit boxes on one form page (amounts, dates, references): one photo, scan or fax page
PORTRAIT = 0.5       # half the phone photos are taken upright (portrait) over a landscape form
PAGE_PELS = 1728     # a fax scan line (ITU-T T.4, A4 width); a digit box is 32 of them
MH_LINE_HIT = 0.02   # no ECM on a noisy line: bit error rate ~1e-4, ~200 coded bits a line, so ~2% of lines hit
JBIG2_THRESH = 0.85  # jbig2enc's default classification threshold (Leptonica's correlation score)
JBIG2_SIZE = 2       # symbols of one class differ by at most 2 px in width and height (Leptonica's default)
LARGEST_8 = np.ones((3, 3), bool)  # 8-connected components, as the segmenter labels them


def _reduce(big: np.ndarray) -> np.ndarray:
    """Area reduction of (n, 32, 32) bilevel marks (or ink fractions) to (n, 1, 8, 8) counts, as the data was made."""
    return big.reshape(len(big), 8, 4, 8, 4).mean(axis=(2, 4))[:, None]


def _bitmap(x: np.ndarray) -> np.ndarray:
    """The bilevel 32 x 32 bitmap rebuilt from the counts (bilinear, 50% threshold), as unseen-9's letterbox did."""
    return zoom(x[:, 0], (1, 4, 4), order=1, mode="nearest", grid_mode=True) > 0.5


def _spread(x: np.ndarray) -> np.ndarray:
    """Each count spread over its 4 x 4 block as an ink fraction: ``_reduce`` gives ``x`` back exactly."""
    return np.repeat(np.repeat(x[:, 0], 4, axis=1), 4, axis=2)


def exif_orientation_ignored(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """Forms are now photographed with phones. A phone held upright stores its sensor's landscape pixels with an
    EXIF orientation tag (6 or 8: rotate 90 degrees one way or the other); the new pipeline ignores the tag.

    Per page of PAGE digits: PORTRAIT of the pages come out turned 90 degrees (either way), every digit on them
    with it. Not rotation (10-30 degrees), fortran_reshape (a transpose) or mirror_readout (a mirror image).
    """
    out = x.copy()
    for start in range(0, len(x), PAGE):
        if r.random() < PORTRAIT:
            out[start:start + PAGE] = np.rot90(x[start:start + PAGE], k=int(r.choice([-1, 1])), axes=(2, 3))
    return out


def tiff_fill_order(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """A new scanner driver writes bilevel TIFFs with FillOrder 2 (the first pixel in a byte's lowest bit); the
    pipeline's reader ignores the tag and reads FillOrder 1. Each byte's 8 pixels come out mirrored.

    The boxes sit anywhere on the page, so a crop's left edge falls at a random place in a byte: each crop column
    shows another column of the same byte, and the columns mirrored in from outside the box are blank margin. With
    the edge on a byte boundary, pairs of the 8 x 8 columns swap. Not mirror_readout (the whole image mirrored),
    scanline_jitter or fortran_reshape: a fixed permutation inside each byte.
    """
    up, out = _spread(x), np.zeros((len(x), 32, 32))
    offset = r.integers(0, 8, len(x))  # the box's left edge on the page, modulo a byte
    cols = np.arange(32)
    for s in range(8):
        rows = np.flatnonzero(offset == s)
        page = s + cols
        src = 8 * (page // 8) + 7 - page % 8 - s  # the crop column each displayed column really holds
        ok = (src >= 0) & (src < 32)
        block = np.zeros((len(rows), 32, 32))
        block[:, :, ok] = up[rows][:, :, src[ok]]
        out[rows] = block
    return _reduce(out)


def jbig2_substitution(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """A multifunction scanner's "high compression" PDF mode uses lossy JBIG2 pattern matching and substitution
    (the Xerox case of 2013): symbols on a page that the classifier takes for one class are all drawn with the
    class's template, the first instance met on the page.

    Per page of PAGE digits, in order: a digit whose bitmap's correlation with an earlier template reaches
    JBIG2_THRESH (|A and B|^2 / (|A| |B|), ink boxes within JBIG2_SIZE px) is replaced by that template's digit; the
    label stays (the writer wrote the original). Mostly a similar same digit, sometimes another one (a 1 for a 7).
    Not bleed_through or neighbour_intrusion (another digit's strokes added): a whole digit swapped.
    """
    big = _bitmap(x)
    ink = big.sum(axis=(1, 2)).astype(np.float64)
    rows, cols = big.any(axis=2), big.any(axis=1)
    size = np.stack([rows.sum(axis=1), cols.sum(axis=1)], axis=1)  # ink box height and width (bounding rows/cols)
    out = x.copy()
    for start in range(0, len(x), PAGE):
        templates: list[int] = []
        for i in range(start, min(start + PAGE, len(x))):
            if templates and ink[i] > 0:
                t = np.array(templates)
                inter = (big[t] & big[i]).sum(axis=(1, 2))
                score = inter ** 2 / np.maximum(ink[t] * ink[i], 1.0)
                score[np.abs(size[t] - size[i]).max(axis=1) > JBIG2_SIZE] = 0.0
                best = int(np.argmax(score))
                if score[best] >= JBIG2_THRESH:
                    out[i] = x[t[best]]
                    continue
            templates.append(i)
    return out


def fax_mh_line_error(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """The forms now arrive by fax over a noisy line, without error correction mode (ECM). A bit error in a Modified
    Huffman line garbles a run length; the decoder goes on with the colours swapped until the end of the line.

    MH_LINE_HIT of the scan lines are hit at a random place along the PAGE_PELS line; the digit box sits at a random
    place on it. A hit before or inside the box inverts the box's line from there to its right edge (paper turns
    black, ink white). Not stripes (lines towards full ink) or dead_row (a row at 0): inverted runs, set by the
    line's own content.
    """
    up = _spread(x)
    left = r.integers(0, PAGE_PELS - 32, (len(x), 1))
    err = r.integers(0, PAGE_PELS, (len(x), 32))
    hit = r.random((len(x), 32)) < MH_LINE_HIT
    start = np.where(hit & (err < left + 32), np.clip(err - left, 0, 32), 32)
    flip = np.arange(32)[None, None, :] >= start[:, :, None]
    return _reduce(np.where(flip, 1.0 - up, up))


def _zhang_suen(big: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of (n, 32, 32) bitmaps to one-pixel skeletons (both sub-iterations until no change)."""
    b = big.astype(np.int8)
    while True:
        changed = False
        for first in (True, False):
            p = np.pad(b, ((0, 0), (1, 1), (1, 1)))
            n = [p[:, :-2, 1:-1], p[:, :-2, 2:], p[:, 1:-1, 2:], p[:, 2:, 2:],      # P2 (north) clockwise to P9
                 p[:, 2:, 1:-1], p[:, 2:, :-2], p[:, 1:-1, :-2], p[:, :-2, :-2]]
            count = sum(n)
            trans = sum(((n[k] == 0) & (n[(k + 1) % 8] == 1)).astype(np.int8) for k in range(8))
            p2, p4, p6, p8 = n[0], n[2], n[4], n[6]
            if first:
                side = (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0)
            else:
                side = (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
            drop = (b == 1) & (count >= 2) & (count <= 6) & (trans == 1) & side
            if drop.any():
                b[drop] = 0
                changed = True
        if not changed:
            return b.astype(bool)


def zhang_suen_thinning(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """An OCR engine upgrade adds the classic thinning step of character recognisers: each binarised digit is
    reduced to its one-pixel skeleton (Zhang-Suen) before it is passed on, on the 32 x 32 grid.

    Every stroke comes out one pixel wide, whatever the pen: about a quarter of a block's ink where a stroke crosses
    it, the shape and the topology kept. Not thin_strokes (an erosion by a fraction), median_denoise (a rank filter
    that deletes thin strokes) or gamma (fades faint ink).
    """
    return _reduce(_zhang_suen(_bitmap(x)).astype(np.float64))


def keep_largest_blob(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """A new character segmenter takes each box's largest 8-connected ink component for the character and drops
    the rest as noise (a common despeckling rule in OCR preprocessing).

    On the 32 x 32 bitmap, ink outside the largest component is removed from the 8 x 8 counts (a block shared with
    the kept component keeps its kept share). A digit written in separate strokes (a 4 or 5 with a lifted pen, a
    7's crossbar) loses a part; a digit in one stroke is untouched. Set by each digit's own topology: not occlusion,
    line_removal_overreach (rows with much ink) or median_denoise (thin parts everywhere).
    """
    big, out = _bitmap(x), x.copy()
    for i in range(len(x)):
        lab, k = label(big[i], structure=LARGEST_8)
        if k <= 1:
            continue
        keep = lab == 1 + int(np.argmax(np.bincount(lab.ravel())[1:]))
        kept = _reduce(keep[None].astype(np.float64))[0, 0]
        dropped = _reduce((big[i] & ~keep)[None].astype(np.float64))[0, 0]
        share = np.where(kept + dropped > 0, kept / np.maximum(kept + dropped, 1e-9), 1.0)
        out[i, 0] = x[i, 0] * share
    return out


IMAGE: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "exif_orientation_ignored": exif_orientation_ignored, "tiff_fill_order": tiff_fill_order,
    "jbig2_substitution": jbig2_substitution, "fax_mh_line_error": fax_mh_line_error,
    "zhang_suen_thinning": zhang_suen_thinning, "keep_largest_blob": keep_largest_blob}


# ---------------------------------------------------------------- sensor faults, (n, d) in stream order
@dataclass(frozen=True)
class Plant:
    """A table and what its columns are, by the kinds of instrument the faults hit."""

    X: np.ndarray
    y: np.ndarray
    columns: tuple[str, ...]
    levels: tuple[int, ...]                   # level readings, % of range (a DP cell; a radar in false_echo_lock)
    sg: Callable[[np.ndarray], np.ndarray]    # the levels' liquid's specific gravity, from the readings
    line: int                                 # a pressure transmitter on a flowing line
    head: Callable[[np.ndarray], np.ndarray]  # that line's velocity head, in the reading's units, from the readings
    thermocouples: tuple[int, ...]            # type K thermocouples (degC)
    jbox: tuple[float, float]                 # their field junction boxes' temperature: mean, std (degC)
    validated: tuple[int, ...]                # flows and pressures with a DCS rate-of-change check


@dataclass(frozen=True)
class Ref:
    """The source half's range (a transmitter's range, the pipeline's commissioning range) and the plant's columns."""

    low: np.ndarray
    high: np.ndarray
    plant: Plant


NE43_HIGH = 103.125  # % of range: a 4-20 mA output saturates at 20.5 mA (NAMUR NE43)
CABINET_C = 24.0     # the air-conditioned marshalling cabinet, where the card's cold junction sensor sits
ECHO_AT, ECHO_WINDOW = 45.0, 10.0  # a false echo (an inlet pipe) at 45% of the range; a 10% tracking window
FILE_EVENTS = 60     # the export job writes one file an hour (one-minute rows)
ROC_LIMIT, ROC_MAX_HOLD = 0.10, 5  # the DCS's rate-of-change check: 10% of span a minute, held at most 5 minutes


def level_density_default(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """The DP level transmitters were replaced; the new ones came with the factory's specific gravity 1.000 and
    the density compensation was not reconnected. A DP cell reads the liquid's head, so the level reads the true
    level x SG / 1.000: a slurry (SG ~1.6) reads high and saturates at the output's NAMUR limit, hot methanol (SG
    ~0.74) reads low.

    One law through the liquid's own density: not gain (one random factor), kfactor_stale (one factor from pipe
    sizes) or live_zero_mismatch (a known affine map of the range).
    """
    out = x.copy()
    sg = ref.plant.sg(x)
    for col in ref.plant.levels:
        out[:, col] = np.minimum(x[:, col] * sg, NE43_HIGH)
    return out


def velocity_head_tap(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """A pipe modification moved a pressure transmitter to an instrument tee whose branch faces the flow: the tap
    now takes the stagnation pressure, static plus the velocity head rho v^2 / 2, which grows with the flow
    squared and the fluid's density.

    One reading, through two others (the flow and the density): not offset, crosstalk (a fraction of another
    channel's deviation) or setpoint_mapped.
    """
    out = x.copy()
    out[:, ref.plant.line] = x[:, ref.plant.line] + ref.plant.head(x)
    return out


def tc_copper_extension(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """The thermocouples' extension cable from the field junction boxes to the cabinet was replaced with ordinary
    copper instrument cable. The loop's emf now ends at the junction box, while the card still adds the emf of its
    own terminals (CABINET_C): each reading is off by the cabinet's temperature minus the junction box's.

    The junction box follows the weather (the plant's ``jbox``, unread, one draw a minute: the replay's minutes are
    independent). Type K is near linear here, so the error is in kelvin. Not tc_type_mismatch (the wrong table),
    rtd_lead_resistance (a fixed offset) or tempco (an AR(1) on random features).
    """
    out = x.copy()
    mean, sd = ref.plant.jbox
    jb = mean + sd * r.standard_normal(len(x))
    for col in ref.plant.thermocouples:
        out[:, col] = x[:, col] + CABINET_C - jb
    return out


def false_echo_lock(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """The level displays now take a new non-contact radar. A new inlet pipe sits at ECHO_AT % of its range and
    its echo was not mapped out: once the surface falls below the pipe, the echo tracking locks on the pipe and reads
    ECHO_AT until the surface rises ECHO_WINDOW above it, where the tracking window finds the surface again.

    Uses the event order (the lock's state); the levels only. Not saturate (a ceiling), dead_sensor (one held value)
    or deadband (a hold until any move).
    """
    out = x.copy()
    for col in ref.plant.levels:
        locked = False
        for t, v in enumerate(x[:, col]):
            locked = (v < ECHO_AT) or (locked and v <= ECHO_AT + ECHO_WINDOW)
            out[t, col] = ECHO_AT if locked else v
    return out


def per_file_minmax(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """A rewritten export job min-max scales each hourly file's columns by the file's own minimum and maximum (a
    "normalise before upload" step copied from another project); the consumer's inverse uses the commissioning
    range, the source half's minimum and maximum. Each hour's readings are stretched onto the whole range.

    Uses the event order (hourly files, FILE_EVENTS rows, the phase starting at a random minute of the hour); all
    readings. Not rolling_average_export or gap_interpolation (values mixed in time), second_device (a fixed map)
    or baseline_ramp: the map changes each hour, set by the hour's own extremes.
    """
    out = x.copy()
    first = int(r.integers(0, FILE_EVENTS))
    edges = [0, *range(first, len(x), FILE_EVENTS), len(x)]
    for a, b in zip(edges[:-1], edges[1:]):
        if b - a < 2:
            continue
        lo, hi = x[a:b].min(axis=0), x[a:b].max(axis=0)
        scale = np.where(hi > lo, (ref.high - ref.low) / np.maximum(hi - lo, 1e-12), 0.0)
        out[a:b] = ref.low + (x[a:b] - lo) * scale
    return out


def roc_validation_hold(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """A signal validation block was added to the flows and pressures: a reading that moved more than ROC_LIMIT of
    its span (the source half's range) from the last accepted value in one minute is taken for a spike and the last
    accepted value is held, for at most ROC_MAX_HOLD minutes, after which the reading is accepted.

    Uses the event order. Real processes move slowly; the replay's minutes are independent, so far more readings
    trip the check than on a plant. Not deadband (holds small moves, this holds large ones), outlier_filter (a band
    about the mean) or sluggish (a linear lag).
    """
    out = x.copy()
    for col in ref.plant.validated:
        limit = ROC_LIMIT * (ref.high[col] - ref.low[col])
        held, age = x[0, col], 0
        for t, v in enumerate(x[:, col]):
            if abs(v - held) <= limit or age >= ROC_MAX_HOLD:
                held, age = v, 0
            else:
                age += 1
            out[t, col] = held
    return out


TABULAR: dict[str, Callable[[np.ndarray, np.random.Generator, Ref], np.ndarray]] = {
    "level_density_default": level_density_default, "false_echo_lock": false_echo_lock,
    "velocity_head_tap": velocity_head_tap, "per_file_minmax": per_file_minmax,
    "tc_copper_extension": tc_copper_extension, "roc_validation_hold": roc_validation_hold}


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
def _drivers(n: int, d: int, seed: int, rng: np.random.Generator) -> np.ndarray:
    """Correlated operating drivers, one row per logged minute. scikit-learn's make_sparse_spd_matrix draws a sparse
    precision matrix (most pairs conditionally independent, as a few links tie a plant's inputs together); its
    covariance's correlations, shrunk half way to none, are drawn through their Cholesky factor. Each column is
    standardised."""
    from sklearn.datasets import make_sparse_spd_matrix

    prec = make_sparse_spd_matrix(n_dim=d, alpha=0.6, smallest_coef=0.2, largest_coef=0.6, random_state=seed)
    cov = np.linalg.inv(prec)
    sd = np.sqrt(np.diag(cov))
    corr = 0.5 * np.eye(d) + 0.5 * cov / np.outer(sd, sd)
    z = rng.standard_normal((n, d)) @ np.linalg.cholesky(corr).T
    return (z - z.mean(axis=0)) / z.std(axis=0)


P80_LIMIT = 150.0  # um: the flotation circuit's limit on the grind (coarser: copper locked in the tailings)
PIPE_AREA = np.pi * 0.2 ** 2  # m2: the cyclone feed line, DN400


def mill() -> Plant:
    """A 4.7 MW overflow ball mill in closed circuit with a cluster of 400 mm hydrocyclones, grinding copper ore.

    Drivers: the ore's Bond work index, 14 kWh/t (x/÷ 1.10, not read); its feed size F80, 8 mm (x/÷ 1.16, not read);
    the feed rate the operator sets, 420 t/h (x/÷ 1.08); the cyclone feed's solids, 60 +- 2.5% by weight (the
    water addition); the ball charge, 32 +- 1.5% of the mill's volume (top-ups and wear, read only through the
    bearing); the process water, 18 +- 6 degC (the season); the cyclones open, 8 +- 1. Mill power follows the
    Hogg-Fuerstenau charge term J (1 - 1.065 J); Bond's law turns the specific energy into the mill's grind; the
    circulating load grows with the ore's hardness; the cyclones' pressure grows with the flow per cyclone squared
    and the density; a denser feed and lower pressure classify coarser. The class is the product's P80 (sieved, 5%
    scatter) over P80_LIMIT.

    Logged: fresh feed (t/h, belt weigher), mill power (kW), bearing oil pressure (kPa), sump water (m3/h, magnetic),
    cyclone feed flow (m3/h, magnetic), cyclone feed density (t/m3, nuclear gauge), cyclone feed pressure (kPa),
    cyclone pump power (kW), sump level (%), cyclone feed temperature (degC, type K).
    """
    n = 4000
    rng = np.random.default_rng(TABLE_SEED)
    z = _drivers(n, 7, TABLE_SEED, rng)
    noise = rng.standard_normal((n, 12))
    wi = 14.0 * np.exp(0.10 * z[:, 0])
    f80 = 8000.0 * np.exp(0.15 * z[:, 1])
    feed = np.clip(420.0 * np.exp(0.08 * z[:, 2]), 300.0, 560.0)
    cw = np.clip(0.60 + 0.025 * z[:, 3], 0.52, 0.68)
    jb = np.clip(0.32 + 0.015 * z[:, 4], 0.27, 0.37)
    water_t = 18.0 + 6.0 * z[:, 5]
    ncyc = np.clip(np.round(8.0 + 0.9 * z[:, 6]), 6, 10)
    power = 4700.0 * jb * (1 - 1.065 * jb) / (0.32 * (1 - 1.065 * 0.32)) * (1 + 0.05 * (wi / 14.0 - 1))
    spec = 0.95 * power / feed                                      # kWh/t into the ore
    p80_mill = (spec / (10.0 * wi) + 1.0 / np.sqrt(f80)) ** -2       # Bond: E = 10 Wi (1/sqrt(P80) - 1/sqrt(F80))
    cl = 2.5 * np.sqrt(wi / 14.0) * (feed / 420.0) ** 0.3           # circulating load, of the fresh feed
    solids = feed * (1 + cl)                                         # t/h to the cyclones
    water = solids * (1 - cw) / cw                                   # t/h = m3/h of water in the cyclone feed
    sump_water = water - feed * cl * 0.22 / 0.78 - feed * 0.03       # less the underflow's (78% solids), the ore's 3%
    rho = 1.0 / (cw / 2.8 + (1 - cw))                                # t/m3, ore SG 2.8
    q = solids / 2.8 + water                                         # m3/h
    pres = 85.0 * (q / (ncyc / 8.0 * 1500.0)) ** 2 * rho / 1.63      # kPa: 85 kPa at 1,500 m3/h through eight
    p80 = p80_mill * (cw / 0.60) ** 2 * (pres / 85.0) ** -0.25
    y = (p80 * np.exp(0.05 * noise[:, 11]) > P80_LIMIT).astype(np.int64)
    pump = (pres + rho * 9.81 * 22.0) * q / 3600.0 / 0.70            # kW: 22 m static lift, 70% pump and motor
    bearing = 2600.0 * jb / 0.32 + 700.0 * solids / 1470.0           # kPa: the charge's and the slurry's weight
    temp = water_t + 0.9 * power / ((feed * 0.8 + feed * 1.5 * 4.18) / 3.6)  # degC: the product carries the heat
    level = np.clip(50.0 + 8.0 * noise[:, 10] + 15.0 * (q / 1500.0 - 1), 5.0, 95.0)
    X = np.column_stack([feed * (1 + 0.01 * noise[:, 0]), power * (1 + 0.005 * noise[:, 1]),
                         bearing + 20.0 * noise[:, 2], sump_water * (1 + 0.015 * noise[:, 3]),
                         q * (1 + 0.01 * noise[:, 4]), rho + 0.01 * noise[:, 5], pres + 1.0 * noise[:, 6],
                         pump * (1 + 0.01 * noise[:, 7]), np.clip(level + 1.0 * noise[:, 8], 0.0, 100.0),
                         temp + 0.3 * noise[:, 9]])
    columns = ("fresh feed t/h", "mill power kW", "bearing pressure kPa", "sump water m3/h",
               "cyclone feed m3/h", "cyclone feed density t/m3", "cyclone pressure kPa", "pump power kW",
               "sump level %", "cyclone feed temperature degC")

    def head(v: np.ndarray) -> np.ndarray:
        """Slurry at the logged density and flow in the DN400 line: rho v^2 / 2 in kPa (~9 kPa at 1,500 m3/h)."""
        return 0.5 * v[:, 5] * (v[:, 4] / 3600.0 / PIPE_AREA) ** 2

    return Plant(X, y, columns, levels=(8,), sg=lambda v: v[:, 5], line=6, head=head, thermocouples=(9,),
                 jbox=(20.0, 5.0), validated=(0, 3, 4, 6))


def antoine(a: float, b: float, c: float, p_bar: np.ndarray) -> np.ndarray:
    """Boiling point (degC) at p bar abs from Antoine's constants (mmHg, degC)."""
    return b / (a - np.log10(p_bar * 750.062)) - c


FLOOD_AT, WEEP_AT = 0.85, 0.50  # fraction of Fair's flooding velocity: jet flood onset; sieve trays' weep point


def column() -> Plant:
    """A 30-tray sieve-tray column, 2.15 m across (600 mm spacing), splitting methanol from water at ~0.25 bar g.

    Drivers: the feed, 30 m3/h (x/÷ 1.2); its methanol, 35 +- 5% by mass (not read); the steam the controller
    gives, 12 t/h per 30 m3/h of feed (x/÷ 1.13); the top pressure, 0.25 +- 0.04 bar g; the distillate draw, the
    feed's methanol x/÷ 1.06 (over it, water goes overhead; under it, methanol down); foaming and fouled trays (the
    capacity x/÷ 1.13, not read); the trays' damage (the weep point x/÷ 1.10, not read). The vapour (the steam's
    heat over methanol's latent heat) against Fair's flooding velocity, 0.09 m/s x sqrt((rho_L - rho_V) / rho_V),
    gives the flood fraction; over FLOOD_AT the trays flood, under WEEP_AT they weep (the class: normal, flooding,
    weeping). Antoine's boiling points at the top and bottom pressures, shifted by the split, give the temperatures;
    the trays' dry and liquid heads give the pressure drop, which climbs as the trays flood.

    Logged: feed (m3/h), reflux (m3/h), steam (t/h), top pressure (bar g), column DP (mbar), top, tray 8 and bottom
    temperatures (degC, type K), reflux drum level (%).
    """
    n = 3600
    rng = np.random.default_rng(COLUMN_SEED)
    z = _drivers(n, 7, COLUMN_SEED, rng)
    noise = rng.standard_normal((n, 10))
    feed = np.clip(30.0 * np.exp(0.18 * z[:, 0]), 15.0, 50.0)
    xf = np.clip(0.35 + 0.05 * z[:, 1], 0.2, 0.5)
    steam = 12.0 * feed / 30.0 * np.exp(0.12 * z[:, 2])
    p_top = 0.25 + 0.04 * z[:, 3]
    draw = np.exp(0.06 * z[:, 4])
    cap = np.exp(0.12 * z[:, 5])
    damage = np.exp(0.10 * z[:, 6])
    meoh = feed * 0.93 * xf * 1000.0 / 32.04                       # kmol/h of methanol in the feed
    d = meoh * draw                                                # kmol/h distillate
    v = steam * 1000.0 * 2100.0 / 35300.0                          # kmol/h vapour up the column
    lq = np.maximum(v - d, 0.05 * v)                               # kmol/h reflux
    p_abs = p_top + 1.01325
    t_meoh = antoine(8.08097, 1582.271, 239.726, p_abs)
    rho_v = p_abs * 1e5 * 0.03204 / (8.314 * (t_meoh + 273.15))
    rho_l = 792.0 - 0.95 * (t_meoh - 20.0)
    u = v * 32.04 / rho_v / 3600.0 / (0.88 * np.pi * 1.075 ** 2)  # m/s through the net area
    flood = u / (0.09 * np.sqrt((rho_l - rho_v) / rho_v) * cap)
    weep = flood < WEEP_AT * damage * (lq / np.median(lq)) ** 0.2  # more liquid on the trays weeps sooner
    y = np.where(flood > FLOOD_AT, 1, np.where(weep, 2, 0)).astype(np.int64)
    over = np.maximum(flood - FLOOD_AT, 0.0)
    dp = 30.0 * (1.6 * (u / 1.5) ** 2 * rho_v / 1.42 + 4.6 * (lq / np.median(lq)) ** (2 / 3)) * (1 + 6.0 * over)
    excess = draw - 1.0
    t_top = t_meoh + np.clip(40.0 * np.maximum(excess, 0.0) + 25.0 * over, 0.0, 20.0)
    t_bot = antoine(8.07131, 1730.63, 233.426, p_abs + dp / 1000.0) - np.clip(60.0 * np.maximum(-excess, 0.0), 0, 20)
    eff = 1.0 - 1.5 * over - 0.8 * np.maximum(WEEP_AT * damage - flood, 0.0)  # tray efficiency lost
    s = np.clip(0.30 + 1.5 * excess + 0.25 * (1 - eff), 0.05, 0.95)
    t_tray = t_top + (t_bot - t_top) * s
    level = np.clip(50.0 + 9.0 * noise[:, 9], 5.0, 95.0)
    X = np.column_stack([feed * (1 + 0.01 * noise[:, 0]), lq * 32.04 / rho_l * (1 + 0.015 * noise[:, 1]),
                         steam * (1 + 0.015 * noise[:, 2]), p_top + 0.003 * noise[:, 3], dp + 2.0 * noise[:, 4],
                         t_top + 0.3 * noise[:, 5], t_tray + 0.3 * noise[:, 6], t_bot + 0.3 * noise[:, 7],
                         np.clip(level + 1.0 * noise[:, 8], 0.0, 100.0)])
    columns = ("feed m3/h", "reflux m3/h", "steam t/h", "top pressure bar g", "column DP mbar",
               "top temperature degC", "tray 8 temperature degC", "bottom temperature degC", "reflux drum level %")

    def head(r: np.ndarray) -> np.ndarray:
        """Methanol vapour in the DN500 overhead line: rho v^2 / 2 in bar (~0.005 bar: a vapour's head is small)."""
        vap = r[:, 2] * 1000.0 * 2100.0 / 35300.0 * 32.04 / 3600.0          # kg/s
        dens = (r[:, 3] + 1.01325) * 1e5 * 0.03204 / (8.314 * (r[:, 5] + 273.15))
        return 0.5 * dens * (vap / dens / (np.pi * 0.25 ** 2)) ** 2 / 1e5

    def sg(r: np.ndarray) -> np.ndarray:
        """Reflux methanol in the drum, 5 K below the top temperature."""
        return (792.0 - 0.95 * (r[:, 5] - 5.0 - 20.0)) / 1000.0

    return Plant(X, y, columns, levels=(8,), sg=sg, line=3, head=head, thermocouples=(5, 6, 7),
                 jbox=(12.0, 8.0), validated=(0, 1, 2, 3, 4))


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
    for name, plant in (("mill", mill()), ("column", column())):
        print(f"\n{name} prior {np.round(np.bincount(plant.y) / len(plant.y), 3).tolist()}")
        frozen_check(name, *write(out, name, plant.X, plant.y, TABLE_SEED, plant))
    print("\nwritten to", out)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/unseen10")
