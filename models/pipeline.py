"""The one entry point from data to a calibrated model: `fit_model`.

1. pretrain the encoder with a self-supervised objective on *all* inputs
   (unlabeled ``y == -1`` included), unless ``objective=None`` (supervised-only);
2. train the head on the labeled inputs (linear probe or fine-tune);
3. fit the temperature on a held-out labeled calibration split;
4. keep a small class-balanced labeled anchor set for later guardrails and replay.

`pretrain` and `fit_classifier` are the two halves, exposed so a benchmark can
pretrain once and reuse the encoder across label fractions and heads.

Examples
--------
>>> from driftwise.models.digits import load_digits_images, split_label_fraction
>>> X, y = load_digits_images()
>>> X, y = X[:300], split_label_fraction(y[:300], 0.2, seed=0)
>>> cfg = ModelConfig(encoder="cnn", input_shape=(1, 8, 8), num_classes=10, width=8, embed_dim=32)
>>> result = fit_model(X, y, cfg, objective=None, head="linear", device="cpu", seed=0)
>>> result.metrics["n_labeled"], result.anchors[0].shape
(60, (60, 1, 8, 8))
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from driftwise.models.augment import default_views
from driftwise.models.classifier import Classifier
from driftwise.models.config import ModelConfig
from driftwise.models.encoders import fit_input_standardizer
from driftwise.models.pretrain import PretrainReport, ProgressFn, as_float_tensor, pretrain_encoder, resolve_device
from driftwise.models.train import HeadMode, calibrate, train_head


@dataclass
class FitResult:
    """A trained, calibrated model (on the CPU, eval mode) and what is known about it."""

    model: Classifier
    metrics: dict[str, Any]
    pretrain_report: PretrainReport | None
    anchors: tuple[np.ndarray, np.ndarray]


def _check_data(X: np.ndarray, y: np.ndarray, config: ModelConfig) -> tuple[np.ndarray, np.ndarray]:
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim < 2 or tuple(X.shape[1:]) != config.input_shape:
        raise ValueError(f"X must have shape (n, {', '.join(map(str, config.input_shape))}), got {X.shape}")
    if y.shape != (len(X),) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must be integers of shape ({len(X)},), got {y.dtype} {y.shape}")
    if (y >= config.num_classes).any() or (y < -1).any():
        raise ValueError(f"labels must be -1 (unlabeled) or in [0, {config.num_classes}), got range [{y.min()}, {y.max()}]")
    if not (y >= 0).any():
        raise ValueError("no labeled examples (every y is -1): the head needs at least one label per run")
    return X, y.astype(np.int64)


def calibration_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of labeled ``y`` for (training, calibration); every class keeps >= 1 training label.

    >>> train, cal = calibration_split(np.array([0, 0, 0, 1, 1, 1, 1, 1, 2, -1]), 0.25, seed=0)
    >>> len(train), len(cal), 8 in train
    (7, 2, True)
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"calibration fraction must be in [0, 1), got {fraction}")
    labeled = np.flatnonzero(y >= 0)
    rng = np.random.default_rng(seed)
    remaining = {int(c): int((y[labeled] == c).sum()) for c in np.unique(y[labeled])}
    n_cal = int(round(fraction * len(labeled)))
    cal: list[int] = []
    for i in rng.permutation(labeled):
        if len(cal) >= n_cal:
            break
        if remaining[int(y[i])] > 1:
            cal.append(int(i))
            remaining[int(y[i])] -= 1
    cal_arr = np.array(sorted(cal), dtype=np.int64)
    return np.setdiff1d(labeled, cal_arr), cal_arr


def source_prior(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """The prior a model is trained under: class shares of its labeled data (add-one smoothed), what
    `fit_classifier` records as `driftwise.models.classifier.Classifier.class_prior`.

    >>> source_prior(np.array([0, 0, 0, 1]), 3).round(3).tolist()
    [0.571, 0.286, 0.143]
    """
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)[:num_classes] + 1.0
    return counts / counts.sum()


def anchor_set(X: np.ndarray, y: np.ndarray, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``per_class`` labeled examples of every class, chosen at random."""
    rng = np.random.default_rng(seed)
    picked = [rng.permutation(np.flatnonzero(y == c))[:per_class] for c in np.unique(y[y >= 0])]
    idx = np.sort(np.concatenate(picked))
    return X[idx].astype(np.float32), y[idx].astype(np.int64)


def pretrain(
    X: np.ndarray,
    config: ModelConfig,
    objective: str,
    *,
    epochs: int = 100,
    batch_size: int = 256,
    lr: float = 2e-3,
    device: str = "auto",
    seed: int = 0,
    objective_kwargs: dict[str, Any] | None = None,
    progress: ProgressFn | None = None,
) -> tuple[dict[str, torch.Tensor], PretrainReport]:
    """Pretrain a fresh encoder for ``config`` on ``X``; returns its CPU weights and the report."""
    torch.manual_seed(seed)
    encoder = Classifier(config).encoder
    fit_input_standardizer(encoder, as_float_tensor(X, torch.device("cpu")))
    report = pretrain_encoder(
        encoder, X, objective, epochs=epochs, batch_size=batch_size, lr=lr, device=device,
        seed=seed, objective_kwargs=objective_kwargs, progress=progress,
    )
    return {k: v.detach().cpu().clone() for k, v in encoder.state_dict().items()}, report


