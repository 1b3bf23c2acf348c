"""Autoencoder: reconstruct the clean input from the embedding of an augmented view.

The decoder squeezes the embedding through a narrow bottleneck; reconstructing
the *clean* input from a corrupted view (a denoising autoencoder, Vincent et al.
2008) keeps the identity map from being a solution.
"""

from __future__ import annotations

from typing import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from driftwise.models.augment import MultiViewTransform
from driftwise.models.ssl.base import SSLObjective
from driftwise.models.ssl.heads import DecoderHead


class Autoencoder(SSLObjective):
    """MSE between ``decoder(encoder(view))`` and ``x``; ``denoise=False`` encodes ``x`` itself."""

    name = "ae"

    def __init__(
        self,
        encoder: nn.Module,
        embed_dim: int,
        input_shape: Sequence[int],
        bottleneck: int = 32,
        hidden: int = 256,
        denoise: bool = True,
    ) -> None:
        super().__init__(encoder, embed_dim, input_shape)
        self.bottleneck, self.hidden, self.denoise = bottleneck, hidden, denoise
        self.decoder = DecoderHead(embed_dim, self.input_dim, bottleneck, hidden)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, *input_shape)`` -> reconstruction of the same shape."""
        return self.decoder(self.encoder(x)).view(x.shape[0], *self.input_shape)

    def loss(self, x: Tensor, views: MultiViewTransform) -> Tensor:
        source = views(x)[0] if self.denoise else x
        return F.mse_loss(self(source), x)
