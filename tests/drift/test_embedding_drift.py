import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from driftwise.drift.embedding_drift import (CONFIDENCE_LEVELS, EmbeddingDriftDetector, dependence_length,
                                          mmd_permutation_test, reference_statistics)

DIM = 16


def _gaussian(n: int, seed: int, shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, DIM)) + shift


def _slow_mmd2(window: np.ndarray, sample: np.ndarray, bandwidth: float) -> float:
    """Biased MMD^2, written out pair by pair in the textbook form."""
    def k(a, b):
        return np.exp(-((a[:, None, :] - b[None, :, :]) ** 2).sum(-1) / bandwidth)
    return float(k(window, window).mean() + k(sample, sample).mean() - 2 * k(window, sample).mean())


@pytest.fixture(scope="module")
def detector() -> EmbeddingDriftDetector:
    return EmbeddingDriftDetector(window=100, stride=10, sample_size=256, seed=0).fit(_gaussian(800, seed=1))


def test_the_docstring_shift_is_found_where_it_says():
    rng = np.random.default_rng(0)
    det = EmbeddingDriftDetector(window=100, stride=10).fit(rng.normal(size=(600, 8)))
    stream = np.r_[rng.normal(size=(500, 8)), rng.normal(size=(300, 8)) + 0.25]
    found = []
    for i in range(0, len(stream), 10):
        det.update_many(stream[i:i + 10])
        if det.drift_detected:
            found.append(i + 9)
    assert found[0] == 559
    assert det.drift_detected and found[-1] == len(stream) - 1  # once the window is drifted it stays detected


def test_incremental_statistic_equals_the_textbook_mmd(detector):
    det = detector
    det.reset()
    stream = _gaussian(537, seed=2, shift=0.1)
    for start, size in zip(np.cumsum([0, 7, 64, 1, 250, 100]), [7, 64, 1, 250, 100, 115]):
        det.update_many(stream[start:start + size])
    det._test()
    expected = _slow_mmd2(stream[-det.window:], det.reference, det.bandwidth)
    assert det.statistic == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_no_false_alarm_on_a_long_stationary_stream(detector):
    det = detector
    det.reset()
    before = det.n_detections
    stream = _gaussian(20_000, seed=3)
    scores = []
    for start in range(0, len(stream), 25):
        det.update_many(stream[start:start + 25])
        scores.append(det.score)
    assert det.n_detections == before
    assert 0.0 < max(scores) < 1.0


def test_repeating_inputs_do_not_raise_false_alarms(detector):
    det = detector
    det.reset()
    pool = _gaussian(300, seed=4)  # a stream that keeps replaying 300 inputs
    idx = np.random.default_rng(5).integers(0, len(pool), size=10_000)
    for start in range(0, len(idx), 20):
        det.update_many(pool[idx[start:start + 20]])
        assert not det.drift_detected


def test_a_mean_shift_is_detected_within_a_window(detector):
    det = detector
    delays = []
    for seed in range(3):
        det.reset()
        stream = np.r_[_gaussian(400, seed=10 + seed), _gaussian(400, seed=20 + seed, shift=0.3)]
        for start in range(0, len(stream), 10):
            det.update_many(stream[start:start + 10])
            if det.drift_detected:
                delays.append(start + 9 - 400)
                break
    assert len(delays) == 3 and all(0 <= d <= 100 for d in delays)


def test_the_calibrated_false_alarm_rate_is_the_observed_one():
    det = EmbeddingDriftDetector(window=50, stride=50, sample_size=300, false_alarm_rate=0.05, seed=0)
    det.fit(_gaussian(1500, seed=6))
    rng = np.random.default_rng(7)
    alarms = 0
    trials = 400
    for _ in range(trials):
        det.reset()
        det.update_many(rng.normal(size=(50, DIM)))
        alarms += det.drift_detected
    assert 0.025 <= alarms / trials <= 0.09


def test_reference_arrays_round_trip_through_safetensors(tmp_path):
    z = _gaussian(700, seed=8)
    p = np.random.default_rng(9).dirichlet([0.3] * 5, size=700)
    arrays = reference_statistics(z, p, window=80, sample_size=300, seed=0)
    save_file(arrays, str(tmp_path / "reference.safetensors"))
    loaded = load_file(str(tmp_path / "reference.safetensors"))
    a = EmbeddingDriftDetector.from_reference(arrays, stride=5)
    b = EmbeddingDriftDetector.from_reference(loaded, stride=5)
    assert a.window == b.window == 80 and a.threshold == b.threshold > 0
    stream = _gaussian(300, seed=10, shift=0.2)
    for start in range(0, 300, 30):
        a.update_many(stream[start:start + 30])
        b.update_many(stream[start:start + 30])
        assert a.score == b.score


