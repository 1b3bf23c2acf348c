"""Encoder + linear head + temperature + prior correction: the model that is served."""

from __future__ import annotations

import torch
from torch import nn

from driftwise.models.config import ModelConfig
from driftwise.models.encoders import build_encoder


class Classifier(nn.Module):
    """Maps ``(B, *input_shape)`` to calibrated logits ``(B, num_classes)``.

    The temperature is a buffer, so it travels in the weights file; ``forward``
    divides by it, which is what makes ``softmax(forward(x))`` a calibrated
    probability (see `driftwise.models.calibration`). ``log_prior_ratio`` (zeros unless a
    label shift was corrected, `driftwise.drift.label_shift`) is added after it: Bayes'
    rule for a class prior other than the one trained under. ``class_prior`` is
    that prior: the class shares of the labeled data the head was fitted on
    (uniform until `driftwise.models.pipeline.fit_classifier` sets it). Adaptation trains
    under it and the guardrails judge class balance against it, so a skewed or
    binary problem is not pushed toward equal shares.

    >>> m = Classifier(ModelConfig(encoder="mlp", input_shape=(4,), num_classes=3)).eval()
    >>> logits, emb = m.forward_with_embedding(torch.zeros(2, 4))
    >>> tuple(logits.shape), tuple(emb.shape)
    ((2, 3), (2, 128))
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = build_encoder(config)
        self.head = nn.Linear(config.embed_dim, config.num_classes)
        self.register_buffer("temperature", torch.ones(()))
        self.register_buffer("log_prior_ratio", torch.zeros(config.num_classes))
        self.register_buffer("class_prior", torch.full((config.num_classes,), 1.0 / config.num_classes))

    def served_prior(self) -> torch.Tensor:
        """The class prior the served probabilities assume: ``class_prior`` moved by ``log_prior_ratio``."""
        prior = self.class_prior * torch.exp(self.log_prior_ratio)
        return prior / prior.sum()

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def raw_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits before temperature scaling (what training optimises)."""
        return self.head(self.encoder(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits_of(self.encoder(x))

    def logits_of(self, z: torch.Tensor) -> torch.Tensor:
        """The served logits of embeddings ``z``: temperature-scaled, moved by any label-shift correction."""
        return self.head(z) / self.temperature + self.log_prior_ratio

    def forward_with_embedding(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(x)
        return self.logits_of(z), z
