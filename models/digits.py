"""scikit-learn's bundled digits as 8x8 images, and label-scarce versions of them.

No download: the 1,797 images ship with scikit-learn.

Examples
--------
>>> X, y = load_digits_images()
>>> X.shape, X.dtype, float(X.max()), y.dtype
((1797, 1, 8, 8), dtype('float32'), 1.0, dtype('int64'))
>>> partial = split_label_fraction(y, 0.02, seed=0)
>>> int((partial >= 0).sum()), sorted(set(partial[partial >= 0].tolist())) == list(range(10))
(39, True)
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits


def load_digits_images() -> tuple[np.ndarray, np.ndarray]:
    """``X`` float32 ``(1797, 1, 8, 8)`` scaled to [0, 1], ``y`` int64 ``(1797,)``."""
    digits = load_digits()
    X = (digits.images / 16.0).astype(np.float32)[:, None]
    return X, digits.target.astype(np.int64)


def split_label_fraction(y: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """A copy of ``y`` keeping about ``fraction`` of the labels per class, the rest set to -1.

    Stratified: each class keeps ``max(1, round(fraction * n_class))`` labels,
    so every class is seen at least once. ``fraction=1`` keeps everything.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    y = np.asarray(y)
    if y.ndim != 1 or len(y) == 0 or (y < 0).any():
        raise ValueError("y must be a non-empty 1-d array of class labels >= 0")
    rng = np.random.default_rng(seed)
    out = np.full_like(y, -1)
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        keep = max(1, int(round(fraction * len(members))))
        chosen = rng.choice(members, size=keep, replace=False)
        out[chosen] = y[chosen]
    return out
