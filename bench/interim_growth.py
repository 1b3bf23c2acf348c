"""How many inputs should an interim be made on, once more of its domain has come? Offline, per phase.

The interim (`driftwise.drift.normalize`) comes on the latest 128 inputs so that it comes fast;
128 is few for statistics. This replays each phase of a `driftwise bench stream` run on its
pretrained model (version 1 of the run's ``registry``) and scores, on the phase's events from
`SCORED_FROM` on, an interim made on the ``W`` inputs just before (for each ``W`` in `WINDOWS`),
against the frozen model, in points. Clean phases say what a false alarm's interim costs.
No checks, no detection delay: one stationary domain per phase.

Run ``python -m driftwise.bench.interim_growth OUT.md RESULTS.json RUN_DIR [RESULTS.json RUN_DIR ...]``
on finished runs, or make a run's directory without serving it (pretrain with the CLI defaults and
the stream, as `driftwise bench stream` does) with
``python -m driftwise.bench.interim_growth --prepare RUN_DIR [bench stream options as key=value ...]``,
e.g. ``--prepare runs/prep-dev families=dev``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from driftwise.drift.adapter import predict_proba
from driftwise.drift.normalize import normalized_copy

SCORED_FROM = 512
WINDOWS = (64, 128, 256, 512)


def score_run(results_json: Path, run_dir: Path) -> list[dict[str, object]]:
    """One row per phase: the frozen model's accuracy and each window's gain over it, in points."""
    from driftwise.models.registry import Registry

    results = json.loads(Path(results_json).read_text())
    model = Registry(Path(run_dir) / "registry").load(results["model_name"], 1).model.eval()
    stream = np.load(Path(run_dir) / "stream.npz")
    X, y = stream["X"].astype(np.float32), stream["y"]
    rows: list[dict[str, object]] = []
    for phase in results["phases"]:
        x, labels = X[int(phase["start"]):int(phase["stop"])], y[int(phase["start"]):int(phase["stop"])]
        scored = labels[SCORED_FROM:]
        frozen = float((predict_proba(model, x[SCORED_FROM:]).argmax(1) == scored).mean())
        row: dict[str, object] = {"run": Path(run_dir).name, "phase": phase["phase"], "frozen": frozen}
        for w in WINDOWS:
            interim = normalized_copy(model, x[SCORED_FROM - w:SCORED_FROM])
            row[str(w)] = 100 * (float((predict_proba(interim, x[SCORED_FROM:]).argmax(1) == scored).mean()) - frozen)
        rows.append(row)
    return rows


def prepare(run_dir: Path, **options: object) -> Path:
    """``run_dir`` with ``registry`` (`driftwise pretrain`, CLI defaults), ``stream.npz`` and ``results.json`` (the
    phases), as `driftwise bench stream` with ``options`` (`StreamBenchConfig` fields) would make them."""
    from driftwise.bench import stream as bench

    config = bench.StreamBenchConfig(**options)  # type: ignore[arg-type]
    run_dir.mkdir(parents=True, exist_ok=True)
    x_src, y_src, x_held, y_held = bench.splits(config)
    bench.pretrain_registry(run_dir, run_dir / "registry", x_src, y_src, config.model_name, config.input_shape)
    stream = bench.replayed_stream(config, x_src, x_held, y_held)
    np.savez(run_dir / "stream.npz", X=stream.x, y=stream.y)
    n = int(config.phase_events or 0)
    phases = [{"phase": p, "start": i * n, "stop": (i + 1) * n} for i, p in enumerate(config.phases)]
    (run_dir / "results.json").write_text(json.dumps({"model_name": config.model_name, "command": config.command(),
                                                      "phases": phases}))
    return run_dir


def main(pairs: Sequence[tuple[Path, Path]], out: Path) -> list[dict[str, object]]:
    rows = [row for results_json, run_dir in pairs for row in score_run(results_json, run_dir)]
    names = [str(w) for w in WINDOWS]
    lines = ["# Interims made on more of their domain, offline", "",
             f"Command: `python -m driftwise.bench.interim_growth {out} "
             + " ".join(f"{a} {b}" for a, b in pairs) + "`", "",
             f"Gain over the frozen model on each phase's events from {SCORED_FROM} on, points, of an interim made "
             f"on the W inputs before them (see `bench/interim_growth.py`); the first clean phase is `clean#0`.", "",
             "| run | phase | frozen | " + " | ".join(f"W={n}" for n in names) + " |",
             "|---|---|---|" + "---|" * len(names)]
    for r in rows:
        lines.append(f"| {r['run']} | {r['phase']} | {r['frozen']:.3f} | "
                     + " | ".join(f"{r[n]:+.1f}" for n in names) + " |")
    lines += ["", "Means per run: drifted phases, and clean phases (a false alarm's interim).", "",
              "| run | phases | " + " | ".join(f"W={n}" for n in names) + " |", "|---|---|" + "---|" * len(names)]
    for run in dict.fromkeys(str(r["run"]) for r in rows):
        mine = [r for r in rows if r["run"] == run]
        for label, part in (("drifted", [r for r in mine if r["phase"] != "clean"]),
                            ("clean", [r for r in mine if r["phase"] == "clean"])):
            lines.append(f"| {run} | {label} ({len(part)}) | "
                         + " | ".join(f"{np.mean([float(r[n]) for r in part]):+.2f}" for n in names) + " |")
    out.write_text("\n".join(lines) + "\n")
    return rows


if __name__ == "__main__":
    import ast
    import sys

    if sys.argv[1:2] == ["--prepare"]:
        options = {k: ast.literal_eval(v) if v[:1] in "0123456789[(-'\"" or v in ("True", "False") else v
                   for k, v in (a.split("=", 1) for a in sys.argv[3:])}
        print(prepare(Path(sys.argv[2]), **options))
    else:
        from driftwise.bench.stream_report import finished_runs_argv

        out, pairs = finished_runs_argv("interim_growth", sys.argv[1:])
        main(pairs, out)
        print(out.read_text())
