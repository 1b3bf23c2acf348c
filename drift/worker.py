"""Run `driftwise.drift.adapter.adapt` in a separate process, so serving never waits on it.

Each adaptation gets a process of its own (the 'spawn' context, its own torch
thread limit), which exits when the candidate is written. Starting Python and
importing torch costs seconds, so one process can be kept started ahead, waiting
for its job (`prewarm`): the next `start_adaptation` takes it, and the drift's
candidate arrives that much sooner. The one after is started when that job ends,
not beside it: starting and warming a process costs about 4 s of CPU, which on the
stream bench's two shared cores slowed the first round of the job it ran beside.

Nothing crosses the process boundary pickled: weights go through a safetensors
file, arrays through an ``.npz`` read back with ``allow_pickle=False``, configs
through JSON, and the waiting process is told its job directory as bytes.

Example::

    prewarm()  # at start-up, off the serving path
    job = start_adaptation(model, window_x=x, pseudo_x=None, pseudo_y=None, anchors_x=ax, anchors_y=ay)
    while not job.done:
        ...  # keep serving
    candidate = job.result(timeout=120).candidate
"""

from __future__ import annotations

import json
import multiprocessing as mp
import shutil
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import torch

from driftwise.drift.adapter import AdaptConfig, AdaptResult, adapt
from driftwise.models.classifier import Classifier
from driftwise.models.config import ModelConfig


class AdaptationFailed(RuntimeError):
    """The worker process raised, crashed, ran out of time or was cancelled; the message says which."""


class AdaptationCancelled(AdaptationFailed):
    """`AdaptationJob.cancel` stopped the job before its candidate came back."""


_ARRAYS = ("window_x", "pseudo_x", "pseudo_y", "anchors_x", "anchors_y", "feedback_x", "feedback_y")


def _save_model(model: Classifier, path: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}, str(path))


def _load_model(config: dict[str, Any], path: Path) -> Classifier:
    from safetensors.torch import load_file

    model = Classifier(ModelConfig.from_dict(config))
    model.load_state_dict(load_file(str(path)), strict=True)
    return model.eval()


def _worker(job_dir: str) -> None:
    """Read the job, adapt, write the candidate (in the worker process)."""
    job = Path(job_dir)
    try:
        spec = json.loads((job / "job.json").read_text())
        torch.set_num_threads(spec["threads"])
        model = _load_model(spec["model_config"], job / "model.safetensors")
        with np.load(job / "arrays.npz", allow_pickle=False) as data:
            arrays = {k: (data[k] if k in data.files else None) for k in _ARRAYS}

        def progress(stage: str, done: int, total: int) -> None:
            (job / "progress.json").write_text(json.dumps({"stage": stage, "done": done, "total": total}))

        result = adapt(model, config=AdaptConfig.from_dict(spec["adapt_config"]), device=spec["device"],
                       seed=spec["seed"], progress=progress, **arrays)
        _save_model(result.candidate, job / "candidate.safetensors")
        (job / "log.json").write_text(json.dumps(result.log))
    except BaseException:
        (job / "error.txt").write_text(traceback.format_exc())
        raise


def warm_up() -> None:
    """Pay, before any job, for what the first fine-tuning step would import lazily.

    Constructing the first ``torch.optim`` optimiser imports ``torch._dynamo`` and, with it, about 900
    modules (sympy among them): 1.9 s on an idle core, and on the stream bench's two shared cores the first
    round of every candidate took 15-19 s against 4-5 s for the next. A process started ahead does it while
    it waits, so a job's clock starts at the training itself.
    """
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


def _wait_for_job(jobs: Connection) -> None:
    """Entry point of a started-ahead process: torch is imported (with this module) and warmed up; run the one
    job sent."""
    warm_up()
    try:
        job_dir = jobs.recv_bytes().decode()
    except (EOFError, OSError):  # the parent went away or discarded this process
        return
    _worker(job_dir)


@dataclass
class _Started:
    process: Any
    jobs: Connection
    """The sending end of the pipe the process waits on."""


_ahead: _Started | None = None
_ahead_lock = threading.Lock()


def _start_process() -> _Started:
    ctx = mp.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_wait_for_job, args=(receive,), daemon=True, name="driftwise-adapter")
    process.start()
    receive.close()  # the child holds its own copy
    return _Started(process, send)


def prewarm() -> None:
    """Start the next adaptation's process now, if none is waiting (cheap to call again)."""
    global _ahead
    with _ahead_lock:
        if _ahead is None or not _ahead.process.is_alive():
            _ahead = _start_process()


def _take_process() -> tuple[_Started, bool]:
    """The process started ahead, if one is alive (True), else a new one (False)."""
    global _ahead
    with _ahead_lock:
        started, _ahead = _ahead, None
    if started is not None and started.process.is_alive():
        return started, True
    return _start_process(), False


