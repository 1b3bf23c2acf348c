"""The stream's wire format: a whole poll decoded at once gives each event the verdict the standard library gave it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from driftwise.service.events import BadEvent, decode_event, decode_events, encode_event, encode_prediction
from driftwise.service.validation import InvalidInstance, coerce_instance

SHAPE = (1, 2, 2)
VALUES: list[bytes | None] = [
    encode_event("flat", np.arange(4, dtype=np.float32)),
    b'{"id": "nested", "features": [[[0.5, 1], [2, 3]]]}',
    b'{"id": "squeezed", "features": [[0.5, 1], [2, 3]]}',
    b'{"id": "ints", "features": [1, 2, 3, 4]}',
    b'{"id": "edge", "features": [1e18, -1e18, 0, 0]}',
    None,
    b"this is not json",
    b"\xff\xfe\x00garbage",
    b"[1, 2, 3, 4]",
    b'{"features": [1, 2, 3, 4]}',
    b'{"id": "", "features": [1, 2, 3, 4]}',
    b'{"id": 7, "features": [1, 2, 3, 4]}',
    b'{"id": "nofeat"}',
    b'{"id": "short", "features": [1, 2, 3]}',
    b'{"id": "long", "features": [1, 2, 3, 4, 5]}',
    b'{"id": "nan", "features": [1, NaN, 3, 4]}',
    b'{"id": "inf", "features": [1, Infinity, 3, 4]}',
    b'{"id": "overflow", "features": [1, 1e400, 3, 4]}',
    b'{"id": "huge", "features": [1, 2e18, 3, 4]}',
    b'{"id": "hugeint", "features": [1, 2000000000000000000, 3, 4]}',
    b'{"id": "bool", "features": [true, 2, 3, 4]}',
    b'{"id": "null", "features": [null, 2, 3, 4]}',
    b'{"id": "text", "features": ["1", "2", "3", "4"]}',
    b'{"id": "object", "features": {"a": 1}}',
    b'{"id": "scalar", "features": 4}',
    b'{"id": "ragged", "features": [[1, 2], [3]]}',
    b'{"id": "badnest", "features": [[1], [2], [3], [4]]}',
    b'{"id": "after", "features": [4, 3, 2, 1]}',
]


def standard_library_verdict(value: bytes | None) -> tuple[str, np.ndarray] | tuple[str, str]:
    """The reference: what the stream did before orjson and batching, one event at a time."""
    if value is None:
        return "not_json", "empty record (no value)"
    try:
        obj = json.loads(value.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return "not_json", f"not UTF-8 text ({exc.reason} at byte {exc.start})"
    except json.JSONDecodeError as exc:
        return "not_json", f"not JSON ({exc.msg} at char {exc.pos})"
    if not isinstance(obj, dict):
        return "not_object", f"expected a JSON object, got {type(obj).__name__}"
    if not isinstance(obj.get("id"), str) or not obj["id"]:
        return "missing_id", 'the event has no "id" string'
    if "features" not in obj:
        return "invalid_features", 'the event has no "features"'
    try:
        return obj["id"], coerce_instance(obj["features"], SHAPE)
    except InvalidInstance as exc:
        return "invalid_features", exc.reason


def test_a_batch_gives_every_event_the_standard_librarys_verdict_in_order() -> None:
    batch = decode_events(VALUES, SHAPE)
    good = iter(zip(batch.ids, batch.X))
    bad = dict(batch.bad)
    assert len(batch.ids) + len(bad) == len(VALUES)
    for i, value in enumerate(VALUES):
        expected = standard_library_verdict(value)
        if i in bad:
            assert (bad[i].reason, bad[i].detail) == expected, value
        else:
            event_id, x = next(good)
            assert event_id == expected[0], value
            assert x.dtype == np.float32 and x.shape == SHAPE
            np.testing.assert_array_equal(x, expected[1])
    assert batch.ids == ["flat", "nested", "squeezed", "ints", "edge", "after"]
    assert [i for i, _ in batch.bad] == sorted(bad)


@pytest.mark.parametrize("value", VALUES)
def test_one_event_alone_gets_the_same_verdict(value: bytes | None) -> None:
    batch = decode_events([value], SHAPE)
    try:
        event = decode_event(value, SHAPE)
    except BadEvent as exc:
        assert [(e.reason, e.detail, e.event_id) for _, e in batch.bad] == [(exc.reason, exc.detail, exc.event_id)]
    else:
        assert batch.ids == [event.id]
        np.testing.assert_array_equal(batch.X[0], event.features)


def test_a_poll_of_only_bad_events_or_none_gives_an_empty_input() -> None:
    assert decode_events([b"oops"], SHAPE).X.shape == (0, *SHAPE)
    assert decode_events([], SHAPE).X.shape == (0, *SHAPE)


def test_an_int_past_float64_is_refused_by_value_not_by_crash() -> None:
    batch = decode_events([b'{"id": "big", "features": [1, ' + b"9" * 400 + b', 3, 4]}', VALUES[0]], SHAPE)
    assert batch.ids == ["flat"]
    ((index, error),) = batch.bad
    assert index == 0 and error.reason == "invalid_features" and "beyond" in error.detail


def test_a_prediction_record_reads_back_exactly() -> None:
    confidence = float(np.float32(0.8731))
    record = json.loads(encode_prediction("e-1", 2, confidence, "3"))
    assert record == {"id": "e-1", "label": 2, "confidence": confidence, "model_version": "3"}
