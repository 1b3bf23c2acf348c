"""Projection and prediction heads, each built from a list of blocks.

A block is ``(in_dim, out_dim, norm, activation)``: a linear layer, then an
optional norm and activation. Each paper's head is a small constructor with the
paper's layout, so a new head is a new block list, never a new class hierarchy.

Examples
--------
>>> head = SimCLRProjectionHead(128, 256, 64)
>>> head.train()(torch.randn(8, 128)).shape
torch.Size([8, 64])
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

Block = tuple[int, int, nn.Module | None, nn.Module | None]


class Head(nn.Module):
    """``(B, blocks[0].in_dim)`` -> ``(B, blocks[-1].out_dim)`` through the given blocks."""

    def __init__(self, blocks: Sequence[Block]) -> None:
        super().__init__()
        if not blocks:
            raise ValueError("a head needs at least one block")
        layers: list[nn.Module] = []
        prev_out = blocks[0][0]
        for in_dim, out_dim, norm, activation in blocks:
            if in_dim != prev_out or min(in_dim, out_dim) <= 0:
                raise ValueError(f"block ({in_dim} -> {out_dim}) does not follow the previous output {prev_out}")
            layers.append(nn.Linear(in_dim, out_dim, bias=norm is None))
            layers.extend(m for m in (norm, activation) if m is not None)
            prev_out = out_dim
        self.layers = nn.Sequential(*layers)
        self.in_dim, self.out_dim = blocks[0][0], prev_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def SimCLRProjectionHead(in_dim: int, hidden: int = 256, out_dim: int = 64) -> Head:
    """SimCLR's MLP projector (Chen et al. 2020, https://arxiv.org/abs/2002.05709)."""
    return Head([(in_dim, hidden, nn.BatchNorm1d(hidden), nn.ReLU()), (hidden, out_dim, None, None)])


def BYOLProjectionHead(in_dim: int, hidden: int = 512, out_dim: int = 128) -> Head:
    """BYOL's projector (Grill et al. 2020, https://arxiv.org/abs/2006.07733)."""
    return Head([(in_dim, hidden, nn.BatchNorm1d(hidden), nn.ReLU()), (hidden, out_dim, None, None)])


def BYOLPredictionHead(in_dim: int = 128, hidden: int = 512, out_dim: int = 128) -> Head:
    """BYOL's predictor, on the online side only."""
    return Head([(in_dim, hidden, nn.BatchNorm1d(hidden), nn.ReLU()), (hidden, out_dim, None, None)])


def SimSiamProjectionHead(in_dim: int, hidden: int = 256, out_dim: int = 128) -> Head:
    """SimSiam's projector, BN on every layer including the output (Chen & He 2021, https://arxiv.org/abs/2011.10566)."""
    return Head(
        [
            (in_dim, hidden, nn.BatchNorm1d(hidden), nn.ReLU()),
            (hidden, out_dim, nn.BatchNorm1d(out_dim, affine=False), None),
        ]
    )


def SimSiamPredictionHead(in_dim: int = 128, hidden: int = 64, out_dim: int = 128) -> Head:
    """SimSiam's bottleneck predictor."""
    return Head([(in_dim, hidden, nn.BatchNorm1d(hidden), nn.ReLU()), (hidden, out_dim, None, None)])


def JEPAPredictionHead(in_dim: int, hidden: int = 256, out_dim: int = 128) -> Head:
    """Predicts the target embedding from the context embedding and the mask (I-JEPA's role, MLP form)."""
    return Head([(in_dim, hidden, nn.BatchNorm1d(hidden), nn.ReLU()), (hidden, out_dim, None, None)])


def DecoderHead(in_dim: int, out_dim: int, bottleneck: int = 32, hidden: int = 256) -> Head:
    """The autoencoder's decoder: a narrow bottleneck, then back up to the input size."""
    return Head(
        [
            (in_dim, bottleneck, nn.BatchNorm1d(bottleneck), nn.ReLU()),
            (bottleneck, hidden, nn.BatchNorm1d(hidden), nn.ReLU()),
            (hidden, out_dim, None, None),
        ]
    )
