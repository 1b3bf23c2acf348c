"""Where adaptation gets its data: confident pseudo-labels and a window of recent inputs.

Self-training on everything the model says is how test-time adaptation collapses:
it learns its own mistakes and drifts toward the classes it already favours. So
the buffer keeps only inputs whose *calibrated* confidence passes a high
threshold (0.99 by default), bounds each class separately (a class the model
over-predicts cannot crowd out the others) and drops exact repeats (a stream that
replays one input must not outweigh the rest).
"""

from __future__ import annotations

from typing import Literal

import numpy as np


def _as_batch(x: np.ndarray, shape: tuple[int, ...] | None) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim < 2:
        raise ValueError(f"inputs must be a batch (n, ...), got shape {x.shape}")
    if shape is not None and x.shape[1:] != shape:
        raise ValueError(f"inputs must have shape (n, {', '.join(map(str, shape))}), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("inputs must be finite")
    return x


class PseudoLabelBuffer:
    """Class-balanced, bounded, deduplicated store of confidently predicted inputs.

    Parameters
    ----------
    num_classes
        Number of classes the model predicts.
    capacity_per_class
        Most inputs kept per predicted class.
    threshold
        Minimum calibrated max-probability for an input to be kept.
    policy
        When a class is full: ``"fifo"`` replaces its oldest input (tracks a
        drifting stream); ``"reservoir"`` keeps a uniform sample of all accepted.
    decimals
        Inputs equal after rounding to this many decimals count as one.
    seed
        Seeds the reservoir's choices.

    Examples
    --------
    >>> buf = PseudoLabelBuffer(num_classes=3, capacity_per_class=2, threshold=0.9)
    >>> X = np.arange(8, dtype=np.float32).reshape(4, 2)
    >>> P = np.array([[0.95, 0.03, 0.02], [0.5, 0.3, 0.2], [0.01, 0.98, 0.01], [0.95, 0.03, 0.02]])
    >>> buf.offer(X, P)
    (3, 1)
    >>> buf.offer(X[:1], P[:1])  # already held
    (0, 1)
    >>> buf.class_counts.tolist()
    [2, 1, 0]
    >>> X_kept, y_kept = buf.samples()
    >>> y_kept.tolist()
    [0, 0, 1]
    """

    def __init__(
        self,
        num_classes: int,
        capacity_per_class: int = 256,
        threshold: float = 0.99,
        *,
        policy: Literal["fifo", "reservoir"] = "fifo",
        decimals: int = 4,
        seed: int = 0,
    ) -> None:
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        if capacity_per_class < 1:
            raise ValueError(f"capacity_per_class must be >= 1, got {capacity_per_class}")
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if policy not in ("fifo", "reservoir"):
            raise ValueError(f"policy must be 'fifo' or 'reservoir', got {policy!r}")
        if decimals < 0:
            raise ValueError(f"decimals must be >= 0, got {decimals}")
        self.num_classes = num_classes
        self.capacity_per_class = capacity_per_class
        self.threshold = threshold
        self.policy = policy
        self.decimals = decimals
        self.seed = seed
        self._reset()

    def _reset(self) -> None:
        self._x: np.ndarray | None = None  # (num_classes, capacity, *input_shape), made on the first offer
        self._confidence = np.zeros((self.num_classes, self.capacity_per_class), dtype=np.float32)
        self._keys: list[list[int | None]] = [[None] * self.capacity_per_class for _ in range(self.num_classes)]
        self._held: set[int] = set()
        self._count = np.zeros(self.num_classes, dtype=np.int64)
        self._next = np.zeros(self.num_classes, dtype=np.int64)
        self._seen = np.zeros(self.num_classes, dtype=np.int64)
        self._rng = np.random.default_rng(self.seed)

    def clear(self) -> None:
        """Drop everything (after the model changed, its old pseudo-labels are stale)."""
        self._reset()

    def __len__(self) -> int:
        return int(self._count.sum())

    @property
    def class_counts(self) -> np.ndarray:
        """Inputs held per class, ``(num_classes,)`` int64."""
        return self._count.copy()

    def _key(self, x: np.ndarray) -> int:
        return hash((np.round(x, self.decimals) + 0.0).tobytes())  # + 0.0 makes -0.0 equal 0.0

    def _slot(self, label: int) -> int | None:
        """Where a new input of class ``label`` goes, or ``None`` if the reservoir skips it."""
        count, cap = int(self._count[label]), self.capacity_per_class
        self._seen[label] += 1
        if count < cap:
            self._count[label] += 1
            return count
        if self.policy == "fifo":
            slot = int(self._next[label])
            self._next[label] = (slot + 1) % cap
            return slot
        j = int(self._rng.integers(0, self._seen[label]))
        return j if j < cap else None

    def offer(self, X: np.ndarray, probabilities: np.ndarray) -> tuple[int, int]:
        """Keep the confident, new inputs of a batch; return ``(accepted, rejected)`` counts."""
        x = _as_batch(X, None if self._x is None else self._x.shape[2:])
        p = np.asarray(probabilities, dtype=np.float64)
        if p.shape != (len(x), self.num_classes):
            raise ValueError(f"probabilities must have shape ({len(x)}, {self.num_classes}), got {p.shape}")
        if self._x is None:
            self._x = np.zeros((self.num_classes, self.capacity_per_class, *x.shape[1:]), dtype=np.float32)
        labels, confidence = p.argmax(axis=1), p.max(axis=1)
        accepted = 0
        for i in np.flatnonzero(confidence >= self.threshold):
            key, label = self._key(x[i]), int(labels[i])
            if key in self._held:
                continue
            slot = self._slot(label)
            if slot is None:
                continue
            old = self._keys[label][slot]
            if old is not None:
                self._held.discard(old)
            self._keys[label][slot] = key
            self._held.add(key)
            self._x[label, slot] = x[i]
            self._confidence[label, slot] = confidence[i]
            accepted += 1
        return accepted, len(x) - accepted

    def samples(self, max_per_class: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(X, y)``: the held inputs and their pseudo-labels, class by class.

        ``max_per_class`` caps each class (the most confident are kept), for an
        exactly balanced training set.
        """
        if self._x is None:
            return np.zeros((0,), dtype=np.float32), np.zeros((0,), dtype=np.int64)
        xs, ys = [], []
        for label in range(self.num_classes):
            count = int(self._count[label])
            order = np.arange(count)
            if max_per_class is not None and count > max_per_class:
                order = np.sort(np.argsort(-self._confidence[label, :count], kind="stable")[:max_per_class])
            xs.append(self._x[label, order])
            ys.append(np.full(len(order), label, dtype=np.int64))
        return np.concatenate(xs), np.concatenate(ys)


class RecentWindow:
    """The last ``capacity`` inputs seen, oldest first: unlabeled data for BatchNorm and SSL adaptation.

    >>> w = RecentWindow(capacity=3)
    >>> w.add(np.arange(4, dtype=np.float32).reshape(4, 1))
    >>> w.add(np.array([[9.0]]))
    >>> w.array().ravel().tolist(), len(w)
    ([2.0, 3.0, 9.0], 3)
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._reset()

    def _reset(self) -> None:
        self._x: np.ndarray | None = None
        self._classes = np.zeros(self.capacity, dtype=np.int64)
        self._filled = 0
        self._next = 0

    def clear(self) -> None:
        self._reset()

    def __len__(self) -> int:
        return self._filled

    def add(self, X: np.ndarray, classes: np.ndarray | None = None) -> None:
        """Append a batch ``(n, ...)`` and, if given, the class predicted for each; older inputs fall out once
        ``capacity`` is reached."""
        x = _as_batch(X, None if self._x is None else self._x.shape[1:])
        if self._x is None:
            self._x = np.zeros((self.capacity, *x.shape[1:]), dtype=np.float32)
        x = x[-self.capacity:]
        slots = (self._next + np.arange(len(x))) % self.capacity
        self._x[slots] = x
        if classes is not None:
            self._classes[slots] = np.asarray(classes)[-self.capacity:]
        self._next = int((self._next + len(x)) % self.capacity)
        self._filled = min(self.capacity, self._filled + len(x))

    def array(self) -> np.ndarray:
        """A copy of the window, oldest first, ``(len(self), ...)`` float32."""
        if self._x is None:
            return np.zeros((0,), dtype=np.float32)
        if self._filled < self.capacity:
            return self._x[: self._filled].copy()
        return np.roll(self._x, -self._next, axis=0)

    def classes(self) -> np.ndarray:
        """The classes given with the inputs, in the order of `array` (0 where none was given)."""
        if self._filled < self.capacity:
            return self._classes[: self._filled].copy()
        return np.roll(self._classes, -self._next)
