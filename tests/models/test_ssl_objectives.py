"""Every SSL objective lowers its own loss; the loss modules, EMA and heads behave as the papers say."""

import math

import pytest
import torch
import torch.nn.functional as F

from driftwise.models.augment import default_views
from driftwise.models.config import ModelConfig
from driftwise.models.encoders import build_encoder
from driftwise.models.ssl import OBJECTIVES, build_objective
from driftwise.models.ssl.byol import BYOL
from driftwise.models.ssl.ema import CosineEMASchedule, cosine_momentum, update_momentum
from driftwise.models.ssl.heads import Head
from driftwise.models.ssl.jepa import JEPA
from driftwise.models.ssl.simclr import NTXentLoss

IMAGE_CFG = ModelConfig(encoder="cnn", input_shape=(1, 8, 8), num_classes=10, embed_dim=32, width=8)
TABULAR_CFG = ModelConfig(encoder="mlp", input_shape=(12,), num_classes=3, embed_dim=32, hidden=64)


def _batch(cfg: ModelConfig, n: int = 32) -> torch.Tensor:
    return torch.rand(n, *cfg.input_shape, generator=torch.Generator().manual_seed(0))


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest (and steadiest on a shared machine) on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _fixed_views(cfg: ModelConfig, x: torch.Tensor):
    """The same views (and masks) every call, so the loss is a fixed function of the weights."""
    return default_views(cfg.input_shape, x, seed=123)


@pytest.mark.parametrize("cfg", [IMAGE_CFG, TABULAR_CFG], ids=["image", "tabular"])
@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_objective_lowers_its_own_loss_on_a_tiny_batch(name, cfg):
    torch.manual_seed(0)
    objective = build_objective(name, build_encoder(cfg), cfg).train()
    x = _batch(cfg)
    with torch.no_grad():
        before = objective.loss(x, _fixed_views(cfg, x)).item()
    optimizer = torch.optim.Adam([p for p in objective.parameters() if p.requires_grad], lr=3e-3)
    steps = 40
    for step in range(steps):
        loss = objective.loss(x, _fixed_views(cfg, x))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        objective.after_step((step + 1) / steps)
    with torch.no_grad():
        after = objective.loss(x, _fixed_views(cfg, x)).item()
    assert math.isfinite(after)
    assert before - after > 0.2 * abs(before), (before, after)


def _ntxent_reference(z0: torch.Tensor, z1: torch.Tensor, t: float) -> torch.Tensor:
    """Slow NT-Xent, one anchor at a time, straight from the SimCLR paper."""
    z = F.normalize(torch.cat([z0, z1]), dim=1)
    n, b = len(z), len(z0)
    total = 0.0
    for i in range(n):
        j = (i + b) % n
        numerator = torch.exp(z[i] @ z[j] / t)
        denominator = sum(torch.exp(z[i] @ z[k] / t) for k in range(n) if k != i)
        total = total - torch.log(numerator / denominator)
    return total / n


def test_ntxent_matches_a_slow_reference():
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    for t in (0.1, 0.5, 1.0):
        assert torch.allclose(NTXentLoss(t)(z0, z1), _ntxent_reference(z0, z1, t), atol=1e-5)


def test_ntxent_rejects_bad_temperature_and_shapes():
    with pytest.raises(ValueError, match="temperature"):
        NTXentLoss(0.0)
    with pytest.raises(ValueError):
        NTXentLoss()(torch.randn(4, 3), torch.randn(5, 3))


def test_byol_target_gets_no_gradient_and_follows_the_online_network_by_ema():
    torch.manual_seed(0)
    byol = BYOL(build_encoder(IMAGE_CFG), 32, (1, 8, 8), momentum_base=0.9)
    x = _batch(IMAGE_CFG, 8)
    byol.loss(x, default_views((1, 8, 8), x)).backward()
    assert all(p.grad is None for p in byol.target_encoder.parameters())
    assert all(p.grad is None for p in byol.target_projector.parameters())
    online = next(byol.encoder.parameters())
    with torch.no_grad():
        online.add_(1.0)
    target_before = next(byol.target_encoder.parameters()).clone()
    byol.after_step(0.0)  # momentum = base = 0.9
    expected = 0.9 * target_before + 0.1 * online
    assert torch.allclose(next(byol.target_encoder.parameters()), expected, atol=1e-6)


def test_jepa_hides_the_same_number_of_patches_in_every_image():
    jepa = JEPA(build_encoder(IMAGE_CFG), 32, (1, 8, 8), mask_ratio=0.25)
    mask = jepa.sample_mask(5, torch.Generator().manual_seed(0))
    assert mask.shape == (5, 16) and mask.sum(1).tolist() == [4] * 5
    hidden = jepa.apply_mask(torch.ones(5, 1, 8, 8), mask)
    assert (hidden == 0).sum((1, 2, 3)).tolist() == [16] * 5  # 4 patches of 2x2 pixels


def test_jepa_target_is_not_trained_by_the_loss():
    torch.manual_seed(0)
    jepa = JEPA(build_encoder(TABULAR_CFG), 32, (12,))
    x = _batch(TABULAR_CFG, 8)
    jepa.loss(x, default_views((12,), x)).backward()
    assert all(p.grad is None for p in jepa.target_encoder.parameters())
    assert any(p.grad is not None for p in jepa.encoder.parameters())


def test_build_objective_rejects_an_unknown_name():
    with pytest.raises(ValueError, match="unknown SSL objective 'mae'"):
        build_objective("mae", build_encoder(IMAGE_CFG), IMAGE_CFG)


def test_update_momentum_blends_parameters():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    expected = 0.75 * b.weight.detach() + 0.25 * a.weight.detach()
    update_momentum(a, b, 0.75)
    assert torch.allclose(b.weight, expected)
    with pytest.raises(ValueError):
        update_momentum(a, b, 1.5)


def test_cosine_ema_schedule_resumes_where_it_stopped():
    full = CosineEMASchedule(0.99, 1.0, total_steps=100)
    for _ in range(37):
        full.step()
    resumed = CosineEMASchedule(0.99, 1.0, total_steps=100)
    resumed.load_state_dict(full.state_dict())
    assert resumed.momentum == full.momentum == cosine_momentum(0.37, 0.99, 1.0)
    assert cosine_momentum(0.0) == pytest.approx(0.99) and cosine_momentum(1.0) == 1.0


def test_head_rejects_blocks_that_do_not_chain():
    with pytest.raises(ValueError, match="does not follow"):
        Head([(4, 8, None, None), (16, 2, None, None)])
