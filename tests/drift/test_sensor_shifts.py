"""Sensor shifts: shape and dtype kept, seeded, monotone in severity, scaled by the reference only."""

from __future__ import annotations

import numpy as np
import pytest

from driftwise.drift.corruptions import CLEAN
from driftwise.drift.sensor_shifts import (
    DEVELOPMENT_FAMILIES,
    HELD_OUT_FAMILIES,
    SHIFT_NAMES,
    SensorStreamBuilder,
    feature_scale,
    shift,
)


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    scales = np.array([0.02, 1.0, 5.0, 70.0, 0.4, 3.0, 10.0, 1.5, 0.1])  # raw tabular features differ in scale
    ref = (rng.normal(size=(400, 9)) * scales + 20.0).astype(np.float32)
    x = (rng.normal(size=(64, 9)) * scales + 20.0).astype(np.float32)
    return ref, x


def test_families_are_split_and_cover_every_shift():
    assert set(DEVELOPMENT_FAMILIES).isdisjoint(HELD_OUT_FAMILIES)
    assert set(DEVELOPMENT_FAMILIES) | set(HELD_OUT_FAMILIES) == set(SHIFT_NAMES)
    assert {"gain", "dead_sensor", "calibration_drift"} <= set(HELD_OUT_FAMILIES)


@pytest.mark.parametrize("name", SHIFT_NAMES)
def test_shift_keeps_shape_and_dtype_and_leaves_the_input_alone(data, name):
    ref, x = data
    before = x.copy()
    out = shift(x, name, ref, severity=3, seed=1)
    assert out.shape == x.shape and out.dtype == np.float32
    assert np.isfinite(out).all()
    assert np.array_equal(x, before), "the input is never changed in place"
    assert not np.array_equal(out, x), f"{name} at severity 3 changes something"


@pytest.mark.parametrize("name", SHIFT_NAMES)
def test_shift_is_deterministic_in_its_seed(data, name):
    ref, x = data
    assert np.array_equal(shift(x, name, ref, 3, seed=7), shift(x, name, ref, 3, seed=7))
    assert not np.array_equal(shift(x, name, ref, 3, seed=7), shift(x, name, ref, 3, seed=8))


@pytest.mark.parametrize("name", SHIFT_NAMES)
def test_a_higher_severity_moves_the_features_further(data, name):
    ref, x = data
    scale = feature_scale(ref)
    moved = [float(np.mean(np.abs(shift(x, name, ref, s, seed=3) - x) / scale)) for s in range(1, 6)]
    assert all(b > a for a, b in zip(moved, moved[1:])), f"{name}: {moved}"


def test_an_intermittent_offset_comes_and_goes_in_event_order() -> None:
    rng = np.random.default_rng(0)
    ref, x = rng.normal(0.0, 1.0, (500, 6)), rng.normal(0.0, 1.0, (2000, 6))
    out = shift(x, "intermittent_offset", ref, 3, seed=4)
    on = np.abs(out - x).max(axis=1) > 1e-6
    assert on[0] and 0.3 < on.mean() < 0.7  # on first, then about half the time
    switches = int(np.abs(np.diff(on.astype(int))).sum())
    assert 8 <= switches <= 40  # dwells of about 100 events, not a coin flip per event
    np.testing.assert_allclose(out[on], shift(x, "offset", ref, 3, seed=4)[on], rtol=1e-6)  # while on, `offset`


def test_dead_sensors_read_their_last_value_and_the_dead_set_only_grows(data):
    ref, x = data
    dead = []
    for s in range(1, 6):
        out = shift(x, "dead_sensor", ref, s, seed=5)
        stuck = np.flatnonzero((out == out[0]).all(axis=0) & ~(x == x[0]).all(axis=0))
        assert np.array_equal(out[:, stuck], np.broadcast_to(x[0, stuck], out[:, stuck].shape))
        others = np.setdiff1d(np.arange(x.shape[1]), stuck)
        assert np.array_equal(out[:, others], x[:, others]), "live sensors read what they read"
        dead.append(set(stuck.tolist()))
    assert len(dead[0]) >= 1 and all(a < b for a, b in zip(dead, dead[1:]))


