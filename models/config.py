"""The architecture of a model, as saved in its manifest so it can be rebuilt without pickle."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

EncoderKind = Literal["mlp", "cnn"]


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model's modules before loading its weights.

    Examples
    --------
    >>> cfg = ModelConfig(encoder="cnn", input_shape=(1, 8, 8), num_classes=10)
    >>> ModelConfig.from_dict(cfg.to_dict()) == cfg
    True
    >>> cfg.input_dim
    64
    """

    encoder: EncoderKind
    input_shape: tuple[int, ...]
    num_classes: int
    embed_dim: int = 128
    hidden: int = 256
    width: int = 32

    def __post_init__(self) -> None:
        if self.encoder not in ("mlp", "cnn"):
            raise ValueError(f"encoder must be 'mlp' or 'cnn', got {self.encoder!r}")
        if self.encoder == "cnn" and len(self.input_shape) != 3:
            raise ValueError(f"the cnn encoder needs an input shape C,H,W, got {self.input_shape}")
        if any(int(s) <= 0 for s in self.input_shape):
            raise ValueError(f"input shape must be positive, got {self.input_shape}")
        if self.num_classes < 2:
            raise ValueError(f"need at least 2 classes, got {self.num_classes}")
        object.__setattr__(self, "input_shape", tuple(int(s) for s in self.input_shape))

    @property
    def input_dim(self) -> int:
        """Number of features in one flattened instance."""
        n = 1
        for s in self.input_shape:
            n *= s
        return n

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        d = dict(d)
        d["input_shape"] = tuple(d["input_shape"])
        return cls(**d)
