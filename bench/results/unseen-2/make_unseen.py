"""A second new user's trial: data and shifts that no other file in the repository names. Report only.

`bench/results/unseen/` is committed and so no longer unseen; this writes fresh files in its format
(`bench/stream_files.py`): ``NAME-src.npz`` (``X``, ``y`` with -1 = unlabeled; half of the data, 10% of
it labeled, at least 3 a class) and ``NAME-fresh.npz`` (``X``, ``y``, ``phase``: the other half replayed as
clean, six faults, clean, in blocks of equal length).

* digits: scikit-learn's digits, split by seed 23 (the benches use 0, 1, 2 and the old trial 11), 1,500
  events a phase, six image faults in neither `drift/corruptions.py` nor the old trial: jpeg, vignette,
  scanline_jitter, hot_pixels, bleed_through, barrel.
* mkclf: scikit-learn's ``make_classification``, binary with a 70/30 prior, 10 features put in
  physical-looking units (a fixed scale and offset per feature), 2,000 events a phase.
* rtree: river's RandomTree generator, 4 classes, 8 numeric features, 2,000 events a phase.

Both tables go through six sensor faults in neither `drift/sensor_shifts.py` nor the old trial:
dropout_mean, baseline_ramp, crosstalk, clock_jitter, partial_replacement, duplicate_channel.

Every strength was set from "plausible for a real instrument" alone (the reason is next to each
constant); no model was trained or scored to choose any of them, the seeds or the datasets.
Fault scales come from the source half (its mean and std), never from the drifted events.

    .venv/bin/python bench/results/unseen-2/make_unseen.py /tmp/unseen2
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.fft import dctn, idctn
from scipy.ndimage import map_coordinates

DIGITS_SEED, TABLE_SEED = 23, 29  # used by no other file here for a split or a generator
IMAGE_EVENTS, TABLE_EVENTS = 1500, 2000  # events per phase
LABELED, MIN_LABELED = 0.10, 3  # of the source half, per class (as the old trial)

Images = Callable[[np.ndarray, np.random.Generator], np.ndarray]


# ---------------------------------------------------------------- image faults, (n, 1, 8, 8) in [0, 1]
# Standard JPEG luminance table (quality 50); the 8x8 digit is exactly one JPEG block.
_Q50 = np.array([[16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55],
                 [14, 13, 16, 24, 40, 57, 69, 56], [14, 17, 22, 29, 51, 87, 80, 62],
                 [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
                 [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]], np.float64)
JPEG_QUALITY = 25       # a bandwidth-starved camera feed; 20-30 is a common low setting
VIGNETTE = 0.55         # light lost in the corners of a cheap lens (cos^4 falloff: about 1 stop)
JITTER_PX = 0.5         # std of a line scanner's per-row timing error, in pixels (clipped to +-1)
HOT_PIXELS, HOT_LEVEL = 3, 0.75  # a few stuck-bright cells of a damaged sensor, fixed for the phase
BLEED = 0.25            # show-through of the page's back (mirrored), 10-30% on thin paper
BARREL = 0.25           # radial distortion of a wide-angle lens: corners pulled in by ~1 px


def jpeg(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """Lossy compression: DCT coefficients quantized with the JPEG table at JPEG_QUALITY."""
    scale = 5000.0 / JPEG_QUALITY if JPEG_QUALITY < 50 else 200.0 - 2 * JPEG_QUALITY
    q = np.clip(np.floor((_Q50 * scale + 50) / 100), 1, 255)
    c = dctn(x * 255.0 - 128.0, axes=(2, 3), norm="ortho")  # the JPEG 8x8 DCT is the orthonormal DCT-II
    return (idctn(np.round(c / q) * q, axes=(2, 3), norm="ortho") + 128.0) / 255.0


def vignette(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """Ink dims towards the border: gain 1 at the centre, 1 - VIGNETTE at the corners."""
    yy, xx = np.meshgrid(np.arange(8) - 3.5, np.arange(8) - 3.5, indexing="ij")
    return x * (1.0 - VIGNETTE * (yy**2 + xx**2) / (2 * 3.5**2))


def scanline_jitter(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """Each row slides sideways by its own sub-pixel amount (linear interpolation, blank outside)."""
    dx = np.clip(r.normal(0.0, JITTER_PX, x.shape[:3]), -1.0, 1.0)
    cols, out = np.arange(8.0), np.empty_like(x)
    for i, row in np.ndindex(x.shape[0], 8):
        out[i, 0, row] = np.interp(cols - dx[i, 0, row], cols, x[i, 0, row], left=0.0, right=0.0)
    return out


def hot_pixels(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """HOT_PIXELS cells inside the border read at least HOT_LEVEL in every image of the phase."""
    cells = r.choice(36, HOT_PIXELS, replace=False)
    out = x.copy()
    for c in cells:
        out[:, 0, 1 + c // 6, 1 + c % 6] = np.maximum(out[:, 0, 1 + c // 6, 1 + c % 6], HOT_LEVEL)
    return out


def bleed_through(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """A faint mirrored digit from the other side of the page (another image of the batch)."""
    return x + BLEED * x[r.permutation(len(x))][..., ::-1]


def barrel(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """Barrel distortion: the pixel at radius rho shows the source at rho * (1 + BARREL * (rho / corner)^2)."""
    yy, xx = np.meshgrid(np.arange(8) - 3.5, np.arange(8) - 3.5, indexing="ij")
    k = 1.0 + BARREL * (yy**2 + xx**2) / (2 * 3.5**2)
    coords = [yy * k + 3.5, xx * k + 3.5]
    return np.stack([map_coordinates(im, coords, order=1, mode="grid-constant") for im in x[:, 0]])[:, None]


IMAGE: dict[str, Images] = {"jpeg": jpeg, "vignette": vignette, "scanline_jitter": scanline_jitter,
                            "hot_pixels": hot_pixels, "bleed_through": bleed_through, "barrel": barrel}


# ---------------------------------------------------------------- sensor faults, (n, d) in stream order
@dataclass(frozen=True)
class Ref:
    """The source half's statistics: every fault's yardstick."""

    mean: np.ndarray
    std: np.ndarray


Tables = Callable[[np.ndarray, np.random.Generator, Ref], np.ndarray]

DROPOUT = 0.15     # readings lost in transit and filled with the training mean upstream (lossy radio links)
RAMP_STD = 1.0     # baseline drift (fouling, thermal) reached by the phase's end, on a third of the features
CROSSTALK = 0.3    # coupling of one channel into another, about -10 dB (poor shielding, shared ground)
JITTER_EVENTS = 2  # a second feed's clock lags 0..2 events behind, per event, for a quarter of the features
REPLACED = 0.4     # share of devices fitted with a replacement part of compressive (arcsinh) response


def _some(d: int, fraction: float, r: np.random.Generator, least: int = 1) -> np.ndarray:
    return r.permutation(d)[:max(least, int(round(fraction * d)))]


def dropout_mean(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """Each reading independently lost with probability DROPOUT and imputed with the source mean."""
    lost = r.random(x.shape) < DROPOUT
    return np.where(lost, ref.mean, x)


def baseline_ramp(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """A third of the features drift linearly from 0 to RAMP_STD stds (random sign) over the phase."""
    cols, out = _some(x.shape[1], 1 / 3, r), x.copy()
    t = np.linspace(0.0, 1.0, len(x))[:, None]
    out[:, cols] += t * RAMP_STD * r.choice([-1.0, 1.0], len(cols)) * ref.std[cols]
    return out


def crosstalk(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """Two channels pick up CROSSTALK of another channel's deviation (in their own units)."""
    p, out = r.permutation(x.shape[1]), x.copy()
    for a, b in ((p[0], p[1]), (p[2], p[3])):
        out[:, a] += CROSSTALK * ref.std[a] * (x[:, b] - ref.mean[b]) / ref.std[b]
    return out


