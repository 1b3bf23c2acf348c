"""BYOL: predict a slowly moving target network's projection of another view.

Grill et al. 2020, https://arxiv.org/abs/2006.07733. No negatives: collapse is
avoided by the predictor on the online side, the stop-gradient and the EMA target.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from driftwise.models.augment import MultiViewTransform
from driftwise.models.ssl.base import SSLObjective, two_views
from driftwise.models.ssl.ema import cosine_momentum, frozen_copy, update_momentum
from driftwise.models.ssl.heads import BYOLPredictionHead, BYOLProjectionHead


def byol_loss(p: Tensor, z: Tensor) -> Tensor:
    """``2 - 2 cos(p, z)`` averaged over the batch; ``z`` gets no gradient."""
    return (2.0 - 2.0 * F.cosine_similarity(p, z.detach(), dim=-1)).mean()


class BYOL(SSLObjective):
    """Online (encoder, projector, predictor) regresses the EMA target (encoder, projector)."""

    name = "byol"

    def __init__(
        self,
        encoder: nn.Module,
        embed_dim: int,
        input_shape: Sequence[int],
        proj_hidden: int = 512,
        proj_dim: int = 128,
        pred_hidden: int = 512,
        momentum_base: float = 0.99,
        momentum_final: float = 1.0,
    ) -> None:
        super().__init__(encoder, embed_dim, input_shape)
        if not 0.0 <= momentum_base <= momentum_final <= 1.0:
            raise ValueError(f"need 0 <= momentum_base <= momentum_final <= 1, got {momentum_base}, {momentum_final}")
        self.momentum_base, self.momentum_final = momentum_base, momentum_final
        self.projector = BYOLProjectionHead(embed_dim, proj_hidden, proj_dim)
        self.predictor = BYOLPredictionHead(proj_dim, pred_hidden, proj_dim)
        self.target_encoder = frozen_copy(encoder)
        self.target_projector = frozen_copy(self.projector)

    def forward_context(self, x: Tensor) -> Tensor:
        """Online side: ``(B, *input_shape)`` -> predictions ``(B, proj_dim)``."""
        return self.predictor(self.projector(self.encoder(x)))

    @torch.no_grad()
    def forward_target(self, x: Tensor) -> Tensor:
        """Target side, no gradient: ``(B, *input_shape)`` -> projections ``(B, proj_dim)``."""
        return self.target_projector(self.target_encoder(x))

    def loss(self, x: Tensor, views: MultiViewTransform) -> Tensor:
        v0, v1 = two_views(x, views)
        both = torch.cat([v0, v1])
        p0, p1 = self.forward_context(both).chunk(2)
        z0, z1 = self.forward_target(both).chunk(2)
        return (byol_loss(p0, z1) + byol_loss(p1, z0)) / 2

    def update_target(self, momentum: float) -> None:
        update_momentum(self.encoder, self.target_encoder, momentum)
        update_momentum(self.projector, self.target_projector, momentum)

    def after_step(self, progress: float) -> None:
        self.update_target(cosine_momentum(progress, self.momentum_base, self.momentum_final))
