"""Tabular datasets for the benches: each ships inside a package (no download) or is generated.

They differ in what the guardrails and buffers must not assume: the number of
classes and the class prior.

| name | rows | features | classes | prior | from |
|---|---|---|---|---|---|
| segments | 2,310 | 18 | 7 | balanced | river's bundled ImageSegments |
| phishing | 1,250 | 9 | 2 | 56/44 | river's bundled Phishing |
| breast-cancer | 569 | 30 | 2 | 63/37 | scikit-learn's bundled breast cancer (Wisconsin) |
| shuttle | 4,000 of 49,097 | 9 | 2 | 93/7 | river's bundled Shuttle (anomalies), a fixed sample |
| waveform-skewed | 3,000 | 21 | 3 | 80/15/5 | river's Waveform generator, classes drawn to that prior |
| agrawal | 3,000 | 9 | 2 | 46/54 | river's Agrawal generator (loan approval, function 2: age and salary bands) |

>>> X, y = load("waveform-skewed")
>>> X.shape, X.dtype, np.bincount(y).tolist()
((3000, 21), dtype('float32'), [2400, 450, 150])
"""

from __future__ import annotations

from typing import Callable

import numpy as np

SHUTTLE_ROWS = 4000
WAVEFORM_COUNTS = (2400, 450, 150)
AGRAWAL_ROWS, AGRAWAL_FUNCTION = 3000, 2


def _river(name: str) -> tuple[np.ndarray, np.ndarray]:
    from river import datasets

    return _rows(list(getattr(datasets, name)()))


def _rows(rows: list) -> tuple[np.ndarray, np.ndarray]:
    """``(x dict, label)`` pairs as ``X`` float32 and ``y`` int64, classes in sorted order."""
    names = list(rows[0][0])
    X = np.array([[float(x[k]) for k in names] for x, _ in rows], dtype=np.float32)
    classes = sorted({label for _, label in rows}, key=str)
    index = {c: i for i, c in enumerate(classes)}
    return X, np.array([index[label] for _, label in rows], dtype=np.int64)


def _breast_cancer() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    return data.data.astype(np.float32), data.target.astype(np.int64)


def _shuttle() -> tuple[np.ndarray, np.ndarray]:
    """A fixed random sample (the same for every seed): the whole file is 49,097 rows, more than a stream needs."""
    X, y = _river("Shuttle")
    keep = np.sort(np.random.default_rng(0).permutation(len(X))[:SHUTTLE_ROWS])
    return X[keep], y[keep]


def _waveform_skewed() -> tuple[np.ndarray, np.ndarray]:
    """river's Waveform (21 features, 3 balanced classes) drawn until each class has its share of 80/15/5."""
    from river.datasets import synth

    wanted, rows = list(WAVEFORM_COUNTS), []
    for x, label in synth.Waveform(seed=0):
        if wanted[label] > 0:
            wanted[label] -= 1
            rows.append((x, label))
            if not any(wanted):
                break
    order = np.random.default_rng(0).permutation(len(rows))
    return _rows([rows[i] for i in order])


def _agrawal() -> tuple[np.ndarray, np.ndarray]:
    """Labels set by thresholds on raw features (age, salary): an offset or gain on those moves inputs across them."""
    from river.datasets import synth

    return _rows(list(synth.Agrawal(classification_function=AGRAWAL_FUNCTION, seed=0).take(AGRAWAL_ROWS)))


LOADERS: dict[str, tuple[str, Callable[[], tuple[np.ndarray, np.ndarray]]]] = {
    "segments": ("river's bundled ImageSegments", lambda: _river("ImageSegments")),
    "phishing": ("river's bundled Phishing", lambda: _river("Phishing")),
    "breast-cancer": ("scikit-learn's bundled breast cancer (Wisconsin)", _breast_cancer),
    "shuttle": (f"river's bundled Shuttle ({SHUTTLE_ROWS} rows drawn once)", _shuttle),
    "waveform-skewed": ("river's Waveform generator drawn to an 80/15/5 prior", _waveform_skewed),
    "agrawal": ("river's Agrawal generator (function 2)", _agrawal),
}
DATASETS = tuple(LOADERS)


def describe(name: str) -> str:
    """Where ``name``'s rows come from, for a report."""
    return LOADERS[_known(name)][0]


def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    """``X`` float32 ``(n, d)`` and ``y`` int64 ``(n,)`` of dataset ``name``."""
    return LOADERS[_known(name)][1]()


def _known(name: str) -> str:
    if name not in LOADERS:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, got {name!r}")
    return name
