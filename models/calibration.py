"""Temperature scaling, so that a reported confidence of 0.9 is right 9 times in 10.

Guo et al. 2017 (https://arxiv.org/abs/1706.04599): one scalar ``T`` divides the
logits; it is fitted on held-out labeled data by minimising the negative
log-likelihood over ``log T`` (so ``T`` stays positive) with LBFGS. It never
changes which class is predicted, only how sure the model says it is.

Examples
--------
>>> g = torch.Generator().manual_seed(0)
>>> true_logits = 2.0 * torch.randn(2000, 3, generator=g)
>>> y = torch.multinomial(true_logits.softmax(1), 1, generator=g).squeeze(1)
>>> overconfident = 4.0 * true_logits
>>> round(fit_temperature(overconfident, y), 1)
4.0
>>> before = expected_calibration_error(overconfident.softmax(1), y)
>>> after = expected_calibration_error((overconfident / 4.0).softmax(1), y)
>>> after < before
True
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

ArrayLike = Tensor | np.ndarray


def _tensors(scores: ArrayLike, y: ArrayLike) -> tuple[Tensor, Tensor]:
    scores = torch.as_tensor(scores).detach().float().cpu()
    y = torch.as_tensor(y).detach().long().cpu()
    if scores.dim() != 2 or y.dim() != 1 or len(scores) != len(y):
        raise ValueError(f"expected (n, k) scores and (n,) labels, got {tuple(scores.shape)} and {tuple(y.shape)}")
    if len(y) == 0:
        raise ValueError("need at least one labeled example")
    if y.min() < 0 or y.max() >= scores.shape[1]:
        raise ValueError(f"labels must be in [0, {scores.shape[1]}), got range [{int(y.min())}, {int(y.max())}]")
    return scores, y


def fit_temperature(logits: ArrayLike, y: ArrayLike, prior_std: float = 0.5, max_iter: int = 200) -> float:
    """The ``T`` minimising ``NLL(softmax(logits / T), y)``.

    A weak gaussian prior on ``log T`` (std ``prior_std``, ``T = 1`` at its
    centre) keeps ``T`` finite when the calibration set is tiny and all of it is
    classified correctly, where plain NLL would push ``T`` to zero; with a few
    hundred examples its effect is negligible.
    """
    if prior_std <= 0:
        raise ValueError(f"prior_std must be positive, got {prior_std}")
    logits, y = _tensors(logits, y)
    log_t = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        nll = F.cross_entropy(logits / log_t.exp(), y, reduction="sum")
        loss = nll + 0.5 * (log_t / prior_std) ** 2
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().clamp(-5.0, 5.0).exp())


def expected_calibration_error(probs: ArrayLike, y: ArrayLike, n_bins: int = 15) -> float:
    """Weighted mean gap between confidence and accuracy over ``n_bins`` equal-width confidence bins.

    >>> expected_calibration_error(torch.tensor([[0.9, 0.1], [0.9, 0.1]]), torch.tensor([0, 1]))
    0.4
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    probs, y = _tensors(probs, y)
    confidence, predicted = probs.max(1)
    correct = (predicted == y).float()
    bins = torch.clamp((confidence * n_bins).ceil().long() - 1, 0, n_bins - 1)
    ece = torch.zeros(())
    for b in range(n_bins):
        in_bin = bins == b
        if in_bin.any():
            gap = (confidence[in_bin].mean() - correct[in_bin].mean()).abs()
            ece += gap * in_bin.float().mean()
    return round(float(ece), 6)