class AdaptationJob:
    """One adaptation running in its own process; poll `done`, then call `result` (or `cancel`).

    The job directory (a temporary directory unless given) is removed by `result`
    and `cancel`. ``warm``: the job went to a process started ahead (`prewarm`).
    """

    def __init__(self, process: Any, job_dir: Path, model_config: dict[str, Any], started: float,
                 owns_dir: bool, warm: bool) -> None:
        self._process, self.job_dir, self._model_config = process, job_dir, model_config
        self.started, self._owns_dir, self.warm = started, owns_dir, warm
        self._cancelled = False

    @property
    def done(self) -> bool:
        return not self._process.is_alive()

    @property
    def progress(self) -> dict[str, Any] | None:
        """The worker's last progress report (stage, done, total), if any."""
        try:
            return json.loads((self.job_dir / "progress.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def result(self, timeout: float | None = None) -> AdaptResult:
        """Wait up to ``timeout`` seconds; raise `AdaptationFailed` unless a candidate came back."""
        self._process.join(timeout)
        try:
            if self._cancelled:
                raise AdaptationCancelled("adaptation cancelled")
            if self._process.is_alive():
                self._process.terminate()
                self._process.join(5)
                raise AdaptationFailed(f"adaptation did not finish within {timeout} s")
            error = self.job_dir / "error.txt"
            if self._process.exitcode != 0 or not (self.job_dir / "candidate.safetensors").exists():
                detail = error.read_text().strip().splitlines()[-1] if error.exists() else "no error report"
                raise AdaptationFailed(f"adaptation worker exited with code {self._process.exitcode}: {detail}")
            candidate = _load_model(self._model_config, self.job_dir / "candidate.safetensors")
            log = json.loads((self.job_dir / "log.json").read_text())
            log["process_total_s"] = time.perf_counter() - self.started
            log["warm_process"] = self.warm
            return AdaptResult(candidate, log)
        finally:
            self._end()

    def cancel(self) -> None:
        """Stop the job now; a `result` waiting on it (in another thread) raises `AdaptationCancelled`."""
        self._cancelled = True
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)
        self._end()

    def _end(self) -> None:
        if self._owns_dir:
            shutil.rmtree(self.job_dir, ignore_errors=True)
        if self.warm:  # jobs are served by processes started ahead: start the next one now the CPU is free
            prewarm()


def start_adaptation(
    model: Classifier,
    *,
    window_x: np.ndarray,
    pseudo_x: np.ndarray | None,
    pseudo_y: np.ndarray | None,
    anchors_x: np.ndarray,
    anchors_y: np.ndarray,
    feedback_x: np.ndarray | None = None,
    feedback_y: np.ndarray | None = None,
    config: AdaptConfig | None = None,
    device: str = "cpu",
    seed: int = 0,
    threads: int = 1,
    job_dir: str | Path | None = None,
) -> AdaptationJob:
    """Start `adapt` in its own process and return at once.

    The process started ahead by `prewarm` is used if one is waiting; the next is started ahead when this job
    ends (`AdaptationJob.result` or `AdaptationJob.cancel`).
    """
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    owns_dir = job_dir is None
    path = Path(tempfile.mkdtemp(prefix="driftwise-adapt-") if job_dir is None else job_dir)
    path.mkdir(parents=True, exist_ok=True)
    _save_model(model, path / "model.safetensors")
    arrays = {"window_x": window_x, "pseudo_x": pseudo_x, "pseudo_y": pseudo_y, "anchors_x": anchors_x,
              "anchors_y": anchors_y, "feedback_x": feedback_x, "feedback_y": feedback_y}
    np.savez(path / "arrays.npz", **{k: np.ascontiguousarray(v) for k, v in arrays.items() if v is not None})
    spec = {"model_config": model.config.to_dict(), "adapt_config": (config or AdaptConfig()).to_dict(),
            "device": str(device), "seed": int(seed), "threads": int(threads)}
    (path / "job.json").write_text(json.dumps(spec))
    started_at = time.perf_counter()
    started, warm = _take_process()
    try:
        started.jobs.send_bytes(str(path).encode())
    except (BrokenPipeError, OSError):  # it died between the check and the send: start one afresh
        started, warm = _start_process(), False
        started.jobs.send_bytes(str(path).encode())
    started.jobs.close()
    return AdaptationJob(started.process, path, spec["model_config"], started_at, owns_dir, warm)


def run_adaptation_in_subprocess(model: Classifier, *, timeout: float = 120.0, **kwargs: Any) -> AdaptResult:
    """`adapt` in its own process (see `start_adaptation`), waiting up to ``timeout`` seconds."""
    return start_adaptation(model, **kwargs).result(timeout)
