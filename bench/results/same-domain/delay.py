"""Events after a change of domain until an interim's domain check says moved: plain, class-matched, and the plain
answer kept unless the matched p is at least 0.3 or 0.4. Offline, development streams only.

The window: the 448 inputs up to 64 before the change (an interim's, made a little before it); then, every 16
inputs after the change, the latest 128 since the window against it, p < 0.01.

Run: ``python delay.py RUN_DIR MODEL_NAME PHASE_EVENTS`` (output: delay.txt).
"""
import sys, numpy as np
from driftwise.models.registry import Registry
from driftwise.service.runtime import load_from_registry
from driftwise.drift.adapter import embed
from driftwise.drift.embedding_drift import mmd_permutation_test
from driftwise.drift.same_domain import model_moved_p
run, name, P = sys.argv[1], sys.argv[2], int(sys.argv[3])
X = np.load(f'{run}/stream.npz')['X']
m = load_from_registry(Registry(f'{run}/registry'), name, 1, device='cpu').model
z = embed(m, X)
for b in range(2 * P, len(X) - P, P):
    made = z[b - 512:b]; out = {}
    for k in range(16, 257, 16):
        # since = 64 events of the old domain after the window (made 64 before the change) plus k of the new
        since = z[b - 64:b + k][-128:]
        pp, pm = mmd_permutation_test(made[:-64], since), model_moved_p(m, made[:-64], since)
        for rule, moved in (('plain', pp < 0.01), ('matched', pm < 0.01), ('veto0.3', pp < 0.01 and pm < 0.3), ('veto0.4', pp < 0.01 and pm < 0.4)):
            if moved and rule not in out: out[rule] = k
    print(b, out)
