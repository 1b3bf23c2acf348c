"""Representation-collapse monitor: is the encoder still telling inputs apart?

Two indicators, logged beside the loss during pretraining:

* ``std_ratio``: the mean per-dimension std of L2-normalised embeddings, times
  ``sqrt(d)``. About 1 for embeddings spread evenly over the sphere, 0 when every
  input maps to the same point (the collapse indicator of SimSiam and solo-learn).
* ``effective_rank``: ``exp`` of the entropy of the normalised singular values of
  the centred embeddings (Roy & Vetterli 2007). Near 0 when collapsed to a point,
  near 1 when collapsed to a line, up to ``d``.

A collapsed run must fail loudly instead of being published: `check_collapse`
raises `RepresentationCollapse`.

Examples
--------
>>> g = torch.Generator().manual_seed(0)
>>> healthy = collapse_report(torch.randn(256, 16, generator=g))
>>> healthy.collapsed, round(healthy.std_ratio, 1), healthy.effective_rank > 12
(False, 1.0, True)
>>> collapse_report(torch.ones(256, 16)).collapsed
True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

MIN_STD_RATIO = 0.02
MIN_EFFECTIVE_RANK = 1.5


class RepresentationCollapse(RuntimeError):
    """The encoder maps (nearly) every input to the same embedding."""


@dataclass(frozen=True)
class CollapseReport:
    """Collapse indicators of one batch of embeddings, and the verdict."""

    std_ratio: float
    effective_rank: float
    dim: int
    n: int
    collapsed: bool

    def to_dict(self) -> dict[str, float | int | bool]:
        return asdict(self)

    def describe(self) -> str:
        return (
            f"normalised-embedding std x sqrt(d) = {self.std_ratio:.4f} (healthy ~1, collapse threshold {MIN_STD_RATIO}), "
            f"effective rank = {self.effective_rank:.2f} of {self.dim} (collapse threshold {MIN_EFFECTIVE_RANK}), "
            f"measured on {self.n} samples"
        )


def normalized_std_ratio(z: Tensor) -> float:
    """Mean per-dimension std of ``F.normalize(z)``, times ``sqrt(d)``; ``z`` is ``(n, d)``."""
    zn = F.normalize(z.detach().float(), dim=1)
    return float(zn.std(0).mean() * z.shape[1] ** 0.5)


def effective_rank(z: Tensor, eps: float = 1e-7) -> float:
    """``exp(entropy(s / sum(s)))`` of the singular values of the centred ``(n, d)`` embeddings."""
    z = z.detach().float()
    centred = z - z.mean(0, keepdim=True)
    s = torch.linalg.svdvals(centred)
    total = s.sum()
    if total <= eps * max(1.0, float(z.abs().max())) * len(s):
        return 0.0
    p = s / total
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def collapse_report(
    z: Tensor, min_std_ratio: float = MIN_STD_RATIO, min_effective_rank: float = MIN_EFFECTIVE_RANK
) -> CollapseReport:
    """Measure embeddings ``z`` of shape ``(n, d)``, ``n >= 2``."""
    if z.dim() != 2 or z.shape[0] < 2:
        raise ValueError(f"need embeddings of shape (n >= 2, d), got {tuple(z.shape)}")
    if not torch.isfinite(z).all():
        return CollapseReport(0.0, 0.0, z.shape[1], z.shape[0], collapsed=True)
    ratio, rank = normalized_std_ratio(z), effective_rank(z)
    collapsed = ratio < min_std_ratio or rank < min_effective_rank
    return CollapseReport(ratio, rank, z.shape[1], z.shape[0], collapsed)


def check_collapse(z: Tensor, what: str = "encoder", **thresholds: float) -> CollapseReport:
    """Return the report of ``z``, or raise `RepresentationCollapse` with the numbers when collapsed.

    >>> check_collapse(torch.zeros(64, 8))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    driftwise.models.collapse.RepresentationCollapse: encoder collapsed: normalised-embedding std x sqrt(d) = 0.0000 ...
    """
    report = collapse_report(z, **thresholds)
    if report.collapsed:
        raise RepresentationCollapse(f"{what} collapsed: {report.describe()}; refusing to use these weights")
    return report
