"""Would an interim that follows the stream beat one made once? Offline, on finished stream runs.

Faults that do not stand still (a switching ground loop, a wandering leak, packet loss
that leaves offsets until a keyframe) raised the question: the service makes an interim
(BatchNorm re-estimated on the latest inputs, `driftwise.drift.normalize`) when a drift is
confirmed and remakes it when its domain moves; re-estimating on a sliding window, as
robust test-time normalisation does, would follow every state. This replays each drifted
phase of a finished `driftwise bench stream` run on its pretrained model (version 1 of the
run's ``registry``) and scores, on the phase's events after its first 128:

* ``once``: one interim on the phase's first 128 events, serving the rest;
* ``everyR``: an interim re-estimated every R events on the latest 128 (``+cut``: cut at the
  newest domain first, `driftwise.drift.normalize.newest_domain`);
* ``service``: what the adaptive twin did on the same events (interims, candidates, checks).

All against the frozen model, in points. No checks and no detection delay: an upper bound
for each policy, not a service. Run
``python -m driftwise.bench.interim_refresh OUT.md RESULTS.json RUN_DIR [RESULTS.json RUN_DIR ...]``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from driftwise.drift.adapter import predict_proba
from driftwise.drift.normalize import newest_domain, normalized_copy
from driftwise.models.classifier import Classifier

WINDOW = 128
POLICIES = (("once", 0, False), ("every128", 128, False), ("every32", 32, False), ("every32+cut", 32, True))
"""(name, events between re-estimations (0: once), cut at the newest domain)."""


def policy_correct(model: Classifier, x: np.ndarray, y: np.ndarray, every: int, cut: bool) -> np.ndarray:
    """Per event from `WINDOW` on: right or wrong, under interims re-estimated every ``every`` events (0: once)."""
    step = every or len(x)
    hits = []
    for start in range(WINDOW, len(x), step):
        window = x[start - WINDOW:start]
        if cut:
            window = newest_domain(model, window)[1]
        hits.append(predict_proba(normalized_copy(model, window), x[start:start + step]).argmax(1) == y[start:start + step])
    return np.concatenate(hits)


def score_run(results_json: Path, run_dir: Path) -> list[dict[str, object]]:
    """One row per drifted phase: each policy's gain over the frozen model and the service's, in points."""
    from driftwise.models.registry import Registry

    results = json.loads(Path(results_json).read_text())
    model = Registry(run_dir / "registry").load(results["model_name"], 1).model.eval()
    stream = np.load(run_dir / "stream.npz")
    X, y = stream["X"].astype(np.float32), stream["y"]
    adaptive = np.array(results["correct"]["adaptive"], float)
    frozen_served = np.array(results["correct"]["no_adapt"], float)
    rows = []
    for phase in results["phases"]:
        if phase["phase"] == "clean":
            continue
        lo, hi = int(phase["start"]), int(phase["stop"])
        x, labels = X[lo:hi], y[lo:hi]
        frozen = float((predict_proba(model, x[WINDOW:]).argmax(1) == labels[WINDOW:]).mean())
        row: dict[str, object] = {"run": Path(results_json).stem, "phase": phase["phase"]}
        for name, every, cut in POLICIES:
            row[name] = 100 * (float(policy_correct(model, x, labels, every, cut).mean()) - frozen)
        row["service"] = 100 * float(np.nanmean(adaptive[lo + WINDOW:hi]) - np.nanmean(frozen_served[lo + WINDOW:hi]))
        rows.append(row)
    return rows


def main(pairs: Sequence[tuple[Path, Path]], out: Path) -> list[dict[str, object]]:
    rows = [row for results_json, run_dir in pairs for row in score_run(results_json, run_dir)]
    names = [name for name, _, _ in POLICIES] + ["service"]
    lines = ["# Interims that follow the stream, offline", "",
             f"Command: `python -m driftwise.bench.interim_refresh {out} "
             + " ".join(f"{a} {b}" for a, b in pairs) + "`", "",
             "Gain over the frozen model on each drifted phase's events after its first 128, points (see "
             "`bench/interim_refresh.py`): `once` one interim on the first 128; `everyR` re-estimated every R events "
             "on the latest 128 (`+cut`: at the newest domain); `service` what the adaptive twin did there.", "",
             "| run | phase | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    lines += [f"| {r['run']} | {r['phase']} | " + " | ".join(f"{r[n]:+.1f}" for n in names) + " |" for r in rows]
    for run in dict.fromkeys(str(r["run"]) for r in rows):
        mine = [r for r in rows if r["run"] == run]
        lines.append(f"| {run} | **mean** | " + " | ".join(f"**{np.mean([r[n] for r in mine]):+.1f}**" for n in names)
                     + " |")
    out.write_text("\n".join(lines) + "\n")
    return rows


if __name__ == "__main__":
    import sys

    from driftwise.bench.stream_report import finished_runs_argv

    out, pairs = finished_runs_argv("interim_refresh", sys.argv[1:])
    main(pairs, out)
    print(out.read_text())
