"""Exponential moving averages of weights, and the cosine schedule of their momentum.

Examples
--------
>>> schedule = CosineEMASchedule(base=0.99, final=1.0, total_steps=10)
>>> round(schedule.momentum, 4)
0.99
>>> for _ in range(10):
...     schedule.step()
>>> schedule.momentum
1.0
>>> resumed = CosineEMASchedule(base=0.99, final=1.0, total_steps=10)
>>> resumed.load_state_dict({"step": 5})
>>> round(resumed.momentum, 4)
0.995
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


@torch.no_grad()
def update_momentum(model: nn.Module, model_ema: nn.Module, m: float) -> None:
    """``ema = m * ema + (1 - m) * model`` for every parameter; buffers (BN statistics) are copied."""
    if not 0.0 <= m <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {m}")
    for p_ema, p in zip(model_ema.parameters(), model.parameters(), strict=True):
        p_ema.mul_(m).add_(p.detach(), alpha=1.0 - m)
    for b_ema, b in zip(model_ema.buffers(), model.buffers(), strict=True):
        b_ema.copy_(b)


def frozen_copy(model: nn.Module) -> nn.Module:
    """A deep copy with gradients switched off: the starting point of a target network."""
    target = copy.deepcopy(model)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


def cosine_momentum(progress: float, base: float = 0.99, final: float = 1.0) -> float:
    """Momentum at ``progress`` in [0, 1] along BYOL's cosine ramp from ``base`` to ``final``."""
    progress = min(max(progress, 0.0), 1.0)
    return final - (final - base) * (math.cos(math.pi * progress) + 1.0) / 2.0


class CosineEMASchedule:
    """BYOL's momentum ramp as an object that can be saved and resumed.

    ``step()`` advances one optimiser step; ``momentum`` reads the current value.
    """

    def __init__(self, base: float = 0.99, final: float = 1.0, total_steps: int = 1) -> None:
        if not 0.0 <= base <= final <= 1.0:
            raise ValueError(f"need 0 <= base <= final <= 1, got base={base}, final={final}")
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        self.base, self.final, self.total_steps = base, final, total_steps
        self._reset()

    def _reset(self) -> None:
        self._step = 0

    def step(self) -> None:
        self._step = min(self._step + 1, self.total_steps)

    @property
    def progress(self) -> float:
        return self._step / self.total_steps

    @property
    def momentum(self) -> float:
        return cosine_momentum(self.progress, self.base, self.final)

    def state_dict(self) -> dict[str, int]:
        return {"step": self._step}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._step = int(state["step"])
