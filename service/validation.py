"""Turning untrusted instances (HTTP bodies, Kafka events) into model input.

One place decides what a valid instance is, so HTTP and Kafka reject the same
things with the same words.

>>> coerce_instance([[0, 1], [2, 3]], (1, 2, 2)).shape
(1, 2, 2)
>>> coerce_instance([0, 1, 2], (4,))
Traceback (most recent call last):
...
service.validation.InvalidInstance: expected 4 numbers (shape (4,)), got 3
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


class InvalidInstance(ValueError):
    """An instance that cannot be fed to the model; ``index`` names it within a batch."""

    def __init__(self, reason: str, index: int | None = None) -> None:
        super().__init__(reason if index is None else f"instance {index}: {reason}")
        self.reason = reason
        self.index = index


def _flatten(raw: Any, out: list[float]) -> None:
    if isinstance(raw, bool) or raw is None or isinstance(raw, (str, bytes, dict)):
        raise InvalidInstance(f"expected numbers, got {type(raw).__name__} {raw!r:.40}")
    if isinstance(raw, (int, float)):
        if isinstance(raw, int) and abs(raw) > FLOAT32_MAX:  # a Python float: compares exactly with huge ints
            raise InvalidInstance("value overflows float32")
        if not math.isfinite(raw):
            raise InvalidInstance(f"non-finite value {raw}")
        out.append(float(raw))
        return
    if isinstance(raw, Sequence):
        for item in raw:
            _flatten(item, out)
        return
    raise InvalidInstance(f"expected numbers, got {type(raw).__name__}")


_NUMBER_TYPES = (int, float)
FLOAT32_MAX = float(np.finfo(np.float32).max)


def _flat_fast_path(raw: list | tuple, input_shape: tuple[int, ...]) -> np.ndarray | None:
    """The common case, a flat list of plain finite numbers of the right length, without a Python walk.

    Returns None whenever anything is unusual, so the slow path finds and names the problem.
    """
    if len(raw) != int(np.prod(input_shape)) or not all(type(v) in _NUMBER_TYPES for v in raw):
        return None
    try:
        arr = np.asarray(raw, dtype=np.float64)
    except OverflowError:  # an int too large for float64
        return None
    if not np.isfinite(arr).all() or np.abs(arr).max(initial=0.0) > np.finfo(np.float32).max:
        return None
    return arr.astype(np.float32).reshape(input_shape)


def coerce_instance(raw: Any, input_shape: tuple[int, ...]) -> np.ndarray:
    """Validate one instance (flat list of d numbers, or nested to the input shape).

    Returns float32 of ``input_shape``; raises `InvalidInstance` saying what is wrong.
    """
    if not isinstance(raw, (list, tuple)):
        raise InvalidInstance(f"expected a list of numbers, got {type(raw).__name__}")
    fast = _flat_fast_path(raw, input_shape)
    if fast is not None:
        return fast
    values: list[float] = []
    _flatten(raw, values)
    expected = int(np.prod(input_shape))
    if len(values) != expected:
        raise InvalidInstance(f"expected {expected} numbers (shape {tuple(input_shape)}), got {len(values)}")
    arr = np.asarray(values, dtype=np.float64)
    if np.abs(arr).max(initial=0.0) > np.finfo(np.float32).max:
        raise InvalidInstance("value overflows float32")
    return arr.astype(np.float32).reshape(input_shape)


def coerce_instances(raws: Sequence[Any], input_shape: tuple[int, ...]) -> np.ndarray:
    """Validate a batch; the error names the first bad instance's index."""
    out = np.empty((len(raws), *input_shape), dtype=np.float32)
    for i, raw in enumerate(raws):
        try:
            out[i] = coerce_instance(raw, input_shape)
        except InvalidInstance as exc:
            raise InvalidInstance(exc.reason, index=i) from None
    return out
