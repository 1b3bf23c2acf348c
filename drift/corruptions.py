"""Digits-C: seeded corruptions of ``(n, 1, 8, 8)`` images in [0, 1], and drift streams.

The corruptions play the part ImageNet-C plays for large images: covariate shifts
whose true labels are unchanged, so a model that adapts without labels can be
scored against one that does not. Each takes a severity from 1 (mild) to 5 and a
seed, and returns a new float32 array in [0, 1]; nothing is changed in place.

Families are split, as in ImageNet-C's held-out set. `DEVELOPMENT_FAMILIES` (the
original seven covariate shifts) choose methods and defaults. `HELD_OUT_FAMILIES`
are only reported, never tuned on: speckle noise, motion blur, haze (weather),
pixelate, gamma (digital), shear (geometric) and stripes (occlusion), each a
different corruption from every development one. Their severities were set from
the frozen model's accuracy drop alone (10-40 points at severity 3), never from
adaptation results. `CONCEPT_FAMILIES` holds inversion: it changes what the right
answer looks like, so pseudo-labels cannot fix it ("labels needed").

Streams are aligned arrays ``x`` (events), ``y`` (true labels, never shown to the
loop) and ``domain`` (the corruption each event went through, "clean" when none),
with the indices where a drift begins.

Examples
--------
>>> import numpy as np
>>> x = np.random.default_rng(0).random((4, 1, 8, 8)).astype(np.float32)
>>> sorted(CORRUPTIONS) == sorted(CORRUPTION_NAMES)
True
>>> set(HELD_OUT_FAMILIES) & set(CORRUPTION_NAMES)
set()
>>> out = corrupt(x, "gaussian_noise", severity=3, seed=1)
>>> out.shape, out.dtype, bool(out.min() >= 0 and out.max() <= 1)
((4, 1, 8, 8), dtype('float32'), True)
>>> np.array_equal(out, corrupt(x, "gaussian_noise", severity=3, seed=1))
True
>>> float(corrupt(x, "inversion", severity=5)[0, 0, 0, 0]) == float(1 - x[0, 0, 0, 0])
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from scipy.ndimage import gaussian_filter

CORRUPTION_NAMES = (
    "gaussian_noise", "rotation", "blur", "contrast", "shift", "salt_and_pepper", "occlusion", "inversion",
)
CLEAN = "clean"
DEVELOPMENT_FAMILIES = ("gaussian_noise", "rotation", "blur", "contrast", "shift", "salt_and_pepper", "occlusion")
CONCEPT_FAMILIES = ("inversion",)  # label-changing: the right answer for pseudo-labels is "labels needed"
# Only reported, never tuned on: no method or default may be chosen by results on these.
HELD_OUT_FAMILIES = ("speckle_noise", "motion_blur", "haze", "pixelate", "gamma", "shear", "stripes")

# One row per corruption: the parameter used at severities 1..5.
_SEVERITY = {
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),   # noise std
    "rotation": (10.0, 15.0, 20.0, 25.0, 30.0),        # degrees, random sign per image
    "blur": (0.4, 0.6, 0.8, 1.0, 1.3),                 # gaussian sigma in pixels
    "contrast": (0.6, 0.45, 0.3, 0.2, 0.1),            # factor towards the image mean
    "shift": (0.75, 1.0, 1.5, 2.0, 2.5),               # pixels, random direction per image
    "salt_and_pepper": (0.03, 0.06, 0.1, 0.15, 0.2),   # fraction of pixels hit
    "occlusion": (2, 3, 3, 4, 4),                       # side of a grey square, in pixels
    "inversion": (0.75, 0.8, 0.85, 0.9, 1.0),          # weight of the inverted image
}


def _check(x: np.ndarray, severity: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 4:
        raise ValueError(f"images must be shaped (n, C, H, W), got {x.shape}")
    if not 1 <= int(severity) <= 5:
        raise ValueError(f"severity must be 1..5, got {severity}")
    return x


def _affine(x: np.ndarray, angle_rad: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """Rotate each image about its centre and translate it; bilinear, zero outside."""
    n, c, h, w = x.shape
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    yy, xx = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    cos, sin = np.cos(angle_rad)[:, None, None], np.sin(angle_rad)[:, None, None]
    oy, ox = yy[None] - cy - dy[:, None, None], xx[None] - cx - dx[:, None, None]
    sy, sx = cos * oy - sin * ox + cy, sin * oy + cos * ox + cx  # inverse map: output -> source
    return _bilinear(x, sy, sx)


def _bilinear(x: np.ndarray, sy: np.ndarray, sx: np.ndarray) -> np.ndarray:
    """Sample each image ``x[i]`` at source coordinates ``(sy[i], sx[i])`` (each ``(n, h, w)``); zero outside."""
    n, c, h, w = x.shape
    y0, x0 = np.floor(sy).astype(int), np.floor(sx).astype(int)
    out = np.zeros_like(x, dtype=np.float64)
    idx = np.arange(n)[:, None, None]
    for oy_, ox_ in ((0, 0), (0, 1), (1, 0), (1, 1)):
        yi, xi = y0 + oy_, x0 + ox_
        weight = (1 - np.abs(sy - yi)) * (1 - np.abs(sx - xi))
        inside = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
        vals = x[idx, :, np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)]  # (n, h, w, c)
        out += np.moveaxis(vals, -1, 1) * (weight * inside)[:, None]
    return out.astype(np.float32)


def gaussian_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    return x + rng.normal(0.0, _SEVERITY["gaussian_noise"][severity - 1], x.shape).astype(np.float32)


def rotation(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    degrees = _SEVERITY["rotation"][severity - 1] * rng.choice([-1.0, 1.0], size=len(x))
    zeros = np.zeros(len(x))
    return _affine(x, np.deg2rad(degrees), zeros, zeros)


def blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    sigma = _SEVERITY["blur"][severity - 1]
    return gaussian_filter(x, sigma=(0, 0, sigma, sigma), mode="constant").astype(np.float32)


def contrast(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    return (x - mean) * _SEVERITY["contrast"][severity - 1] + mean


def shift(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    theta = rng.uniform(0.0, 2 * np.pi, size=len(x))
    r = _SEVERITY["shift"][severity - 1]
    return _affine(x, np.zeros(len(x)), r * np.sin(theta), r * np.cos(theta))


def salt_and_pepper(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    u = rng.random(x.shape)
    p = _SEVERITY["salt_and_pepper"][severity - 1]
    out = x.copy()
    out[u < p / 2] = 0.0
    out[(u >= p / 2) & (u < p)] = 1.0
    return out


def occlusion(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    side = int(_SEVERITY["occlusion"][severity - 1])
    n, _, h, w = x.shape
    top = rng.integers(1, max(h - side, 1), size=n)  # keep the square over the digit, not the border
    left = rng.integers(1, max(w - side, 1), size=n)
    out = x.copy()
    for i in range(n):
        out[i, :, top[i]:top[i] + side, left[i]:left[i] + side] = 0.5
    return out


def inversion(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    a = _SEVERITY["inversion"][severity - 1]
    return (1.0 - a) * x + a * (1.0 - x)


# -- held-out families (only reported, never tuned on) ------------------------------------------
# Parameters at severities 1..5, set from the frozen model's accuracy drop alone.
_HELD_OUT_SEVERITY = {
    "speckle_noise": (0.3, 0.45, 0.6, 0.8, 1.0),      # std of the multiplicative noise
    "motion_blur": (2.0, 3.0, 4.0, 5.0, 6.0),         # streak length in pixels, random direction per image
    "haze": (0.3, 0.4, 0.5, 0.6, 0.7),                # weight of a smooth bright field (contrast lost with it)
    "pixelate": ((4, 0.5), (4, 0.75), (4, 1.0), (3, 1.0), (2, 1.0)),  # (coarse grid side, weight of the blocks)
    "gamma": (1.5, 2.0, 3.0, 4.0, 5.5),               # exponent: an underexposed scan, faint ink fades
    "shear": (0.25, 0.35, 0.45, 0.55, 0.65),          # shear factor, random axis and sign per image
    "stripes": ((1, 0.4), (1, 0.5), (1, 0.65), (2, 0.6), (2, 0.85)),  # (full-length lines, weight towards 1)
}


def speckle_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative noise: ink is perturbed, the blank background stays blank (unlike gaussian_noise)."""
    std = _HELD_OUT_SEVERITY["speckle_noise"][severity - 1]
    return x * (1.0 + rng.normal(0.0, std, x.shape)).astype(np.float32)


