"""Three gaussian classes in 8 features and a small MLP trained on them: a real model whose right answers are
known, for tests of what adapting does to accuracy."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from driftwise.models.classifier import Classifier
from driftwise.models.config import ModelConfig
from driftwise.models.pipeline import source_prior

K, D = 3, 8
CENTERS = np.eye(K, D, dtype=np.float32) * 3.0


def blobs(n: int, seed: int, prior: list[float] | None = None, gain: float = 1.0, shift: float = 0.0
          ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` inputs ``(n, 8)`` and labels; ``prior`` skews the classes, ``gain`` and ``shift`` move the inputs."""
    rng = np.random.default_rng(seed)
    y = rng.choice(K, size=n, p=prior)
    return ((CENTERS[y] + rng.normal(0.0, 1.0, (n, D))) * gain + shift).astype(np.float32), y


def fit_mlp(x: np.ndarray, y: np.ndarray, k: int, *, hidden: int = 32, embed_dim: int = 16,
            steps: int = 150) -> Classifier:
    """A small MLP trained on ``(x, y)`` by full-batch Adam from torch seed 0, in eval mode; its ``class_prior``
    is the smoothed class shares of ``y``, as `driftwise.models.pipeline.fit_classifier` records them."""
    torch.manual_seed(0)
    model = Classifier(ModelConfig(encoder="mlp", input_shape=(x.shape[1],), num_classes=k, hidden=hidden,
                                   embed_dim=embed_dim))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(model.raw_logits(torch.as_tensor(x)), torch.as_tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.class_prior.copy_(torch.as_tensor(source_prior(y, k), dtype=torch.float32))
    return model.eval()


@lru_cache(maxsize=1)
def _trained_state() -> dict[str, torch.Tensor]:
    x, y = blobs(600, seed=0)
    return {k: v.detach().clone() for k, v in fit_mlp(x, y, K).state_dict().items()}


def trained_model() -> tuple[Classifier, np.ndarray, np.ndarray]:
    """A fresh copy of the trained MLP (balanced classes) and 150 of its training rows as anchors."""
    model = Classifier(ModelConfig(encoder="mlp", input_shape=(D,), num_classes=K, hidden=32, embed_dim=16))
    model.load_state_dict(_trained_state())
    x, y = blobs(600, seed=0)
    return model.eval(), x[:150], y[:150]
