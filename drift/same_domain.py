"""Has the stream moved on from a window's domain? An MMD permutation test that a burst of one class cannot fool.

Two checks ask it: the candidates' ``same_domain`` guardrail (its window against the
inputs since) and the domain check of a serving interim (`driftwise.service.adaptation`).
Each compares two samples of one model's embeddings
(`driftwise.drift.embedding_drift.mmd_permutation_test`). Embeddings cluster by
class, so two samples of one domain whose classes came in different shares differ too: on
the ImageSegments development stream (offset, seed 0) the 96 inputs after an interim's
window of 424 held 22% of one class against 11% in the window, p = 0.0025 on 2,000
permutations, and the interim was replaced and the candidate in the making cancelled
mid-phase, on two runs of the same stream. A domain is the inputs given the class (a
change of class shares alone is a label shift, `driftwise.drift.label_shift`). So the plain
test's answer stands unless the window, resampled to the later sample's shares of predicted
classes (`class_matched`), plainly looks like it (p >= `SAME_WHEN_MATCHED`): then the
difference was the shares.

Why not the class-matched test alone (5539640, 8c322c3, 0cb6e72): it is slower to see a real
change. Offline on the development streams (an interim's window of 448 inputs against the
latest 128 since, one test every 16 inputs after a change, p < 0.01), the plain test said
moved 16-128 inputs after the eight changes of domain, the matched one 16-48 inputs later on
seven of them; with this rule, one change was seen 32 inputs later, the others as soon (held
out, on ImageSegments's change from a dead sensor to calibration drift, offline: plain 16-32
inputs, matched alone 64-80). The false "moved" above has a matched p of
0.53-0.88 (64-128 inputs), and in 60 random in-phase windows per development stream the
share of plain p under 0.01 is 1.7% (digits, ImageSegments) and 5% (Waveform 80/15/5).

The alarm check of a serving candidate tests the plain way alone: on its own replay (the
latest 64 inputs, p < 0.05, `bench/results/alarm-check`) matching kept 14 of 15 false alarms
from falling back (plain: 12) but fell back at only 43 of 57 changes of phase (plain: 52).

>>> rng = np.random.default_rng(0)
>>> classes = np.repeat([0, 1], 200)
>>> window = rng.normal(size=(400, 2)) + 3.0 * classes[:, None]   # classes 50/50
>>> later_classes = np.array([0] * 20 + [1] * 80)                  # the same domain, classes 20/80
>>> later = rng.normal(size=(100, 2)) + 3.0 * later_classes[:, None]
>>> from driftwise.drift.embedding_drift import mmd_permutation_test
>>> mmd_permutation_test(window, later) < 0.01                      # the plain test sees the shares
True
>>> moved_p(window, classes, later, later_classes) > 0.05            # with them held equal, no move
True
>>> moved_p(window, classes, later + 1.5, later_classes) < 0.01      # inputs of each class moved
True
"""

from __future__ import annotations

import numpy as np

from driftwise.drift.adapter import classes_of
from driftwise.drift.embedding_drift import mmd_permutation_test
from driftwise.models.classifier import Classifier

SAME_WHEN_MATCHED = 0.3
"""Class-matched p-value at or over which the two samples count as one domain, whatever the plain test says."""
MIN_MATCHED = 16
"""Fewer window rows than this after matching: too few to test, the whole window is used instead."""


def class_matched(window_classes: np.ndarray, later_classes: np.ndarray, seed: int = 0) -> np.ndarray:
    """Indices (in arrival order) of as many window rows as can be drawn with ``later_classes``' class shares.

    Each class the later sample has is drawn in proportion to its count there, scaled so that the scarcest class
    in the window is used whole; a class the window lacks is left out of the scaling (its later rows are evidence
    of a move, the test sees them). All rows when fewer than `MIN_MATCHED` would remain.

    >>> len(class_matched(np.repeat([0, 1], 4), np.array([0, 1, 1, 1])))  # 5 would remain: all 8
    8
    >>> idx = class_matched(np.repeat([0, 1], 40), np.array([0] * 10 + [1] * 30))
    >>> len(idx), int((idx < 40).sum())  # class 1 whole (40), class 0 at a third of it
    (53, 13)
    """
    window_classes, later_classes = np.asarray(window_classes), np.asarray(later_classes)
    k = int(max(window_classes.max(initial=0), later_classes.max(initial=0))) + 1
    have, want = np.bincount(window_classes, minlength=k), np.bincount(later_classes, minlength=k)
    shared = (have > 0) & (want > 0)
    everything = np.arange(len(window_classes))
    if not shared.any():
        return everything
    scale = float(np.min(have[shared] / want[shared]))
    take = np.minimum(np.floor(want * scale + 1e-9), have).astype(int)
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(window_classes == c), take[c], replace=False) for c in np.flatnonzero(shared)]
    idx = np.sort(np.concatenate(picked))
    return idx if len(idx) >= MIN_MATCHED else everything


def moved_p(window_z: np.ndarray, window_classes: np.ndarray, later_z: np.ndarray, later_classes: np.ndarray,
            *, permutations: int = 200) -> float:
    """p-value that ``later_z`` comes from the domain of ``window_z`` (embeddings of one model, with the classes it
    predicts for them): the plain MMD permutation test's, or, when the window resampled to the later classes'
    shares (`class_matched`) looks like them (p >= `SAME_WHEN_MATCHED`), that test's."""
    plain = mmd_permutation_test(window_z, later_z, permutations=permutations)
    idx = class_matched(window_classes, later_classes)
    if len(idx) == len(window_z):  # nothing to resample: the same test
        return plain
    matched = mmd_permutation_test(np.asarray(window_z)[idx], later_z, permutations=permutations)
    return matched if matched >= SAME_WHEN_MATCHED else plain


def model_moved_p(model: Classifier, window_z: np.ndarray, later_z: np.ndarray, *, permutations: int = 200) -> float:
    """`moved_p` on ``model``'s embeddings, with the classes its head predicts for them (`classes_of`)."""
    return moved_p(window_z, classes_of(model, window_z), later_z, classes_of(model, later_z),
                   permutations=permutations)
