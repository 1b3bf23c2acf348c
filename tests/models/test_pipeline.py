"""fit_model end to end on small digits: pretrain, head, calibration, anchors; and its data checks."""

import json

import numpy as np
import pytest
import torch

from driftwise.bench.ssl import run_ssl_bench
from driftwise.models.collapse import RepresentationCollapse
from driftwise.models.config import ModelConfig
from driftwise.models.digits import load_digits_images, split_label_fraction
from driftwise.models.pipeline import anchor_set, calibration_split, fit_model, source_prior
from driftwise.models.train import recalibrate_batchnorm

SMALL_CNN = ModelConfig(encoder="cnn", input_shape=(1, 8, 8), num_classes=10, width=8, embed_dim=32)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits_images()
    return X[:600], y[:600], X[1400:], y[1400:]


def _accuracy(model, X, y) -> float:
    with torch.no_grad():
        return float((model(torch.as_tensor(X)).argmax(1).numpy() == y).mean())


def test_supervised_finetune_learns_digits_and_sets_a_temperature(digits):
    X, y, X_test, y_test = digits
    result = fit_model(X, y, SMALL_CNN, objective=None, head="finetune", steps=60, device="cpu", seed=0)
    assert result.pretrain_report is None and result.metrics["objective"] == "supervised"
    assert _accuracy(result.model, X_test, y_test) > 0.85
    assert float(result.model.temperature) == pytest.approx(result.metrics["temperature"])
    assert result.metrics["n_calibration"] == 120 and result.metrics["n_head_train"] == 480
    assert next(result.model.parameters()).device.type == "cpu" and not result.model.training


def test_ssl_pretraining_uses_unlabeled_inputs_and_reports_each_epoch(digits):
    X, y, X_test, y_test = digits
    y_partial = split_label_fraction(y, 0.1, seed=0)
    epochs = []
    result = fit_model(
        X, y_partial, SMALL_CNN, objective="simclr", head="linear", pretrain_epochs=3, pretrain_batch_size=128,
        device="cpu", seed=0, progress=lambda done, total, loss: epochs.append((done, total)),
    )
    assert epochs == [(1, 3), (2, 3), (3, 3)]
    assert len(result.pretrain_report.losses) == 3 and not result.metrics["collapse"]["collapsed"]
    assert result.metrics["n_labeled"] == 60 and result.metrics["n_unlabeled"] == 540
    assert _accuracy(result.model, X_test, y_test) > 0.5  # 3 epochs, 48 labels: far above chance


def test_anchors_are_class_balanced_labeled_examples(digits):
    X, y, _, _ = digits
    anchors_x, anchors_y = anchor_set(X, y, per_class=5, seed=0)
    assert anchors_x.shape == (50, 1, 8, 8) and anchors_x.dtype == np.float32
    assert np.bincount(anchors_y).tolist() == [5] * 10
    for ax, ay in zip(anchors_x[:5], anchors_y[:5]):  # each anchor is a real (input, label) pair
        matches = np.flatnonzero((X == ax).all(axis=(1, 2, 3)))
        assert ay in y[matches]


def test_calibration_split_keeps_a_training_label_for_every_class():
    y = np.array([0, 1, 1, 2, 2, 2, 2, 2, 2, 2, -1, -1])
    train, cal = calibration_split(y, 0.5, seed=0)
    assert set(y[train]) == {0, 1, 2} and len(np.intersect1d(train, cal)) == 0
    assert -1 not in y[np.concatenate([train, cal])] and len(cal) == 5


def test_split_label_fraction_is_stratified_and_reproducible():
    _, y = load_digits_images()
    a, b = split_label_fraction(y, 0.05, seed=3), split_label_fraction(y, 0.05, seed=3)
    assert np.array_equal(a, b) and not np.array_equal(a, split_label_fraction(y, 0.05, seed=4))
    counts = np.bincount(a[a >= 0], minlength=10)
    assert counts.min() >= 8 and counts.max() <= 10
    assert np.array_equal(a[a >= 0], y[a >= 0])
    assert (split_label_fraction(y, 1.0) == y).all()


def test_recalibrate_batchnorm_sets_running_stats_to_the_data_statistics():
    bn = torch.nn.Sequential(torch.nn.BatchNorm1d(3)).eval()
    X = torch.randn(500, 3) * torch.tensor([1.0, 2.0, 3.0]) + torch.tensor([5.0, -1.0, 0.0])
    recalibrate_batchnorm(bn, X, batch_size=100)
    assert torch.allclose(bn[0].running_mean, X.mean(0), atol=1e-4)
    assert bn[0].momentum == 0.1 and not bn.training  # momentum and mode restored


