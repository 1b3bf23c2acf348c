"""The adapter's own process: same candidate as in-process, failures reported, started ahead, cancellable."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from driftwise.drift import worker
from driftwise.drift.adapter import AdaptConfig, adapt, predict_proba
from driftwise.drift.corruptions import corrupt
from driftwise.drift.worker import AdaptationCancelled, AdaptationFailed, prewarm, run_adaptation_in_subprocess, \
    start_adaptation
from driftwise.models.digits import load_digits_images
from tests.tiny_cnn import train_tiny

FAST = AdaptConfig(steps=30, rounds=1, batch_size=32, anchor_batch_size=16)


@pytest.fixture(scope="module")
def setup():
    x, y = load_digits_images()
    order = np.random.default_rng(0).permutation(len(y))
    train, test = order[:600], order[600:900]
    model = train_tiny(x[train], y[train])
    window = corrupt(x[test], "gaussian_noise", severity=4, seed=1)
    return model, dict(window_x=window, pseudo_x=None, pseudo_y=None, anchors_x=x[train[:100]],
                       anchors_y=y[train[:100]], config=FAST, seed=0), y[test]


@pytest.fixture(autouse=True)
def nothing_started_ahead():
    """Each test starts without a process waiting, and leaves none behind."""
    def discard() -> None:
        with worker._ahead_lock:
            ahead, worker._ahead = worker._ahead, None
        if ahead is not None:
            ahead.process.terminate()
            ahead.process.join(5)

    discard()
    yield
    discard()


def _accuracy(model, x, y) -> float:
    return float((predict_proba(model, x).argmax(1) == y).mean())


def test_the_worker_returns_the_candidate_adapt_makes_in_process(setup):
    model, kwargs, y = setup
    result = run_adaptation_in_subprocess(model, timeout=120, **kwargs)
    in_process = adapt(model, **kwargs)
    window = kwargs["window_x"]
    assert _accuracy(result.candidate, window, y) == pytest.approx(_accuracy(in_process.candidate, window, y))
    assert result.log["process_total_s"] >= result.log["total_s"] and not result.log["warm_process"]


def test_a_failure_in_the_worker_is_reported_not_hidden(setup):
    model, kwargs, _ = setup
    with pytest.raises(AdaptationFailed, match="window_x needs at least 2"):
        run_adaptation_in_subprocess(model, timeout=120, **{**kwargs, "window_x": kwargs["window_x"][:1]})


def test_a_process_started_ahead_takes_the_next_job_and_another_is_started_when_it_ends(setup):
    model, kwargs, _ = setup
    prewarm()
    waiting = worker._ahead.process
    job = start_adaptation(model, **kwargs)
    assert job.warm and job._process is waiting
    assert worker._ahead is None  # nothing starts beside the job, competing with it for the CPU
    assert job.result(120).log["warm_process"]
    assert worker._ahead is not None and worker._ahead.process is not waiting and worker._ahead.process.is_alive()


def test_a_cancelled_job_also_leaves_the_next_process_started_ahead(setup):
    model, kwargs, _ = setup
    prewarm()
    job = start_adaptation(model, **kwargs)
    job.cancel()
    assert worker._ahead is not None and worker._ahead.process.is_alive()


def test_a_process_started_ahead_that_died_is_not_used(setup):
    model, kwargs, _ = setup
    prewarm()
    worker._ahead.process.kill()
    worker._ahead.process.join(5)
    job = start_adaptation(model, **kwargs)
    assert not job.warm
    assert job.result(120).candidate is not None


def test_a_cancelled_job_stops_its_process_and_says_it_was_cancelled(setup):
    model, kwargs, _ = setup
    job = start_adaptation(model, **{**kwargs, "config": AdaptConfig(steps=100_000, max_seconds=60)})
    time.sleep(0.5)
    job.cancel()
    assert job.done and not job.job_dir.exists()
    with pytest.raises(AdaptationCancelled):
        job.result(1)


def test_a_warmed_up_process_imports_nothing_more_for_its_first_fine_tuning_step():
    """The optimiser's lazy imports (about 900 modules) are paid while a started-ahead process waits."""
    script = (
        "import sys, torch\n"
        "from driftwise.drift.worker import warm_up\n"
        "warm_up()\n"
        "before = set(sys.modules)\n"
        "layer = torch.nn.Linear(3, 2)\n"
        "opt = torch.optim.Adam(layer.parameters())\n"
        "layer(torch.ones(1, 3)).sum().backward()\n"
        "opt.step()\n"
        "print(sorted(set(sys.modules) - before))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
