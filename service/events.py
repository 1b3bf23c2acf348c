"""The wire format of the Kafka stream: decoding events, encoding predictions and dead letters.

An event is ``{"id": str, "features": [...]}`` (features flat or nested to the
input shape). Anything else becomes a `BadEvent` whose ``reason`` is one of a
few fixed codes (a metric label) and whose ``detail`` says what was wrong.

The stream decodes a whole poll at once (`decode_events`): orjson parses (16 ->
2 us an event than the standard library here), and the common event, a flat list
of the right number of plain finite numbers, is validated and stacked as one
array (21 -> about 2 us an event); anything else takes `coerce_instance`'s
one-by-one path, which names what is wrong exactly as before. What orjson
refuses but the standard library reads (``NaN``, ``Infinity``, lone surrogates)
is read by the standard library, so such an event is refused for its features,
as before, not as "not JSON". Predictions are encoded by orjson, without spaces.

>>> decode_event(b'{"id": "a", "features": [1, 2, 3, 4]}', (4,))
Event(id='a', features=array([1., 2., 3., 4.], dtype=float32))
>>> decode_event(b'{"id": "a", "features": [1, NaN, 3, 4]}', (4,))
Traceback (most recent call last):
...
driftwise.service.events.BadEvent: invalid_features: non-finite value nan
>>> decode_event(b'{"features": [1, 2, 3, 4]}', (4,)).id
Traceback (most recent call last):
...
driftwise.service.events.BadEvent: missing_id: the event has no "id" string
>>> batch = decode_events([b'{"id": "a", "features": [1, 2, 3, 4]}', b'oops', b'{"id": "b", "features": [[5, 6], [7]]}',
...                        b'{"id": "c", "features": [[5, 6], [7, 8]]}'], (1, 2, 2))
>>> batch.ids, batch.X.shape, [(i, e.reason, e.detail) for i, e in batch.bad]  # doctest: +NORMALIZE_WHITESPACE
(['a', 'c'], (2, 1, 2, 2), [(1, 'not_json', 'not JSON (Expecting value at char 0)'),
 (2, 'invalid_features', 'expected 4 numbers (shape (1, 2, 2)), got 3')])
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from driftwise.service.validation import MAX_ABS_VALUE, InvalidInstance, coerce_instance

REASONS = ("not_json", "not_object", "missing_id", "invalid_features")


class BadEvent(ValueError):
    """An event that cannot be predicted; it goes to the dead-letter topic."""

    def __init__(self, reason: str, detail: str, event_id: str | None = None) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown dead-letter reason {reason!r}; expected one of {REASONS}")
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.event_id = event_id


@dataclass(frozen=True)
class Event:
    id: str
    features: np.ndarray  # float32, input_shape


@dataclass(frozen=True)
class DecodedBatch:
    """A poll's events decoded: the good ones' ids and inputs in order, and the bad ones by index."""

    ids: list[str]
    X: np.ndarray  # float32, (len(ids), *input_shape)
    bad: list[tuple[int, BadEvent]]  # (index in the poll, why)


def _parse(value: bytes | None) -> tuple[str, Any]:
    """An event's id and raw features; `BadEvent` for anything that is not such an object."""
    if value is None:
        raise BadEvent("not_json", "empty record (no value)")
    try:
        obj: Any = orjson.loads(value)
    except orjson.JSONDecodeError:  # the standard library's reading and words, as before orjson
        try:
            obj = json.loads(value.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise BadEvent("not_json", f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except json.JSONDecodeError as exc:
            raise BadEvent("not_json", f"not JSON ({exc.msg} at char {exc.pos})") from None
    if not isinstance(obj, dict):
        raise BadEvent("not_object", f"expected a JSON object, got {type(obj).__name__}")
    event_id = obj.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise BadEvent("missing_id", 'the event has no "id" string')
    if "features" not in obj:
        raise BadEvent("invalid_features", 'the event has no "features"', event_id)
    return event_id, obj["features"]


def decode_event(value: bytes | None, input_shape: tuple[int, ...]) -> Event:
    """Parse and validate one event's bytes; raise `BadEvent` naming the reason."""
    event_id, raw = _parse(value)
    try:
        features = coerce_instance(raw, input_shape)
    except InvalidInstance as exc:
        raise BadEvent("invalid_features", exc.reason, event_id) from None
    return Event(event_id, features)


_PLAIN_NUMBERS = frozenset((int, float))


def decode_events(values: Sequence[bytes | None], input_shape: tuple[int, ...]) -> DecodedBatch:
    """`decode_event` over a poll, the common flat event validated as one array; the same verdict per event."""
    d = int(np.prod(input_shape))
    ids: list[str] = []
    raws: list[Any] = []
    where: list[int] = []  # each parsed event's index in ``values``
    bad: list[tuple[int, BadEvent]] = []
    for i, value in enumerate(values):
        try:
            event_id, raw = _parse(value)
        except BadEvent as exc:
            bad.append((i, exc))
            continue
        ids.append(event_id)
        raws.append(raw)
        where.append(i)
    X = np.empty((len(raws), d), dtype=np.float32)
    flat = [j for j, raw in enumerate(raws)
            if type(raw) is list and len(raw) == d and _PLAIN_NUMBERS.issuperset(map(type, raw))]
    done = np.zeros(len(raws), dtype=bool)
    if flat:
        try:
            A = np.array([raws[j] for j in flat], dtype=np.float64).reshape(len(flat), d)
        except OverflowError:  # an int too large for float64: every row one by one
            A = None
        if A is not None:
            ok = np.abs(A).max(axis=1, initial=0.0) <= MAX_ABS_VALUE  # False for a NaN or an infinity too
            rows = np.asarray(flat, dtype=np.intp)[ok]
            X[rows] = A[ok]
            done[rows] = True
    keep = np.ones(len(raws), dtype=bool)
    for j in np.flatnonzero(~done):  # unusual events: the one-by-one path finds and names the problem
        try:
            X[j] = coerce_instance(raws[j], input_shape).reshape(-1)
        except InvalidInstance as exc:
            bad.append((where[j], BadEvent("invalid_features", exc.reason, ids[j])))
            keep[j] = False
    if not keep.all():
        ids = [event_id for event_id, k in zip(ids, keep) if k]
        X = X[keep]
    bad.sort(key=lambda b: b[0])
    return DecodedBatch(ids, X.reshape(len(ids), *input_shape), bad)


def encode_event(event_id: str, features: np.ndarray | list[float]) -> bytes:
    """The bytes of one event, features flattened (what `driftwise.service.replay` produces).

    >>> encode_event("x1", np.array([[0.5, 1.0]], dtype=np.float32))
    b'{"id": "x1", "features": [0.5, 1.0]}'
    """
    flat = np.asarray(features, dtype=np.float32).reshape(-1).tolist()
    return json.dumps({"id": event_id, "features": flat}).encode()


def encode_prediction(event_id: str, label: int, confidence: float, model_version: str) -> bytes:
    """The bytes of one prediction record (key = id).

    >>> encode_prediction("x1", 2, 0.875, "3")
    b'{"id":"x1","label":2,"confidence":0.875,"model_version":"3"}'
    """
    return orjson.dumps({"id": event_id, "label": int(label), "confidence": float(confidence),
                         "model_version": str(model_version)})


def encode_dead_letter(error: BadEvent, value: bytes | None, *, topic: str, partition: int, offset: int) -> bytes:
    """A dead letter: why, where it came from, and the original payload (text, or base64 when not UTF-8).

    >>> json.loads(encode_dead_letter(BadEvent("not_json", "oops"), b"\\xff", topic="t", partition=0, offset=7))
    ... # doctest: +NORMALIZE_WHITESPACE
    {'reason': 'not_json', 'detail': 'oops', 'id': None, 'topic': 't', 'partition': 0, 'offset': 7,
     'payload': None, 'payload_base64': '/w=='}
    """
    text: str | None = None
    b64: str | None = None
    if value is not None:
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            b64 = base64.b64encode(value).decode("ascii")
    return json.dumps({
        "reason": error.reason, "detail": error.detail, "id": error.event_id,
        "topic": topic, "partition": partition, "offset": offset,
        "payload": text, "payload_base64": b64,
    }).encode()
