"""The registry: atomic publish, CURRENT pointer, rollback, and no pickle anywhere."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from driftwise.models.classifier import Classifier
from driftwise.models.config import ModelConfig
from driftwise.models.registry import FencedError, Registry, RegistryError


def _model(seed: int = 0) -> Classifier:
    torch.manual_seed(seed)
    return Classifier(ModelConfig(encoder="cnn", input_shape=(1, 8, 8), num_classes=10, embed_dim=16, width=4)).eval()


def test_publish_then_load_gives_identical_predictions(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    model = _model()
    model.temperature.fill_(1.7)
    ref = {"embeddings": np.random.default_rng(0).normal(size=(8, 16)).astype(np.float32)}
    ax, ay = np.zeros((3, 1, 8, 8), np.float32), np.array([0, 1, 2])
    reg.publish("digits", model, reason="pretrain", reference=ref, anchors=(ax, ay), metrics={"acc": 0.9})
    loaded = reg.load("digits")
    x = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(model(x), loaded.model(x))
    assert float(loaded.model.temperature) == pytest.approx(1.7)
    np.testing.assert_array_equal(loaded.reference["embeddings"], ref["embeddings"])
    np.testing.assert_array_equal(loaded.anchors_y, ay)
    assert loaded.info.manifest["metrics"] == {"acc": 0.9}
    assert loaded.info.manifest["input_shape"] == [1, 8, 8]


def test_versions_increase_and_manifest_records_lineage(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    reg.publish("m", _model(), reason="pretrain")
    v2 = reg.publish("m", _model(1), reason="drift: embedding", parent=1)
    assert [v.version for v in reg.versions("m")] == [1, 2]
    assert v2.manifest["parent"] == 1 and v2.manifest["reason"] == "drift: embedding"
    assert reg.current("m").version == 2


def test_crash_mid_publish_leaves_previous_current_loadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reg = Registry(tmp_path)
    reg.publish("m", _model(), reason="pretrain")

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("disk died mid-write")

    monkeypatch.setattr("driftwise.models.registry.save_numpy", crash)  # fails after the weights are written
    with pytest.raises(OSError):
        reg.publish("m", _model(1), reason="adapt", reference={"a": np.zeros(2, np.float32)})
    monkeypatch.undo()
    assert [v.version for v in reg.versions("m")] == [1]
    assert reg.current("m").version == 1
    assert reg.load("m").info.version == 1
    assert not [p for p in (tmp_path / "m").iterdir() if p.name.startswith(".staging")]


def test_rollback_returns_to_previous_version_and_then_refuses(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    reg.publish("m", _model(), reason="pretrain")
    reg.publish("m", _model(1), reason="adapt", parent=1)
    assert reg.rollback("m").version == 1
    assert reg.current("m").version == 1
    with pytest.raises(RegistryError, match="nothing to roll back"):
        reg.rollback("m")


def test_rejected_candidate_is_kept_but_never_activated(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    reg.publish("m", _model(), reason="pretrain")
    rejected = reg.publish("m", _model(1), reason="adapt", status="rejected", activate=False)
    assert rejected.version == 2 and reg.current("m").version == 1
    with pytest.raises(RegistryError, match="rejected"):
        reg.activate("m", 2)


def test_a_writer_whose_lease_was_taken_since_can_neither_publish_nor_activate(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    reg.publish("m", _model(), reason="pretrain")  # no lease: an operator's write is never fenced
    reg.take_lease("m", "old-adapter")
    reg.publish("m", _model(1), reason="adapt", parent=1, lease="old-adapter")
    reg.take_lease("m", "new-adapter")
    with pytest.raises(FencedError, match="written by new-adapter now, not old-adapter"):
        reg.publish("m", _model(2), reason="adapt", parent=1, lease="old-adapter")
    with pytest.raises(FencedError):
        reg.activate("m", 1, lease="old-adapter")
    assert [v.version for v in reg.versions("m")] == [1, 2] and reg.current("m").version == 2
    assert not [p for p in (tmp_path / "m").iterdir() if p.name.startswith(".staging")], "nothing half-written left"
    reg.activate("m", 1, lease="new-adapter")
    reg.activate("m", 2)  # an operator
    assert reg.lease_holder("m") == "new-adapter" and reg.lease_holder("other") is None
    with pytest.raises(ValueError, match="one non-empty line"):
        reg.take_lease("m", "two\nlines")


def test_loading_never_unpickles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pickle

    reg = Registry(tmp_path)
    reg.publish("m", _model(), reason="pretrain", anchors=(np.zeros((1, 1, 8, 8), np.float32), np.array([0])))

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("unpickling attempted")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    reg.load("m")
    files = {p.name for p in (tmp_path / "m" / "1").iterdir()}
    assert files == {"weights.safetensors", "manifest.json", "anchors.safetensors"}
    for p in (tmp_path / "m" / "1").iterdir():
        assert not p.read_bytes().startswith(b"\x80"), f"{p.name} looks like a pickle"


def test_current_pointer_is_replaced_atomically(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    reg.publish("m", _model(), reason="pretrain")
    reg.publish("m", _model(1), reason="adapt")
    pointer = tmp_path / "m" / "CURRENT"
    assert pointer.read_text().strip() == "2"
    assert not [p for p in os.listdir(tmp_path / "m") if p.startswith(".CURRENT")]


def test_invalid_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Registry(tmp_path).publish("../evil", _model(), reason="x")


def test_an_mlp_saved_before_inputs_were_standardised_still_loads_and_predicts_as_before(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    reg = Registry(tmp_path)
    torch.manual_seed(0)
    model = Classifier(ModelConfig(encoder="mlp", input_shape=(5,), num_classes=3, hidden=8, embed_dim=4)).eval()
    info = reg.publish("tab", model, reason="pretrain")
    weights = info.path / "weights.safetensors"
    old = {k: v for k, v in load_file(str(weights)).items() if not k.startswith("encoder.standardize.")}
    save_file(old, str(weights))  # what an earlier driftwise wrote
    x = torch.randn(4, 5)
    with torch.no_grad():
        assert torch.allclose(reg.load("tab").model(x), model(x))


def test_the_class_prior_travels_with_the_weights_and_an_older_file_loads_as_uniform(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    reg = Registry(tmp_path)
    model = Classifier(ModelConfig(encoder="mlp", input_shape=(5,), num_classes=3, hidden=8, embed_dim=4)).eval()
    model.class_prior.copy_(torch.tensor([0.8, 0.15, 0.05]))
    info = reg.publish("tab", model, reason="pretrain")
    assert torch.allclose(reg.load("tab").model.class_prior, torch.tensor([0.8, 0.15, 0.05]))
    weights = info.path / "weights.safetensors"
    save_file({k: v for k, v in load_file(str(weights)).items() if k != "class_prior"}, str(weights))
    assert torch.allclose(reg.load("tab").model.class_prior, torch.full((3,), 1 / 3))


def _lineage(tmp_path: Path) -> Registry:
    """v1 and v4 labeled originals; v2, v3, v5 (rejected), v6, v7 adapted from v1; served in turn: v1, v2, v6, v3."""
    reg = Registry(tmp_path)
    for parent, status in [(None, "approved"), (1, "approved"), (1, "approved"), (None, "approved"),
                           (1, "rejected"), (1, "approved"), (1, "approved")]:
        reg.publish("m", _model(), reason="test", parent=parent, status=status, activate=False)
    for version in (1, 2, 6, 3):
        reg.activate("m", version)
    return reg


def test_prune_keeps_the_newest_the_served_lineage_and_every_original(tmp_path: Path) -> None:
    reg = _lineage(tmp_path)  # v3 is served
    assert reg.prune("m", keep=2) == [2, 5]
    assert [v.version for v in reg.versions("m")] == [1, 3, 4, 6, 7]
    assert reg.current("m").version == 3 and reg.load("m").info.version == 3
    assert reg.activation_history("m") == [1, 6, 3]
    assert reg.rollback("m").version == 6  # the history skips what was pruned
    assert reg.publish("m", _model(), reason="after", parent=1).version == 8  # numbers are never reused
    assert not [p for p in (tmp_path / "m").iterdir() if p.name.startswith(".pruned")]


def test_prune_with_room_for_everything_removes_nothing_and_keep_must_be_positive(tmp_path: Path) -> None:
    reg = _lineage(tmp_path)
    assert reg.prune("m", keep=7) == [] and len(reg.versions("m")) == 7
    with pytest.raises(ValueError, match="keep"):
        reg.prune("m", keep=0)
