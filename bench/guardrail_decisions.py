"""Guardrail decisions scored as a classifier's, where the benchmark knows the labels.

A promotion is a *false accept* when the candidate, on the events it then served,
was worse than the frozen model on the same events. A rejection is a *false
reject* when the candidate, run offline on the events of its domain that followed
the decision, would have beaten the frozen model there. Both compare with the
``--no-adapt`` twin's predictions of the very same events, and both need evidence:
a decision judged on fewer than ``min_events`` events is reported as "too few to
judge", not counted either way.

Interim models (BatchNorm re-estimated, `drift.normalize`) are scored the same
way, in rows of their own kind: their checks are guardrails too.

>>> rows = [{"version": 2, "kind": "adapt", "status": "approved", "at_event": 0},
...         {"version": 3, "kind": "adapt", "status": "rejected", "at_event": 0}]
>>> frozen = np.array([True] * 150 + [False] * 150)
>>> served = np.array(["2"] * 300, dtype=object); adapted_ok = np.ones(300, bool)
>>> scored = score_decisions(rows, served, adapted_ok, frozen, np.array(["a"] * 300),
...                          offline_correct=lambda version, idx: np.zeros(len(idx), bool))
>>> [(r["version"], r["verdict"]) for r in scored]
[(2, 'right'), (3, 'right')]
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

MIN_EVENTS = 100
MARGIN = 0.01
"""Accuracy difference (1 point) inside which a decision is neither right nor wrong: both models serve alike."""
HORIZON = 1000
"""Events after a rejection on which the refused candidate is run offline (within its domain)."""
JUDGED = ("adapt", "refine", "normalize")


def _following(domain: np.ndarray, start: int, horizon: int) -> np.ndarray:
    """Stream positions from ``start`` on, within the same domain segment, at most ``horizon``."""
    start = max(0, min(start, len(domain)))
    if start >= len(domain):
        return np.empty(0, int)
    same = domain[start:start + horizon] == domain[start]
    stop = int(np.argmin(same)) if not same.all() else len(same)
    return np.arange(start, start + stop)


def score_decisions(versions: Sequence[dict[str, Any]], served: np.ndarray, adaptive_correct: np.ndarray,
                    frozen_correct: np.ndarray, domain: np.ndarray, *,
                    offline_correct: Callable[[int, np.ndarray], np.ndarray],
                    min_events: int = MIN_EVENTS, margin: float = MARGIN, horizon: int = HORIZON,
                    ) -> list[dict[str, Any]]:
    """One row per judged version: the evidence, and whether its guardrail decision was right.

    ``versions`` are `bench.stream_report.registry_outcomes` rows (``version``, ``kind``, ``status``,
    ``at_event``); ``served`` the adaptive twin's served version per event; ``offline_correct(version,
    positions)`` runs a refused candidate on the stream at those positions against the true labels.
    """
    rows = []
    for v in versions:
        if v.get("kind") not in JUDGED:
            continue
        version, approved = int(v["version"]), v["status"] == "approved"
        if approved:
            idx = np.flatnonzero(served == str(version))
            candidate = adaptive_correct[idx]
        else:
            idx = _following(domain, int(v["at_event"]), horizon)
            candidate = offline_correct(version, idx) if len(idx) else np.empty(0, bool)
        gain = float(candidate.mean() - frozen_correct[idx].mean()) if len(idx) else float("nan")
        if len(idx) < min_events:
            verdict = "too few to judge"
        elif approved:
            verdict = "false accept" if gain < -margin else "right"
        else:
            verdict = "false reject" if gain > margin else "right"
        rows.append({"version": version, "kind": v["kind"], "status": v["status"], "events": int(len(idx)),
                     "gain_points": 100.0 * gain, "verdict": verdict,
                     "domain": str(domain[idx[0]]) if len(idx) else None})
    return rows


def rates(rows: Sequence[dict[str, Any]], kinds: Sequence[str] = ("adapt", "refine")) -> dict[str, Any]:
    """False-accept rate among judged promotions, false-reject rate among judged rejections, and how many."""
    judged = [r for r in rows if r["kind"] in kinds and r["verdict"] != "too few to judge"]
    accepted = [r for r in judged if r["status"] == "approved"]
    refused = [r for r in judged if r["status"] != "approved"]
    return {
        "promotions_judged": len(accepted), "false_accepts": sum(r["verdict"] == "false accept" for r in accepted),
        "rejections_judged": len(refused), "false_rejects": sum(r["verdict"] == "false reject" for r in refused),
        "false_accept_rate": (sum(r["verdict"] == "false accept" for r in accepted) / len(accepted)
                              if accepted else None),
        "false_reject_rate": (sum(r["verdict"] == "false reject" for r in refused) / len(refused)
                              if refused else None),
        "too_few": sum(r["verdict"] == "too few to judge" for r in rows if r["kind"] in kinds),
    }
