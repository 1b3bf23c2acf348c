"""`python -m driftwise.bench.input_standardizer RUN_DIR ...`: should an MLP's interim re-fit its input standardiser?

The interim model (`driftwise.drift.normalize`) re-estimates the served weights'
BatchNorm statistics on the drifted window. An MLP also standardises each input feature
with a mean and scale fitted in pretraining (`driftwise.models.encoders.InputStandardizer`),
which BatchNorm after the first layer sees only mixed with the other features. This bench
compares, on the models users get, the interim as served (``bn``) with one whose input
standardiser is first re-fitted wherever the window shows a feature's mean or scale moved
beyond its sampling noise (``bn+inputs``, `refit_moved`).

Verdict (2026-12-06): **not shipped**. On the development families ``bn+inputs`` was
even or a little worse (+3.0 against +3.3 points, noise +1.0 against +1.4: it scales a
noisy feature down with its signal); it won on a sensor reporting in other units (the
second unseen trial's duplicated channel, +19.0 against -7.1) and on the held-out gain
family, and lost on a sluggish sensor in the third unseen trial, written and run after
it was built (-0.4, +2.1 and -2.5 against +2.1, +6.7 and -0.1 on its three tables): a
scale that shrank because a sensor lost information is not a scale to undo, and the
window cannot tell the two apart. Through the real service: with it, the second trial's
binary table gained +3.2 points (its duplicated channel +17.1, against -0.7 and -6.2
without); the third trial's sluggish phases lost 2.6, 9.8 and 2.3 points with it
(bench/results/unseen-3/with-input-refit) and +0.0, 9.6 and -0.5 without (gquant's
loss, both times, a label-shift correction served by mistake: fixed since, in
`driftwise.drift.label_shift`).

Each ``RUN_DIR`` is a ``runs/stream-*`` folder of a tabular `driftwise bench stream`
run: its ``registry-no_adapt`` holds version 1, made by `driftwise pretrain` with its
defaults, its ``stream.npz`` the events (the first phase clean). Two measurements:

* **Families** (``--windows`` per family): 1,500 clean events of the first phase,
  shifted by a `driftwise.drift.sensor_shifts` family at severity 3 (shift seeds 500+),
  the interim fitted on the first 128 (``normalize_window``) and scored on the rest.
  Development families choose; held-out ones are reported beside them.
* **Phases** (``--phases``): the run's own phases as they streamed, the interim fitted
  on 128 events at three offsets into each phase and scored on the rest of it.

Gains are accuracy points over the frozen model. Writes ``bench/results/input-standardizer.md``
and ``.json`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from driftwise.bench.stream import pretrained_snapshot
from driftwise.drift import sensor_shifts
from driftwise.drift.adapter import predict_proba
from driftwise.models.classifier import Classifier
from driftwise.models.encoders import InputStandardizer
from driftwise.models.train import recalibrate_batchnorm

RESULTS = Path(__file__).resolve().parent / "results"
WINDOW, DRAWN, SEVERITY, OFFSETS = 128, 1500, 3, (50, 600, 1200)
Z = 3.0  # standard errors past which a feature's statistic counts as moved


@torch.no_grad()
def refit_moved(model: Classifier, window: torch.Tensor) -> None:
    """Re-fit the input standardiser's mean and scale where ``window`` moved them beyond its sampling noise
    (mean: ``Z`` standard errors; scale: the log variance ratio, ``Z`` standard errors from the window's own
    kurtosis; a constant feature keeps its scale), then re-estimate BatchNorm."""
    standardize = getattr(model.encoder, "standardize", None)
    if isinstance(standardize, InputStandardizer):
        x = window.double()
        n, mean, var = len(x), x.mean(0), x.var(0, unbiased=False)
        old_mean, old_var = standardize.mean.double(), standardize.scale.double() ** 2
        mean_moved = (mean - old_mean).abs() > Z * torch.sqrt(var / n)
        kurtosis = ((x - mean) ** 4).mean(0) / var.clamp_min(1e-24) ** 2
        scale_moved = (torch.log(var.clamp_min(1e-24) / old_var).abs()
                       > Z * torch.sqrt((kurtosis - 1.0).clamp_min(2.0 / n) / n))
        standardize.mean.copy_(torch.where(mean_moved | scale_moved, mean, old_mean).float())
        standardize.scale.copy_(torch.where(scale_moved & (var.sqrt() > 1e-6), var.sqrt(), old_var.sqrt()).float())
    recalibrate_batchnorm(model, window)


VARIANTS = {"bn": recalibrate_batchnorm, "bn+inputs": refit_moved}


def _accuracy(model: Classifier, x: np.ndarray, y: np.ndarray) -> float:
    return float((predict_proba(model, x).argmax(1) == y).mean())


def _gains(model: Classifier, window: np.ndarray, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    frozen = _accuracy(model, x, y)
    row = {"frozen": frozen}
    for name, fit in VARIANTS.items():
        interim = copy.deepcopy(model)
        fit(interim, torch.as_tensor(window))
        row[name] = 100.0 * (_accuracy(interim.eval(), x, y) - frozen)
    return row


def _load(run: Path) -> tuple[Classifier, np.ndarray, np.ndarray]:
    model = pretrained_snapshot(run).model
    stream = np.load(run / "stream.npz")
    return model, stream["X"].astype(np.float32), stream["y"]


def family_rows(run: Path, windows: int) -> list[dict[str, Any]]:
    model, x_all, y_all = _load(run)
    clean_x, clean_y = x_all[:DRAWN], y_all[:DRAWN]
    source = np.load(run / "pretrain.npz")["X"] if (run / "pretrain.npz").exists() else clean_x
    rows = []
    for family in ("clean",) + sensor_shifts.SHIFT_NAMES:
        for w in range(windows):
            idx = np.random.default_rng(77 + w).permutation(len(clean_y))
            x = clean_x[idx] if family == "clean" else sensor_shifts.shift(clean_x[idx], family, source,
                                                                            severity=SEVERITY, seed=500 + w)
            x, y = np.asarray(x, np.float32), clean_y[idx]
            rows.append({"run": run.name, "family": family, "window": w,
                         **_gains(model, x[:WINDOW], x[WINDOW:], y[WINDOW:])})
    return rows


def phase_rows(run: Path, phase_events: int) -> list[dict[str, Any]]:
    model, x_all, y_all = _load(run)
    rows = []
    for p in range(len(y_all) // phase_events):
        x, y = x_all[p * phase_events:(p + 1) * phase_events], y_all[p * phase_events:(p + 1) * phase_events]
        for offset in OFFSETS:
            keep = np.ones(len(y), bool)
            keep[offset:offset + WINDOW] = False
            rows.append({"run": run.name, "phase": p, "offset": offset,
                         **_gains(model, x[offset:offset + WINDOW], x[keep], y[keep])})
    return rows


def _mean_worst(rows: Sequence[dict[str, Any]], key: str) -> str:
    values = [r[key] for r in rows]
    return f"{np.mean(values):+.1f} ({min(values):+.1f})"


def report(families: list[dict[str, Any]], phases: list[dict[str, Any]], command: str, seconds: float) -> str:
    dev, held = sensor_shifts.DEVELOPMENT_FAMILIES, sensor_shifts.HELD_OUT_FAMILIES
    lines = ["# The interim of an MLP: BatchNorm alone (served), or the input standardiser re-fitted too", "",
             f"Command: `{command}`  ", f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, wall time "
             f"{seconds:.0f} s", "", *[line for part in __doc__.split("\n\n")[1:3] for line in (part.replace("\n", " "), "")],
             "Gain over the frozen model, accuracy points: mean over windows (worst window).", ""]
    groups = [("development families (choose)", [r for r in families if r["family"] in dev]),
              ("clean windows", [r for r in families if r["family"] == "clean"]),
              ("held-out families (reported)", [r for r in families if r["family"] in held])]
    lines += ["| windows | n | bn | bn+inputs |", "|---|---|---|---|"]
    lines += [f"| {name} | {len(rows)} | {_mean_worst(rows, 'bn')} | {_mean_worst(rows, 'bn+inputs')} |"
              for name, rows in groups if rows]
    lines += ["", "Per run and family:", "", "| run | family | frozen | bn | bn+inputs |", "|---|---|---|---|---|"]
    for run in dict.fromkeys(r["run"] for r in families):
        for family in dict.fromkeys(r["family"] for r in families):
            rows = [r for r in families if r["run"] == run and r["family"] == family]
            lines.append(f"| {run} | {family} | {np.mean([r['frozen'] for r in rows]):.3f} | "
                         f"{_mean_worst(rows, 'bn')} | {_mean_worst(rows, 'bn+inputs')} |")
    if phases:
        lines += ["", "Phases as streamed (interim fitted at offsets " + ", ".join(map(str, OFFSETS)) + "):", "",
                  "| run | phase | frozen | bn | bn+inputs |", "|---|---|---|---|---|"]
        for run in dict.fromkeys(r["run"] for r in phases):
            for p in dict.fromkeys(r["phase"] for r in phases if r["run"] == run):
                rows = [r for r in phases if r["run"] == run and r["phase"] == p]
                lines.append(f"| {run} | {p} | {np.mean([r['frozen'] for r in rows]):.3f} | "
                             f"{_mean_worst(rows, 'bn')} | {_mean_worst(rows, 'bn+inputs')} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="runs/stream-* folders of tabular stream bench runs")
    parser.add_argument("--windows", type=int, default=4, help="shifted windows per family and run")
    parser.add_argument("--phases", type=Path, nargs="*", default=[], help="runs whose own phases to score too")
    parser.add_argument("--phase-events", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=RESULTS / "input-standardizer.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    families = [row for run in args.runs for row in family_rows(run, args.windows)]
    phases = [row for run in args.phases for row in phase_rows(run, args.phase_events)]
    command = "python -m driftwise.bench.input_standardizer " + " ".join(map(str, args.runs)) + (
        " --phases " + " ".join(map(str, args.phases)) if args.phases else "")
    args.out.write_text(report(families, phases, command, time.perf_counter() - start))
    args.out.with_suffix(".json").write_text(json.dumps({"families": families, "phases": phases}, indent=1))
    print(args.out.read_text())


if __name__ == "__main__":
    main()
