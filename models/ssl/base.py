"""The one interface every self-supervised objective implements.

The training loop (`driftwise.models.pretrain`) only ever calls ``loss(x, views)`` and
``after_step(progress)``, so adding an objective never touches the loop. Each
objective owns whatever extra networks it needs (projectors, predictors, EMA
targets, decoders); after pretraining only ``encoder`` is kept.
"""

from __future__ import annotations

import math
from typing import ClassVar, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from driftwise.models.augment import MultiViewTransform


class SSLObjective(nn.Module):
    """Base class: an encoder plus the parts and the loss of one pretext task.

    Parameters
    ----------
    encoder:
        Maps ``(B, *input_shape)`` to ``(B, embed_dim)``; trained in place.
    embed_dim:
        Size of the encoder's output.
    input_shape:
        Shape of one instance, e.g. ``(1, 8, 8)`` or ``(d,)``.
    """

    name: ClassVar[str] = "base"

    def __init__(self, encoder: nn.Module, embed_dim: int, input_shape: Sequence[int]) -> None:
        super().__init__()
        if embed_dim <= 0:
            raise ValueError(f"embed_dim must be positive, got {embed_dim}")
        if not input_shape or any(int(s) <= 0 for s in input_shape):
            raise ValueError(f"input_shape must be non-empty and positive, got {tuple(input_shape)}")
        self.encoder = encoder
        self.embed_dim = embed_dim
        self.input_shape = tuple(int(s) for s in input_shape)

    @property
    def input_dim(self) -> int:
        return math.prod(self.input_shape)

    def loss(self, x: Tensor, views: MultiViewTransform) -> Tensor:
        """Scalar loss for one batch ``x`` of shape ``(B, *input_shape)``; ``views`` makes the augmented copies."""
        raise NotImplementedError

    def after_step(self, progress: float) -> None:
        """Called after every optimiser step with training progress in [0, 1] (EMA updates go here)."""

    def embed(self, x: Tensor) -> Tensor:
        """The representation kept after pretraining: ``(B, *input_shape)`` -> ``(B, embed_dim)``."""
        return self.encoder(x)


def two_views(x: Tensor, views: MultiViewTransform) -> tuple[Tensor, Tensor]:
    """The first two views of ``x``; a clear error when the transform makes fewer."""
    made = views(x)
    if len(made) < 2:
        raise ValueError(f"this objective needs at least 2 views, the transform made {len(made)}")
    return made[0], made[1]


def negative_cosine(p: Tensor, z: Tensor) -> Tensor:
    """Mean of ``-cos(p, z)`` over the batch, with ``z`` treated as a constant (stop-gradient)."""
    return -F.cosine_similarity(p, z.detach(), dim=-1).mean()
