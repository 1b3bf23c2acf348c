"""SimCLR: contrastive learning with the NT-Xent (InfoNCE) loss and in-batch negatives.

Chen et al. 2020, https://arxiv.org/abs/2002.05709.

Examples
--------
>>> loss = NTXentLoss(temperature=0.5)
>>> z = torch.randn(8, 16, generator=torch.Generator().manual_seed(0))
>>> bool(loss(z, z) < loss(z, z.roll(1, 0)))
True
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from driftwise.models.augment import MultiViewTransform
from driftwise.models.ssl.base import SSLObjective, two_views
from driftwise.models.ssl.heads import SimCLRProjectionHead


class NTXentLoss(nn.Module):
    """Normalised temperature-scaled cross entropy over ``2B`` projections.

    For each of the ``2B`` projections the positive is its other view and the
    ``2B - 2`` other samples in the batch are negatives.

    ``forward(z0, z1)``: two ``(B, D)`` tensors -> scalar.
    """

    def __init__(self, temperature: float = 0.5) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature

    def forward(self, z0: Tensor, z1: Tensor) -> Tensor:
        if z0.shape != z1.shape or z0.dim() != 2:
            raise ValueError(f"expected two (B, D) tensors of the same shape, got {tuple(z0.shape)}, {tuple(z1.shape)}")
        b = z0.shape[0]
        if b < 2:
            raise ValueError("NT-Xent needs a batch of at least 2 (the negatives are the other samples)")
        z = F.normalize(torch.cat([z0, z1]), dim=1)
        sim = z @ z.T / self.temperature
        sim = sim.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), float("-inf"))
        positives = torch.cat([torch.arange(b, 2 * b), torch.arange(b)]).to(z.device)
        return F.cross_entropy(sim, positives)


class SimCLR(SSLObjective):
    """Encoder + projector trained so two views of a sample are close and other samples far."""

    name = "simclr"

    def __init__(
        self,
        encoder: nn.Module,
        embed_dim: int,
        input_shape: Sequence[int],
        proj_hidden: int = 256,
        proj_dim: int = 64,
        temperature: float = 0.5,
    ) -> None:
        super().__init__(encoder, embed_dim, input_shape)
        self.proj_hidden, self.proj_dim, self.temperature = proj_hidden, proj_dim, temperature
        self.projector = SimCLRProjectionHead(embed_dim, proj_hidden, proj_dim)
        self.criterion = NTXentLoss(temperature)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, *input_shape)`` -> projections ``(B, proj_dim)``."""
        return self.projector(self.encoder(x))

    def loss(self, x: Tensor, views: MultiViewTransform) -> Tensor:
        v0, v1 = two_views(x, views)
        z0, z1 = self(torch.cat([v0, v1])).chunk(2)
        return self.criterion(z0, z1)
