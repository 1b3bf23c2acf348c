"""`python -m driftwise.bench.weight_averaging RUN_DIR ...`: how much of the fine-tuned weights a candidate keeps.

The measurement `driftwise.drift.adapter.AdaptConfig.finetuned_weight` was chosen by,
on **development shifts only**, on the models users get: each ``RUN_DIR`` is a
``runs/stream-*`` folder a `driftwise bench stream` run left (its ``registry-no_adapt``
holds version 1, made by `driftwise pretrain` with its defaults; ``stream.npz`` its
events, whose first phase is clean). For each window: draw 1,500 clean events of that
phase, shift them with a development family (digits: `driftwise.drift.corruptions`,
tabular: `driftwise.drift.sensor_shifts`) at severity 3, adapt on the first 256 without
labels (the service's recipe, `AdaptConfig` with no time budget) and score on the
other 1,244: the frozen model, BatchNorm re-estimated on the window (the interim),
and the candidate with each weight of the fine-tuned weights (1.0: the fine-tuned
model as it is). The gains are against the frozen model and against the interim,
mean and worst window.

Writes ``bench/results/weight-averaging.md`` and ``.json`` (``--out`` to change).
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
from driftwise.drift import corruptions, sensor_shifts
from driftwise.drift.adapter import AdaptConfig, adapt, average_weights, predict_proba
from driftwise.models.classifier import Classifier
from driftwise.models.train import recalibrate_batchnorm

RESULTS = Path(__file__).resolve().parent / "results"
WEIGHTS = (1.0, 0.75, 0.5)
WINDOW, DRAWN, SEVERITY = 256, 1500, 3


def _accuracy(model: Classifier, x: np.ndarray, y: np.ndarray) -> float:
    return float((predict_proba(model, x).argmax(1) == y).mean())


def windows_of(run: Path, windows: int) -> tuple[str, list[dict[str, Any]]]:
    """Every (family, window) of one run: its rows of accuracies (frozen, interim, each weight)."""
    snapshot = pretrained_snapshot(run)
    model = snapshot.model
    stream = np.load(run / "stream.npz")  # its first phase is clean, at least DRAWN events long
    clean_x, clean_y = stream["X"][:DRAWN].astype(np.float32), stream["y"][:DRAWN]
    tabular = model.config.encoder != "cnn"
    if tabular:
        source = np.load(run / "pretrain.npz")["X"]
        families = sensor_shifts.DEVELOPMENT_FAMILIES
    else:
        families = corruptions.DEVELOPMENT_FAMILIES
    config = AdaptConfig(max_seconds=1e6, finetuned_weight=1.0)
    rows = []
    for f, family in enumerate(families):
        for w in range(windows):
            rng = np.random.default_rng(1000 * f + w)
            idx = rng.permutation(len(clean_y))
            x = (sensor_shifts.shift(clean_x[idx], family, source, severity=SEVERITY, seed=100 + 10 * f + w)
                 if tabular else corruptions.corrupt(clean_x[idx], family, SEVERITY, seed=100 + 10 * f + w))
            x, y = np.asarray(x, np.float32), clean_y[idx]
            window, scored_x, scored_y = x[:WINDOW], x[WINDOW:], y[WINDOW:]
            interim = copy.deepcopy(model)
            recalibrate_batchnorm(interim, torch.as_tensor(window))
            interim.eval()
            tuned = adapt(interim, window_x=window, pseudo_x=None, pseudo_y=None, anchors_x=snapshot.anchors_x,
                          anchors_y=snapshot.anchors_y, config=config, seed=0).candidate
            row = {"run": run.name, "family": family, "window": w, "frozen": _accuracy(model, scored_x, scored_y),
                   "interim": _accuracy(interim, scored_x, scored_y)}
            for weight in WEIGHTS:  # as `adapt` averages: one fine-tuning, each weight
                mixed = tuned if weight == 1.0 else average_weights(interim, tuned, weight, torch.as_tensor(window))
                row[f"weight {weight}"] = _accuracy(mixed, scored_x, scored_y)
            rows.append(row)
            print(" ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
    return ("tabular" if tabular else "digits"), rows


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per variant: mean and worst gain (points) over the frozen model and over the interim."""
    out = {}
    for key in ["interim"] + [f"weight {w}" for w in WEIGHTS]:
        frozen = np.array([r[key] - r["frozen"] for r in rows])
        interim = np.array([r[key] - r["interim"] for r in rows])
        out[key] = {"mean_gain": 100 * frozen.mean(), "worst_gain": 100 * frozen.min(),
                    "mean_vs_interim": 100 * interim.mean(), "worst_vs_interim": 100 * interim.min()}
    return out


def main(runs: Sequence[Path], windows: int, out: Path) -> dict[str, Any]:
    torch.set_num_threads(1)
    started = time.perf_counter()
    by_domain: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        domain, rows = windows_of(Path(run), windows)
        by_domain.setdefault(domain, []).extend(rows)
    summary = {domain: summarise(rows) for domain, rows in by_domain.items()}
    command = "python -m driftwise.bench.weight_averaging " + " ".join(str(r) for r in runs) + f" --windows {windows}"
    lines = ["# Weight averaging: how much of the fine-tuned weights a candidate keeps", "",
             f"Command: `{command}`  ", f"Date: {time.strftime('%Y-%m-%d %H:%M %Z')}, "
             f"{time.perf_counter() - started:.0f} s. Development shifts only, severity {SEVERITY}; "
             f"{WINDOW}-event windows, scored on {DRAWN - WINDOW} other events; see the module docstring.", ""]
    for domain, s in summary.items():
        n = len(by_domain[domain])
        lines += [f"## {domain} ({n} windows: {', '.join(sorted({r['run'] for r in by_domain[domain]}))})", "",
                  "| model | mean gain over frozen | worst window | mean gain over the interim | worst window |",
                  "|---|---:|---:|---:|---:|"]
        lines += [f"| {k} | {v['mean_gain']:+.1f} | {v['worst_gain']:+.1f} | {v['mean_vs_interim']:+.1f} | "
                  f"{v['worst_vs_interim']:+.1f} |" for k, v in s.items()]
        lines.append("")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    result = {"command": command, "summary": summary, "rows": by_domain}
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    print("\n".join(lines))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="runs/stream-* folders of `driftwise bench stream` runs")
    parser.add_argument("--windows", type=int, default=2, help="windows per development family and run")
    parser.add_argument("--out", type=Path, default=RESULTS / "weight-averaging.md")
    args = parser.parse_args()
    main(args.runs, args.windows, args.out)