@pytest.mark.parametrize(
    "X, y, message",
    [
        (np.zeros((4, 1, 8, 8), np.float32), np.full(4, -1), "no labeled examples"),
        (np.zeros((4, 64), np.float32), np.zeros(4, np.int64), "X must have shape"),
        (np.zeros((4, 1, 8, 8), np.float32), np.zeros(3, np.int64), "y must be integers"),
        (np.zeros((4, 1, 8, 8), np.float32), np.array([0, 1, 2, 10]), "labels must be"),
    ],
)
def test_fit_model_rejects_bad_data_with_a_clear_error(X, y, message):
    with pytest.raises(ValueError, match=message):
        fit_model(X, y, SMALL_CNN, objective=None, device="cpu")


def test_fit_model_refuses_an_unknown_objective(digits):
    X, y, _, _ = digits
    with pytest.raises(ValueError, match="unknown SSL objective"):
        fit_model(X[:64], y[:64], SMALL_CNN, objective="mae", device="cpu")


def test_collapse_during_fit_model_raises_instead_of_returning_a_model(digits, monkeypatch):
    X, y, _, _ = digits
    monkeypatch.setattr("driftwise.models.pretrain.collapse_report", lambda z: _collapsed_report(z))
    with pytest.raises(RepresentationCollapse):
        fit_model(X[:128], y[:128], SMALL_CNN, objective="byol", pretrain_epochs=1, device="cpu")


def _collapsed_report(z):
    from driftwise.models.collapse import collapse_report

    return collapse_report(torch.zeros_like(z))


def test_ssl_bench_writes_a_table_with_the_command_that_made_it(tmp_path):
    table = run_ssl_bench(fractions=(0.1,), seeds=(0,), objectives=("ae",), epochs=1, head_steps=5,
                          holdout="validation", workers=1, out_dir=tmp_path, command="python -m driftwise.bench.ssl --test",
                          supervised_head_steps=5)
    assert {(t["objective"], t["head"]) for t in table} == {("supervised", "finetune"), ("ae", "linear"), ("ae", "finetune")}
    md = (tmp_path / "ssl.md").read_text()
    assert "Made by: `python -m driftwise.bench.ssl --test`" in md and "| ae | linear |" in md
    runs = json.loads((tmp_path / "ssl.json").read_text())["runs"]
    assert len(runs) == 3 and all(0.0 <= r["accuracy"] <= 1.0 for r in runs)


def _tabular_in_mixed_units(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two classes told apart by a feature of std ~0.01, next to noise features of std ~100."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = np.column_stack([0.01 * (y + rng.normal(0, 0.3, n)), 100 * rng.normal(size=(n, 3))]).astype(np.float32)
    return X, y


@pytest.mark.parametrize("objective", [None, "simclr"])
def test_an_mlp_standardises_its_inputs_on_the_training_data_whatever_their_units(objective):
    X, y = _tabular_in_mixed_units()
    config = ModelConfig(encoder="mlp", input_shape=(4,), num_classes=2, hidden=32, embed_dim=16)
    result = fit_model(X, y, config, objective=objective, pretrain_epochs=2, head="finetune", steps=80,
                       device="cpu", seed=0)
    standardize = result.model.encoder.standardize
    np.testing.assert_allclose(standardize.mean.numpy(), X.mean(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(standardize.scale.numpy(), X.std(0), rtol=1e-4)
    X_test, y_test = _tabular_in_mixed_units(seed=1)
    assert _accuracy(result.model, X_test, y_test) > 0.85  # the 0.01-std feature is not drowned out


def test_the_model_keeps_the_class_prior_of_its_labeled_data():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], [160, 40])
    X = (rng.normal(size=(200, 4)) + y[:, None]).astype(np.float32)
    y_partial = y.copy()
    y_partial[::2] = -1  # unlabeled rows do not count
    config = ModelConfig(encoder="mlp", input_shape=(4,), num_classes=2, hidden=8, embed_dim=4)
    result = fit_model(X, y_partial, config, objective=None, head="finetune", steps=5, device="cpu", seed=0)
    np.testing.assert_allclose(result.model.class_prior.numpy(), [81 / 102, 21 / 102], rtol=1e-5)  # add-one smoothed


def test_source_prior_is_smoothed_label_shares() -> None:
    np.testing.assert_allclose(source_prior(np.array([0, 0, 0, 1]), 3), [4 / 7, 2 / 7, 1 / 7])
