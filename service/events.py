"""The wire format of the Kafka stream: decoding events, encoding predictions and dead letters.

An event is ``{"id": str, "features": [...]}`` (features flat or nested to the
input shape). Anything else becomes a `BadEvent` whose ``reason`` is one of a
few fixed codes (a metric label) and whose ``detail`` says what was wrong.

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
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from driftwise.service.validation import InvalidInstance, coerce_instance

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


def decode_event(value: bytes | None, input_shape: tuple[int, ...]) -> Event:
    """Parse and validate one event's bytes; raise `BadEvent` naming the reason."""
    if value is None:
        raise BadEvent("not_json", "empty record (no value)")
    try:
        obj: Any = json.loads(value.decode("utf-8"))
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
    try:
        features = coerce_instance(obj["features"], input_shape)
    except InvalidInstance as exc:
        raise BadEvent("invalid_features", exc.reason, event_id) from None
    return Event(event_id, features)


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
    b'{"id": "x1", "label": 2, "confidence": 0.875, "model_version": "3"}'
    """
    return json.dumps({"id": event_id, "label": int(label), "confidence": float(confidence),
                       "model_version": str(model_version)}).encode()


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
