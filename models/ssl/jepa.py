"""JEPA: predict, in embedding space, what the EMA target encoder sees.

After I-JEPA (Assran et al. 2023, https://arxiv.org/abs/2301.08243), shrunk to
encoders with one global embedding: the context encoder sees a view with some
units hidden (image patches, or contiguous feature blocks for vectors); a
predictor, told which units were hidden, predicts the target encoder's
(layer-normed) embedding of the other, unmasked view. The loss lives entirely
in embedding space: nothing is reconstructed in pixel space.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from driftwise.models.augment import MultiViewTransform
from driftwise.models.ssl.base import SSLObjective, two_views
from driftwise.models.ssl.ema import cosine_momentum, frozen_copy, update_momentum
from driftwise.models.ssl.heads import JEPAPredictionHead


def position_units(input_shape: Sequence[int], n_blocks: int = 8) -> Tensor:
    """Which maskable unit each input position belongs to.

    Images ``(C, H, W)``: square patches (4 per side when possible), shared by
    all channels, one entry per pixel. Vectors ``(d,)``: ``n_blocks`` contiguous
    feature blocks.

    >>> position_units((1, 8, 8)).view(8, 8)[2].tolist()
    [4, 4, 5, 5, 6, 6, 7, 7]
    >>> position_units((5,), n_blocks=2).tolist()
    [0, 0, 0, 1, 1]
    """
    if len(input_shape) == 3:
        _, h, w = input_shape
        patch = max(1, min(h, w) // 4)
        grid_w = math.ceil(w / patch)
        rows = torch.arange(h) // patch
        cols = torch.arange(w) // patch
        return (rows[:, None] * grid_w + cols[None, :]).flatten()
    d = math.prod(input_shape)
    return torch.arange(d) * min(n_blocks, d) // d


class JEPA(SSLObjective):
    """Context encoder + mask-conditioned predictor regress an EMA target encoder's embedding."""

    name = "jepa"

    def __init__(
        self,
        encoder: nn.Module,
        embed_dim: int,
        input_shape: Sequence[int],
        mask_ratio: float = 0.25,
        pred_hidden: int = 256,
        momentum_base: float = 0.99,
        momentum_final: float = 1.0,
    ) -> None:
        super().__init__(encoder, embed_dim, input_shape)
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        if not 0.0 <= momentum_base <= momentum_final <= 1.0:
            raise ValueError(f"need 0 <= momentum_base <= momentum_final <= 1, got {momentum_base}, {momentum_final}")
        self.mask_ratio, self.momentum_base, self.momentum_final = mask_ratio, momentum_base, momentum_final
        self.register_buffer("units", position_units(self.input_shape), persistent=False)
        self.n_units = int(self.units.max()) + 1
        self.predictor = JEPAPredictionHead(embed_dim + self.n_units, pred_hidden, embed_dim)
        self.target_encoder = frozen_copy(encoder)

    def sample_mask(self, batch: int, generator: torch.Generator | None = None) -> Tensor:
        """``(B, n_units)`` booleans, True where hidden; the same number hidden in every row."""
        n_hidden = max(1, min(self.n_units - 1, round(self.mask_ratio * self.n_units)))
        gen_device = generator.device if generator is not None else self.units.device
        scores = torch.rand(batch, self.n_units, generator=generator, device=gen_device).to(self.units.device)
        return scores.argsort(1) < n_hidden

    def apply_mask(self, x: Tensor, mask: Tensor) -> Tensor:
        """Hide the masked units: zero for images, the batch mean of each feature for vectors."""
        hidden = mask[:, self.units]  # (B, positions)
        if len(self.input_shape) == 3:
            _, h, w = self.input_shape
            return x.masked_fill(hidden.view(-1, 1, h, w), 0.0)
        flat = x.flatten(1)
        return torch.where(hidden, flat.mean(0, keepdim=True), flat).view_as(x)

    def forward_context(self, x_masked: Tensor, mask: Tensor) -> Tensor:
        """``(B, *input_shape)``, ``(B, n_units)`` -> predicted target embeddings ``(B, embed_dim)``."""
        return self.predictor(torch.cat([self.encoder(x_masked), mask.to(x_masked.dtype)], 1))

    @torch.no_grad()
    def forward_target(self, x: Tensor) -> Tensor:
        """Layer-normed target embeddings ``(B, embed_dim)``, no gradient."""
        z = self.target_encoder(x)
        return F.layer_norm(z, z.shape[-1:])

    def loss(self, x: Tensor, views: MultiViewTransform) -> Tensor:
        v0, v1 = two_views(x, views)
        both = torch.cat([v0, v1])
        mask = self.sample_mask(both.shape[0], views.generator)
        predicted = self.forward_context(self.apply_mask(both, mask), mask)
        t0, t1 = self.forward_target(both).chunk(2)
        return F.mse_loss(predicted, torch.cat([t1, t0]))

    def update_target(self, momentum: float) -> None:
        update_momentum(self.encoder, self.target_encoder, momentum)

    def after_step(self, progress: float) -> None:
        self.update_target(cosine_momentum(progress, self.momentum_base, self.momentum_final))
