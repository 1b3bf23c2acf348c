"""Fitting a model's normalisations to new inputs: BatchNorm statistics, and an MLP's input standardiser when it
has one that was fitted in pretraining."""

from __future__ import annotations

import torch

from driftwise.models.classifier import Classifier
from driftwise.models.config import ModelConfig
from driftwise.models.encoders import fit_input_standardizer
from driftwise.models.train import recalibrate_normalization


def mlp() -> Classifier:
    torch.manual_seed(0)
    return Classifier(ModelConfig(encoder="mlp", input_shape=(3,), num_classes=2, hidden=8, embed_dim=4))


def test_the_input_standardiser_is_refitted_where_the_new_inputs_moved() -> None:
    model = mlp()
    torch.manual_seed(1)
    fit_input_standardizer(model.encoder, torch.randn(2000, 3))
    standardize = model.encoder.standardize
    source_mean, source_scale = standardize.mean.clone(), standardize.scale.clone()
    drifted = torch.randn(200, 3) * torch.tensor([1.0, 50.0, 1.0]) + torch.tensor([0.0, 0.0, 300.0])
    recalibrate_normalization(model, drifted)
    assert (standardize.mean[0], standardize.scale[0]) == (source_mean[0], source_scale[0]), \
        "an unmoved feature keeps statistics fitted on more data than the window"
    assert torch.allclose(standardize.scale[1], drifted[:, 1].std(unbiased=False)), "new units"
    assert torch.allclose(standardize.mean[2], drifted[:, 2].mean()), "a new zero"
    assert standardize.scale[2] == source_scale[2], "the same units"
    bn = model.encoder.net[1]
    assert bn.num_batches_tracked.item() > 0, "BatchNorm re-estimated after it"


def test_a_model_trained_without_a_fitted_standardiser_keeps_its_raw_inputs() -> None:
    model = mlp()  # identity standardiser: its weights were learnt on raw inputs
    recalibrate_normalization(model, torch.randn(200, 3) * 40.0 + 7.0)
    assert not model.encoder.standardize.fitted
    assert torch.equal(model.encoder.standardize.mean, torch.zeros(3))


def test_a_cnn_has_only_batchnorm_to_fit() -> None:
    torch.manual_seed(0)
    cnn = Classifier(ModelConfig(encoder="cnn", input_shape=(1, 8, 8), num_classes=3, width=4, embed_dim=8))
    before = {k: v.clone() for k, v in cnn.state_dict().items() if "running_mean" in k}
    recalibrate_normalization(cnn, torch.rand(64, 1, 8, 8) * 16.0)
    after = cnn.state_dict()
    assert any(not torch.equal(v, after[k]) for k, v in before.items())
