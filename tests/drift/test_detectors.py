import random

import numpy as np
import pytest
from river import naive_bayes
from river.datasets import synth

from driftwise.drift.detectors import ADWINDetector, KSWINDetector, PageHinkleyDetector, ScalarDetector, make_detector


def _confidence_stream(seed: int = 7, clean: int = 1000, drifted: int = 500) -> list[float]:
    """The stream of the docstring examples: confident predictions, then less confident ones."""
    rng = random.Random(seed)
    return [rng.gauss(0.95, 0.05) for _ in range(clean)] + [rng.gauss(0.75, 0.15) for _ in range(drifted)]


def _entropy_stream(seed: int = 7) -> list[float]:
    rng = random.Random(seed)
    return [abs(rng.gauss(0.0, 0.1)) for _ in range(1000)] + [abs(rng.gauss(0.3, 0.2)) for _ in range(500)]


def _detections(det: ScalarDetector, stream) -> list[int]:
    found = []
    for i, x in enumerate(stream):
        det.update(x)
        if det.drift_detected:
            found.append(i)
    return found


@pytest.mark.parametrize(
    "make, stream, first",
    [
        (lambda: ADWINDetector(), _confidence_stream, 1063),
        (lambda: KSWINDetector(seed=1), _confidence_stream, 1028),
        (lambda: PageHinkleyDetector(mode="up"), _entropy_stream, 1020),
    ],
)
def test_each_detector_fires_where_its_docstring_says(make, stream, first):
    found = _detections(make(), stream())
    assert found[0] == first


def _stationary_confidences(n: int, seed: int) -> np.ndarray:
    """Per-prediction confidences of a good classifier: most near 1, a long tail below."""
    return 1.0 - np.random.default_rng(seed).beta(0.5, 12.0, size=n)


@pytest.mark.parametrize(
    "make, n",
    [
        (lambda: ADWINDetector(), 50_000),
        (lambda: PageHinkleyDetector(mode="down", scale=0.06), 50_000),
        (lambda: PageHinkleyDetector(mode="both", scale=0.06), 50_000),
        (lambda: KSWINDetector(window_size=100, stat_size=30, subsample=4, seed=0), 20_000),
    ],
)
def test_defaults_stay_quiet_on_a_long_stationary_stream(make, n):
    det = make()
    scores = []
    for x in _stationary_confidences(n, seed=3).tolist():
        det.update(x)
        scores.append(det.score)
    assert det.n_detections == 0
    assert max(scores) < 1.0


@pytest.mark.parametrize(
    "make", [lambda: ADWINDetector(), lambda: KSWINDetector(seed=1), lambda: PageHinkleyDetector(mode="down")]
)
def test_score_reaches_one_when_drift_is_detected(make):
    det = make()
    stream = _confidence_stream()
    before_drift = []
    for i, x in enumerate(stream):
        det.update(x)
        if i < 1000:
            before_drift.append(det.score)
        if det.drift_detected:
            break
    assert det.drift_detected and i >= 1000
    assert max(before_drift) < 1.0
    if not isinstance(det, ADWINDetector):  # ADWIN's score checks one split only (see its docstring)
        assert det.score >= 1.0


def test_drift_detected_is_read_after_each_update_and_clears_on_the_next():
    det = PageHinkleyDetector(mode="up")
    stream = _entropy_stream()
    for x in stream[:1021]:
        det.update(x)
    assert det.drift_detected and det.n_detections == 1
    det.update(stream[1021])
    assert not det.drift_detected  # river starts over after a detection


def test_reset_forgets_the_stream_but_keeps_counting_detections():
    det = ADWINDetector()
    _detections(det, _confidence_stream())
    assert det.n_detections >= 1 and det.width > 0
    count = det.n_detections
    det.reset()
    assert det.width == 0 and det.n_updates == 0 and det.score == 0.0
    assert det.n_detections == count


def test_kswin_subsample_tests_one_value_in_n_and_counts_them_all():
    det = KSWINDetector(window_size=100, stat_size=30, subsample=3, seed=0)
    found = _detections(det, _confidence_stream())
    assert det.n_updates == 1500
    assert found and found[0] >= 1000 and all(i % 3 == 0 for i in found)


def test_page_hinkley_scale_is_a_change_of_units():
    stream = _entropy_stream()
    raw = _detections(PageHinkleyDetector(mode="up", scale=0.1), stream)
    scaled = _detections(PageHinkleyDetector(mode="up", scale=1.0), [10 * x for x in stream])
    assert raw == scaled


def _sea_error_stream(n: int = 3000) -> list[float]:
    """Prequential 0/1 errors of naive Bayes on river's SEA stream; the concept changes at 2000."""
    stream = synth.ConceptDriftStream(
        stream=synth.SEA(seed=42, variant=0), drift_stream=synth.SEA(seed=42, variant=3), seed=1, position=2000,
        width=20,
    )
    model, errors = naive_bayes.GaussianNB(), []
    for x, y in stream.take(n):
        errors.append(float(model.predict_one(x) != y))
        model.learn_one(x, y)
    return errors


def test_adwin_and_page_hinkley_find_the_concept_drift_in_rivers_sea_stream():
    errors = _sea_error_stream()
    assert _detections(ADWINDetector(), errors) == [2295]
    assert _detections(PageHinkleyDetector(mode="up", scale=0.5, delta=0.1, threshold=30), errors) == [2291]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: ADWINDetector(delta=0.0), "delta"),
        (lambda: ADWINDetector(clock=0), "clock"),
        (lambda: ADWINDetector(recent=5), "recent"),
        (lambda: PageHinkleyDetector(threshold=0), "threshold"),
        (lambda: PageHinkleyDetector(scale=0), "scale"),
        (lambda: PageHinkleyDetector(alpha=1.5), "alpha"),
        (lambda: PageHinkleyDetector(mode="sideways"), "mode"),
        (lambda: KSWINDetector(alpha=1.0), "alpha"),
        (lambda: KSWINDetector(window_size=50, stat_size=30), "stat_size"),
        (lambda: KSWINDetector(subsample=0), "subsample"),
        (lambda: make_detector("cusum"), "unknown detector kind"),
    ],
)
def test_bad_hyperparameters_are_refused_at_once(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_non_finite_values_are_refused():
    with pytest.raises(ValueError, match="finite"):
        ADWINDetector().update(float("nan"))


def test_make_detector_builds_each_kind():
    for kind, cls in (("adwin", ADWINDetector), ("page_hinkley", PageHinkleyDetector), ("kswin", KSWINDetector)):
        assert isinstance(make_detector(kind), cls)
