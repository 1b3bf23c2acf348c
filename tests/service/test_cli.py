"""The command line: bad input gets one clear line and a non-zero exit; pretrain publishes v1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from driftwise.models.registry import Registry
from driftwise.service.cli import app

runner = CliRunner()


def _invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"y": np.array([0, 1])}, "missing array 'X'"),
        ({"X": np.zeros((4, 3), np.float64), "y": np.array([0, 1, 0, 1])}, "float32"),
        ({"X": np.full((4, 3), np.nan, np.float32), "y": np.array([0, 1, 0, 1])}, "non-finite"),
        ({"X": np.zeros((4, 3), np.float32), "y": np.array([0, 1])}, "y has shape"),
        ({"X": np.zeros((4, 3), np.float32), "y": np.array([-1, -1, -1, -1])}, "no labeled rows"),
    ],
)
def test_pretrain_rejects_bad_files_with_one_line_and_no_traceback(
    tmp_path: Path, arrays: dict[str, np.ndarray], message: str
) -> None:
    data = tmp_path / "bad.npz"
    np.savez(data, **arrays)
    code, output = _invoke("pretrain", "--data", str(data), "--name", "m", "--registry", str(tmp_path / "reg"))
    assert code == 2
    assert message in output
    assert "Traceback" not in output
    assert not (tmp_path / "reg" / "m").exists()


def test_pretrain_rejects_unknown_objective(tmp_path: Path) -> None:
    data = tmp_path / "d.npz"
    np.savez(data, X=np.zeros((4, 3), np.float32), y=np.array([0, 1, 0, 1]))
    code, output = _invoke("pretrain", "--data", str(data), "--name", "m", "--registry", str(tmp_path),
                           "--objective", "magic")
    assert code == 2 and "--objective must be one of" in output


def test_pretrain_publishes_a_servable_version_one(tmp_path: Path) -> None:
    from driftwise.models.digits import load_digits_images, split_label_fraction

    X, y = load_digits_images()
    X, y = X[:300], split_label_fraction(y[:300], 0.3, seed=0)
    data = tmp_path / "digits.npz"
    np.savez(data, X=X.reshape(len(X), -1), y=y)  # flat rows, viewed as images by --input-shape
    code, output = _invoke("pretrain", "--data", str(data), "--name", "digits", "--registry", str(tmp_path / "reg"),
                           "--objective", "simsiam", "--input-shape", "1,8,8", "--epochs", "2", "--head", "linear",
                           "--device", "cpu")
    assert code == 0, output
    reg = Registry(tmp_path / "reg")
    current = reg.current("digits")
    assert current is not None and current.version == 1
    assert current.manifest["objective"] == "simsiam"
    assert current.manifest["input_shape"] == [1, 8, 8]
    loaded = reg.load("digits")
    assert loaded.anchors_x is not None and len(loaded.anchors_x) > 0
    assert loaded.reference, "reference statistics for drift detection are saved with the model"


def test_models_commands_list_and_roll_back(tmp_path: Path) -> None:
    from driftwise.models.classifier import Classifier
    from driftwise.models.config import ModelConfig

    reg = Registry(tmp_path)
    model = Classifier(ModelConfig(encoder="mlp", input_shape=(3,), num_classes=2))
    reg.publish("m", model, reason="pretrain")
    reg.publish("m", model, reason="adapt", parent=1)
    code, output = _invoke("models", "list", "--registry", str(tmp_path), "--name", "m")
    assert code == 0 and "adapt" in output
    code, output = _invoke("models", "rollback", "--registry", str(tmp_path), "--name", "m")
    assert code == 0 and "CURRENT -> 1" in output
    code, output = _invoke("models", "rollback", "--registry", str(tmp_path), "--name", "m")
    assert code == 2 and "nothing to roll back" in output
    code, output = _invoke("models", "activate", "--registry", str(tmp_path), "--name", "m", "7")
    assert code == 2 and "no version 7" in output


def test_models_prune_removes_the_oldest_but_never_the_served_one(tmp_path: Path) -> None:
    from driftwise.models.classifier import Classifier
    from driftwise.models.config import ModelConfig

    reg = Registry(tmp_path)
    model = Classifier(ModelConfig(encoder="mlp", input_shape=(3,), num_classes=2))
    for parent in (None, 1, 1, 1):
        reg.publish("m", model, reason="test", parent=parent, activate=parent is None)
    code, output = _invoke("models", "prune", "--registry", str(tmp_path), "--name", "m", "--keep", "1")
    assert code == 0 and "removed 2 versions (2, 3)" in output
    assert [v.version for v in reg.versions("m")] == [1, 4] and reg.current("m").version == 1


def test_every_flag_reads_its_environment_variable(tmp_path: Path) -> None:
    result = runner.invoke(app, ["models", "list"], env={"DRIFTWISE_REGISTRY": str(tmp_path / "none"),
                                                         "DRIFTWISE_NAME": "m"})
    assert result.exit_code == 2
    assert "no registry here" in result.output  # read from the environment, not "missing option"


@pytest.mark.parametrize(("args", "message"), [
    (["recipes", "--split", "train"], "--split must be val or test"),
    (["refine", "--windows", "0"], "--windows must be >= 1"),
    (["refine", "--refine-after", "5000"], "refine_after in (0, 2000)"),
])
def test_offline_adaptation_benches_refuse_bad_options_before_any_work(args: list[str], message: str) -> None:
    code, output = _invoke("bench", *args)
    assert code == 2 and message in output and "Traceback" not in output
