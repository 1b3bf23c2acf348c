"""The versioned model registry: ``ROOT/<name>/<version>/`` plus a ``CURRENT`` pointer.

Each version directory holds ``weights.safetensors``, ``manifest.json``,
``reference.safetensors`` (statistics the drift monitor compares against) and
``anchors.safetensors`` (the small labeled set guardrails and replay use).
Nothing is ever pickled.

Publishing writes into a hidden temporary directory and renames it into place, so
a crash mid-publish leaves no half-written version visible; ``CURRENT`` is
replaced by an atomic rename, so readers always see a whole pointer.

Why a writer's lease: with several replicas, the elected adapter is the only one
that writes (`driftwise.service.election`). One deposed without noticing (a
network split, a long pause) would still publish and move ``CURRENT``; the
control topic fences its announcements, not the files. So each adapter takes the
model's lease when it is elected (``LEASE``, its term's token, the last taker
wins) and writes with its token; a write under any other token raises
`FencedError`. Writes with no token (an operator, `driftwise pretrain`, a lone
service) are not fenced. The check and the rename are two steps, so a write
already past its check when the lease moves can still land (milliseconds, where
a deposed adapter's whole adaptation used to).

>>> import tempfile, torch
>>> from driftwise.models.classifier import Classifier
>>> from driftwise.models.config import ModelConfig
>>> reg = Registry(tempfile.mkdtemp())
>>> model = Classifier(ModelConfig(encoder="mlp", input_shape=(4,), num_classes=3))
>>> v1 = reg.publish("demo", model, reason="pretrain")
>>> v2 = reg.publish("demo", model, reason="adapt", parent=1)
>>> reg.current("demo").version, reg.rollback("demo").version
(2, 1)
>>> reg.take_lease("demo", "adapter-a"); reg.take_lease("demo", "adapter-b")  # a's successor was elected
>>> reg.publish("demo", model, reason="adapt", lease="adapter-a")
Traceback (most recent call last):
...
driftwise.models.registry.FencedError: 'demo' is written by adapter-b now, not adapter-a: another adapter was elected
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import load_file as load_numpy
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import load_file as load_torch
from safetensors.torch import save_file as save_torch

from driftwise.models.classifier import Classifier
from driftwise.models.config import ModelConfig

WEIGHTS = "weights.safetensors"
MANIFEST = "manifest.json"
REFERENCE = "reference.safetensors"
ANCHORS = "anchors.safetensors"
CURRENT = "CURRENT"
ACTIVATIONS = "ACTIVATIONS.json"
LEASE = "LEASE"


class RegistryError(RuntimeError):
    """A registry operation that cannot be done (unknown version, rejected candidate...)."""


class FencedError(RegistryError):
    """A write under a lease another writer has taken since (see the module docstring)."""


@dataclass(frozen=True)
class ModelVersion:
    """One published version: where it lives and what its manifest says."""

    name: str
    version: int
    path: Path
    manifest: dict[str, Any]

    @property
    def status(self) -> str:
        return str(self.manifest.get("status", "approved"))


@dataclass
class LoadedModel:
    """A version's modules and arrays, ready to serve or to adapt."""

    info: ModelVersion
    model: Classifier
    reference: dict[str, np.ndarray] = field(default_factory=dict)
    anchors_x: np.ndarray | None = None
    anchors_y: np.ndarray | None = None


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Registry:
    """Publish, list, load, activate and roll back model versions under ``root``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    # -- reading -------------------------------------------------------------
    def names(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def versions(self, name: str) -> list[ModelVersion]:
        base = self.root / name
        if not base.is_dir():
            return []
        found = [p for p in base.iterdir() if p.is_dir() and p.name.isdigit()]
        return [self.get(name, int(p.name)) for p in sorted(found, key=lambda p: int(p.name))]

    def get(self, name: str, version: int) -> ModelVersion:
        path = self.root / name / str(version)
        try:
            manifest = json.loads((path / MANIFEST).read_text())
        except FileNotFoundError:
            raise RegistryError(f"model {name!r} has no version {version}") from None
        return ModelVersion(name, int(version), path, manifest)

    def current(self, name: str) -> ModelVersion | None:
        pointer = self.root / name / CURRENT
        if not pointer.exists():
            return None
        return self.get(name, int(pointer.read_text().strip()))

    def load(self, name: str, version: int | None = None, device: str | torch.device = "cpu") -> LoadedModel:
        """Rebuild the model from its manifest and load tensors with safetensors (no pickle)."""
        info = self.current(name) if version is None else self.get(name, version)
        if info is None:
            raise RegistryError(f"model {name!r} has no current version")
        model = Classifier(ModelConfig.from_dict(info.manifest["config"]))
        state = load_torch(str(info.path / WEIGHTS), device=str(device))
        for key, identity in model.state_dict().items():  # saved before inputs were standardised (an MLP)
            if (key.startswith("encoder.standardize.") or key in ("log_prior_ratio", "class_prior")) and key not in state:
                state[key] = identity  # or before label shift was corrected, or priors kept: identities, uniform
        model.load_state_dict(state, strict=True)
        model.to(device).eval()
        reference = load_numpy(str(info.path / REFERENCE)) if (info.path / REFERENCE).exists() else {}
        anchors = load_numpy(str(info.path / ANCHORS)) if (info.path / ANCHORS).exists() else {}
        return LoadedModel(info, model, reference, anchors.get("x"), anchors.get("y"))

    def lease_holder(self, name: str) -> str | None:
        """The token of the writer that took ``name``'s lease last (None: never taken)."""
        try:
            return (self.root / name / LEASE).read_text().strip() or None
        except FileNotFoundError:
            return None

    # -- writing -------------------------------------------------------------
    def take_lease(self, name: str, holder: str) -> None:
        """Make ``holder`` the only fenced writer of ``name`` from now on (atomic; the last taker wins)."""
        if not holder.strip() or "\n" in holder:
            raise ValueError(f"a lease holder is one non-empty line, got {holder!r}")
        base = self.root / name
        base.mkdir(parents=True, exist_ok=True)
        tmp = base / f".{LEASE}.{uuid.uuid4().hex}"
        tmp.write_text(f"{holder}\n")
        os.replace(tmp, base / LEASE)

    def _check_lease(self, name: str, lease: str | None) -> None:
        if lease is None:
            return
        holder = self.lease_holder(name)
        if holder != lease:
            raise FencedError(f"{name!r} is written by {holder} now, not {lease}: another adapter was elected")

    def publish(
        self,
        name: str,
        model: Classifier,
        *,
        reason: str,
        parent: int | None = None,
        metrics: dict[str, Any] | None = None,
        reference: dict[str, np.ndarray] | None = None,
        anchors: tuple[np.ndarray, np.ndarray] | None = None,
        objective: str | None = None,
        classes: list[int] | None = None,
        extra: dict[str, Any] | None = None,
        status: str = "approved",
        activate: bool = True,
        lease: str | None = None,
    ) -> ModelVersion:
        """Write a new version atomically; make it CURRENT unless told not to.

        A ``status="rejected"`` candidate is kept for inspection and can never be
        activated. With ``lease``, nothing is written unless it is still the model's
        lease (`FencedError`).
        """
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"invalid model name {name!r}")
        if status == "rejected" and activate:
            raise ValueError("a rejected candidate cannot be activated")
        base = self.root / name
        base.mkdir(parents=True, exist_ok=True)
        staging = base / f".staging-{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
            save_torch(state, str(staging / WEIGHTS))
            if reference:
                save_numpy({k: np.ascontiguousarray(v) for k, v in reference.items()}, str(staging / REFERENCE))
            if anchors is not None:
                ax, ay = anchors
                save_numpy({"x": np.ascontiguousarray(ax, dtype=np.float32),
                            "y": np.ascontiguousarray(ay, dtype=np.int64)}, str(staging / ANCHORS))
            config = model.config
            manifest: dict[str, Any] = {
                "name": name,
                "parent": parent,
                "created": datetime.now(timezone.utc).isoformat(),
                "reason": reason,
                "status": status,
                "config": config.to_dict(),
                "input_shape": list(config.input_shape),
                "classes": classes if classes is not None else list(range(config.num_classes)),
                "objective": objective,
                "metrics": metrics or {},
                **(extra or {}),
            }
            for attempt in range(100):
                version = max((v.version for v in self.versions(name)), default=0) + 1 + attempt
                manifest["version"] = version
                _write_json_atomic(staging / MANIFEST, manifest)
                _fsync_dir(staging)
                self._check_lease(name, lease)
                try:
                    os.rename(staging, base / str(version))  # fails if another publisher took it
                    break
                except OSError:
                    continue
            else:  # pragma: no cover - would need 100 concurrent publishers
                raise RegistryError("could not allocate a version number")
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _fsync_dir(base)
        info = self.get(name, version)
        if activate:
            self.activate(name, version, lease=lease)
        return info

    def activate(self, name: str, version: int, *, lease: str | None = None) -> ModelVersion:
        """Point CURRENT at ``version`` (atomic rename) and remember it for rollback (fenced by ``lease``)."""
        self._check_lease(name, lease)
        info = self.get(name, version)
        if info.status == "rejected":
            raise RegistryError(f"version {version} of {name!r} was rejected by its guardrails; it is never served")
        base = self.root / name
        history = self.activation_history(name)
        if not history or history[-1] != version:
            history.append(version)
        _write_json_atomic(base / ACTIVATIONS, history)
        tmp = base / f".{CURRENT}.{uuid.uuid4().hex}"
        tmp.write_text(f"{version}\n")
        os.replace(tmp, base / CURRENT)
        return info

    def prune(self, name: str, keep: int) -> list[int]:
        """Delete all but the newest ``keep`` versions; returns those deleted, oldest first.

        Never deleted, whatever their age: the CURRENT version and its ancestors (the base it was adapted from,
        which fallbacks serve again), and every labeled original (a version without a parent). So what goes is
        old rejected candidates, interims and superseded adaptations: a long stream publishes one every few
        hundred events, and without this the registry grows without end. Deleted versions leave the activation
        history, so a rollback never looks for one. A version is moved aside (one rename) before it is removed,
        so a reader sees it whole or not at all.

        >>> import tempfile
        >>> from driftwise.models.classifier import Classifier
        >>> from driftwise.models.config import ModelConfig
        >>> reg = Registry(tempfile.mkdtemp())
        >>> model = Classifier(ModelConfig(encoder="mlp", input_shape=(4,), num_classes=3))
        >>> for parent in (None, 1, 1, 1, 1):
        ...     _ = reg.publish("demo", model, reason="test", parent=parent)
        >>> _ = reg.activate("demo", 2)
        >>> reg.prune("demo", keep=1), [v.version for v in reg.versions("demo")]
        ([3, 4], [1, 2, 5])
        """
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        versions = self.versions(name)
        by_number = {v.version: v for v in versions}
        protected = {v.version for v in versions[-keep:]} | {v.version for v in versions if v.manifest.get("parent") is None}
        lineage, version = set(), self.current(name)
        while version is not None and version.version not in lineage:  # CURRENT, its parent, and so on
            lineage.add(version.version)
            parent = version.manifest.get("parent")
            version = by_number.get(int(parent)) if parent is not None else None
        protected |= lineage
        doomed = [v.version for v in versions if v.version not in protected]
        for number in doomed:
            path = self.root / name / str(number)
            trash = self.root / name / f".pruned-{number}-{uuid.uuid4().hex}"
            try:
                os.rename(path, trash)
            except FileNotFoundError:  # another process pruned it first
                continue
            shutil.rmtree(trash, ignore_errors=True)
        if doomed:
            gone = set(doomed)
            history = [v for v in self.activation_history(name) if v not in gone]
            _write_json_atomic(self.root / name / ACTIVATIONS, history)
        return doomed

    def activation_history(self, name: str) -> list[int]:
        path = self.root / name / ACTIVATIONS
        return [int(v) for v in json.loads(path.read_text())] if path.exists() else []

    def rollback(self, name: str) -> ModelVersion:
        """Re-activate the version that was current before this one."""
        history = self.activation_history(name)
        current = self.current(name)
        if current is None:
            raise RegistryError(f"model {name!r} has no current version")
        while history and history[-1] == current.version:
            history.pop()
        if not history:
            raise RegistryError(f"model {name!r} has nothing to roll back to")
        previous = history[-1]
        _write_json_atomic(self.root / name / ACTIVATIONS, history)
        return self.activate(name, previous)
