"""`replay.py`'s fallbacks (runs before the alarm check): the first look (latest 64) and the second (32 inputs later).

Run: ``python second_look_fallbacks.py RESULTS.json:RUN_DIR [...]``, as `replay.py`.
"""
import json, sys
from pathlib import Path
import numpy as np
sys.path.insert(0, str(Path(__file__).parent))
from replay import phase_of
from driftwise.drift.adapter import embed
from driftwise.drift.embedding_drift import mmd_permutation_test
from driftwise.models.registry import Registry
rows = []
for pair in sys.argv[1:]:
    rj, rd = pair.split(":"); d, run = json.loads(Path(rj).read_text()), Path(rd)
    delay = 3 * (100 if "--rate 100" in d["command"] else 50)
    kinds = {str(v["version"]): v["kind"] for v in d["versions"]}
    phases, swaps = d["phases"], d["swaps"]["adaptive"]
    base = Registry(run / "registry").load(d["model_name"], 1).model.eval()
    x = np.load(run / "stream.npz")["X"].astype(np.float32)
    for (served, version), (fb, then) in zip(swaps, swaps[1:]):
        if kinds.get(str(version)) not in ("adapt", "refine") or kinds.get(str(then)) != "pretrain":
            continue
        end = served - delay
        if end - 256 < 0 or fb - 128 < 0 or fb + 32 > len(x):
            continue
        same = len({phase_of(phases, e) for e in (end - 256, end - 1, fb - 128, fb - 1)}) == 1
        truth = "false alarm" if same else "moved" if phase_of(phases, end - 1) != phase_of(phases, fb - 1) else "mixed"
        w = embed(base, x[end - 256:end])
        p1, p2 = (mmd_permutation_test(w, embed(base, x[a - 64:a])) for a in (fb, fb + 32))
        print(f"{run.name:44s} v{version:>3} {truth:12s} first={p1:.3f} second={p2:.3f}")
        rows.append((truth, p1, p2))
for t in ("false alarm", "moved", "mixed"):
    a = np.array([(p1, p2) for tt, p1, p2 in rows if tt == t])
    if len(a):
        print(f"{t}: {len(a)}; said moved at the first look: {int((a[:, 0] < 0.05).sum())}; "
              f"at the first or the second: {int(((a[:, 0] < 0.05) | (a[:, 1] < 0.05)).sum())}")
