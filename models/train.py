"""Training the classifier head on the labeled subset, then calibrating it.

Two modes, both starting from whatever encoder the `Classifier` holds:

* ``"linear"``: the encoder is frozen; a multinomial logistic regression is fitted
  (full batch, LBFGS, L2) on its embeddings of the labeled inputs and a few
  augmented copies of them, then folded into ``Classifier.head``.
* ``"finetune"``: the same linear probe first (LP-FT: a good head before the
  encoder moves), then every weight trained with AdamW on augmented labeled
  batches, the encoder at a smaller learning rate.

BatchNorm statistics are re-estimated on all available inputs (labeled or not,
no labels used) before the probe and after fine-tuning, so they describe clean
data rather than augmented labeled batches. Then `calibrate` fits the
temperature on a held-out labeled split and stores it in ``Classifier.temperature``.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from driftwise.models.augment import MultiViewTransform
from driftwise.models.calibration import expected_calibration_error, fit_temperature
from driftwise.models.classifier import Classifier

HeadMode = Literal["linear", "finetune"]


@torch.no_grad()
def embed_all(encoder: nn.Module, X: Tensor, batch_size: int = 1024) -> Tensor:
    """Eval-mode embeddings ``(n, embed_dim)`` of ``X``."""
    was_training = encoder.training
    encoder.eval()
    out = torch.cat([encoder(X[i : i + batch_size]) for i in range(0, len(X), batch_size)])
    encoder.train(was_training)
    return out


@torch.no_grad()
def recalibrate_batchnorm(encoder: nn.Module, X: Tensor, batch_size: int = 512) -> None:
    """Re-estimate every BatchNorm's running mean/var as the plain average over ``X`` (no gradients, no labels)."""
    norms = [m for m in encoder.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or len(X) < 2:
        return
    saved = [m.momentum for m in norms]
    was_training = encoder.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    encoder.train()
    for i in range(0, len(X), batch_size):
        if len(X[i : i + batch_size]) > 1:
            encoder(X[i : i + batch_size])
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    encoder.train(was_training)


def fit_linear_probe(
    model: Classifier,
    X: Tensor,
    y: Tensor,
    *,
    views: MultiViewTransform | None = None,
    n_views: int = 8,
    l2: float = 1e-2,
    max_iter: int = 300,
) -> float:
    """Fit ``model.head`` on frozen embeddings of ``X`` (+ ``n_views`` augmented copies); returns train accuracy."""
    if l2 < 0 or n_views < 0:
        raise ValueError(f"need l2 >= 0 and n_views >= 0, got {l2}, {n_views}")
    inputs, labels = [X], [y]
    if views is not None:
        for _ in range(n_views):
            inputs.append(views.one_view(X))
            labels.append(y)
    features = embed_all(model.encoder, torch.cat(inputs))
    targets = torch.cat(labels)
    mean, std = features.mean(0), features.std(0).clamp_min(1e-6)
    z = (features - mean) / std
    k = model.config.num_classes
    weight = torch.zeros(k, z.shape[1], device=z.device, requires_grad=True)
    bias = torch.zeros(k, device=z.device, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(z @ weight.T + bias, targets) + 0.5 * l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():  # fold the standardisation into the head: W (x - m) / s + b
        model.head.weight.copy_(weight / std)
        model.head.bias.copy_(bias - (weight / std) @ mean)
        return float(((z @ weight.T + bias).argmax(1) == targets).float().mean())


def finetune(
    model: Classifier,
    X: Tensor,
    y: Tensor,
    *,
    views: MultiViewTransform | None,
    steps: int = 300,
    batch_size: int = 128,
    lr: float = 1e-3,
    encoder_lr_scale: float = 0.1,
    weight_decay: float = 1e-4,
    seed: int = 0,
) -> list[float]:
    """Train encoder and head on augmented labeled batches; returns the loss of every step."""
    if steps < 1 or batch_size < 2 or lr <= 0 or encoder_lr_scale < 0 or weight_decay < 0:
        raise ValueError("need steps >= 1, batch_size >= 2, lr > 0, encoder_lr_scale >= 0, weight_decay >= 0")
    if len(X) < 2:
        raise ValueError("fine-tuning needs at least 2 labeled examples (BatchNorm)")
    optimizer = torch.optim.AdamW(
        [
            {"params": model.encoder.parameters(), "lr": lr * encoder_lr_scale},
            {"params": model.head.parameters(), "lr": lr},
        ],
        weight_decay=weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    order_gen = torch.Generator().manual_seed(seed)
    batch_size = min(batch_size, len(X))
    losses: list[float] = []
    model.train()
    order, cursor = torch.randperm(len(X), generator=order_gen), 0
    for _ in range(steps):
        if cursor + batch_size > len(X):
            order, cursor = torch.randperm(len(X), generator=order_gen), 0
        idx = order[cursor : cursor + batch_size].to(X.device)
        cursor += batch_size
        xb = views.one_view(X[idx]) if views is not None else X[idx]
        loss = F.cross_entropy(model.raw_logits(xb), y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    model.eval()
    return losses


def train_head(
    model: Classifier,
    X: Tensor,
    y: Tensor,
    *,
    mode: HeadMode = "finetune",
    views: MultiViewTransform | None = None,
    X_unlabeled: Tensor | None = None,
    probe_views: int = 8,
    probe_l2: float = 1e-2,
    steps: int = 300,
    batch_size: int = 128,
    lr: float = 1e-3,
    encoder_lr_scale: float = 0.1,
    weight_decay: float = 1e-4,
    seed: int = 0,
) -> dict[str, float]:
    """Train ``model`` on labeled ``X, y`` (same device) in the given mode; returns training metrics.

    ``X_unlabeled`` (any inputs, labels not needed) only serves the BatchNorm re-estimation;
    the labeled inputs are always included.
    """
    if mode not in ("linear", "finetune"):
        raise ValueError(f"mode must be 'linear' or 'finetune', got {mode!r}")
    if len(X) != len(y) or len(y) == 0:
        raise ValueError(f"need as many labels as inputs (and at least one), got {len(X)} inputs, {len(y)} labels")
    torch.manual_seed(seed)
    bn_data = X if X_unlabeled is None else torch.cat([X_unlabeled, X])
    recalibrate_batchnorm(model.encoder, bn_data)
    metrics = {"probe_train_accuracy": fit_linear_probe(model, X, y, views=views, n_views=probe_views, l2=probe_l2)}
    if mode == "finetune":
        losses = finetune(
            model, X, y, views=views, steps=steps, batch_size=batch_size, lr=lr,
            encoder_lr_scale=encoder_lr_scale, weight_decay=weight_decay, seed=seed,
        )
        recalibrate_batchnorm(model.encoder, bn_data)
        metrics["finetune_final_loss"] = sum(losses[-10:]) / len(losses[-10:])
    model.eval()
    with torch.no_grad():
        metrics["train_accuracy"] = float((model.raw_logits(X).argmax(1) == y).float().mean())
    return metrics


@torch.no_grad()
def calibrate(model: Classifier, X: Tensor, y: Tensor) -> dict[str, float]:
    """Fit and set ``model.temperature`` on held-out labeled ``X, y``; returns T and ECE before/after."""
    model.eval()
    logits = model.raw_logits(X)
    with torch.enable_grad():
        temperature = fit_temperature(logits, y)
    model.temperature.fill_(temperature)
    return {
        "temperature": temperature,
        "calibration_ece_before": expected_calibration_error(logits.softmax(1), y),
        "calibration_ece_after": expected_calibration_error((logits / temperature).softmax(1), y),
        "calibration_accuracy": float((logits.argmax(1) == y).float().mean()),
    }
