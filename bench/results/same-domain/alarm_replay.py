"""Would a same-domain test tell a false alarm against a candidate from the stream leaving its domain? Offline.

`bench/results/alarm-check/replay.py` with the latest 64 and 32 inputs only, each tested plainly and with the
classes held equal (`driftwise.drift.same_domain.model_moved_p`), columns in that order: the class-matched test
was weighed for the alarm check here and not taken (output: alarm-replay.txt, run on 5539640, when
``model_moved_p`` was the class-matched test alone; since 2600b53 it keeps the plain answer unless that one finds
the samples alike, so a run today prints something between the two columns).

For each fallback in finished stream runs, the candidate's adaptation window against the latest inputs when it
fell back, in the base model's embeddings, with the truth from the phases: see `replay.py`, which this runs with
these columns. Run: ``python alarm_replay.py RESULTS.json:RUN_DIR [RESULTS.json:RUN_DIR ...]``.
"""

import sys
from pathlib import Path

from driftwise.drift.embedding_drift import mmd_permutation_test
from driftwise.drift.same_domain import model_moved_p

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "alarm-check"))
from replay import main  # noqa: E402 - the sibling results script, not a package

COLUMNS = tuple(("", f"{n} {kind}", n, test) for n in (64, 32) for kind, test in (
    ("plain", lambda base, a, b: mmd_permutation_test(a, b)), ("matched", model_moved_p)))
"""Per run line the bare p-values in this order, as this script always printed them."""

if __name__ == "__main__":
    main(sys.argv[1:], COLUMNS)