def test_the_yardstick_is_the_reference_never_the_batch(data):
    ref, x = data
    centre = ref.mean(axis=0)
    wide = (ref - centre) * 2.0 + centre  # the same source, twice the spread
    for name in ("offset", "noise"):
        np.testing.assert_allclose(shift(x, name, wide, 3, seed=2) - x, 2.0 * (shift(x, name, ref, 3, seed=2) - x),
                                   rtol=1e-3, atol=1e-3)
    # calibration_drift: the gain part ignores the scale, the offset part (0.5 stds, one per sensor) doubles.
    extra = shift(x, "calibration_drift", wide, 3, seed=2) - shift(x, "calibration_drift", ref, 3, seed=2)
    hit = np.abs(extra).max(axis=0) > 1e-3
    assert hit.sum() == 3 and np.allclose(extra, extra[0], atol=1e-3)
    np.testing.assert_allclose(np.abs(extra[0, hit]), 0.5 * feature_scale(ref)[hit], rtol=1e-3, atol=1e-3)
    # The batch does not define its own scale: one row, or a constant batch, moves as a row of a larger one would.
    np.testing.assert_allclose(shift(x[:1], "offset", ref, 3, seed=2), shift(x, "offset", ref, 3, seed=2)[:1],
                               rtol=1e-6)
    flat = np.repeat(x[:1], 16, axis=0)
    assert not np.array_equal(shift(flat, "noise", ref, 3, seed=2), flat)
    assert not np.array_equal(shift(flat, "offset", ref, 3, seed=2), flat)


def test_offset_moves_a_third_of_the_features_by_a_number_of_reference_stds(data):
    ref, x = data
    move = shift(x, "offset", ref, 3, seed=4) - x
    hit = np.abs(move).max(axis=0) > 0
    assert hit.sum() == 3, "a third of 9 features"
    expected = np.broadcast_to(0.75 * feature_scale(ref)[hit], move[:, hit].shape)
    np.testing.assert_allclose(np.abs(move[:, hit]), expected, rtol=1e-3, atol=1e-4)
    assert np.allclose(move, move[0]), "a sensor's offset is the same for every row"


def test_gain_multiplies_or_divides_a_third_of_the_features(data):
    ref, x = data
    ratio = shift(x, "gain", ref, 3, seed=4) / x
    hit = ~np.isclose(ratio, 1.0).all(axis=0)
    assert hit.sum() == 3
    assert set(np.round(ratio[0, hit].astype(np.float64), 4).tolist()) <= {2.5, 0.4}


def test_clean_is_a_copy_and_bad_arguments_are_refused(data):
    ref, x = data
    out = shift(x, CLEAN, ref)
    assert np.array_equal(out, x) and out is not x
    with pytest.raises(ValueError, match="severity"):
        shift(x, "offset", ref, severity=6)
    with pytest.raises(ValueError, match="unknown"):
        shift(x, "rotation", ref)
    with pytest.raises(ValueError, match=r"\(n, d\)"):
        shift(x.reshape(64, 1, 3, 3), "offset", ref)
    with pytest.raises(ValueError, match="features"):
        shift(x[:, :4], "offset", ref)


def test_stream_builder_draws_from_the_pool_and_shifts_each_segment(data):
    ref, pool = data
    y = np.arange(len(pool)) % 7
    b = SensorStreamBuilder(pool, y, ref, severity=3, seed=0)
    s = b.concat([b.segment(CLEAN, 100), b.segment("gain", 100), b.segment(CLEAN, 100)])
    assert len(s) == 300 and s.drift_points == [100, 200] and s.x.shape == (300, 9)
    assert np.array_equal(s.y, y[s.image]), "labels travel with the rows they were drawn from"
    assert np.array_equal(s.x[:100], pool[s.image[:100]]) and not np.array_equal(s.x[100:200], pool[s.image[100:200]])
    again = SensorStreamBuilder(pool, y, ref, severity=3, seed=0)
    assert np.array_equal(again.concat([again.segment(CLEAN, 100), again.segment("gain", 100)]).x, s.x[:200])
