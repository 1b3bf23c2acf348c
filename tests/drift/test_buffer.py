import numpy as np
import pytest

from driftwise.drift.buffer import PseudoLabelBuffer, RecentWindow


def _confident(labels: np.ndarray, k: int, conf: float = 0.995) -> np.ndarray:
    """Probabilities putting ``conf`` on each row's label and the rest evenly elsewhere."""
    p = np.full((len(labels), k), (1.0 - conf) / (k - 1))
    p[np.arange(len(labels)), labels] = conf
    return p


def _distinct_inputs(n: int, d: int = 4, start: int = 0) -> np.ndarray:
    return (np.arange(start, start + n, dtype=np.float32)[:, None] + np.zeros(d, dtype=np.float32)) / 7.0


def test_only_inputs_at_or_over_the_threshold_are_kept():
    buf = PseudoLabelBuffer(num_classes=3, threshold=0.99)
    X = _distinct_inputs(4)
    P = np.array([[0.99, 0.005, 0.005], [0.98, 0.01, 0.01], [0.0, 1.0, 0.0], [0.5, 0.25, 0.25]])
    assert buf.offer(X, P) == (2, 2)
    X_kept, y_kept = buf.samples()
    np.testing.assert_array_equal(X_kept, X[[0, 2]])
    assert y_kept.tolist() == [0, 1]
    assert buf.class_counts.tolist() == [1, 1, 0]
    assert len(buf) == 2


def test_a_flood_of_one_class_never_crowds_out_the_others():
    buf = PseudoLabelBuffer(num_classes=3, capacity_per_class=10)
    buf.offer(_distinct_inputs(5, start=0), _confident(np.full(5, 2), 3))
    buf.offer(_distinct_inputs(1000, start=100), _confident(np.zeros(1000, dtype=int), 3))
    assert buf.class_counts.tolist() == [10, 0, 5]
    _, y = buf.samples()
    assert np.bincount(y, minlength=3).tolist() == [10, 0, 5]


def test_fifo_keeps_the_most_recent_inputs_of_a_full_class():
    buf = PseudoLabelBuffer(num_classes=2, capacity_per_class=5, policy="fifo")
    for start in range(0, 20, 4):
        buf.offer(_distinct_inputs(4, start=start), _confident(np.zeros(4, dtype=int), 2))
    X, _ = buf.samples()
    assert sorted((X[:, 0] * 7).round().astype(int).tolist()) == [15, 16, 17, 18, 19]


def test_reservoir_keeps_a_uniform_sample_of_everything_accepted():
    buf = PseudoLabelBuffer(num_classes=2, capacity_per_class=200, policy="reservoir", seed=0)
    n = 5000
    accepted, _ = buf.offer(_distinct_inputs(n), _confident(np.zeros(n, dtype=int), 2))
    X, _ = buf.samples()
    kept = (X[:, 0] * 7).round()
    assert len(X) == 200 and accepted < n  # later items are mostly skipped, and counted as rejected
    assert abs(kept.mean() - n / 2) < 0.1 * n  # uniform over the whole stream, not its tail
    assert kept.min() < 0.2 * n and kept.max() > 0.8 * n


def test_repeated_inputs_are_kept_once_within_and_across_batches():
    buf = PseudoLabelBuffer(num_classes=2, decimals=3)
    x = np.array([[0.25, -0.0], [0.25, 0.0], [0.2500001, 0.0], [0.5, 0.5]], dtype=np.float32)
    assert buf.offer(x, _confident(np.array([0, 0, 1, 1]), 2)) == (2, 2)
    assert buf.offer(x[:1], _confident(np.array([1]), 2)) == (0, 1)  # held already, whatever the label
    assert len(buf) == 2


def test_an_evicted_input_may_come_back():
    buf = PseudoLabelBuffer(num_classes=2, capacity_per_class=1)
    a, b = _distinct_inputs(2)
    labels = _confident(np.array([0]), 2)
    assert buf.offer(a[None], labels) == (1, 0)
    assert buf.offer(b[None], labels) == (1, 0)  # evicts a
    assert buf.offer(a[None], labels) == (1, 0)
    np.testing.assert_array_equal(buf.samples()[0], a[None])


