"""Encoders that turn one instance into an embedding.

Both use BatchNorm: re-estimating its statistics on drifted inputs is the cheapest
label-free adaptation there is, and it works best on images.

The MLP first standardises its inputs with a per-feature mean and scale fitted
on the pretraining data (`InputStandardizer`): tabular features come in
units that differ by orders of magnitude (river's ImageSegments: stds from 0.02
to 73), and without it the widest feature dominates the first layer. It is the
MLP's first normalisation layer, so adaptation re-fits it on drifted inputs as it
re-estimates BatchNorm (`driftwise.models.train.recalibrate_normalization`).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from driftwise.models.config import ModelConfig


REFIT_Z = 3.0
"""Standard errors past which `InputStandardizer.refit` counts a feature's statistic as moved (as
`driftwise.drift.guardrails.GuardrailConfig.class_shift_z`: about 0.3% of unmoved features re-fitted)."""


class InputStandardizer(nn.Module):
    """``(x - mean) / scale`` per feature, with both fitted on the training inputs and saved as buffers.

    Identity until `fit` is called. Under drift, `refit` moves only the statistics
    that the drifted inputs show have moved (`driftwise.models.train.recalibrate_normalization`).

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

    @torch.no_grad()
    def refit(self, x: torch.Tensor, z: float = REFIT_Z) -> None:
        """Re-fit on drifted inputs ``(n, d)`` only what moved beyond their sampling noise.

        A feature's mean is re-fitted when the inputs' mean is more than ``z`` standard
        errors from it, or its scale moved; its scale when the log of the variance ratio
        is more than ``z`` standard errors from 0 (the standard error from the inputs'
        own kurtosis, ``sqrt((kurtosis - 1) / n)``, so heavy tails and discrete values
        are judged by their own noise). So a sensor in new units or from a new zero is
        standardised as before its fault, while the features that did not move keep
        statistics fitted on far more data than a window (a full re-fit on 128 inputs
        cost up to 0.9 points more than BatchNorm alone on clean windows). A feature
        constant over the inputs (a dead sensor) is centred on its reading and keeps
        its scale, so it reads 0 and a reading that comes back has its old size.

        >>> s = InputStandardizer(2)
        >>> s.fit(torch.tensor([[0.0, 0.0], [2.0, 2.0]] * 50))       # both: mean 1, scale 1
        >>> same = torch.tensor([[0.0], [2.0]] * 100)
        >>> s.refit(torch.cat([same, same * 100.0 + 7.0], dim=1))  # the second sensor: new units, new zero
        >>> [round(v, 1) for v in s.mean.tolist()], [round(v, 1) for v in s.scale.tolist()]
        ([1.0, 107.0], [1.0, 100.0])
        """
        x = x.detach().double().flatten(1).to(self.mean.device)
        n = len(x)
        if n < 2:
            return
        mean, var = x.mean(0), x.var(0, unbiased=False)
        old_mean, old_var = self.mean.double(), self.scale.double() ** 2
        mean_moved = (mean - old_mean).abs() > z * torch.sqrt(var / n)
        kurtosis = ((x - mean) ** 4).mean(0) / var.clamp_min(1e-24) ** 2
        log_ratio_se = torch.sqrt((kurtosis - 1.0).clamp_min(2.0 / n) / n)
        scale_moved = torch.log(var.clamp_min(1e-24) / old_var).abs() > z * log_ratio_se
        constant = var.sqrt() <= 1e-6
        self.mean.copy_(torch.where(mean_moved | scale_moved, mean, old_mean).to(self.mean.dtype))
        self.scale.copy_(torch.where(scale_moved & ~constant, var.sqrt(), old_var.sqrt()).to(self.scale.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.scale

    @property
    def fitted(self) -> bool:
        """False while it is still the identity: a model trained on raw inputs must not have them standardised."""
        return bool((self.mean != 0).any() or (self.scale != 1).any())

    @contextmanager
    def fitted_to(self, x: torch.Tensor) -> Iterator[None]:
        """Standardise as if fitted on ``x`` inside the block, as before after it (gradients flow as ever).

        Replayed labeled anchors are clean while the model is fitted to a drifted
        window; each batch of them is standardised in its own domain, as BatchNorm
        in training mode normalises each batch with its own statistics.

        >>> s = InputStandardizer(1)
        >>> s.fit(torch.tensor([[0.0], [2.0]]))
        >>> with s.fitted_to(torch.tensor([[10.0], [30.0]])):
        ...     inside = s(torch.tensor([[20.0]])).item()
        >>> inside, s(torch.tensor([[1.0]])).item()
        (0.0, 0.0)
        """
        saved = self.mean.clone(), self.scale.clone()
        self.refit(x)
        try:
            yield
        finally:
            self.mean.copy_(saved[0])
            self.scale.copy_(saved[1])


def input_standardizer(encoder: nn.Module) -> InputStandardizer | None:
    """The encoder's `InputStandardizer`, when it has one (the MLP)."""
    standardize = getattr(encoder, "standardize", None)
    return standardize if isinstance(standardize, InputStandardizer) else None


def fit_input_standardizer(encoder: nn.Module, X: torch.Tensor) -> None:
    """Fit the encoder's `InputStandardizer` on ``X`` when it has one (the MLP); others are left as they are."""
    standardize = input_standardizer(encoder)
    if standardize is not None:
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
