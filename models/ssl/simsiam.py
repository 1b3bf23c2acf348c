"""SimSiam: BYOL without the moving average; the stop-gradient alone prevents collapse.

Chen & He 2021, https://arxiv.org/abs/2011.10566.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from driftwise.models.augment import MultiViewTransform
from driftwise.models.ssl.base import SSLObjective, negative_cosine, two_views
from driftwise.models.ssl.heads import SimSiamPredictionHead, SimSiamProjectionHead


class SimSiam(SSLObjective):
    """Symmetric negative cosine between one view's prediction and the other's (detached) projection."""

    name = "simsiam"

    def __init__(
        self,
        encoder: nn.Module,
        embed_dim: int,
        input_shape: Sequence[int],
        proj_hidden: int = 256,
        proj_dim: int = 128,
        pred_hidden: int = 64,
    ) -> None:
        super().__init__(encoder, embed_dim, input_shape)
        self.projector = SimSiamProjectionHead(embed_dim, proj_hidden, proj_dim)
        self.predictor = SimSiamPredictionHead(proj_dim, pred_hidden, proj_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, *input_shape)`` -> (projections z, predictions p), both ``(B, proj_dim)``."""
        z = self.projector(self.encoder(x))
        return z, self.predictor(z)

    def loss(self, x: Tensor, views: MultiViewTransform) -> Tensor:
        v0, v1 = two_views(x, views)
        z, p = self(torch.cat([v0, v1]))
        z0, z1 = z.chunk(2)
        p0, p1 = p.chunk(2)
        return (negative_cosine(p0, z1) + negative_cosine(p1, z0)) / 2
