"""A new user's trial: data and shifts that no file in the repo names (written 2026-12-04, after every default
was fixed, before any run on them). Report only; nothing may be chosen on these.

Images: scikit-learn digits, split in halves by a seed the benches do not use (11); source half 10% labeled.
Fresh corruptions: brightness, zoom, dilation (thicker strokes), posterize, elastic, fog.
Tabular: river's RandomRBF (8 features, 4 classes) and scikit-learn's wine (13 features, 3 classes, 178 rows).
Fresh sensor faults: unit_change, quantize, swap, saturate, spikes, stuck_zero.
"""
import sys
import numpy as np
from scipy.ndimage import gaussian_filter, grey_dilation, map_coordinates, zoom as nd_zoom

OUT = sys.argv[1] if len(sys.argv) > 1 else "/work/fresh"
rng = np.random.default_rng(11)

# ---------------- images
from sklearn.datasets import load_digits, load_wine
d = load_digits()
X = (d.images / 16.0).astype(np.float32)[:, None]
y = d.target.astype(np.int64)

def brightness(x, r): return np.clip(x + 0.35, 0, 1)
def zoom(x, r):
    out = np.empty_like(x)
    for i, im in enumerate(x[:, 0]):
        z = nd_zoom(im, 1.4, order=1)
        o = (z.shape[0] - 8) // 2
        out[i, 0] = z[o:o + 8, o:o + 8]
    return np.clip(out, 0, 1)
def dilation(x, r): return np.stack([grey_dilation(im, size=(2, 2)) for im in x[:, 0]])[:, None]
def posterize(x, r): return np.round(x * 2) / 2
def elastic(x, r):
    out = np.empty_like(x); yy, xx = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    for i, im in enumerate(x[:, 0]):
        dy = gaussian_filter(r.uniform(-1, 1, (8, 8)), 1.2) * 9; dx = gaussian_filter(r.uniform(-1, 1, (8, 8)), 1.2) * 9
        out[i, 0] = map_coordinates(im, [yy + dy, xx + dx], order=1, mode="constant")
    return np.clip(out, 0, 1)
def fog(x, r):
    f = np.stack([gaussian_filter(r.normal(0, 1, (8, 8)), 2.0) for _ in range(len(x))])[:, None]
    f = (f - f.min(axis=(2, 3), keepdims=True)) / (np.ptp(f, axis=(2, 3), keepdims=True) + 1e-6)
    return np.clip(x * 0.7 + 0.45 * f, 0, 1)

IMAGE = {"brightness": brightness, "zoom": zoom, "dilation": dilation, "posterize": posterize, "elastic": elastic,
         "fog": fog}

# ---------------- tabular
def unit_change(x, r, s, cols):  # a quarter of the features now reported in other units
    x = x.copy(); x[:, cols] *= 10.0; return x
def quantize(x, r, s, cols):
    return np.round(x / (1.0 * s)) * s
def swap(x, r, s, cols):  # wiring error: pairs of channels swapped
    x = x.copy(); k = len(cols) // 2 * 2
    a, b = cols[:k:2], cols[1:k:2]; x[:, a], x[:, b] = x[:, b].copy(), x[:, a].copy(); return x
def saturate(x, r, s, cols, ref=None):
    return np.minimum(x, SAT)
def spikes(x, r, s, cols):
    x = x.copy(); m = r.random(x.shape) < 0.08; x[m] += r.choice([-5, 5], m.sum()) * np.broadcast_to(s, x.shape)[m]; return x
def stuck_zero(x, r, s, cols):
    x = x.copy(); x[:, cols] = 0.0; return x
TABULAR = {"unit_change": unit_change, "quantize": quantize, "swap": swap, "saturate": saturate, "spikes": spikes,
           "stuck_zero": stuck_zero}

def split(X, y, seed):
    o = np.random.default_rng(seed).permutation(len(X)); s, h = o[: len(X) // 2], o[len(X) // 2:]
    ys = np.full(len(s), -1, np.int64); lab = []
    for c in np.unique(y):  # 10% labeled, at least 3 a class
        idx = [i for i in range(len(s)) if y[s][i] == c]; n = max(3, int(round(0.1 * len(idx))))
        lab += list(np.random.default_rng(seed).choice(idx, n, replace=False))
    ys[lab] = y[s][lab]
    return X[s], ys, X[h], y[h]

def stream(pool_x, pool_y, phases, n, fn):
    xs, ys, ps = [], [], []
    order = np.empty(0, int)
    for name in phases:
        while len(order) < n: order = np.r_[order, rng.permutation(len(pool_y))]
        idx, order = order[:n], order[n:]
        x = pool_x[idx] if name == "clean" else fn(name, pool_x[idx])
        xs.append(x.astype(np.float32)); ys.append(pool_y[idx]); ps += [name] * n
    return np.concatenate(xs), np.concatenate(ys), np.array(ps)

xs, ys, xp, yp = split(X, y, 11)
np.savez(f"{OUT}/digits-src.npz", X=xs, y=ys)
phases = ["clean", *IMAGE, "clean"]
sx, sy, sp = stream(xp, yp, phases, 1500, lambda n, x: IMAGE[n](x, rng))
np.savez(f"{OUT}/digits-fresh.npz", X=sx, y=sy, phase=sp)

def tab(name, X, y, n):
    global SAT
    xs, ys, xp, yp = split(X, y, 11)
    s = xs.std(axis=0) + 1e-6
    SAT = np.percentile(xs, 60, axis=0)
    cols = rng.permutation(X.shape[1])[: max(2, X.shape[1] // 4)]
    np.savez(f"{OUT}/{name}-src.npz", X=xs, y=ys)
    sx, sy, sp = stream(xp, yp, ["clean", *TABULAR, "clean"], n, lambda k, x: TABULAR[k](x, rng, s, cols))
    np.savez(f"{OUT}/{name}-fresh.npz", X=sx, y=sy, phase=sp)

from river.datasets import synth
rows = list(synth.RandomRBF(seed_model=7, seed_sample=7, n_classes=4, n_features=8, n_centroids=20).take(6000))
Xr = np.array([[v for v in x.values()] for x, _ in rows], np.float32); yr = np.array([c for _, c in rows], np.int64)
tab("rbf", Xr, yr, 2000)
w = load_wine(); tab("wine", w.data.astype(np.float32), w.target.astype(np.int64), 1000)
print("written to", OUT)
