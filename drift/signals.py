"""Label-free signals of one prediction, computed from its calibrated probabilities.

When the inputs drift away from what the model was trained on, its predictions
usually get less sure of themselves: the top probability drops, the distribution
over classes flattens (entropy rises) and the gap between the two best classes
shrinks. None of this needs a label, so it can be watched on every prediction.
All functions take a batch ``(n, k)`` of probabilities and return ``(n,)`` arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SIGNAL_NAMES = ("confidence", "entropy", "margin")


def _check_probabilities(probabilities: np.ndarray) -> np.ndarray:
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"probabilities must have shape (n, k), got {p.shape}")
    if p.shape[1] < 2:
        raise ValueError(f"need at least 2 classes, got k={p.shape[1]}")
    if not np.all(np.isfinite(p)):
        raise ValueError("probabilities must be finite")
    if p.size and (p.min() < -1e-6 or np.abs(p.sum(axis=1) - 1.0).max() > 1e-3):
        raise ValueError("each row of probabilities must be non-negative and sum to 1")
    return p


def _top2(p: np.ndarray) -> np.ndarray:
    """``(n, 2)``: second-best then best probability of each row."""
    return np.partition(p, p.shape[1] - 2, axis=1)[:, -2:]


def _entropy(p: np.ndarray) -> np.ndarray:
    plogp = p * np.log(np.where(p > 0, p, 1.0))  # 0 log 0 = 0
    return np.clip(-plogp.sum(axis=1) / np.log(p.shape[1]), 0.0, 1.0) + 0.0  # + 0.0 turns -0. into 0.


def confidence(probabilities: np.ndarray) -> np.ndarray:
    """Max-probability confidence of each row, in ``[1/k, 1]``.

    >>> confidence(np.array([[0.7, 0.2, 0.1], [0.4, 0.4, 0.2]]))
    array([0.7, 0.4])
    """
    p = _check_probabilities(probabilities)
    return p.max(axis=1)


def entropy(probabilities: np.ndarray) -> np.ndarray:
    """Shannon entropy of each row divided by ``log(k)``, so it lies in ``[0, 1]``.

    0 means all mass on one class, 1 means uniform.

    >>> entropy(np.array([[1.0, 0.0], [0.5, 0.5]]))
    array([0., 1.])
    """
    return _entropy(_check_probabilities(probabilities))


def margin(probabilities: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability of each row, in ``[0, 1]``.

    >>> margin(np.array([[0.7, 0.2, 0.1], [0.4, 0.4, 0.2]]))
    array([0.5, 0. ])
    """
    top2 = _top2(_check_probabilities(probabilities))
    return top2[:, 1] - top2[:, 0]


@dataclass(frozen=True)
class Signals:
    """The three signals of a batch, each ``(n,)`` float64."""

    confidence: np.ndarray
    entropy: np.ndarray
    margin: np.ndarray

    def __len__(self) -> int:
        return len(self.confidence)

    def get(self, name: str) -> np.ndarray:
        """The signal called ``name`` (one of `SIGNAL_NAMES`)."""
        if name not in SIGNAL_NAMES:
            raise ValueError(f"unknown signal {name!r}; expected one of {SIGNAL_NAMES}")
        return getattr(self, name)


def compute_signals(probabilities: np.ndarray) -> Signals:
    """All three signals at once (validates the input a single time).

    >>> s = compute_signals(np.array([[0.9, 0.05, 0.05]]))
    >>> round(float(s.confidence[0]), 2), round(float(s.entropy[0]), 2), round(float(s.margin[0]), 2)
    (0.9, 0.36, 0.85)
    """
    p = _check_probabilities(probabilities)
    top2 = _top2(p)
    return Signals(confidence=top2[:, 1].copy(), entropy=_entropy(p), margin=top2[:, 1] - top2[:, 0])
