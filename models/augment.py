"""View-making augmentations for self-supervised pretraining and fine-tuning.

Every transform works on a whole batch at once, on whatever device the batch is
on, and draws one independent random setting per sample from an optional
``torch.Generator`` (so two runs with the same seed make the same views). A view
is a list of transforms (`ViewTransform`); a pretext task's inputs are a list of
views (`MultiViewTransform`), as in lightly.

Images are ``(B, C, H, W)``; tabular vectors are ``(B, d)``.

Examples
--------
>>> x = torch.rand(4, 1, 8, 8)
>>> views = default_views((1, 8, 8), x, seed=0)
>>> a, b = views(x)
>>> a.shape, bool((a != b).any())
(torch.Size([4, 1, 8, 8]), True)
>>> bool(torch.equal(default_views((1, 8, 8), x, seed=0)(x)[0], a))
True
"""

from __future__ import annotations

import math
from typing import Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


class Transform(Protocol):
    """Anything that maps a batch to an augmented batch of the same shape."""

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor: ...


def _uniform(n: int, low: float, high: float, like: Tensor, generator: torch.Generator | None) -> Tensor:
    """``n`` draws from U(low, high), made on the generator's device, returned on ``like``'s."""
    gen_device = generator.device if generator is not None else like.device
    u = torch.rand(n, generator=generator, device=gen_device)
    return (low + (high - low) * u).to(like.device, like.dtype)


def _normal(shape: Sequence[int], like: Tensor, generator: torch.Generator | None) -> Tensor:
    gen_device = generator.device if generator is not None else like.device
    return torch.randn(*shape, generator=generator, device=gen_device).to(like.device, like.dtype)


def _chosen(x: Tensor, p: float, generator: torch.Generator | None) -> Tensor:
    """A (B,) boolean mask: which samples get the transform (probability ``p`` each)."""
    return _uniform(x.shape[0], 0.0, 1.0, x, generator) < p


