"""The alarm check's second look, replayed offline on finished `driftwise bench stream` runs.

For each drift confirmed while an adapted candidate served, compare in the base's embeddings the candidate's
domain (the 256 inputs up to 3 s of events before it was served, as `replay.py` takes it) with the latest 64
inputs at the confirmation (the first look) and 32 inputs later (the second, `driftwise.drift.loop.ALARM_SECOND_LOOK`);
also with the newest domain of the latest 128 (`driftwise.drift.change_point.latest_domain`), a variant not
shipped. Truth from the phases: "same" when the window and the confirmation are in one phase.

Run: ``python second_look.py RESULTS.json [...]``, each results file in a folder named by the run's tag, its run
in ``runs/TAG-NAME`` (as the twelfth session's queue left them).
"""
import json, sys
from pathlib import Path
import numpy as np
from driftwise.drift.adapter import embed
from driftwise.drift.embedding_drift import mmd_permutation_test
from driftwise.drift.change_point import latest_domain
from driftwise.models.registry import Registry

def phase_of(phases, e):
    for i, p in enumerate(phases):
        if p["start"] <= e < p["stop"]:
            return i
    return None

rows = []
for js in sys.argv[1:]:
    js = Path(js); tag = js.parent.name
    run = Path("runs") / f"{tag}-{js.stem}"
    if not (run / "stream.npz").exists():
        continue
    d = json.loads(js.read_text())
    rate = 100 if "--rate 100" in d["command"] or "tabular" in d["command"] else 50
    if "--rate 200" in d["command"]: rate = 200
    kinds = {str(v["version"]): v["kind"] for v in d["versions"]}
    swaps = d["swaps"]["adaptive"]; phases = d["phases"]
    reg = run / "registry" if (run / "registry").exists() else run / "registry-adaptive"
    base = Registry(reg).load(d["model_name"], 1).model.eval()
    x = np.load(run / "stream.npz")["X"].astype(np.float32)
    for e, why in d["detections"]["adaptive"]:
        serving = [(s, v) for s, v in swaps if s <= e]
        if not serving: continue
        served, v = serving[-1]
        if kinds.get(str(v)) not in ("adapt", "refine"): continue
        end = served - 3 * rate
        if end - 256 < 0 or e < 128: continue
        pw, pe = phase_of(phases, end - 1), phase_of(phases, e - 1)
        truth = "same" if pw == pe and phase_of(phases, end - 256) == pw else "moved"
        window = embed(base, x[end - 256:end])
        p64 = mmd_permutation_test(window, embed(base, x[e - 64:e]))
        z128 = embed(base, x[e - 128:e])
        cp = latest_domain(z128)
        newest = z128[cp.start:] if cp.start > 0 else z128[-64:]
        pcut = mmd_permutation_test(window, newest)
        into = e - phases[pe]["start"]
        p64b = mmd_permutation_test(window, embed(base, x[e + 32 - 64:e + 32]))
        second = p64 if p64 < 0.05 else p64b
        rows.append((truth, p64, second))
        print(f"{tag:5s} {js.stem[7:40]:34s} v{v:>3} {phases[pe]['phase']:20s} +{into:5d} {truth:6s} p64={p64:.3f} cut@{cp.start:3d}(p={cp.p_value:.3f}) pcut={pcut:.3f} p64+32={p64b:.3f}")
for truth in ("same", "moved"):
    a = np.array([(p64, pc) for t, p64, pc in rows if t == truth])
    if len(a):
        print(truth, len(a), "moved by p64<0.05:", int((a[:, 0] < 0.05).sum()), " by second look<0.05:", int((a[:, 1] < 0.05).sum()),
              " either:", int(((a[:, 0] < 0.05) | (a[:, 1] < 0.05)).sum()))