def test_reference_statistics_are_named_float32_arrays():
    z = _gaussian(400, seed=11)
    p = np.random.default_rng(12).dirichlet([0.3] * 4, size=400)
    arrays = reference_statistics(z, p, window=50, sample_size=512)
    assert all(v.dtype == np.float32 for v in arrays.values())
    assert arrays["embedding_sample"].shape == (200, DIM)  # half of a small reference; the rest calibrates
    assert arrays["embedding_mean"].shape == arrays["embedding_std"].shape == (DIM,)
    assert arrays["confidence_quantiles"].shape == CONFIDENCE_LEVELS.shape
    np.testing.assert_allclose(arrays["confidence_quantiles"][[0, -1]], [p.max(1).min(), p.max(1).max()], rtol=1e-6)
    assert {"entropy_std", "margin_mean", "mmd_threshold", "mmd_bandwidth", "mmd_window"} <= set(arrays)


def test_reference_statistics_accept_bare_confidences():
    arrays = reference_statistics(_gaussian(300, seed=13), np.linspace(0.5, 1.0, 300), window=40)
    assert "confidence_std" in arrays and "entropy_std" not in arrays
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        reference_statistics(_gaussian(300, seed=13), np.linspace(0.5, 2.0, 300), window=40)
    with pytest.raises(ValueError, match="rows"):
        reference_statistics(_gaussian(300, seed=13), np.ones(10), window=40)


def test_reset_forgets_the_window_but_not_the_detections():
    det = EmbeddingDriftDetector(window=50, stride=10).fit(_gaussian(400, seed=14))
    det.update_many(_gaussian(100, seed=15, shift=1.0))
    assert det.drift_detected and det.n_detections == 1
    det.reset()
    assert not det.drift_detected and det.score == 0.0 and det.n_events == 0 and det.n_detections == 1


def test_nothing_is_tested_before_the_window_is_full():
    det = EmbeddingDriftDetector(window=50, stride=1).fit(_gaussian(400, seed=16))
    det.update_many(_gaussian(49, seed=17, shift=5.0))
    assert not det.drift_detected and det.score == 0.0
    det.update_many(_gaussian(1, seed=18, shift=5.0))
    assert det.drift_detected and det.last_detection_index == 49


def _first_detection(det: EmbeddingDriftDetector, stream: np.ndarray, batch: int = 5) -> int | None:
    det.reset()
    for start in range(0, len(stream), batch):
        det.update_many(stream[start:start + batch])
        if det.drift_detected:
            return start + batch - 1
    return None


def test_the_short_window_sees_a_large_shift_sooner_and_a_small_one_is_left_to_the_long_window():
    reference = _gaussian(800, seed=30)
    long_only = EmbeddingDriftDetector(window=200, stride=5, sample_size=400, seed=0).fit(reference)
    both = EmbeddingDriftDetector(window=200, stride=5, sample_size=400, seed=0, short_window=24).fit(reference)
    assert both.threshold == long_only.threshold and both.short_threshold > both.threshold  # a wider null
    leaving = np.r_[_gaussian(300, seed=31), _gaussian(200, seed=32, shift=1.0)]  # a domain left for another
    late, early = _first_detection(long_only, leaving) - 300, _first_detection(both, leaving) - 300
    assert early <= 15 and late >= early + 15
    subtle = np.r_[_gaussian(300, seed=33), _gaussian(300, seed=34, shift=0.15)]
    assert _first_detection(both, subtle) == _first_detection(long_only, subtle)  # only the long window finds it


def test_the_short_window_raises_no_false_alarm_on_a_long_stationary_stream():
    det = EmbeddingDriftDetector(window=200, stride=5, sample_size=400, seed=0, short_window=24)
    det.fit(_gaussian(800, seed=35))
    assert _first_detection(det, _gaussian(20_000, seed=36)) is None
    assert 0.0 < det.short_statistic < det.short_threshold


def test_the_short_window_tests_as_soon_as_it_is_full():
    det = EmbeddingDriftDetector(window=200, stride=1, sample_size=300, short_window=24).fit(_gaussian(600, seed=37))
    det.update_many(_gaussian(23, seed=38, shift=5.0))
    assert not det.drift_detected and det.score == 0.0
    det.update_many(_gaussian(1, seed=39, shift=5.0))
    assert det.drift_detected and det.last_detection_index == 23 and det.statistic == 0.0  # the long one waits


