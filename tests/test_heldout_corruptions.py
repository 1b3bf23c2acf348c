"""Held-out shift families: same contract as the development ones, and kept apart from them."""

from __future__ import annotations

import numpy as np
import pytest

from driftwise.drift.corruptions import (
    CONCEPT_FAMILIES,
    CORRUPTION_NAMES,
    DEVELOPMENT_FAMILIES,
    HELD_OUT_FAMILIES,
    StreamBuilder,
    corrupt,
)
from driftwise.models.digits import load_digits_images


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_digits_images()
    return x[:200], y[:200]


def test_families_are_disjoint_and_cover_the_taxonomy():
    assert len(HELD_OUT_FAMILIES) >= 6 and len(set(HELD_OUT_FAMILIES)) == len(HELD_OUT_FAMILIES)
    assert not set(HELD_OUT_FAMILIES) & set(DEVELOPMENT_FAMILIES)
    assert not set(HELD_OUT_FAMILIES) & set(CONCEPT_FAMILIES)
    assert set(DEVELOPMENT_FAMILIES) | set(CONCEPT_FAMILIES) == set(CORRUPTION_NAMES)


@pytest.mark.parametrize("name", HELD_OUT_FAMILIES)
def test_held_out_family_keeps_shape_dtype_and_unit_range(digits, name):
    x, _ = digits
    before = x.copy()
    for severity in range(1, 6):
        out = corrupt(x, name, severity=severity, seed=3)
        assert out.shape == x.shape and out.dtype == np.float32
        assert out.min() >= 0.0 and out.max() <= 1.0 and np.isfinite(out).all()
    assert np.array_equal(x, before), "the input is never changed in place"


@pytest.mark.parametrize("name", HELD_OUT_FAMILIES)
def test_held_out_family_is_deterministic_per_seed(digits, name):
    x, _ = digits
    out = corrupt(x, name, severity=3, seed=5)
    assert np.array_equal(out, corrupt(x, name, severity=3, seed=5))
    if name not in ("pixelate", "gamma"):  # the two deterministic transforms ignore the seed
        assert not np.array_equal(out, corrupt(x, name, severity=3, seed=6))


@pytest.mark.parametrize("name", HELD_OUT_FAMILIES)
def test_held_out_severity_moves_images_further_from_clean(digits, name):
    x, _ = digits
    distance = [float(np.abs(corrupt(x, name, s, seed=0) - x).mean()) for s in range(1, 6)]
    assert distance[0] > 0.01
    assert all(b > a for a, b in zip(distance, distance[1:])), distance


@pytest.mark.parametrize("name", HELD_OUT_FAMILIES)
def test_stream_builder_accepts_held_out_families(digits, name):
    x, y = digits
    s = StreamBuilder(x, y, severity=3, seed=0).abrupt("clean", name, 20, 30)
    assert len(s) == 50 and s.drift_points == [20] and set(s.domain[20:]) == {name}
    assert np.array_equal(s.y, y[s.image])


def test_unknown_family_names_both_sets(digits):
    x, _ = digits
    with pytest.raises(ValueError, match="speckle_noise"):
        corrupt(x, "frost")
