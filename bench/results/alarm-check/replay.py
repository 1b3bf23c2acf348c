"""Would a same-domain test tell a false alarm against a candidate from the stream leaving its domain? Offline.

For each fallback in finished `driftwise bench stream` runs (an adapted candidate served, then the base again
after a drift was confirmed against it), compare in the base model's embeddings the candidate's domain (the 256
inputs up to about 3 s of events before it was served: its adaptation window) with the latest 32, 64 or 128
inputs when it fell back, by the MMD permutation test the guardrails use. The truth comes from the phases: a
"false alarm" had the window and the latest inputs in the same phase; "moved", in different ones.

Run: ``python replay.py RESULTS.json:RUN_DIR [RESULTS.json:RUN_DIR ...]`` (RUN_DIR holds the run's
``registry`` and ``stream.npz``, as `driftwise bench stream` leaves them in ``runs/``).
`bench/results/same-domain/alarm_replay.py` runs the same replay with other tests (`fallbacks`' ``columns``).
"""

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from driftwise.drift.adapter import embed
from driftwise.drift.embedding_drift import mmd_permutation_test
from driftwise.models.registry import Registry

LATEST = (128, 64, 32)
Column = tuple[str, str, int, Callable]
"""(label before each p in a run's line, name in the summary, latest inputs, test(base, window_z, latest_z) -> p)."""
COLUMNS: tuple[Column, ...] = tuple((f"p{n}=", str(n), n, lambda base, a, b: mmd_permutation_test(a, b))
                                    for n in LATEST)


def phase_of(phases: list[dict], event: int) -> int | None:
    for i, p in enumerate(phases):
        if p["start"] <= event < p["stop"]:
            return i
    return None


def fallbacks(results_json: str, run_dir: str,
              columns: Sequence[Column] = COLUMNS) -> list[tuple[str, tuple[float, ...]]]:
    d, run = json.loads(Path(results_json).read_text()), Path(run_dir)
    delay = 3 * (100 if "--rate 100" in d["command"] else 50)  # events between the window's end and serving
    kinds = {str(v["version"]): v["kind"] for v in d["versions"]}
    phases, swaps = d["phases"], d["swaps"]["adaptive"]
    base = Registry(run / "registry").load(d["model_name"], 1).model.eval()
    x = np.load(run / "stream.npz")["X"].astype(np.float32)
    rows = []
    for (served, version), (fell_back, then) in zip(swaps, swaps[1:]):
        if kinds.get(str(version)) not in ("adapt", "refine") or kinds.get(str(then)) != "pretrain":
            continue
        end = served - delay
        if end - 256 < 0 or fell_back - max(n for _, _, n, _ in columns) < 0:
            continue
        same = len({phase_of(phases, e) for e in (end - 256, end - 1, fell_back - 128, fell_back - 1)}) == 1
        truth = "false alarm" if same else "moved" if phase_of(phases, end - 1) != phase_of(phases, fell_back - 1) \
            else "mixed"
        window = embed(base, x[end - 256:end])
        p = tuple(test(base, window, embed(base, x[fell_back - n:fell_back])) for _, _, n, test in columns)
        print(f"{run.name:48s} v{version:>3} {phases[phase_of(phases, fell_back - 1)]['phase']:22s} {truth:12s} "
              + " ".join(f"{label}{q:.3f}" for (label, _, _, _), q in zip(columns, p)))
        rows.append((truth, p))
    return rows


def main(pairs: Sequence[str], columns: Sequence[Column] = COLUMNS) -> None:
    """Every fallback's line, then per column and truth how many tests said "moved" at p < 0.01 and 0.05."""
    rows = [row for pair in pairs for row in fallbacks(*pair.split(":"), columns=columns)]
    for k, (_, name, _, _) in enumerate(columns):
        for truth in ("false alarm", "moved", "mixed"):
            ps = np.array([p[k] for t, p in rows if t == truth])
            if len(ps):
                print(f"latest {name}: {truth}: {len(ps)}, p < 0.01: {int((ps < 0.01).sum())}, "
                      f"p < 0.05: {int((ps < 0.05).sum())}")


if __name__ == "__main__":
    main(sys.argv[1:])