def test_the_short_window_round_trips_and_older_references_have_none():
    z, p = _gaussian(700, seed=40), np.random.default_rng(41).dirichlet([0.3] * 5, size=700)
    arrays = reference_statistics(z, p, window=100, sample_size=300, short_window=20)
    det = EmbeddingDriftDetector.from_reference(arrays)
    assert det.short_window == 20 and det.short_threshold == pytest.approx(float(arrays["mmd_short_threshold"][0]))
    older = {k: v for k, v in arrays.items() if not k.startswith("mmd_short")}
    det = EmbeddingDriftDetector.from_reference(older)
    assert det.short_window is None and det.threshold == float(arrays["mmd_threshold"][0])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"window": 5}, "window"),
        ({"window": 50, "short_window": 50}, "short_window"),
        ({"short_window": 5}, "short_window"),
        ({"stride": 0}, "stride"),
        ({"sample_size": 3}, "sample_size"),
        ({"false_alarm_rate": 0.0}, "false_alarm_rate"),
        ({"n_null": 5}, "n_null"),
    ],
)
def test_bad_hyperparameters_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EmbeddingDriftDetector(**kwargs)


def test_bad_embeddings_are_refused():
    with pytest.raises(RuntimeError, match="fit"):
        EmbeddingDriftDetector().update_many(np.zeros((1, DIM)))
    with pytest.raises(ValueError, match="n >= 64"):
        EmbeddingDriftDetector().fit(np.zeros((10, DIM)))
    det = EmbeddingDriftDetector(window=20).fit(_gaussian(100, seed=19))
    with pytest.raises(ValueError, match=f"shape \\(n, {DIM}\\)"):
        det.update_many(np.zeros((3, DIM + 1)))
    with pytest.raises(ValueError, match="finite"):
        det.update_many(np.full((1, DIM), np.inf))
    with pytest.raises(ValueError, match="lack"):
        EmbeddingDriftDetector.from_reference({"embedding_sample": np.zeros((10, DIM), np.float32)})


def test_a_constant_reference_cannot_be_calibrated():
    with pytest.raises(ValueError, match="all the same"):
        EmbeddingDriftDetector(window=20).fit(np.ones((100, DIM)))


# -- the two-sample permutation test ------------------------------------------------------------------------------
def _first_order_lag(n: int, seed: int, coefficient: float, dim: int = 8) -> np.ndarray:
    """A stationary stream read through a slow sensor: each row ``coefficient`` of the last plus fresh noise."""
    rng = np.random.default_rng(seed)
    noise, x = rng.normal(size=(n + 200, dim)), np.zeros((n + 200, dim))
    for t in range(1, n + 200):
        x[t] = coefficient * x[t - 1] + np.sqrt(1 - coefficient**2) * noise[t]
    return x[200:]


def test_the_permutation_test_keeps_its_false_alarm_rate_on_a_stationary_stream_of_dependent_rows():
    moved_rows = moved_blocks = found = 0
    for seed in range(40):
        x = _first_order_lag(256, seed, 0.75)
        before, after = x[:128], x[128:]  # two adjacent windows of one domain
        moved_rows += mmd_permutation_test(before, after, block=1) < 0.01
        moved_blocks += mmd_permutation_test(before, after) < 0.01
        found += mmd_permutation_test(before, after + 1.0) < 0.01  # and of one a standard deviation away
    assert moved_rows >= 30  # rows exchanged one by one: "moved" on nearly every draw
    assert moved_blocks <= 8 and found == 40  # 1% asked for; about 10% over 100 draws


def test_a_change_of_domain_inside_a_sample_is_not_taken_for_dependent_rows():
    window = _gaussian(128, seed=4)
    since = np.r_[_gaussian(128, seed=5)[:70], _gaussian(128, seed=6, shift=1.0)[70:]]  # the next domain, 58 rows in
    assert dependence_length(since, 16) == 1
    assert mmd_permutation_test(window, since) < 0.01


def test_independent_rows_are_exchanged_one_by_one_as_before():
    a, b = _gaussian(128, seed=3), _gaussian(128, seed=4, shift=0.2)
    assert dependence_length(a, 16) == dependence_length(b, 16) == 1
    assert mmd_permutation_test(a, b) == mmd_permutation_test(a, b, block=1)


def test_a_block_longer_than_a_sample_is_refused():
    with pytest.raises(ValueError, match="block must be"):
        mmd_permutation_test(_gaussian(10, seed=0), _gaussian(20, seed=1), block=11)
