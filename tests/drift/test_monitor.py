import json

import numpy as np
import pytest
import torch
from scipy import ndimage
from sklearn.datasets import load_digits
from threadpoolctl import threadpool_limits

from driftwise.drift.embedding_drift import reference_statistics
from driftwise.drift.monitor import DEFAULT_DETECTORS, DetectorSpec, DriftMonitor
from driftwise.models.classifier import Classifier
from driftwise.models.config import ModelConfig

BATCH = 32


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    """The monitor's matrices are small: on a busy 2-core box, BLAS threads only fight each other."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


# -- a real model on digits ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_model():
    """A small MLP classifier trained briefly on 800 digits; the rest split into reference and stream pools."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        digits = load_digits()
        X, y = (digits.data / 16.0).astype(np.float32), digits.target
        order = np.random.default_rng(0).permutation(len(X))
        train, ref, pool = order[:800], order[800:1300], order[1300:]
        model = Classifier(ModelConfig(encoder="mlp", input_shape=(64,), num_classes=10))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        xt, yt = torch.from_numpy(X[train]), torch.from_numpy(y[train])
        generator = torch.Generator().manual_seed(0)
        model.train()
        for _ in range(15):
            perm = torch.randperm(len(xt), generator=generator)
            for i in range(0, len(xt), 64):
                b = perm[i:i + 64]
                loss = torch.nn.functional.cross_entropy(model.raw_logits(xt[b]), yt[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
        model.eval()

        def predict(inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            with torch.inference_mode():
                logits, z = model.forward_with_embedding(torch.from_numpy(inputs.astype(np.float32)))
            return torch.softmax(logits, dim=1).numpy(), z.numpy()

        ref_p, ref_z = predict(X[ref])
        rotated = np.stack([ndimage.rotate(x.reshape(8, 8), 30, reshape=False, order=1) for x in X[pool]])
        noisy = np.clip(X[pool] + np.random.default_rng(1).normal(0.0, 0.3, X[pool].shape), 0.0, 1.0)
        pools = {
            "clean": predict(X[pool]), "gaussian_noise": predict(noisy), "rotation": predict(rotated.reshape(-1, 64)),
        }
        accuracy = {k: float((p.argmax(1) == y[pool]).mean()) for k, (p, _) in pools.items()}
        yield reference_statistics(ref_z, ref_p), pools, accuracy
    finally:
        torch.set_num_threads(threads)


def _draw(pool: tuple[np.ndarray, np.ndarray], n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.random.default_rng(seed).integers(0, len(pool[0]), size=n)
    return pool[0][idx], pool[1][idx]


def _run(monitor: DriftMonitor, p: np.ndarray, z: np.ndarray) -> None:
    for start in range(0, len(p), BATCH):
        monitor.update(p[start:start + BATCH], z[start:start + BATCH])


def test_the_model_is_good_on_clean_digits_and_hurt_by_the_corruptions(digits_model):
    _, _, accuracy = digits_model
    assert accuracy["clean"] > 0.95
    assert accuracy["gaussian_noise"] < accuracy["clean"] - 0.05 and accuracy["rotation"] < 0.8


def test_no_drift_is_confirmed_on_5k_stationary_digits(digits_model):
    reference, pools, _ = digits_model
    monitor = DriftMonitor(reference, seed=0)
    _run(monitor, *_draw(pools["clean"], 5000, seed=0))
    snap = monitor.snapshot()
    assert not snap["drift_confirmed"] and snap["confirmations"] == 0
    assert all(d["detections"] == 0 for d in snap["detectors"].values())
    assert all(d["score"] < 1.0 for d in snap["detectors"].values())


@pytest.mark.parametrize("corruption", ["gaussian_noise", "rotation"])
def test_an_abrupt_corruption_is_confirmed_within_100_events(digits_model, corruption):
    reference, pools, _ = digits_model
    delays = []
    for seed in range(3):
        p0, z0 = _draw(pools["clean"], 800, seed=10 + seed)
        p1, z1 = _draw(pools[corruption], 600, seed=20 + seed)
        monitor = DriftMonitor(reference, seed=seed)
        _run(monitor, np.r_[p0, p1], np.r_[z0, z1])
        assert monitor.drift_confirmed, monitor.snapshot()
        delays.append(monitor.last_confirmation_index - 800)
    assert min(delays) >= 0
    assert np.median(delays) <= 100, delays


def test_snapshot_is_plain_json_with_every_detector(digits_model):
    reference, pools, _ = digits_model
    monitor = DriftMonitor(reference)
    _run(monitor, *_draw(pools["rotation"], 400, seed=1))
    snap = json.loads(json.dumps(monitor.snapshot(), allow_nan=False))
    assert set(snap["detectors"]) == {*DEFAULT_DETECTORS, "embedding", "prior"}
    for d in snap["detectors"].values():
        assert {"kind", "signal", "score", "detected", "detections", "last_detection_index"} <= set(d)
    assert len(snap["detectors"]["prior"]["prior"]) == 10  # the predicted class prior, as the test estimated it
    assert snap["events_seen"] == snap["events_since_reset"] == 400
    assert snap["drift_confirmed"] and snap["reason"]
    assert set(snap["signals"]) == {"confidence", "entropy", "margin"}
    assert snap["rule"] == {"min_votes": 2, "vote_window": 200, "embedding_confirms": True}


def _binary_predictions(n: int, share: float, seed: int) -> np.ndarray:
    """A model 80% sure and right 80% of the time, classes arriving at ``1 - share`` / ``share``."""
    rng = np.random.default_rng(seed)
    y, right = rng.random(n) < share, rng.random(n) < 0.8
    p1 = np.where(y == right, 0.8, 0.2)
    return np.column_stack([1 - p1, p1])


def test_a_new_class_prior_is_confirmed_though_the_embeddings_did_not_move():
    rng = np.random.default_rng(0)
    reference = reference_statistics(rng.normal(size=(600, 4)), _binary_predictions(600, 0.5, seed=1), window=100)
    monitor = DriftMonitor(reference)
    before, after = _binary_predictions(1000, 0.5, seed=2), _binary_predictions(600, 0.9, seed=3)
    _run(monitor, np.r_[before, after], rng.normal(size=(1600, 4)))  # the same embeddings throughout
    snap = monitor.snapshot()
    assert monitor.drift_confirmed and "class prior" in monitor.reason
    assert 1000 <= monitor.last_confirmation_index <= 1400
    assert not snap["detectors"]["embedding"]["detections"]
    assert snap["detectors"]["prior"]["prior"][1] == pytest.approx(0.9, abs=0.06)


def test_a_drift_confirmed_on_the_prior_is_the_prior_alone_only_while_the_embeddings_stay_put():
    rng = np.random.default_rng(0)
    reference = reference_statistics(rng.normal(size=(600, 4)), _binary_predictions(600, 0.5, seed=1), window=100)
    monitor = DriftMonitor(reference)
    _run(monitor, np.r_[_binary_predictions(1000, 0.5, seed=2), _binary_predictions(600, 0.9, seed=3)],
         rng.normal(size=(1600, 4)))
    assert monitor.confirmed_by == "prior" and monitor.prior_alone
    _run(monitor, _binary_predictions(400, 0.9, seed=4), rng.normal(loc=2.0, size=(400, 4)))  # the features move
    assert monitor.drift_confirmed and monitor.confirmed_by == "prior"  # latched: confirmed once, as it was
    assert not monitor.prior_alone


def test_a_reference_without_mean_probabilities_runs_no_prior_test():
    rng = np.random.default_rng(0)
    reference = reference_statistics(rng.normal(size=(600, 4)), _binary_predictions(600, 0.5, seed=1), window=100)
    del reference["probability_mean"]  # saved before the test existed
    monitor = DriftMonitor(reference)
    _run(monitor, _binary_predictions(1600, 0.9, seed=3), rng.normal(size=(1600, 4)))
    assert "prior" not in monitor.snapshot()["detectors"] and not monitor.drift_confirmed


# -- the confirmation rule, on synthetic predictions ---------------------------------------------------------------
def _probabilities(n: int, sharpness: float, seed: int, k: int = 5) -> np.ndarray:
    logits = np.random.default_rng(seed).normal(size=(n, k))
    logits[:, 0] += sharpness
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


ENTROPY_UP = DetectorSpec("entropy", "page_hinkley", {"mode": "up"})
MARGIN_UP = DetectorSpec("margin", "page_hinkley", {"mode": "up"})


def _feed(monitor: DriftMonitor, p: np.ndarray, z: np.ndarray | None = None, batch: int = 20) -> list[int]:
    """Update batch by batch; return the batches' end indices where a drift was newly confirmed."""
    confirmed = []
    for start in range(0, len(p), batch):
        monitor.update(p[start:start + batch], None if z is None else z[start:start + batch])
        if monitor.newly_confirmed:
            confirmed.append(start + batch - 1)
    return confirmed


def test_one_vote_is_not_enough_when_two_are_required():
    stream = np.r_[_probabilities(1000, 4.0, seed=0), _probabilities(1000, 1.5, seed=1)]
    one = DriftMonitor(detectors={"entropy_up": ENTROPY_UP, "margin_up": MARGIN_UP}, min_votes=1)
    two = DriftMonitor(detectors={"entropy_up": ENTROPY_UP, "margin_up": MARGIN_UP}, min_votes=2)
    assert len(_feed(one, stream)) == 1 and one.reason == "1 detectors within 200 events: entropy_up"
    assert _feed(two, stream) == [] and not two.drift_confirmed
    snap = two.snapshot()["detectors"]
    assert snap["entropy_up"]["detections"] >= 1 and snap["margin_up"]["detections"] == 0


def test_votes_must_fall_within_the_vote_window():
    # entropy rises at 1000 (one vote), predictions turn very sure at 3000 (the margin vote), 2000 events later
    stream = np.r_[_probabilities(1000, 3.0, 0), _probabilities(2000, 1.0, 1), _probabilities(1000, 9.0, 2)]
    specs = {"entropy_up": ENTROPY_UP, "margin_up": MARGIN_UP}
    narrow = DriftMonitor(detectors=specs, min_votes=2, vote_window=200)
    wide = DriftMonitor(detectors=specs, min_votes=2, vote_window=2500)
    assert _feed(narrow, stream) == []
    confirmed = _feed(wide, stream)
    assert len(confirmed) == 1 and 3000 <= confirmed[0] < 3200
    assert wide.reason == "2 detectors within 2500 events: entropy_up, margin_up"


def _embedding_shift_stream(seed: int = 0) -> tuple[dict, np.ndarray, np.ndarray]:
    """Predictions stay just as confident while the embeddings move: only the embedding test can see it."""
    rng = np.random.default_rng(seed)
    reference = reference_statistics(rng.normal(size=(600, 8)), _probabilities(600, 4.0, seed=1), window=100)
    p = _probabilities(1600, 4.0, seed=2)
    z = np.r_[rng.normal(size=(800, 8)), rng.normal(size=(800, 8)) + 0.4]
    return reference, p, z


def test_the_embedding_test_alone_confirms_a_drift_the_scalar_signals_miss():
    reference, p, z = _embedding_shift_stream()
    monitor = DriftMonitor(reference)
    confirmed = _feed(monitor, p, z)
    assert len(confirmed) == 1 and 800 <= confirmed[0] <= 900
    assert monitor.reason.startswith("embedding MMD over its calibrated threshold")
    assert monitor.last_confirmation_index == confirmed[0]
    scalar = [d for name, d in monitor.snapshot()["detectors"].items() if name != "embedding"]
    assert all(d["detections"] == 0 for d in scalar)


def test_when_the_embedding_test_is_only_a_vote_it_needs_company():
    reference, p, z = _embedding_shift_stream()
    alone = DriftMonitor(reference, embedding_confirms=False, min_votes=2)
    assert _feed(alone, p, z) == []
    assert alone.snapshot()["detectors"]["embedding"]["detected"]
    single = DriftMonitor(reference, embedding_confirms=False, min_votes=1)
    assert len(_feed(single, p, z)) == 1 and single.reason.endswith(": embedding")


def test_reset_clears_the_confirmation_but_keeps_the_counts():
    reference, p, z = _embedding_shift_stream()
    monitor = DriftMonitor(reference)
    _feed(monitor, p, z)
    assert monitor.drift_confirmed
    detections = monitor.snapshot()["detectors"]["embedding"]["detections"]
    why = monitor.reason
    monitor.reset()
    snap = monitor.snapshot()
    assert not snap["drift_confirmed"] and snap["reason"] is None and snap["last_confirmation_index"] is None
    assert snap["events_since_reset"] == 0 and snap["events_seen"] == 1600
    assert snap["confirmations"] == 1 and snap["last_confirmation_reason"] == why is not None and snap["detectors"]["embedding"]["detections"] == detections
    assert snap["signals"] == {"confidence": None, "entropy": None, "margin": None}


def test_reset_with_a_new_reference_accepts_the_new_normal():
    reference, p, z = _embedding_shift_stream()
    monitor = DriftMonitor(reference)
    _feed(monitor, p, z)
    rng = np.random.default_rng(5)
    adapted = reference_statistics(rng.normal(size=(600, 8)) + 0.4, _probabilities(600, 4.0, seed=6), window=100)
    monitor.reset(adapted)
    assert _feed(monitor, p[800:], z[800:]) == [] and not monitor.drift_confirmed


def test_signal_means_roll_over_the_last_predictions():
    monitor = DriftMonitor(detectors={}, min_votes=1, rolling_window=50)
    monitor.update(np.tile([[0.5, 0.5]], (100, 1)))
    monitor.update(np.tile([[0.9, 0.1]], (30, 1)))
    means = monitor.signal_means
    assert means["confidence"] == pytest.approx((20 * 0.5 + 30 * 0.9) / 50)
    assert means["margin"] == pytest.approx(30 * 0.8 / 50)


def test_an_empty_batch_changes_nothing():
    monitor = DriftMonitor()
    monitor.update(np.zeros((0, 3)), np.zeros((0, 4)))
    assert monitor.events_seen == 0 and not monitor.newly_confirmed


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"detectors": {"x": DetectorSpec("variance", "adwin")}}, "unknown signal"),
        ({"detectors": {"embedding": DetectorSpec("entropy", "adwin")}}, "reserved"),
        ({"detectors": {"x": DetectorSpec("entropy", "cusum")}, "min_votes": 1}, "unknown detector kind"),
        ({"min_votes": 4}, "min_votes"),
        ({"min_votes": 0}, "min_votes"),
        ({"vote_window": 0}, "vote_window"),
    ],
)
def test_bad_configuration_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DriftMonitor(**kwargs)


def test_mismatched_batches_are_refused():
    monitor = DriftMonitor()
    with pytest.raises(ValueError, match="3 probabilities but 2 embeddings"):
        monitor.update(_probabilities(3, 4.0, seed=0), np.zeros((2, 4)))