def clock_jitter(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """A quarter of the features (at least 2) come from a feed joined 0..JITTER_EVENTS events late."""
    cols, out = _some(x.shape[1], 1 / 4, r, least=2), x.copy()
    src = np.maximum(np.arange(len(x)) - r.integers(0, JITTER_EVENTS + 1, len(x)), 0)
    out[:, cols] = x[src][:, cols]
    return out


def partial_replacement(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """On REPLACED of the events, a third of the features read through arcsinh (matched at the mean, slope 1)."""
    cols, rows, out = _some(x.shape[1], 1 / 3, r), r.random(len(x)) < REPLACED, x.copy()
    u = (x[np.ix_(rows, cols)] - ref.mean[cols]) / ref.std[cols]
    out[np.ix_(rows, cols)] = ref.mean[cols] + ref.std[cols] * np.arcsinh(u)
    return out


def duplicate_channel(x: np.ndarray, r: np.random.Generator, ref: Ref) -> np.ndarray:
    """A multiplexer misconfigured: 2 slots report another slot's sensor (raw, in its units)."""
    p, out = r.permutation(x.shape[1]), x.copy()
    for a, b in ((p[0], p[1]), (p[2], p[3])):
        out[:, b] = x[:, a]
    return out


TABULAR: dict[str, Tables] = {"dropout_mean": dropout_mean, "baseline_ramp": baseline_ramp,
                              "crosstalk": crosstalk, "clock_jitter": clock_jitter,
                              "partial_replacement": partial_replacement, "duplicate_channel": duplicate_channel}


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


def stream(x: np.ndarray, y: np.ndarray, faults: dict, n: int, rng: np.random.Generator,
           apply: Callable[[Callable, np.ndarray], np.ndarray]) -> tuple[np.ndarray, ...]:
    """clean, each fault, clean: ``n`` events each, drawn in shuffled passes over the pool."""
    xs, ys, ps, order = [], [], [], np.empty(0, np.int64)
    for name in ["clean", *faults, "clean"]:
        while len(order) < n:
            order = np.r_[order, rng.permutation(len(y))]
        idx, order = order[:n], order[n:]
        xs.append(x[idx] if name == "clean" else apply(faults[name], x[idx]))
        ys.append(y[idx])
        ps += [name] * n
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.int64), np.array(ps)


def write(out: str, name: str, X: np.ndarray, y: np.ndarray, faults: dict, n: int, seed: int,
          image: bool) -> None:
    rng = np.random.default_rng(seed)
    xs, ys, xp, yp = split(X, y, rng)
    np.savez(f"{out}/{name}-src.npz", X=xs.astype(np.float32), y=ys)
    if image:
        apply = lambda f, x: np.clip(f(x, rng), 0.0, 1.0)  # noqa: E731
    else:
        ref = Ref(xs.mean(axis=0), xs.std(axis=0) + 1e-6)
        apply = lambda f, x: f(x, rng, ref)  # noqa: E731
    sx, sy, sp = stream(xp, yp, faults, n, rng, apply)
    np.savez(f"{out}/{name}-fresh.npz", X=sx, y=sy, phase=sp)


def main(out: str) -> None:
    from river.datasets import synth
    from sklearn.datasets import load_digits, make_classification

    os.makedirs(out, exist_ok=True)
    d = load_digits()
    write(out, "digits", (d.images / 16.0).astype(np.float32)[:, None], d.target.astype(np.int64), IMAGE,
          IMAGE_EVENTS, DIGITS_SEED, image=True)

    X, y = make_classification(n_samples=6000, n_features=10, n_informative=5, n_redundant=3, n_classes=2,
                               weights=[0.7, 0.3], flip_y=0.02, random_state=TABLE_SEED)
    units = np.random.default_rng(TABLE_SEED)  # each feature in its own units: scale 0.1-100, offset
    scale = 10 ** units.uniform(-1, 2, X.shape[1])
    X = X * scale + units.uniform(-3, 3, X.shape[1]) * scale
    write(out, "mkclf", X.astype(np.float32), y.astype(np.int64), TABULAR, TABLE_EVENTS, TABLE_SEED, image=False)

    rows = list(synth.RandomTree(seed_tree=TABLE_SEED, seed_sample=TABLE_SEED, n_classes=4, n_num_features=8,
                                 n_cat_features=0, max_tree_depth=5).take(6000))
    X = np.array([list(x.values()) for x, _ in rows], np.float32)
    write(out, "rtree", X, np.array([c for _, c in rows], np.int64), TABULAR, TABLE_EVENTS, TABLE_SEED,
          image=False)
    print("written to", out)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/unseen2")
