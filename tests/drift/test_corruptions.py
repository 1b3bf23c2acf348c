"""Digits-C corruptions and the streams built from them."""

from __future__ import annotations

import numpy as np
import pytest

from driftwise.drift.corruptions import CLEAN, CORRUPTION_NAMES, StreamBuilder, corrupt, gradual
from driftwise.models.digits import load_digits_images


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_digits_images()
    return x[:200], y[:200]


@pytest.mark.parametrize("name", CORRUPTION_NAMES)
def test_every_corruption_changes_images_and_stays_in_unit_range(digits, name):
    x, _ = digits
    out = corrupt(x, name, severity=3, seed=0)
    assert out.shape == x.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert np.abs(out - x).mean() > 0.01
    assert np.array_equal(out, corrupt(x, name, severity=3, seed=0)), "same seed, same images"


@pytest.mark.parametrize("name", ["gaussian_noise", "blur", "contrast", "salt_and_pepper"])
def test_higher_severity_moves_images_further(digits, name):
    x, _ = digits
    mild, harsh = corrupt(x, name, 1, seed=0), corrupt(x, name, 5, seed=0)
    assert np.abs(harsh - x).mean() > np.abs(mild - x).mean()


def test_corrupt_leaves_input_untouched_and_clean_is_a_copy(digits):
    x, _ = digits
    before = x.copy()
    corrupt(x, "occlusion", 5, seed=1)
    assert np.array_equal(x, before)
    assert np.array_equal(corrupt(x, CLEAN), x)


def test_rotation_by_multiples_keeps_ink_roughly(digits):
    x, _ = digits
    out = corrupt(x, "rotation", 1, seed=0)
    assert abs(out.sum() - x.sum()) / x.sum() < 0.15  # bilinear rotation of 10 degrees loses little ink


def test_corrupt_rejects_bad_input(digits):
    x, _ = digits
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(x, "fog")
    with pytest.raises(ValueError, match="severity"):
        corrupt(x, "blur", severity=6)
    with pytest.raises(ValueError, match="shaped"):
        corrupt(x[:, 0], "blur")


def test_gradual_moves_from_a_to_b():
    a, b = np.zeros((1000, 1)), np.ones((1000, 1))
    mix = gradual(a, b, 1000, seed=0)[:, 0]
    assert mix[:100].mean() < 0.2 and mix[-100:].mean() > 0.8 and mix[-1] == 1.0
    with pytest.raises(ValueError):
        gradual(a, b, 2000)


def test_abrupt_stream_marks_the_drift_point_and_keeps_labels(digits):
    x, y = digits
    s = StreamBuilder(x, y, seed=0).abrupt(CLEAN, "inversion", 150, 250)
    assert len(s) == 400 and s.drift_points == [150]
    assert set(s.domain[:150]) == {CLEAN} and set(s.domain[150:]) == {"inversion"}
    assert set(s.y.tolist()) <= set(y.tolist())
    assert s.x[:150].max() <= 1.0 and s.x[150:, 0, 0, 0].mean() > 0.5  # inverted background is bright


def test_every_pool_image_is_used_before_any_repeats(digits):
    x, y = digits
    s = StreamBuilder(x, y, seed=0).segment(CLEAN, 200)
    assert len({arr.tobytes() for arr in s.x}) == len({arr.tobytes() for arr in x})


def test_streams_record_which_pool_image_each_event_came_from(digits):
    x, y = digits
    builder = StreamBuilder(x, y, seed=2)
    for s in (builder.abrupt(CLEAN, "blur", 30, 70), builder.gradual(CLEAN, "shift", 20, 40, 20)):
        assert s.image is not None and len(s.image) == len(s)
        assert np.array_equal(s.y, y[s.image])
    clean = builder.segment(CLEAN, 50)
    assert np.array_equal(clean.x, x[clean.image])


def test_gradual_recurring_and_continual_streams(digits):
    x, y = digits
    builder = StreamBuilder(x, y, seed=1)
    g = builder.gradual(CLEAN, "blur", 100, 400, 100)
    assert g.drift_points == [100] and len(g) == 600
    assert (g.domain[100:200] == "blur").mean() < (g.domain[400:500] == "blur").mean()
    r = builder.recurring(CLEAN, "contrast", 50, 2)
    assert r.drift_points == [50, 100, 150, 200] and len(r) == 250
    c = builder.continual(["blur", "shift", "inversion"], 100, 650)
    assert len(c) == 650 and c.drift_points == [100, 200, 300, 400, 500, 600]
    assert list(c.domain[[0, 100, 200, 300]]) == ["blur", "shift", "inversion", "blur"]
