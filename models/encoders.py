"""Encoders that turn one instance into an embedding.

Both use BatchNorm: re-estimating its statistics on drifted inputs is the cheapest
label-free adaptation there is, and it works best on images.
"""

from __future__ import annotations

import torch
from torch import nn

from models.config import ModelConfig


class MLPEncoder(nn.Module):
    """Flat vectors ``(B, d)`` -> embeddings ``(B, embed_dim)``."""

    def __init__(self, in_dim: int, hidden: int = 256, embed_dim: int = 128) -> None:
        super().__init__()
        if in_dim <= 0 or hidden <= 0 or embed_dim <= 0:
            raise ValueError("in_dim, hidden and embed_dim must be positive")
        self.embed_dim = embed_dim
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, embed_dim),
            nn.BatchNorm1d(embed_dim),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class CNNEncoder(nn.Module):
    """Small images ``(B, C, H, W)`` -> embeddings ``(B, embed_dim)``.

    Three conv-BN-ReLU blocks, one 2x down-sampling, then a BN'd linear projection.
    Sized for 8x8 digits but any H, W >= 2 works.
    """

    def __init__(self, in_channels: int, height: int, width_px: int, width: int = 32, embed_dim: int = 128) -> None:
        super().__init__()
        if min(in_channels, height, width_px, width, embed_dim) <= 0:
            raise ValueError("all sizes must be positive")
        self.embed_dim = embed_dim
        self.features = nn.Sequential(
            _conv_block(in_channels, width),
            _conv_block(width, 2 * width),
            nn.MaxPool2d(2) if min(height, width_px) >= 2 else nn.Identity(),
            _conv_block(2 * width, 2 * width),
        )
        with torch.no_grad():
            n = self.features(torch.zeros(2, in_channels, height, width_px)).flatten(1).shape[1]
        self.project = nn.Sequential(
            nn.Linear(n, embed_dim),
            nn.BatchNorm1d(embed_dim),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.features(x).flatten(1))


def build_encoder(config: ModelConfig) -> nn.Module:
    """Build the encoder a config describes; it has an ``embed_dim`` attribute.

    >>> enc = build_encoder(ModelConfig(encoder="cnn", input_shape=(1, 8, 8), num_classes=10))
    >>> enc.eval()(torch.zeros(3, 1, 8, 8)).shape
    torch.Size([3, 128])
    """
    if config.encoder == "mlp":
        return MLPEncoder(config.input_dim, config.hidden, config.embed_dim)
    c, h, w = config.input_shape
    return CNNEncoder(c, h, w, config.width, config.embed_dim)
