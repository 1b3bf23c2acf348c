"""From a training file to a published, servable version: what `driftwise pretrain` does.

It joins `models` (fit the model) and `drift` (the reference statistics the monitor
compares live traffic against), which is why it lives in `service`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from driftwise.drift.loop import model_reference
from driftwise.models.config import ModelConfig
from driftwise.models.data import Dataset
from driftwise.models.pipeline import fit_model
from driftwise.models.registry import ModelVersion, Registry


@dataclass(frozen=True)
class PretrainRequest:
    dataset: Dataset
    name: str
    registry: Path
    objective: str | None = "simclr"
    encoder: str | None = None
    input_shape: tuple[int, ...] | None = None
    head: str = "finetune"
    epochs: int | None = None
    device: str = "auto"
    seed: int = 0


def model_config_for(dataset: Dataset, encoder: str | None, input_shape: tuple[int, ...] | None) -> ModelConfig:
    """Pick the architecture: a CNN for images, an MLP for flat vectors, unless told."""
    shape = input_shape or dataset.input_shape
    if int(np.prod(shape)) != int(np.prod(dataset.input_shape)):
        raise ValueError(f"--input-shape {shape} does not match the data's {dataset.input_shape}")
    kind = encoder or ("cnn" if len(shape) == 3 else "mlp")
    return ModelConfig(encoder=kind, input_shape=tuple(shape), num_classes=dataset.num_classes)


MIN_REFERENCE_ROWS = 256


def reference_rows(dataset: Dataset) -> np.ndarray:
    """Rows the head never trained on (the unlabeled ones) when there are enough.

    Embeddings of the labeled training rows are tighter than live traffic's, which
    would make the detectors hair-trigger on clean data.
    """
    unlabeled = np.flatnonzero(dataset.y < 0)
    return dataset.X[unlabeled] if len(unlabeled) >= MIN_REFERENCE_ROWS else dataset.X


def pretrain_and_publish(request: PretrainRequest, console: Console | None = None) -> ModelVersion:
    """Fit (SSL pretrain + head + temperature), compute reference statistics, publish and activate."""
    console = console or Console()
    config = model_config_for(request.dataset, request.encoder, request.input_shape)
    X = request.dataset.X.reshape(len(request.dataset.X), *config.input_shape)
    kwargs = {"pretrain_epochs": request.epochs} if request.epochs is not None else {}
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TextColumn("loss {task.fields[loss]:.4f}"), TimeElapsedColumn(), console=console,
                  transient=False) as progress:
        task = progress.add_task(f"pretrain {request.objective or 'supervised'}", total=None, loss=float("nan"))

        def report(done: int, total: int, loss: float) -> None:
            progress.update(task, completed=done, total=total, loss=loss)

        result = fit_model(X, request.dataset.y, config, objective=request.objective, head=request.head,
                           device=request.device, seed=request.seed, progress=report, **kwargs)
    reference = model_reference(result.model.cpu(), reference_rows(Dataset(X, request.dataset.y)))
    metrics = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float, str))}
    registry = Registry(request.registry)
    current = registry.current(request.name)
    return registry.publish(
        request.name, result.model, reason="pretrain", parent=current.version if current else None,
        metrics=metrics, reference=reference, anchors=result.anchors, objective=request.objective,
    )
