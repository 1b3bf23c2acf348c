"""Would a same-domain test tell a false alarm against a candidate from the stream leaving its domain? Offline.

`bench/results/alarm-check/replay.py` with the latest 64 and 32 inputs only, each tested plainly and with the
classes held equal (`driftwise.drift.same_domain.model_moved_p`), columns in that order: the class-matched test
was weighed for the alarm check here and not taken (output: alarm-replay.txt, run on 5539640, when
``model_moved_p`` was the class-matched test alone; since 2600b53 it keeps the plain answer unless that one finds
the samples alike, so a run today prints something between the two columns).

For each fallback in finished `driftwise bench stream` runs (an adapted candidate served, then the base again
after a drift was confirmed against it), compare in the base model's embeddings the candidate's domain (the 256
inputs up to about 3 s of events before it was served: its adaptation window) with the latest 32, 64 or 128
inputs when it fell back, by the MMD permutation test the guardrails use. The truth comes from the phases: a
"false alarm" had the window and the latest inputs in the same phase; "moved", in different ones.

Run: ``python replay.py RESULTS.json:RUN_DIR [RESULTS.json:RUN_DIR ...]`` (RUN_DIR holds the run's
``registry`` and ``stream.npz``, as `driftwise bench stream` leaves them in ``runs/``).
"""

import json
import sys
from pathlib import Path

import numpy as np

from driftwise.drift.adapter import embed
from driftwise.drift.embedding_drift import mmd_permutation_test
from driftwise.drift.same_domain import model_moved_p
from driftwise.models.registry import Registry

LATEST = (64, 32)


def phase_of(phases: list[dict], event: int) -> int | None:
    for i, p in enumerate(phases):
        if p["start"] <= event < p["stop"]:
            return i
    return None


def fallbacks(results_json: str, run_dir: str) -> list[tuple[str, tuple[float, ...]]]:
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
        if end - 256 < 0 or fell_back - max(LATEST) < 0:
            continue
        same = len({phase_of(phases, e) for e in (end - 256, end - 1, fell_back - 128, fell_back - 1)}) == 1
        truth = "false alarm" if same else "moved" if phase_of(phases, end - 1) != phase_of(phases, fell_back - 1) \
            else "mixed"
        window = embed(base, x[end - 256:end])
        p = tuple(f(window, embed(base, x[fell_back - n:fell_back])) for n in LATEST for f in (mmd_permutation_test, lambda a, b: model_moved_p(base, a, b)))
        print(f"{run.name:48s} v{version:>3} {phases[phase_of(phases, fell_back - 1)]['phase']:22s} {truth:12s} "
              + " ".join(f"{q:.3f}" for q in p))
        rows.append((truth, p))
    return rows


if __name__ == "__main__":
    rows = [row for pair in sys.argv[1:] for row in fallbacks(*pair.split(":"))]
    for k, name in enumerate(("64 plain", "64 matched", "32 plain", "32 matched")):
        for truth in ("false alarm", "moved", "mixed"):
            ps = np.array([p[k] for t, p in rows if t == truth])
            if len(ps):
                print(f"latest {name}: {truth}: {len(ps)}, p < 0.01: {int((ps < 0.01).sum())}, "
                      f"p < 0.05: {int((ps < 0.05).sum())}")