def _check_probability(p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")


def _image_stats(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-image mean and std, shaped (B, 1, 1, 1), so transforms are scale-free."""
    flat = x.flatten(1)
    return flat.mean(1).view(-1, 1, 1, 1), flat.std(1).clamp_min(1e-6).view(-1, 1, 1, 1)


# ---------------------------------------------------------------- images (B, C, H, W)


class RandomShift:
    """Pad by ``max_shift`` zeros, then crop back at a random offset per sample."""

    def __init__(self, max_shift: int = 1) -> None:
        if max_shift < 0:
            raise ValueError(f"max_shift must be >= 0, got {max_shift}")
        self.max_shift = max_shift

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if self.max_shift == 0:
            return x
        b, _, h, w = x.shape
        s = self.max_shift
        padded = F.pad(x, (s, s, s, s))
        dy = (_uniform(b, 0, 2 * s + 1, x, generator).floor().long()).clamp_max(2 * s)
        dx = (_uniform(b, 0, 2 * s + 1, x, generator).floor().long()).clamp_max(2 * s)
        rows = dy[:, None] + torch.arange(h, device=x.device)  # (B, H)
        cols = dx[:, None] + torch.arange(w, device=x.device)  # (B, W)
        batch = torch.arange(b, device=x.device)[:, None, None]
        out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
        return out.permute(0, 3, 1, 2).contiguous()


class RandomRotation:
    """Rotate each image by an angle drawn from [-degrees, degrees] (bilinear, zero fill)."""

    def __init__(self, degrees: float = 12.0, p: float = 0.8) -> None:
        if degrees < 0:
            raise ValueError(f"degrees must be >= 0, got {degrees}")
        _check_probability(p)
        self.degrees, self.p = degrees, p

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        b = x.shape[0]
        angle = _uniform(b, -self.degrees, self.degrees, x, generator) * (math.pi / 180.0)
        angle = torch.where(_chosen(x, self.p, generator), angle, torch.zeros_like(angle))
        cos, sin = angle.cos(), angle.sin()
        zero = torch.zeros_like(cos)
        theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class GaussianBlur:
    """3x3 gaussian blur with sigma drawn from ``sigma`` per image."""

    def __init__(self, sigma: tuple[float, float] = (0.1, 0.8), p: float = 0.3) -> None:
        if not 0 < sigma[0] <= sigma[1]:
            raise ValueError(f"sigma must be an increasing positive range, got {sigma}")
        _check_probability(p)
        self.sigma, self.p = sigma, p

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        b, c, h, w = x.shape
        sigma = _uniform(b, *self.sigma, x, generator)
        offsets = torch.tensor([-1.0, 0.0, 1.0], device=x.device, dtype=x.dtype)
        k1 = torch.exp(-(offsets[None, :] ** 2) / (2 * sigma[:, None] ** 2))
        k1 = k1 / k1.sum(1, keepdim=True)  # (B, 3)
        kernel = (k1[:, :, None] * k1[:, None, :]).repeat_interleave(c, 0)[:, None]  # (B*C, 1, 3, 3)
        mode = "reflect" if min(h, w) > 1 else "replicate"
        padded = F.pad(x.reshape(1, b * c, h, w), (1, 1, 1, 1), mode=mode)
        blurred = F.conv2d(padded, kernel, groups=b * c).view(b, c, h, w)
        return torch.where(_chosen(x, self.p, generator).view(-1, 1, 1, 1), blurred, x)


class GaussianNoise:
    """Add noise ``N(0, (std * scale)^2)``.

    ``scale`` is the per-image std for images (``scale=None``) or a per-feature
    std fitted on reference data for tabular vectors.
    """

    def __init__(self, std: float = 0.05, scale: Tensor | float | None = None, p: float = 0.5) -> None:
        if std < 0:
            raise ValueError(f"std must be >= 0, got {std}")
        _check_probability(p)
        self.std, self.scale, self.p = std, scale, p

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if self.scale is None:
            scale = _image_stats(x)[1] if x.dim() == 4 else x.std(0, keepdim=True).clamp_min(1e-6)
        else:
            scale = torch.as_tensor(self.scale, device=x.device, dtype=x.dtype)
        noise = _normal(x.shape, x, generator) * self.std * scale
        keep = _chosen(x, self.p, generator).view(-1, *([1] * (x.dim() - 1)))
        return x + noise * keep


class ColorJitter:
    """Contrast and brightness: ``(x - mean) * c + mean + b * std`` with per-image c, b."""

    def __init__(self, contrast: float = 0.3, brightness: float = 0.2, p: float = 0.8) -> None:
        if not 0 <= contrast < 1 or brightness < 0:
            raise ValueError(f"need 0 <= contrast < 1 and brightness >= 0, got {contrast}, {brightness}")
        _check_probability(p)
        self.contrast, self.brightness, self.p = contrast, brightness, p

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        b = x.shape[0]
        mean, std = _image_stats(x)
        c = _uniform(b, 1 - self.contrast, 1 + self.contrast, x, generator).view(-1, 1, 1, 1)
        shift = _uniform(b, -self.brightness, self.brightness, x, generator).view(-1, 1, 1, 1)
        jittered = (x - mean) * c + mean + shift * std
        return torch.where(_chosen(x, self.p, generator).view(-1, 1, 1, 1), jittered, x)


class RandomErasing:
    """Set a random rectangle (a ``scale`` fraction of the area) of each chosen image to ``value``."""

    def __init__(self, scale: tuple[float, float] = (0.05, 0.2), value: float = 0.0, p: float = 0.5) -> None:
        if not 0 < scale[0] <= scale[1] < 1:
            raise ValueError(f"scale must be an increasing range inside (0, 1), got {scale}")
        _check_probability(p)
        self.scale, self.value, self.p = scale, value, p

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        b, _, h, w = x.shape
        area = _uniform(b, *self.scale, x, generator) * h * w
        aspect = torch.exp(_uniform(b, math.log(0.5), math.log(2.0), x, generator))
        eh = (area * aspect).sqrt().round().clamp(1, h).long()
        ew = (area / aspect).sqrt().round().clamp(1, w).long()
        top = (_uniform(b, 0, 1, x, generator) * (h - eh + 1)).floor().long()
        left = (_uniform(b, 0, 1, x, generator) * (w - ew + 1)).floor().long()
        r = torch.arange(h, device=x.device)[None, :]
        c = torch.arange(w, device=x.device)[None, :]
        in_rows = (r >= top[:, None]) & (r < (top + eh)[:, None])  # (B, H)
        in_cols = (c >= left[:, None]) & (c < (left + ew)[:, None])  # (B, W)
        box = in_rows[:, :, None] & in_cols[:, None, :] & _chosen(x, self.p, generator)[:, None, None]
        return x.masked_fill(box[:, None], self.value)


# ---------------------------------------------------------------- tabular (B, d)


class MarginalCorruption:
    """SCARF: replace a ``rate`` fraction of each row's features by draws from their marginals.

    The marginals are the empirical ones of ``reference`` (n, d): a corrupted
    feature j takes the value of feature j in a random reference row.
    """

    def __init__(self, reference: Tensor, rate: float = 0.6) -> None:
        if reference.dim() != 2 or reference.shape[0] < 1:
            raise ValueError(f"reference must be a non-empty (n, d) tensor, got shape {tuple(reference.shape)}")
        _check_probability(rate)
        self.reference, self.rate = reference.detach().float(), rate

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        b, d = x.shape
        if d != self.reference.shape[1]:
            raise ValueError(f"expected {self.reference.shape[1]} features, got {d}")
        n = self.reference.shape[0]
        rows = (_uniform(b * d, 0, 1, x, generator) * n).floor().long().clamp_max(n - 1).view(b, d)
        ref = self.reference.to(x.device, x.dtype)
        replacement = ref.gather(0, rows)
        corrupt = _uniform(b * d, 0, 1, x, generator).view(b, d) < self.rate
        return torch.where(corrupt, replacement, x)


class FeatureDropout:
    """Set each feature to ``fill`` (default 0; pass the reference means to use those) with probability ``p``."""

    def __init__(self, p: float = 0.1, fill: Tensor | float = 0.0) -> None:
        _check_probability(p)
        self.p, self.fill = p, fill

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        drop = _uniform(x.numel(), 0, 1, x, generator).view_as(x) < self.p
        fill = torch.as_tensor(self.fill, device=x.device, dtype=x.dtype).expand_as(x)
        return torch.where(drop, fill, x)


# ---------------------------------------------------------------- composition


class ViewTransform:
    """One view: apply the transforms in order."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        for t in self.transforms:
            x = t(x, generator)
        return x


class MultiViewTransform:
    """Make one augmented copy of the batch per view, seeded for reproducibility.

    The transform keeps its own generator (on the CPU, so any device works);
    pass ``generator`` to a call to override it.
    """

    def __init__(self, views: Sequence[Transform], seed: int = 0) -> None:
        if len(views) < 1:
            raise ValueError("need at least one view")
        self.views, self.seed = list(views), seed
        self._reset()

    def _reset(self) -> None:
        self.generator = torch.Generator().manual_seed(self.seed)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> list[Tensor]:
        gen = generator if generator is not None else self.generator
        return [view(x, gen) for view in self.views]

    def one_view(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Only the first view (for supervised training on augmented inputs)."""
        return self.views[0](x, generator if generator is not None else self.generator)


def image_view(max_shift: int = 1, degrees: float = 12.0, noise: float = 0.1, erase_p: float = 0.5) -> ViewTransform:
    """The default image view, tuned for small (8x8-ish) images."""
    return ViewTransform(
        [
            RandomShift(max_shift),
            RandomRotation(degrees),
            ColorJitter(),
            GaussianBlur(),
            GaussianNoise(noise),
            RandomErasing(p=erase_p),
        ]
    )


def tabular_view(reference: Tensor, rate: float = 0.3, noise: float = 0.1, dropout: float = 0.1) -> ViewTransform:
    """The default tabular view: SCARF corruption, then noise, then feature dropout."""
    reference = reference.detach().float().flatten(1)
    return ViewTransform(
        [
            MarginalCorruption(reference, rate),
            GaussianNoise(noise, scale=reference.std(0).clamp_min(1e-6)),
            FeatureDropout(dropout, fill=reference.mean(0)),
        ]
    )


def default_views(input_shape: Sequence[int], X_reference: Tensor, n_views: int = 2, seed: int = 0) -> MultiViewTransform:
    """Image views for ``(C, H, W)`` inputs, tabular views (fitted on ``X_reference``) otherwise."""
    X_reference = torch.as_tensor(X_reference)
    if len(input_shape) not in (1, 3):
        raise ValueError(f"input shape must be (d,) or (C, H, W), got {tuple(input_shape)}")
    if len(input_shape) == 3:
        return MultiViewTransform([image_view() for _ in range(n_views)], seed=seed)
    if X_reference.dim() < 2 or X_reference[0].numel() != math.prod(input_shape):
        raise ValueError(f"X_reference must be (n, {math.prod(input_shape)}), got {tuple(X_reference.shape)}")
    return MultiViewTransform([tabular_view(X_reference) for _ in range(n_views)], seed=seed)