def test_samples_keep_the_input_shape_and_can_be_capped_to_the_most_confident():
    buf = PseudoLabelBuffer(num_classes=2, threshold=0.9)
    X = np.random.default_rng(0).random((6, 1, 8, 8)).astype(np.float32)
    conf = np.array([0.91, 0.99, 0.95, 0.999, 0.92, 0.93])
    P = np.column_stack([conf, 1 - conf])
    P[4:] = P[4:, ::-1]  # the last two are class 1
    buf.offer(X, P)
    X_all, y_all = buf.samples()
    assert X_all.shape == (6, 1, 8, 8) and X_all.dtype == np.float32 and y_all.dtype == np.int64
    X_cap, y_cap = buf.samples(max_per_class=2)
    assert y_cap.tolist() == [0, 0, 1, 1]
    np.testing.assert_array_equal(X_cap[:2], X[[1, 3]])  # 0.99 and 0.999, in the order they arrived
    np.testing.assert_array_equal(X_cap[2:], X[[4, 5]])


def test_clear_forgets_everything():
    buf = PseudoLabelBuffer(num_classes=2)
    buf.offer(_distinct_inputs(3), _confident(np.array([0, 1, 1]), 2))
    buf.clear()
    assert len(buf) == 0 and buf.samples()[0].shape[0] == 0
    assert buf.offer(_distinct_inputs(3), _confident(np.array([0, 1, 1]), 2)) == (3, 0)


def test_an_empty_buffer_has_no_samples():
    X, y = PseudoLabelBuffer(num_classes=3).samples()
    assert len(X) == 0 and len(y) == 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_classes": 1}, "num_classes"),
        ({"num_classes": 2, "capacity_per_class": 0}, "capacity_per_class"),
        ({"num_classes": 2, "threshold": 0.0}, "threshold"),
        ({"num_classes": 2, "threshold": 1.01}, "threshold"),
        ({"num_classes": 2, "policy": "lifo"}, "policy"),
        ({"num_classes": 2, "decimals": -1}, "decimals"),
    ],
)
def test_bad_hyperparameters_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PseudoLabelBuffer(**kwargs)


def test_offer_refuses_mismatched_or_non_finite_batches():
    buf = PseudoLabelBuffer(num_classes=3)
    with pytest.raises(ValueError, match="probabilities must have shape"):
        buf.offer(_distinct_inputs(2), _confident(np.array([0, 1, 2]), 3))
    with pytest.raises(ValueError, match="probabilities must have shape"):
        buf.offer(_distinct_inputs(2), _confident(np.array([0, 1]), 2))
    with pytest.raises(ValueError, match="finite"):
        buf.offer(np.array([[np.nan, 0.0]]), _confident(np.array([0]), 3))
    with pytest.raises(ValueError, match="batch"):
        buf.offer(np.zeros(3), _confident(np.array([0]), 3))
    buf.offer(_distinct_inputs(1), _confident(np.array([0]), 3))
    with pytest.raises(ValueError, match=r"shape \(n, 4\)"):
        buf.offer(np.zeros((1, 5)), _confident(np.array([0]), 3))


def test_recent_window_keeps_the_last_inputs_oldest_first():
    w = RecentWindow(capacity=5)
    assert len(w) == 0 and w.array().shape == (0,)
    w.add(_distinct_inputs(3))
    np.testing.assert_array_equal(w.array(), _distinct_inputs(3))
    w.add(_distinct_inputs(4, start=3))
    np.testing.assert_array_equal(w.array(), _distinct_inputs(5, start=2))
    w.add(_distinct_inputs(12, start=7))  # bigger than the window
    np.testing.assert_array_equal(w.array(), _distinct_inputs(5, start=14))
    assert len(w) == 5


def test_recent_window_returns_a_copy_and_checks_shapes():
    w = RecentWindow(capacity=2)
    w.add(np.zeros((2, 1, 8, 8)))
    w.array()[:] = 1.0
    assert w.array().max() == 0.0
    with pytest.raises(ValueError, match="shape"):
        w.add(np.zeros((1, 64)))
    with pytest.raises(ValueError, match="capacity"):
        RecentWindow(0)
    w.clear()
    assert len(w) == 0
