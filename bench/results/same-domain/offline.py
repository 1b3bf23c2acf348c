"""The domain check, plain or with the classes held equal, on development streams. Offline.

For one finished `driftwise bench stream` run (RUN_DIR with ``stream.npz`` and the pretrained ``registry``), in
the base model's embeddings: a window of W inputs against the next 32, 64 and 96 (1,000 permutations) at each
change of phase (the last W of one phase against the first of the next), and at 60 random places inside phases
(the null: both samples of one phase). ``matched`` resamples the window to the later sample's predicted-class
shares first (`driftwise.drift.same_domain`). On ImageSegments it also tests the window (events 3008-3432) that an
interim was made on in the runs where the domain check said "gone" mid-phase.

Run: ``python offline.py RUN_DIR MODEL_NAME PHASE_EVENTS W`` (output: offline.txt).
"""
import sys, numpy as np
from driftwise.models.registry import Registry
from driftwise.service.runtime import load_from_registry
from driftwise.drift.adapter import embed, predict_proba
from driftwise.drift.embedding_drift import mmd_permutation_test
run, name, P, W = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
X = np.load(f'{run}/stream.npz')['X']
m = load_from_registry(Registry(f'{run}/registry'), name, 1, device='cpu').model
z = embed(m, X); yh = predict_proba(m, X).argmax(1)
def matched(a0, a1, b1, seed=0):
    """made_on rows resampled to the since rows' predicted-class shares."""
    ya, yb = yh[a0:a1], yh[a1:b1]; k = yh.max() + 1
    ca, cb = np.bincount(ya, minlength=k), np.bincount(yb, minlength=k)
    r = min((ca[c] / cb[c]) for c in range(k) if cb[c] > 0)
    rng = np.random.default_rng(seed); idx = []
    for c in range(k):
        if cb[c]: idx += list(rng.choice(np.flatnonzero(ya == c), int(np.floor(cb[c] * r)), replace=False))
    idx = np.sort(np.array(idx, int)) + a0
    return z[idx]
def p(a0, a1, k, match):
    a = matched(a0, a1, a1 + k) if match else z[a0:a1]
    if len(a) < 16: return float('nan')
    return mmd_permutation_test(a, z[a1:a1 + k], permutations=1000)
for match in (False, True):
    print('matched' if match else 'plain')
    if name == 'segments': print(' false positive 3008-3432:', [(k, round(p(3008, 3432, k, match), 4)) for k in (64, 96, 128)])
    print(' changes', [(b, [round(p(b - W, b, k, match), 3) for k in (32, 64, 96)]) for b in range(2 * P, len(X) - P, P)])
    rng = np.random.default_rng(1); ps = []
    for _ in range(60):
        ph = rng.integers(1, len(X) // P); s = ph * P + rng.integers(0, P - W - 96)
        ps.append(p(s, s + W, int(rng.choice([32, 64, 96])), match))
    ps = np.array(ps); print(' null in-phase: share p<0.01', round((ps < 0.01).mean(), 3), 'p<0.05', round((ps < 0.05).mean(), 3))