def motion_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A 1-D streak: the mean of 7 copies shifted along one random direction per image (blur is isotropic)."""
    length = _HELD_OUT_SEVERITY["motion_blur"][severity - 1]
    theta = rng.uniform(0.0, np.pi, size=len(x))
    zeros = np.zeros(len(x))
    steps = np.linspace(-length / 2, length / 2, 7)
    return np.mean([_affine(x, zeros, t * np.sin(theta), t * np.cos(theta)) for t in steps], axis=0)


def _upsample_matrix(small: int, large: int) -> np.ndarray:
    """``(large, small)`` bilinear interpolation from a coarse grid to a fine one (corners aligned)."""
    return np.stack([np.interp(np.linspace(0, small - 1, large), np.arange(small), np.eye(small)[j])
                     for j in range(small)], axis=1)


def haze(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Fog: a smooth bright field (a random 3x3 grid, interpolated) over the image, which loses contrast."""
    a = _HELD_OUT_SEVERITY["haze"][severity - 1]
    n, c, h, w = x.shape
    coarse = rng.uniform(0.5, 1.0, size=(n, c, 3, 3))
    field = _upsample_matrix(3, h) @ coarse @ _upsample_matrix(3, w).T
    return (1.0 - a) * x + a * field


def _area_matrix(large: int, small: int) -> np.ndarray:
    """``(small, large)`` area averaging: each coarse cell is the overlap-weighted mean of fine pixels."""
    edges = np.linspace(0.0, large, small + 1)
    lo, hi = edges[:-1, None], edges[1:, None]
    pixel = np.arange(large)[None]
    overlap = np.clip(np.minimum(hi, pixel + 1) - np.maximum(lo, pixel), 0.0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def pixelate(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Average down to a coarse grid (2x at severity 3), back up with nearest neighbours: blocky, not smooth."""
    m, weight = _HELD_OUT_SEVERITY["pixelate"][severity - 1]
    h, w = x.shape[-2:]
    down_h, down_w = _area_matrix(h, m), _area_matrix(w, m)
    up_h = np.eye(m)[np.arange(h) * m // h]  # (h, m) nearest
    up_w = np.eye(m)[np.arange(w) * m // w]
    return (1.0 - weight) * x + weight * ((up_h @ down_h) @ x @ (up_w @ down_w).T)


def gamma(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A scanner's gamma curve: faint ink fades and strokes thin (contrast, by contrast, is linear)."""
    return np.power(x, _HELD_OUT_SEVERITY["gamma"][severity - 1])


def shear(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Slant: rows (or columns) slide in proportion to their distance from the centre; bilinear, zero outside."""
    k = _HELD_OUT_SEVERITY["shear"][severity - 1] * rng.choice([-1.0, 1.0], size=len(x))[:, None, None]
    horizontal = rng.random(len(x))[:, None, None] < 0.5
    h, w = x.shape[-2:]
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    yy, xx = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    sy = np.where(horizontal, yy[None], yy[None] - k * (xx[None] - cx))
    sx = np.where(horizontal, xx[None] - k * (yy[None] - cy), xx[None])
    return _bilinear(x, sy, sx)


def stripes(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Scratches: full-length bright lines (random rows or columns), unlike occlusion's grey square."""
    count, weight = _HELD_OUT_SEVERITY["stripes"][severity - 1]
    n, _, h, w = x.shape
    out = x.copy()
    for i in range(n):
        rows = rng.random() < 0.5
        picks = rng.choice(np.arange(1, (h if rows else w) - 1), size=count, replace=False)
        if rows:
            out[i, :, picks, :] = (1.0 - weight) * out[i, :, picks, :] + weight
        else:
            out[i, :, :, picks] = (1.0 - weight) * out[i, :, :, picks] + weight
    return out


HELD_OUT_CORRUPTIONS: dict[str, Callable[[np.ndarray, int, np.random.Generator], np.ndarray]] = {
    "speckle_noise": speckle_noise, "motion_blur": motion_blur, "haze": haze, "pixelate": pixelate,
    "gamma": gamma, "shear": shear, "stripes": stripes,
}


CORRUPTIONS: dict[str, Callable[[np.ndarray, int, np.random.Generator], np.ndarray]] = {
    "gaussian_noise": gaussian_noise, "rotation": rotation, "blur": blur, "contrast": contrast,
    "shift": shift, "salt_and_pepper": salt_and_pepper, "occlusion": occlusion, "inversion": inversion,
}


def corrupt(x: np.ndarray, name: str, severity: int = 3, seed: int = 0) -> np.ndarray:
    """Apply corruption ``name`` (development or held-out; "clean" returns a copy) at ``severity``, seeded."""
    x = _check(x, severity)
    if name == CLEAN:
        return x.copy()
    family = CORRUPTIONS.get(name) or HELD_OUT_CORRUPTIONS.get(name)
    if family is None:
        raise ValueError(f"unknown corruption {name!r}; choose from "
                         f"{', '.join(CORRUPTION_NAMES + HELD_OUT_FAMILIES)} or 'clean'")
    out = family(x, int(severity), np.random.default_rng(seed))
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def gradual(a: np.ndarray, b: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Mix two aligned event arrays: event ``i`` comes from ``b`` with probability ``i / (n - 1)``.

    ``a`` and ``b`` are the same events before and after a drift (e.g. clean and
    corrupted copies), so labels stay aligned with the mix.

    >>> a, b = np.zeros((5, 1)), np.ones((5, 1))
    >>> gradual(a, b, 5, seed=0)[:, 0].tolist()[0], gradual(a, b, 5, seed=0)[:, 0].tolist()[-1]
    (0.0, 1.0)
    """
    if n < 2 or len(a) < n or len(b) < n:
        raise ValueError(f"need n >= 2 and at least n events in a and b, got n={n}, {len(a)}, {len(b)}")
    mask = _gradual_mask(n, seed).reshape((n,) + (1,) * (np.ndim(a) - 1))
    return np.where(mask, b[:n], a[:n])


def _gradual_mask(n: int, seed: int) -> np.ndarray:
    take_b = np.random.default_rng(seed).random(n) < np.linspace(0.0, 1.0, n)
    take_b[-1] = True
    return take_b


@dataclass
class Stream:
    """A labelled event stream; ``y`` is for scoring only, ``drift_points`` mark where drifts start.

    ``image`` is the pool index each event was made from (None when there is no
    pool): a replayed pool repeats images, and a model fitted to some events must
    be scored on the others to measure more than memory.
    """

    x: np.ndarray
    y: np.ndarray
    domain: np.ndarray
    drift_points: list[int] = field(default_factory=list)
    image: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.y)


class StreamBuilder:
    """Builds streams by drawing events from a pool of clean images, cycling shuffled passes.

    >>> pool_x = np.random.default_rng(0).random((20, 1, 8, 8)).astype(np.float32)
    >>> s = StreamBuilder(pool_x, np.arange(20) % 10, seed=0).abrupt(CLEAN, "blur", 30, 50)
    >>> len(s), s.drift_points, list(s.domain[29:31])
    (80, [30], ['clean', 'blur'])
    """

    def __init__(self, pool_x: np.ndarray, pool_y: np.ndarray, *, severity: int = 3, seed: int = 0) -> None:
        if len(pool_x) != len(pool_y) or len(pool_x) == 0:
            raise ValueError("pool_x and pool_y must be non-empty and the same length")
        _check(pool_x, severity)
        self.pool_x, self.pool_y = np.asarray(pool_x, np.float32), np.asarray(pool_y, np.int64)
        self.severity, self.seed = severity, seed
        self._rng = np.random.default_rng(seed)
        self._order = np.empty(0, dtype=np.int64)

    def _draw(self, n: int) -> np.ndarray:
        while len(self._order) < n:
            self._order = np.concatenate([self._order, self._rng.permutation(len(self.pool_y))])
        idx, self._order = self._order[:n], self._order[n:]
        return idx

    def segment(self, name: str, n: int) -> Stream:
        """``n`` fresh events, all through corruption ``name``."""
        return self._corrupted(self._draw(n), name)

    def prior_segment(self, name: str, prior: Sequence[float], n: int) -> Stream:
        """``n`` clean events whose classes follow ``prior`` (a label shift: each class's inputs as in the pool,
        their shares changed), drawn with replacement within each class; ``name`` is the segment's domain.

        >>> y = np.arange(100) % 2
        >>> s = StreamBuilder(np.zeros((100, 1, 8, 8), np.float32), y, seed=0).prior_segment("90/10", [0.9, 0.1], 1000)
        >>> round(float(np.mean(s.y == 0)), 1), s.domain[0]
        (0.9, '90/10')
        """
        prior = np.asarray(prior, dtype=np.float64)
        if prior.shape != (int(self.pool_y.max()) + 1,) or prior.min() < 0 or not np.isclose(prior.sum(), 1.0):
            raise ValueError(f"prior must be {int(self.pool_y.max()) + 1} shares summing to 1, got {prior.tolist()}")
        classes = self._rng.choice(len(prior), size=n, p=prior)
        idx = np.empty(n, dtype=np.int64)
        for c in np.unique(classes):
            members = np.flatnonzero(self.pool_y == c)
            if len(members) == 0:
                raise ValueError(f"class {c} has a share in the prior but no event in the pool")
            idx[classes == c] = self._rng.choice(members, size=int(np.sum(classes == c)))
        part = self._corrupted(idx, CLEAN)
        return Stream(part.x, part.y, np.full(n, name, dtype=object), image=part.image)

    def _corrupted(self, idx: np.ndarray, name: str) -> Stream:
        x = corrupt(self.pool_x[idx], name, self.severity, seed=int(self._rng.integers(2**31)))
        return Stream(x, self.pool_y[idx].copy(), np.full(len(idx), name, dtype=object), image=idx.copy())

    def concat(self, parts: Sequence[Stream]) -> Stream:
        """Join segments; a drift point is recorded wherever the domain changes."""
        points, start = [], 0
        for i, part in enumerate(parts):
            points += [start + p for p in part.drift_points]
            if i > 0 and part.domain[0] != parts[i - 1].domain[-1]:
                points.append(start)
            start += len(part)
        images = None if any(p.image is None for p in parts) else np.concatenate([p.image for p in parts])
        return Stream(np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts]),
                      np.concatenate([p.domain for p in parts]), sorted(set(points)), images)

    def abrupt(self, before: str, after: str, n_before: int, n_after: int) -> Stream:
        return self.concat([self.segment(before, n_before), self.segment(after, n_after)])

    def gradual(self, before: str, after: str, n_before: int, n_transition: int, n_after: int) -> Stream:
        """``before``, then a linear mix over ``n_transition`` events (see `gradual`), then ``after``."""
        head = self.segment(before, n_before)
        idx = self._draw(n_transition)
        a, b = self._corrupted(idx, before), self._corrupted(idx, after)
        mix_seed = int(self._rng.integers(2**31))
        x = gradual(a.x, b.x, n_transition, seed=mix_seed)
        took_b = _gradual_mask(n_transition, mix_seed)
        domain = np.where(took_b, after, before).astype(object)
        stream = self.concat([head, Stream(x, a.y, domain, image=idx.copy()), self.segment(after, n_after)])
        stream.drift_points = [n_before]  # one drift, starting where the mix starts
        return stream

    def recurring(self, base: str, other: str, n_segment: int, repeats: int) -> Stream:
        """``base, other, base, other, ...`` each ``n_segment`` events, ``repeats`` times ``other``."""
        parts = []
        for _ in range(repeats):
            parts += [self.segment(base, n_segment), self.segment(other, n_segment)]
        return self.concat(parts + [self.segment(base, n_segment)])

    def continual(self, names: Sequence[str], n_segment: int, n_total: int) -> Stream:
        """Cycle through ``names`` in order, ``n_segment`` events each, until ``n_total`` events."""
        if not names:
            raise ValueError("need at least one domain to cycle through")
        parts, total, i = [], 0, 0
        while total < n_total:
            n = min(n_segment, n_total - total)
            parts.append(self.segment(names[i % len(names)], n))
            total, i = total + n, i + 1
        return self.concat(parts)
