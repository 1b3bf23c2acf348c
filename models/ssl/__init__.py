"""Self-supervised objectives behind one interface (`SSLObjective`) and one registry.

Examples
--------
>>> from driftwise.models.config import ModelConfig
>>> from driftwise.models.encoders import build_encoder
>>> cfg = ModelConfig(encoder="mlp", input_shape=(6,), num_classes=2, embed_dim=16, hidden=32)
>>> objective = build_objective("byol", build_encoder(cfg), cfg)
>>> objective.name, sorted(OBJECTIVES)
('byol', ['ae', 'byol', 'jepa', 'simclr', 'simsiam'])
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

from torch import nn

from driftwise.models.config import ModelConfig
from driftwise.models.ssl.autoencoder import Autoencoder
from driftwise.models.ssl.base import SSLObjective
from driftwise.models.ssl.byol import BYOL
from driftwise.models.ssl.jepa import JEPA
from driftwise.models.ssl.simclr import NTXentLoss, SimCLR
from driftwise.models.ssl.simsiam import SimSiam

ObjectiveName = Literal["ae", "simclr", "byol", "simsiam", "jepa"]

OBJECTIVES: dict[str, type[SSLObjective]] = {
    cls.name: cls for cls in (Autoencoder, SimCLR, BYOL, SimSiam, JEPA)
}


def build_objective(name: ObjectiveName, encoder: nn.Module, config: ModelConfig, **hparams: Any) -> SSLObjective:
    """Wrap ``encoder`` (built from ``config``) in the named objective; ``hparams`` go to its constructor."""
    return make_objective(name, encoder, config.embed_dim, config.input_shape, **hparams)


def make_objective(
    name: str, encoder: nn.Module, embed_dim: int, input_shape: Sequence[int], **hparams: Any
) -> SSLObjective:
    """Like `build_objective`, for callers that hold an encoder but no `ModelConfig`."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown SSL objective {name!r}; choose one of {sorted(OBJECTIVES)}")
    return OBJECTIVES[name](encoder, embed_dim, input_shape, **hparams)


__all__ = ["OBJECTIVES", "NTXentLoss", "ObjectiveName", "SSLObjective", "build_objective", "make_objective"]
