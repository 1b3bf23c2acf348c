"""The self-supervised training loop, the same for every objective.

The loop only calls ``objective.loss(x, views)`` and ``objective.after_step(progress)``
(`driftwise.models.ssl.base.SSLObjective`), so a new objective never touches it. After
every epoch it measures representation collapse on a fixed sample; a run whose
final encoder has collapsed raises `driftwise.models.collapse.RepresentationCollapse`
instead of returning weights that would be published.

Examples
--------
>>> from driftwise.models.config import ModelConfig
>>> from driftwise.models.encoders import build_encoder
>>> _ = torch.manual_seed(0)
>>> cfg = ModelConfig(encoder="mlp", input_shape=(8,), num_classes=2, embed_dim=16, hidden=32)
>>> X = torch.randn(64, 8)
>>> report = pretrain_encoder(build_encoder(cfg), X, "simclr", epochs=2, batch_size=32, device="cpu")
>>> len(report.losses), report.collapse[-1]["collapsed"]
(2, False)
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from driftwise.models.augment import MultiViewTransform, default_views
from driftwise.models.collapse import RepresentationCollapse, collapse_report
from driftwise.models.ssl import make_objective

ProgressFn = Callable[[int, int, float], None]
"""Called after each epoch with ``(epochs_done, epochs_total, mean_loss)``."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` means CUDA when available, else CPU; anything else is passed to `torch.device`."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but CUDA is not available")
    return resolved


def as_float_tensor(X: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    X = torch.as_tensor(np.asarray(X) if not isinstance(X, torch.Tensor) else X)
    if not torch.is_floating_point(X):
        raise ValueError(f"X must be floating point, got {X.dtype}")
    if not torch.isfinite(X).all():
        raise ValueError("X contains NaN or infinite values")
    return X.to(device=device, dtype=torch.float32)


@dataclass
class PretrainReport:
    """What one pretraining run did: loss and collapse indicators per epoch, and its cost."""

    objective: str
    epochs: int
    batch_size: int
    lr: float
    seed: int
    device: str
    losses: list[float] = field(default_factory=list)
    collapse: list[dict[str, Any]] = field(default_factory=list)
    wall_time_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _cosine_lr(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


@torch.no_grad()
def _embed(encoder: nn.Module, X: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    return torch.cat([encoder(X[i : i + batch_size]) for i in range(0, len(X), batch_size)])


def pretrain_encoder(
    encoder: nn.Module,
    X: np.ndarray | torch.Tensor,
    objective: str,
    *,
    epochs: int = 100,
    batch_size: int = 256,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
    device: str | torch.device = "auto",
    seed: int = 0,
    views: MultiViewTransform | None = None,
    objective_kwargs: dict[str, Any] | None = None,
    monitor_size: int = 512,
    fail_on_collapse: bool = True,
    progress: ProgressFn | None = None,
) -> PretrainReport:
    """Train ``encoder`` in place on unlabeled ``X`` ``(n, *input_shape)`` with the named objective.

    Returns the report; the encoder is left on ``device`` in eval mode. Raises
    `RepresentationCollapse` when the final encoder has collapsed (and
    ``fail_on_collapse``), and `RuntimeError` when the loss stops being finite.
    """
    if epochs < 1 or batch_size < 2 or lr <= 0 or weight_decay < 0:
        raise ValueError(f"need epochs >= 1, batch_size >= 2, lr > 0, weight_decay >= 0; got {epochs}, {batch_size}, {lr}, {weight_decay}")
    dev = resolve_device(device)
    X = as_float_tensor(X, dev)
    if len(X) < 2:
        raise ValueError(f"need at least 2 samples to pretrain, got {len(X)}")
    torch.manual_seed(seed)
    embed_dim = int(getattr(encoder, "embed_dim"))
    ssl = make_objective(objective, encoder, embed_dim, tuple(X.shape[1:]), **(objective_kwargs or {})).to(dev)
    views = views if views is not None else default_views(tuple(X.shape[1:]), X.cpu(), seed=seed)
    params = [p for p in ssl.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)

    batch_size = min(batch_size, len(X))
    steps_per_epoch = max(1, len(X) // batch_size)
    total = epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _cosine_lr(s, total, min(total // 10, 100)))
    order_gen = torch.Generator().manual_seed(seed)
    monitor = X[torch.randperm(len(X), generator=order_gen)[:monitor_size].to(dev)]
    report = PretrainReport(objective, epochs, batch_size, lr, seed, str(dev))

    start, step = time.perf_counter(), 0
    for epoch in range(epochs):
        ssl.train()
        order = torch.randperm(len(X), generator=order_gen).to(dev)
        epoch_loss = 0.0
        for i in range(steps_per_epoch):
            loss = ssl.loss(X[order[i * batch_size : (i + 1) * batch_size]], views)
            if not torch.isfinite(loss):
                raise RuntimeError(f"{objective} pretraining diverged at epoch {epoch + 1}: loss is {loss.item()}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            ssl.after_step(step / total)
            epoch_loss += loss.item()
        ssl.eval()
        report.losses.append(epoch_loss / steps_per_epoch)
        report.collapse.append(collapse_report(_embed(encoder, monitor)).to_dict())
        if progress is not None:
            progress(epoch + 1, epochs, report.losses[-1])
    report.wall_time_s = time.perf_counter() - start

    final = report.collapse[-1]
    if fail_on_collapse and final["collapsed"]:
        raise RepresentationCollapse(
            f"{objective} pretraining collapsed the encoder: std ratio {final['std_ratio']:.4f}, "
            f"effective rank {final['effective_rank']:.2f} of {final['dim']}; refusing to use these weights"
        )
    return report
