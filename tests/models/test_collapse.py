"""The collapse monitor tells a collapsed encoder from a healthy one, and pretraining refuses a collapsed run."""

import numpy as np
import pytest
import torch
from torch import nn

from driftwise.models.collapse import RepresentationCollapse, check_collapse, collapse_report, effective_rank
from driftwise.models.pretrain import pretrain_encoder


class ConstantEncoder(nn.Module):
    """Maps every input to the same (learnable) vector: the definition of collapse."""

    def __init__(self, embed_dim: int = 16) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.value = nn.Parameter(torch.ones(embed_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.value.expand(len(x), -1) + 0.0 * x.flatten(1).sum(1, keepdim=True)


def test_constant_encoder_is_flagged_as_collapsed_with_a_clear_message():
    z = ConstantEncoder()(torch.randn(128, 8))
    report = collapse_report(z)
    assert report.collapsed and report.std_ratio == pytest.approx(0.0, abs=1e-6) and report.effective_rank == 0.0
    with pytest.raises(RepresentationCollapse, match="encoder collapsed: normalised-embedding std"):
        check_collapse(z)


def test_pretraining_a_constant_encoder_fails_loudly():
    X = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    with pytest.raises(RepresentationCollapse, match="simclr pretraining collapsed the encoder"):
        pretrain_encoder(ConstantEncoder(), X, "simclr", epochs=1, batch_size=32, device="cpu")


def test_pretraining_can_report_a_collapse_without_raising():
    X = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    report = pretrain_encoder(ConstantEncoder(), X, "byol", epochs=2, batch_size=32, device="cpu", fail_on_collapse=False)
    assert [c["collapsed"] for c in report.collapse] == [True, True]


def test_gaussian_embeddings_are_healthy():
    z = torch.randn(1000, 32, generator=torch.Generator().manual_seed(0))
    report = check_collapse(z)
    assert not report.collapsed
    assert report.std_ratio == pytest.approx(1.0, abs=0.05)
    assert report.effective_rank > 25


def test_embeddings_on_a_line_have_effective_rank_one():
    t = torch.randn(500, 1, generator=torch.Generator().manual_seed(0))
    z = t * torch.randn(1, 16, generator=torch.Generator().manual_seed(1)) + 3.0
    assert effective_rank(z) == pytest.approx(1.0, abs=1e-3)
    assert collapse_report(z).collapsed  # a line is below the rank threshold of 1.5


def test_effective_rank_matches_a_numpy_reference():
    z = torch.randn(200, 10, generator=torch.Generator().manual_seed(0)) * torch.arange(1, 11)
    centred = z.numpy() - z.numpy().mean(0)
    s = np.linalg.svd(centred, compute_uv=False)
    p = s / s.sum()
    assert effective_rank(z) == pytest.approx(float(np.exp(-(p * np.log(p)).sum())), rel=1e-4)


def test_non_finite_embeddings_count_as_collapsed():
    z = torch.randn(10, 4)
    z[3, 1] = float("nan")
    assert collapse_report(z).collapsed


def test_collapse_report_rejects_a_single_sample():
    with pytest.raises(ValueError, match="n >= 2"):
        collapse_report(torch.randn(1, 4))