def fit_classifier(
    X: np.ndarray,
    y: np.ndarray,
    config: ModelConfig,
    *,
    encoder_state: dict[str, torch.Tensor] | None = None,
    head: HeadMode = "finetune",
    calibration_fraction: float = 0.2,
    anchors_per_class: int = 20,
    device: str = "auto",
    seed: int = 0,
    **head_kwargs: Any,
) -> tuple[Classifier, dict[str, Any], tuple[np.ndarray, np.ndarray]]:
    """Head training + calibration + anchors on top of ``encoder_state`` (random encoder when None).

    ``head_kwargs`` go to `driftwise.models.train.train_head` (``steps``, ``lr``, ``encoder_lr_scale``, ...).
    """
    X, y = _check_data(X, y, config)
    dev = resolve_device(device)
    torch.manual_seed(seed)
    model = Classifier(config)
    if encoder_state is not None:
        model.encoder.load_state_dict(encoder_state)
    else:
        fit_input_standardizer(model.encoder, as_float_tensor(X, torch.device("cpu")))
    model.to(dev)
    train_idx, cal_idx = calibration_split(y, calibration_fraction, seed)
    X_all = as_float_tensor(X, dev)
    y_all = torch.as_tensor(y, device=dev)
    views = default_views(config.input_shape, X_all.cpu(), seed=seed)
    if head == "linear":
        head_kwargs = {k: v for k, v in head_kwargs.items() if k in ("probe_views", "probe_l2")}
    else:  # a random encoder learns at the head's rate; a pretrained one moves gently
        head_kwargs.setdefault("encoder_lr_scale", 1.0 if encoder_state is None else 0.1)
    start = time.perf_counter()
    metrics: dict[str, Any] = train_head(
        model, X_all[train_idx], y_all[train_idx], mode=head, views=views, X_unlabeled=X_all, seed=seed, **head_kwargs
    )
    model.class_prior.copy_(torch.as_tensor(source_prior(y[y >= 0], config.num_classes), dtype=model.class_prior.dtype))
    if len(cal_idx) > 0:
        metrics.update(calibrate(model, X_all[cal_idx], y_all[cal_idx]))
    else:
        metrics["temperature"] = 1.0  # too few labels to hold any out: left uncalibrated
    metrics.update(
        head=head,
        n_labeled=int((y >= 0).sum()),
        n_unlabeled=int((y < 0).sum()),
        n_head_train=len(train_idx),
        n_calibration=len(cal_idx),
        head_wall_time_s=time.perf_counter() - start,
    )
    return model.cpu().eval(), metrics, anchor_set(X, y, anchors_per_class, seed)


def fit_model(
    X: np.ndarray,
    y: np.ndarray,
    config: ModelConfig,
    *,
    objective: str | None = "simclr",
    head: HeadMode = "finetune",
    pretrain_epochs: int = 100,
    pretrain_batch_size: int = 256,
    pretrain_lr: float = 2e-3,
    calibration_fraction: float = 0.2,
    anchors_per_class: int = 20,
    device: str = "auto",
    seed: int = 0,
    progress: ProgressFn | None = None,
    objective_kwargs: dict[str, Any] | None = None,
    **head_kwargs: Any,
) -> FitResult:
    """Pretrain on all ``X`` (skipped when ``objective`` is None), train the head on ``y >= 0``, calibrate.

    ``progress`` is called after every pretraining epoch with ``(done, total, loss)``.
    Raises `driftwise.models.collapse.RepresentationCollapse` if pretraining collapses.
    """
    X, y = _check_data(X, y, config)
    encoder_state, report = None, None
    if objective is not None:
        encoder_state, report = pretrain(
            X, config, objective, epochs=pretrain_epochs, batch_size=pretrain_batch_size, lr=pretrain_lr,
            device=device, seed=seed, objective_kwargs=objective_kwargs, progress=progress,
        )
    model, metrics, anchors = fit_classifier(
        X, y, config, encoder_state=encoder_state, head=head, calibration_fraction=calibration_fraction,
        anchors_per_class=anchors_per_class, device=device, seed=seed, **head_kwargs,
    )
    metrics["objective"] = objective or "supervised"
    if report is not None:
        metrics["pretrain_wall_time_s"] = report.wall_time_s
        metrics["pretrain_final_loss"] = report.losses[-1]
        metrics["collapse"] = report.collapse[-1]
    return FitResult(model, metrics, report, anchors)
