"""Turning untrusted instances (HTTP bodies, Kafka events) into model input.

One place decides what a valid instance is, so HTTP and Kafka reject the same
things with the same words, and ``POST /predict``'s schema (`instance_schema`)
says exactly that: an instance is its model's ``d`` input numbers, flat, nested
to the input shape, or nested to it without its leading 1s (an 8x8 image for a
``(1, 8, 8)`` model). Any other nesting is refused even when the count is right:
``[[1, 2, 3], [4]]`` for a model of 4 inputs is more likely a bug than an instance.
Values must lie within ``±MAX_ABS_VALUE`` (1e18): float32 holds up to 3.4e38, but a
network's sums over inputs near that overflow, and the prediction comes out NaN
(Schemathesis found one). No real feature is 1e18 next to what a model was trained on.

>>> accepted_shapes((1, 2, 2))
[(4,), (1, 2, 2), (2, 2)]
>>> coerce_instance([[0, 1], [2, 3]], (1, 2, 2)).shape
(1, 2, 2)
>>> coerce_instance([0, 1, 2], (4,))
Traceback (most recent call last):
...
driftwise.service.validation.InvalidInstance: expected 4 numbers (shape (4,)), got 3
>>> coerce_instance([[0, 1, 2], [3]], (4,))
Traceback (most recent call last):
...
driftwise.service.validation.InvalidInstance: expected a flat list of 4 numbers, got a ragged nesting
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
        if not isinstance(raw, int) and not math.isfinite(raw):
            raise InvalidInstance(f"non-finite value {raw}")
        if abs(raw) > MAX_ABS_VALUE:  # a Python float: compares exactly with huge ints
            shown = f"{raw:.3g}" if isinstance(raw, float) else f"{str(raw)[:12]}... ({len(str(raw))} digits)"
            raise InvalidInstance(f"value {shown} is beyond ±{MAX_ABS_VALUE:.0e}")
        out.append(float(raw))
        return
    if isinstance(raw, Sequence):
        for item in raw:
            _flatten(item, out)
        return
    raise InvalidInstance(f"expected numbers, got {type(raw).__name__}")


_NUMBER_TYPES = (int, float)
MAX_ABS_VALUE = 1e18
"""The largest magnitude an input value may have (see the module docstring)."""


def accepted_shapes(input_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The nestings an instance may have: flat, the input shape, the input shape without its leading 1s."""
    squeezed = tuple(input_shape)
    while len(squeezed) > 1 and squeezed[0] == 1:
        squeezed = squeezed[1:]
    shapes = [(int(np.prod(input_shape)),), tuple(input_shape), squeezed]
    return [shape for i, shape in enumerate(shapes) if shape not in shapes[:i]]


def instance_schema(input_shape: tuple[int, ...]) -> dict[str, Any]:
    """JSON Schema of one instance a model of ``input_shape`` accepts (`accepted_shapes`, float32-finite numbers).

    >>> instance_schema((2,))
    {'type': 'array', 'items': {'type': 'number', 'minimum': -1e+18, 'maximum': 1e+18}, 'minItems': 2, 'maxItems': 2}
    >>> len(instance_schema((1, 8, 8))["anyOf"])
    3
    """
    def nested(shape: tuple[int, ...]) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "number", "minimum": -MAX_ABS_VALUE, "maximum": MAX_ABS_VALUE}
        for n in reversed(shape):
            schema = {"type": "array", "items": schema, "minItems": n, "maxItems": n}
        return schema

    forms = [nested(shape) for shape in accepted_shapes(input_shape)]
    return forms[0] if len(forms) == 1 else {"anyOf": forms}


def nesting(raw: Any) -> tuple[int, ...] | None:
    """The shape of a regular nesting of lists (``()`` for a scalar), ``None`` for a ragged one.

    >>> nesting([[1, 2], [3, 4], [5, 6]]), nesting([[1, 2], [3]]), nesting([1, [2]])
    ((3, 2), None, None)
    """
    if not isinstance(raw, (list, tuple)):
        return ()
    inner = {nesting(item) for item in raw}
    if len(inner) > 1 or None in inner:
        return None
    return (len(raw), *(inner.pop() if inner else ()))


def _check_nesting(raw: Any, input_shape: tuple[int, ...]) -> None:
    allowed = accepted_shapes(input_shape)
    shape = nesting(raw)
    if shape not in allowed:
        got = "a ragged nesting" if shape is None else f"nesting {shape}"
        forms = " or ".join(str(a) for a in allowed[1:])
        expected = f"{allowed[0][0]} numbers, flat or nested as {forms}" if forms else f"a flat list of {allowed[0][0]} numbers"
        raise InvalidInstance(f"expected {expected}, got {got}")


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
    if not np.isfinite(arr).all() or np.abs(arr).max(initial=0.0) > MAX_ABS_VALUE:
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
    _check_nesting(raw, input_shape)
    arr = np.asarray(values, dtype=np.float64)
    if np.abs(arr).max(initial=0.0) > MAX_ABS_VALUE:  # not reached: _flatten refuses each such value
        raise InvalidInstance(f"a value is beyond ±{MAX_ABS_VALUE:.0e}")
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
