"""Your own drift for `driftwise bench stream`: a source file to pretrain on and a stream file to replay.

The built-in scenarios (digits corruptions, sensor shifts on packaged tables) are the
ones this project chose and reported on. A user's question is another one: does the
loop help on *my* data, through *my* kind of drift? ``--source SRC.npz --stream
STREAM.npz`` answers it with the same twins, broker and report:

* ``SRC.npz`` is what `driftwise pretrain --data` takes: ``X`` (float32, ``(n, d)`` or
  ``(n, C, H, W)``) and ``y`` (int, ``-1`` = unlabeled; at least one labeled row).
* ``STREAM.npz`` holds ``X`` (the events, the source's feature shape), ``y`` (their true
  labels, used only to score, never sent) and ``phase`` (a name per event: ``"clean"``
  for undrifted events, anything else for a drift). Phases are contiguous blocks of equal
  length, the layout the report's per-phase table reads.

>>> import os, tempfile
>>> d = tempfile.mkdtemp()
>>> rng = np.random.default_rng(0)
>>> np.savez(os.path.join(d, "src.npz"), X=rng.random((40, 3)).astype(np.float32), y=np.r_[np.arange(4) % 2, -np.ones(36)])
>>> np.savez(os.path.join(d, "s.npz"), X=rng.random((300, 3)).astype(np.float32), y=np.arange(300) % 2,
...          phase=np.array(["clean"] * 100 + ["fog"] * 100 + ["clean"] * 100))
>>> files = load(os.path.join(d, "src.npz"), os.path.join(d, "s.npz"))
>>> files.phases, files.phase_events, files.stream.drift_points, files.x_source.shape
(('clean', 'fog', 'clean'), 100, [100, 200], (40, 3))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from driftwise.drift.corruptions import CLEAN, Stream


class StreamFilesError(ValueError):
    """A source or stream file the bench cannot run; the message says which and why."""


@dataclass(frozen=True)
class StreamFiles:
    x_source: np.ndarray
    y_source: np.ndarray
    stream: Stream
    phases: tuple[str, ...]
    phase_events: int


def _read(path: str | Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in keys if k not in f.files]
            if missing:
                raise StreamFilesError(f"{path}: missing {', '.join(missing)} (has {', '.join(f.files) or 'nothing'})")
            return {k: f[k] for k in keys}
    except (OSError, ValueError) as exc:
        if isinstance(exc, StreamFilesError):
            raise
        raise StreamFilesError(f"{path}: not a readable .npz file ({exc})") from None


def phase_blocks(phase: np.ndarray) -> tuple[tuple[str, ...], int]:
    """The phase names in order and their common length; refuses blocks of unequal length.

    >>> phase_blocks(np.array(["clean", "clean", "fog", "fog"]))
    (('clean', 'fog'), 2)
    """
    names = [str(p) for p in phase]
    starts = [0] + [i for i in range(1, len(names)) if names[i] != names[i - 1]]
    lengths = np.diff(starts + [len(names)])
    if len(set(lengths.tolist())) != 1:
        raise StreamFilesError(f"phases must be blocks of equal length, got lengths {lengths.tolist()}")
    return tuple(names[s] for s in starts), int(lengths[0])


def load(source: str | Path, stream: str | Path) -> StreamFiles:
    """Read and check both files (see the module docstring)."""
    src = _read(source, ("X", "y"))
    st = _read(stream, ("X", "y", "phase"))
    x_src, y_src = src["X"].astype(np.float32), src["y"].astype(np.int64)
    x, y, phase = st["X"].astype(np.float32), st["y"].astype(np.int64), st["phase"]
    if x.shape[1:] != x_src.shape[1:]:
        raise StreamFilesError(f"{stream}: events have shape {x.shape[1:]}, the source {x_src.shape[1:]}")
    if not (len(x) == len(y) == len(phase)):
        raise StreamFilesError(f"{stream}: X, y and phase must have one entry per event")
    if (y_src >= 0).sum() == 0:
        raise StreamFilesError(f"{source}: no labeled row (y >= 0)")
    if y.min() < 0 or y.max() > y_src.max():
        raise StreamFilesError(f"{stream}: labels must be classes of the source (0..{int(y_src.max())})")
    if not (np.isfinite(x).all() and np.isfinite(x_src).all()):
        raise StreamFilesError("X must be finite in both files")
    phases, phase_events = phase_blocks(phase)
    if phase_events < 100:
        raise StreamFilesError(f"{stream}: phases need >= 100 events each, got {phase_events}")
    domain = np.array([str(p) for p in phase], dtype=object)
    points = [phase_events * i for i in range(1, len(phases))]  # blocks of equal length (`phase_blocks`)
    return StreamFiles(x_src, y_src, Stream(x, y, domain, points, image=None), phases, phase_events)


def describe(files: StreamFiles, source: str | Path, stream: str | Path) -> str:
    """One line for the report: what was pretrained on and replayed."""
    k = int(files.y_source.max()) + 1
    drifted = sorted({p for p in files.phases if p != CLEAN})
    return (f"your files: {Path(source).name} ({len(files.x_source)} rows, {int((files.y_source >= 0).sum())} "
            f"labeled, shape {tuple(files.x_source.shape[1:])}, {k} classes) for pretraining; {Path(stream).name} "
            f"({len(files.stream)} events; drifts: {', '.join(drifted) or 'none'}) replayed")
