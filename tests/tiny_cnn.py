"""The tiny BatchNorm CNN the drift and bench tests adapt, trained the way the real one is."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from driftwise.models.augment import image_view
from driftwise.models.classifier import Classifier
from driftwise.models.config import ModelConfig

TINY = ModelConfig(encoder="cnn", input_shape=(1, 8, 8), num_classes=10, width=8, embed_dim=32)


def train_tiny(x: np.ndarray, y: np.ndarray, epochs: int = 15, seed: int = 0) -> Classifier:
    """A small CNN trained on augmented views, as `driftwise.models.pipeline.fit_model` trains the real one."""
    torch.manual_seed(seed)
    model = Classifier(TINY)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    X, Y = torch.as_tensor(x), torch.as_tensor(y)
    view, generator = image_view(), torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(X), generator=generator).split(64):
            loss = F.cross_entropy(model.raw_logits(view(X[idx], generator)), Y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()
