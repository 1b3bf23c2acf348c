"""`python -m driftwise.bench.detector_value OUT.md RESULTS.json RUN_DIR ...`: what each scalar detector earns.

The drift monitor is most of what serving costs beyond the forward pass (`bench/results/serve.md`:
40-100 us an event), and river's KSWIN runs a scipy Kolmogorov-Smirnov test per value it is fed.
This replays the events of finished `driftwise bench stream` runs through the pretrained model
(version 1 of the run's registry) and its drift monitor, with `DEFAULT_DETECTORS`, with KSWIN added
back (`KSWIN_ON_CONFIDENCE`, in the defaults until this bench's first results), and with KSWIN and each
default less one (every variant keeps the two votes a confirmation needs), and reports per variant:

* the **confirmation delay** of each drifted phase: the monitor, fresh, is fed ``WARM`` clean events
  of the run (drawn from its clean phases) and then the phase's events, as the frozen twin sees them;
* **false confirmations** in ``STATIONARY`` clean events drawn from the run's clean phases (the
  monitor restarts after each, as after a swap);
* the monitor's **CPU time per event** on those clean events (one thread, batches of ``BATCH``).

A detector that never confirms a drift sooner, at its cost, is a candidate to leave out of the
defaults (as KSWIN was); this bench only measures, it changes no default.

Writes ``OUT.md`` and its ``.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from driftwise.bench.stream import pretrained_snapshot
from driftwise.drift.adapter import embed, predict_proba
from driftwise.drift.monitor import DEFAULT_DETECTORS, KSWIN_ON_CONFIDENCE, DetectorSpec, DriftMonitor

BATCH, WARM, STATIONARY = 8, 600, 20000


def variants() -> dict[str, Mapping[str, DetectorSpec]]:
    """The defaults; with KSWIN too; and with KSWIN, less each default."""
    full = {**DEFAULT_DETECTORS, "kswin": KSWIN_ON_CONFIDENCE}
    out: dict[str, Mapping[str, DetectorSpec]] = {"defaults": DEFAULT_DETECTORS, "with kswin": full}
    for name in DEFAULT_DETECTORS:
        out[f"with kswin, without {name}"] = {k: v for k, v in full.items() if k != name}
    return out


def confirmations(monitor: DriftMonitor, probabilities: np.ndarray, embeddings: np.ndarray,
                  order: np.ndarray) -> list[tuple[int, str]]:
    """Feed the events at ``order`` in batches; (events fed, reason) at each confirmation, restarting after it."""
    found = []
    for start in range(0, len(order), BATCH):
        batch = order[start:start + BATCH]
        monitor.update(probabilities[batch], embeddings[batch])
        if monitor.newly_confirmed:
            found.append((start + len(batch), str(monitor.reason)))
            monitor.reset()
    return found


def measure_run(results_json: Path, run_dir: Path) -> dict[str, Any]:
    """Every variant on one run: delay per drifted phase, false confirmations and CPU per clean event."""
    results = json.loads(Path(results_json).read_text())
    phases, per_phase = results["phases_run"], int(results["config"]["phase_events"])
    snapshot = pretrained_snapshot(run_dir)
    x = np.load(Path(run_dir) / "stream.npz")["X"]
    probabilities, embeddings = predict_proba(snapshot.model, x), embed(snapshot.model, x)
    clean = np.flatnonzero(np.repeat(np.asarray(phases) == "clean", per_phase)[:len(x)])
    out: dict[str, Any] = {"run": Path(results_json).stem, "phases": phases[1:-1], "variants": {}}
    for name, detectors in variants().items():
        rng = np.random.default_rng(0)  # the same warm-up and clean draws for every variant
        delays = []
        for i in range(1, len(phases) - 1):
            order = np.r_[rng.choice(clean, WARM), np.arange(i * per_phase, (i + 1) * per_phase)]
            after = [(fed - WARM, why) for fed, why in confirmations(
                DriftMonitor(snapshot.reference, detectors=detectors), probabilities, embeddings, order) if fed > WARM]
            delays.append({"phase": phases[i], "delay": after[0][0] if after else None,
                           "reason": after[0][1] if after else None})
        stationary = rng.choice(clean, STATIONARY)
        monitor = DriftMonitor(snapshot.reference, detectors=detectors)
        started = time.process_time()
        alarms = confirmations(monitor, probabilities, embeddings, stationary)
        cpu = time.process_time() - started
        out["variants"][name] = {"delays": delays, "false_confirmations": len(alarms),
                                 "us_per_event": 1e6 * cpu / STATIONARY}
    return out


def main(pairs: Sequence[tuple[Path, Path]], out: Path) -> list[dict[str, Any]]:
    runs = [measure_run(results_json, run_dir) for results_json, run_dir in pairs]
    names = list(variants())
    lines = [f"# What each scalar drift detector earns: {', '.join(r['run'] for r in runs)}", "",
             f"Command: `python -m driftwise.bench.detector_value {out} "
             + " ".join(f"{a} {b}" for a, b in pairs) + "`", "",
             f"Each drifted phase after {WARM} clean events, a fresh monitor on the pretrained model (the frozen "
             f"twin's view); false confirmations in {STATIONARY} clean events drawn from the run's clean phases; "
             f"monitor CPU per event on those, batches of {BATCH}, one thread.", "",
             "| run | variant | confirmation delay per drifted phase (events) | sooner / later than the defaults "
             "| false confirmations | monitor us/event |", "|---|---|---|---|---|---|"]
    for run in runs:
        base = [d["delay"] for d in run["variants"]["defaults"]["delays"]]
        for name in names:
            v = run["variants"][name]
            delays = [d["delay"] for d in v["delays"]]
            sooner = sum(a is not None and (b is None or a < b) for a, b in zip(delays, base))
            later = sum(b is not None and (a is None or a > b) for a, b in zip(delays, base))
            shown = ", ".join("-" if d is None else str(d) for d in delays)
            lines.append(f"| {run['run']} | {name} | {shown} | {sooner} / {later} | {v['false_confirmations']} "
                         f"| {v['us_per_event']:.0f} |")
    out.write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(runs, indent=1))
    return runs


if __name__ == "__main__":
    import sys

    from driftwise.bench.stream_report import finished_runs_argv

    out, pairs = finished_runs_argv("detector_value", sys.argv[1:])
    main(pairs, out)
