"""Encoders that turn one instance into an embedding.

Both use BatchNorm: re-estimating its statistics on drifted inputs is the cheapest
label-free adaptation there is, and it works best on images.

The MLP first standardises its inputs with a per-feature mean and scale fitted
once on the pretraining data (`InputStandardizer`): tabular features come in
units that differ by orders of magnitude (river's ImageSegments: stds from 0.02
to 73), and without it the widest feature dominates the first layer.
"""

from __future__ import annotations

import torch
from torch import nn

from driftwise.models.config import ModelConfig


class InputStandardizer(nn.Module):
    """``(x - mean) / scale`` per feature, with both fitted on the training inputs and saved as buffers.

    Identity until `fit` is called; the statistics are fixed afterwards (drift is
    for BatchNorm re-estimation to follow, not this layer).

    >>> s = InputStandardizer(2)
    >>> s.fit(torch.tensor([[0.0, 10.0], [2.0, 30.0]]))
    >>> s(torch.tensor([[1.0, 20.0]])).tolist()
    [[0.0, 0.0]]
    """

    def __init__(self, in_dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("scale", torch.ones(in_dim))

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        """Fit on ``(n, d)`` inputs; a constant feature keeps scale 1 rather than dividing by ~0."""
        x = x.detach().float().flatten(1).to(self.mean.device)
        std = x.std(0, unbiased=False) if len(x) > 1 else torch.zeros_like(self.scale)
        self.mean.copy_(x.mean(0))
        self.scale.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.scale


def fit_input_standardizer(encoder: nn.Module, X: torch.Tensor) -> None:
    """Fit the encoder's `InputStandardizer` on ``X`` when it has one (the MLP); others are left as they are."""
    standardize = getattr(encoder, "standardize", None)
    if isinstance(standardize, InputStandardizer):
        standardize.fit(torch.as_tensor(X))


class MLPEncoder(nn.Module):
    """Flat vectors ``(B, d)`` -> embeddings ``(B, embed_dim)``."""

    def __init__(self, in_dim: int, hidden: int = 256, embed_dim: int = 128) -> None:
        super().__init__()
        if in_dim <= 0 or hidden <= 0 or embed_dim <= 0:
            raise ValueError("in_dim, hidden and embed_dim must be positive")
        self.embed_dim = embed_dim
        self.standardize = InputStandardizer(in_dim)
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
        return self.net(self.standardize(x.flatten(1)))


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
