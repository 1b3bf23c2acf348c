"""Augmentations: shapes kept, seeded and reproducible, each transform does what it says."""

import pytest
import torch

from driftwise.models.augment import (
    ColorJitter,
    FeatureDropout,
    GaussianBlur,
    GaussianNoise,
    MarginalCorruption,
    MultiViewTransform,
    RandomErasing,
    RandomRotation,
    RandomShift,
    ViewTransform,
    default_views,
)

IMAGE_TRANSFORMS = [
    RandomShift(1),
    RandomRotation(12.0, p=1.0),
    GaussianBlur(p=1.0),
    GaussianNoise(0.1, p=1.0),
    ColorJitter(p=1.0),
    RandomErasing(p=1.0),
]


def _images(n: int = 16) -> torch.Tensor:
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("transform", IMAGE_TRANSFORMS, ids=lambda t: type(t).__name__)
def test_image_transform_keeps_shape_and_changes_the_batch(transform):
    x = _images()
    out = transform(x, torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.isfinite(out).all()
    assert not torch.equal(out, x)


@pytest.mark.parametrize("transform", IMAGE_TRANSFORMS, ids=lambda t: type(t).__name__)
def test_image_transform_is_reproducible_with_the_same_generator_seed(transform):
    x = _images()
    a = transform(x, torch.Generator().manual_seed(7))
    b = transform(x, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_default_views_are_reproducible_and_the_two_views_differ():
    x = _images()
    a0, a1 = default_views((1, 8, 8), x, seed=3)(x)
    b0, b1 = default_views((1, 8, 8), x, seed=3)(x)
    c0, _ = default_views((1, 8, 8), x, seed=4)(x)
    assert torch.equal(a0, b0) and torch.equal(a1, b1)
    assert not torch.equal(a0, a1)
    assert not torch.equal(a0, c0)


def test_random_shift_moves_a_single_pixel_by_at_most_max_shift():
    x = torch.zeros(64, 1, 8, 8)
    x[:, 0, 4, 4] = 1.0
    out = RandomShift(1)(x, torch.Generator().manual_seed(0))
    assert torch.allclose(out.sum((1, 2, 3)), torch.ones(64))  # nothing falls off: the pixel is central
    positions = out[:, 0].flatten(1).argmax(1)
    rows, cols = positions // 8, positions % 8
    assert set(rows.tolist()) == {3, 4, 5} and set(cols.tolist()) == {3, 4, 5}


def test_rotation_by_zero_degrees_is_the_identity():
    x = _images()
    assert torch.allclose(RandomRotation(0.0, p=1.0)(x), x, atol=1e-6)


def test_random_erasing_blanks_one_filled_rectangle_per_image():
    x = torch.ones(32, 1, 8, 8)
    out = RandomErasing(scale=(0.05, 0.2), value=0.0, p=1.0)(x, torch.Generator().manual_seed(0))
    for img in out[:, 0]:
        zeros = (img == 0).nonzero()
        assert len(zeros) >= 1
        (r0, c0), (r1, c1) = zeros.min(0).values, zeros.max(0).values
        assert len(zeros) == (r1 - r0 + 1) * (c1 - c0 + 1)  # a solid rectangle
        assert len(zeros) <= 0.2 * 64 * 2  # rounding to whole pixels can stretch the box a little


def test_gaussian_noise_with_p_zero_changes_nothing():
    x = _images()
    assert torch.equal(GaussianNoise(0.5, p=0.0)(x), x)


def test_marginal_corruption_draws_each_feature_from_its_own_reference_column():
    reference = torch.arange(40, dtype=torch.float32).view(10, 4)  # column j holds values = j (mod 4)
    x = torch.full((50, 4), -1.0)
    out = MarginalCorruption(reference, rate=0.5)(x, torch.Generator().manual_seed(0))
    corrupted = out != -1.0
    assert 0.3 < corrupted.float().mean() < 0.7
    columns = torch.arange(4).expand(50, 4)
    assert torch.equal(out[corrupted].long() % 4, columns[corrupted])


def test_feature_dropout_fills_about_p_of_the_features():
    x = torch.ones(200, 10)
    out = FeatureDropout(p=0.2, fill=0.0)(x, torch.Generator().manual_seed(0))
    assert abs((out == 0).float().mean().item() - 0.2) < 0.03


def test_tabular_default_views_keep_shape():
    X = torch.randn(100, 6, generator=torch.Generator().manual_seed(0))
    v0, v1 = default_views((6,), X, seed=0)(X[:8])
    assert v0.shape == (8, 6) and not torch.equal(v0, v1)


def test_default_views_reject_a_reference_of_the_wrong_width():
    with pytest.raises(ValueError, match="X_reference"):
        default_views((6,), torch.zeros(10, 5))


@pytest.mark.parametrize(
    "make",
    [
        lambda: RandomShift(-1),
        lambda: RandomRotation(10, p=1.5),
        lambda: GaussianBlur(sigma=(0.0, 1.0)),
        lambda: RandomErasing(scale=(0.5, 0.1)),
        lambda: ColorJitter(contrast=1.5),
        lambda: MultiViewTransform([]),
    ],
)
def test_bad_hyperparameters_raise_value_error(make):
    with pytest.raises(ValueError):
        make()


def test_view_transform_applies_transforms_in_order():
    x = torch.zeros(2, 3)
    view = ViewTransform([lambda t, g=None: t + 1, lambda t, g=None: t * 3])
    assert torch.equal(view(x), torch.full((2, 3), 3.0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_views_run_on_cuda_with_a_cpu_generator():
    x = _images().cuda()
    a, b = default_views((1, 8, 8), x.cpu(), seed=0)(x)
    assert a.is_cuda and b.is_cuda
