"""The input-standardiser bench's variant: a feature's statistics are re-fitted only where the window moved them."""

from __future__ import annotations

import torch

from driftwise.bench.input_standardizer import refit_moved
from driftwise.models.classifier import Classifier
from driftwise.models.config import ModelConfig
from driftwise.models.encoders import fit_input_standardizer


def test_a_sensor_in_new_units_is_refitted_and_an_unmoved_one_keeps_its_statistics() -> None:
    torch.manual_seed(0)
    model = Classifier(ModelConfig(encoder="mlp", input_shape=(3,), num_classes=2, hidden=8, embed_dim=4))
    fit_input_standardizer(model.encoder, torch.randn(2000, 3))
    standardize = model.encoder.standardize
    source_mean, source_scale = standardize.mean.clone(), standardize.scale.clone()
    window = torch.randn(200, 3) * torch.tensor([1.0, 50.0, 1.0]) + torch.tensor([0.0, 0.0, 300.0])
    refit_moved(model, window)
    assert (standardize.mean[0], standardize.scale[0]) == (source_mean[0], source_scale[0])
    assert torch.allclose(standardize.scale[1], window[:, 1].std(unbiased=False)), "new units"
    assert torch.allclose(standardize.mean[2], window[:, 2].mean()) and standardize.scale[2] == source_scale[2]
