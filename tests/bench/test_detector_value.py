"""The detector-value bench: which variants it compares, and how it counts confirmations."""

from __future__ import annotations

import numpy as np

from driftwise.bench.detector_value import confirmations, variants
from driftwise.drift.embedding_drift import reference_statistics
from driftwise.drift.monitor import DEFAULT_DETECTORS, KSWIN_ON_CONFIDENCE, DriftMonitor


def test_the_defaults_are_compared_with_kswin_added_and_with_kswin_for_each_default() -> None:
    found = variants()
    assert found["defaults"] == DEFAULT_DETECTORS and "kswin" not in DEFAULT_DETECTORS
    assert found["with kswin"] == {**DEFAULT_DETECTORS, "kswin": KSWIN_ON_CONFIDENCE}
    for name in DEFAULT_DETECTORS:
        assert set(found[f"with kswin, without {name}"]) == set(DEFAULT_DETECTORS) - {name} | {"kswin"}
    for detectors in found.values():  # each can confirm by the defaults' two votes
        DriftMonitor(None, detectors=detectors)


def _predictions(n: int, shifted: bool, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    logits = rng.normal(size=(n, 5))
    logits[:, 0] += 2.0 if shifted else 5.0
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return p, rng.normal(size=(n, 8)) + (0.5 if shifted else 0.0)


def test_a_shift_is_confirmed_after_it_starts_and_the_monitor_restarts_after_each_confirmation() -> None:
    rng = np.random.default_rng(0)
    p_ref, z_ref = _predictions(600, False, rng)
    clean, drifted = _predictions(800, False, rng), _predictions(800, True, rng)
    p, z = np.r_[clean[0], drifted[0]], np.r_[clean[1], drifted[1]]
    found = confirmations(DriftMonitor(reference_statistics(z_ref, p_ref, window=100)), p, z, np.arange(1600))
    assert found and all(fed > 800 for fed, _ in found)  # none in the clean half
    assert len(found) >= 2  # restarted, the drift is confirmed again
