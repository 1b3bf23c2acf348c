"""Loading a training file (``.npz`` with ``X`` and optional ``y``) and refusing bad ones.

The file is read with ``allow_pickle=False``: an object array is an error, never code.

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "d.npz")
>>> np.savez(path, X=np.zeros((4, 3), np.float32), y=np.array([0, 1, -1, -1]))
>>> ds = load_npz(path)
>>> ds.X.shape, ds.labeled_count, ds.num_classes
((4, 3), 2, 2)
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class DatasetError(ValueError):
    """A training file that cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class Dataset:
    X: np.ndarray  # float32, (n, d) or (n, C, H, W)
    y: np.ndarray  # int64, (n,), -1 = unlabeled

    @property
    def labeled_count(self) -> int:
        return int((self.y >= 0).sum())

    @property
    def num_classes(self) -> int:
        return int(self.y.max()) + 1 if self.labeled_count else 0

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.X.shape[1:])


def load_npz(path: str | Path, *, require_labels: bool = True) -> Dataset:
    """Read and validate a dataset file; raise `DatasetError` with one clear line."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        raise DatasetError(f"{path}: not a readable .npz file (expected numpy.savez output)")
    try:
        with np.load(path, allow_pickle=False) as data:
            if "X" not in data.files:
                raise DatasetError(f"{path}: missing array 'X' (found: {', '.join(data.files) or 'nothing'})")
            X = data["X"]
            y = data["y"] if "y" in data.files else None
    except DatasetError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DatasetError(f"{path}: not a readable .npz file ({exc})") from None
    except ValueError:  # object arrays need pickle, which we refuse
        raise DatasetError(f"{path}: holds object arrays, which would need pickle; save plain numeric arrays") from None
    if X.dtype != np.float32:
        raise DatasetError(f"{path}: X must be float32, got {X.dtype}")
    if X.ndim not in (2, 4) or X.shape[0] == 0:
        raise DatasetError(f"{path}: X must have shape (n, d) or (n, C, H, W) with n > 0, got {X.shape}")
    if not np.isfinite(X).all():
        bad = int(np.argwhere(~np.isfinite(X).reshape(len(X), -1).all(axis=1))[0, 0])
        raise DatasetError(f"{path}: X has non-finite values (first in row {bad})")
    if y is None:
        y = np.full(len(X), -1, dtype=np.int64)
    if not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(f"{path}: y must be integers (-1 = unlabeled), got {y.dtype}")
    if y.shape != (len(X),):
        raise DatasetError(f"{path}: y has shape {y.shape} but X has {len(X)} rows")
    if (y < -1).any():
        raise DatasetError(f"{path}: y has labels below -1")
    y = y.astype(np.int64)
    ds = Dataset(X, y)
    if require_labels:
        if ds.labeled_count == 0:
            raise DatasetError(f"{path}: no labeled rows (every y is -1); the classifier head needs a few labels")
        if len(np.unique(y[y >= 0])) < 2:
            raise DatasetError(f"{path}: labels cover fewer than 2 classes")
    return ds
