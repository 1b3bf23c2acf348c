"""Training files: good ones load, bad ones get one clear error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from driftwise.models.data import DatasetError, load_npz


def _save(tmp_path: Path, **arrays: np.ndarray) -> Path:
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return path


def test_images_with_partial_labels_load(tmp_path: Path) -> None:
    ds = load_npz(_save(tmp_path, X=np.zeros((5, 1, 8, 8), np.float32), y=np.array([0, 1, 2, -1, -1])))
    assert ds.input_shape == (1, 8, 8) and ds.labeled_count == 3 and ds.num_classes == 3


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"y": np.array([0, 1])}, "missing array 'X'"),
        ({"X": np.zeros((2, 3), np.float64), "y": np.array([0, 1])}, "float32"),
        ({"X": np.array([[np.nan, 0], [0, 0]], np.float32), "y": np.array([0, 1])}, "non-finite values"),
        ({"X": np.zeros((2, 3), np.float32), "y": np.array([0, 1, 1])}, "y has shape"),
        ({"X": np.zeros((2, 3), np.float32), "y": np.array([-1, -1])}, "no labeled rows"),
        ({"X": np.zeros((2, 3), np.float32)}, "no labeled rows"),
        ({"X": np.zeros((2, 3), np.float32), "y": np.array([0.5, 1.0])}, "must be integers"),
        ({"X": np.zeros((2, 3, 4), np.float32), "y": np.array([0, 1])}, "must have shape"),
    ],
)
def test_bad_files_get_a_clear_error(tmp_path: Path, arrays: dict[str, np.ndarray], message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        load_npz(_save(tmp_path, **arrays))


def test_object_arrays_are_refused_without_unpickling(tmp_path: Path) -> None:
    path = tmp_path / "evil.npz"
    np.savez(path, X=np.array([object()], dtype=object))
    with pytest.raises(DatasetError, match="pickle"):
        load_npz(path)


def test_not_an_npz_file(tmp_path: Path) -> None:
    path = tmp_path / "x.npz"
    path.write_text("hello")
    with pytest.raises(DatasetError, match="not a readable"):
        load_npz(path)
