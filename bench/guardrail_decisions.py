"""Guardrail decisions scored as a classifier's, where the benchmark knows the labels.

A promotion is a *false accept* when the candidate, on the events it then served,
was worse than the frozen model on the same events. A rejection is a *false
reject* when the candidate, run offline on the events of its domain that followed
the decision, would have beaten the frozen model there. Both compare with the
``--no-adapt`` twin's predictions of the very same events, and both need evidence:
a decision judged on fewer than ``min_events`` events is reported as "too few to
judge", not counted either way.

Each decision is also judged against **its alternative**, what would have served
had it gone the other way (``verdict_vs_alternative``): a promotion against the
model it replaced, run offline on the events the candidate served; a rejection
against what the service did serve on those events. Against the frozen model a
refusal looks false whenever the candidate beats it, even when the model kept
serving beat the candidate by more (on the held-out stream, seeds 0-2 on
f9a716a/8dab583, all three "false rejects" were refused refinements whose
predecessor, serving on, gained 2-3 points more over the frozen model, on
neighbouring events); and a promotion that fell below the model it replaced,
but not below the frozen one, cost accuracy unseen.

Interim models (BatchNorm re-estimated, `driftwise.drift.normalize`) are scored the same
way, in rows of their own kind: their checks are guardrails too.

Two kinds of refusal are counted apart from the rejections (``apart``; their rows
are scored all the same, and the summary says how many would have beaten the
frozen model):

* **cancelled**: withdrawn by the adaptation loop while it was made (a new drift or
  a rollback came), whatever its checks said: not a guardrail decision. On the
  held-out stream (92d4a4a) three of five "false rejects" were refinements
  cancelled as the next phase began, scored on that next phase.
* **stale, its domain gone**: refused by ``same_domain`` alone ("the inputs since
  the window differ from it"), and the benchmark's phases agree: the window's last
  event and the decision lie in different phases. What the check claims is true;
  scoring the candidate on the next phase judges something it never claimed (that
  a model made for one corruption beats what serves at the start of another). A
  stale refusal inside one phase is a guardrail's mistake and is counted as usual. A refinement refused by
  ``latest_domain`` alone ("the latest 64 inputs differ from its window") counts the same way when those inputs
  lie in another phase than the candidate it refines.

>>> rows = [{"version": 2, "kind": "adapt", "status": "approved", "at_event": 0},
...         {"version": 3, "kind": "adapt", "status": "rejected", "at_event": 0}]
>>> frozen = np.array([True] * 150 + [False] * 150)
>>> served = np.array(["2"] * 300, dtype=object); adapted_ok = np.ones(300, bool)
>>> scored = score_decisions(rows, served, adapted_ok, frozen, np.array(["a"] * 300),
...                          offline_correct=lambda version, idx: np.zeros(len(idx), bool))
>>> [(r["version"], r["verdict"], r["verdict_vs_alternative"]) for r in scored]
[(2, 'right', 'right'), (3, 'right', 'right')]
"""

from __future__ import annotations

import re
from pathlib import Path
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

    ``versions`` are `driftwise.bench.stream_report.registry_outcomes` rows (``version``, ``kind``, ``status``,
    ``at_event``); ``served`` the adaptive twin's served version per event; ``offline_correct(version,
    positions)`` runs a version of the registry on the stream at those positions against the true labels
    (a refused candidate, or the model a promotion replaced).
    """
    rows = []
    base = str(served[0]) if len(served) else None
    promoted_at = {str(v["version"]): int(v["at_event"]) for v in versions}
    for v in versions:
        if v.get("kind") not in JUDGED:
            continue
        version, approved = int(v["version"]), v["status"] == "approved"
        replaced, alternative = None, np.empty(0, bool)
        if approved:
            idx = np.flatnonzero(served == str(version))
            candidate = adaptive_correct[idx]
            if len(idx):
                replaced = str(served[idx[0] - 1]) if idx[0] > 0 else base
                alternative = (frozen_correct[idx] if replaced == base
                               else offline_correct(int(replaced), idx))
        else:
            idx = _following(domain, int(v["at_event"]), horizon)
            candidate = offline_correct(version, idx) if len(idx) else np.empty(0, bool)
            alternative = adaptive_correct[idx]
        gain = float(candidate.mean() - frozen_correct[idx].mean()) if len(idx) else float("nan")
        gain_alt = float(candidate.mean() - alternative.mean()) if len(idx) else float("nan")
        rows.append({"version": version, "kind": v["kind"], "status": v["status"], "events": int(len(idx)),
                     "apart": None if approved else _apart(v, domain, promoted_at),
                     "gain_points": 100.0 * gain, "verdict": _verdict(approved, gain, len(idx), min_events, margin),
                     "alternative": replaced if approved else "served", "gain_vs_alternative_points": 100.0 * gain_alt,
                     "verdict_vs_alternative": _verdict(approved, gain_alt, len(idx), min_events, margin),
                     "domain": str(domain[idx[0]]) if len(idx) else None})
    return rows


_SINCE_WINDOW = re.compile(r"^same_domain: .*the (\d+) inputs since the window differ")
_LATEST = re.compile(r"^latest_domain: ")


def _apart(version: dict[str, Any], domain: np.ndarray, promoted_at: dict[str, int]) -> str | None:
    """Why a refusal is not counted among the guardrails' rejections (see the module docstring), or None.

    A refinement refused by ``latest_domain`` alone counts as stale when the latest inputs lie in another phase
    than the candidate it refines was promoted in (its window's domain: the reason does not say where the window
    ended)."""
    if version.get("cancelled"):
        return "cancelled"
    reasons = version.get("guardrail_reasons") or []
    at = min(int(version["at_event"]), len(domain) - 1)
    if len(reasons) == 1 and _LATEST.match(reasons[0]) and str(version.get("refines")) in promoted_at:
        made_for = domain[min(promoted_at[str(version["refines"])], len(domain) - 1)]
        return "stale, its domain gone" if made_for != domain[at] else None
    stale = _SINCE_WINDOW.match(reasons[0]) if len(reasons) == 1 else None
    if stale is None:
        return None
    window_end = at - int(stale.group(1)) - 1
    return "stale, its domain gone" if 0 <= window_end and domain[window_end] != domain[at] else None


def _verdict(approved: bool, gain: float, events: int, min_events: int, margin: float) -> str:
    if events < min_events:
        return "too few to judge"
    if approved:
        return "false accept" if gain < -margin else "right"
    return "false reject" if gain > margin else "right"


def rates(rows: Sequence[dict[str, Any]], kinds: Sequence[str] = ("adapt", "refine"),
          verdict: str = "verdict") -> dict[str, Any]:
    """False-accept rate among judged promotions, false-reject rate among judged rejections, and how many;
    ``verdict="verdict_vs_alternative"`` counts the verdicts against each decision's alternative."""
    judged = [r for r in rows if r["kind"] in kinds and r[verdict] != "too few to judge"]
    accepted = [r for r in judged if r["status"] == "approved"]
    refused = [r for r in judged if r["status"] != "approved" and not r.get("apart")]
    apart = [r for r in judged if r.get("apart")]
    return {
        "apart_judged": len(apart), "apart_would_gain": sum(r[verdict] == "false reject" for r in apart),
        "promotions_judged": len(accepted), "false_accepts": sum(r[verdict] == "false accept" for r in accepted),
        "rejections_judged": len(refused), "false_rejects": sum(r[verdict] == "false reject" for r in refused),
        "false_accept_rate": (sum(r[verdict] == "false accept" for r in accepted) / len(accepted)
                              if accepted else None),
        "false_reject_rate": (sum(r[verdict] == "false reject" for r in refused) / len(refused)
                              if refused else None),
        "too_few": sum(r[verdict] == "too few to judge" for r in rows if r["kind"] in kinds),
    }


def _status(row: dict[str, Any]) -> str:
    return f"{row['status']} ({row['apart']})" if row.get("apart") else row["status"]


def _alternative(alternative: str | None) -> str:
    return "-" if alternative is None else "what served" if alternative == "served" else f"v{alternative}"


# -- from a finished `driftwise bench stream` run ---------------------------------------------------------------
def served_versions(n: int, base: str, swaps: Sequence[Sequence[Any]]) -> np.ndarray:
    """The adaptive twin's served version per stream position, from its (position, version) swaps."""
    served = np.full(n, base, dtype=object)
    for position, version in sorted(swaps, key=lambda s: int(s[0])):
        served[int(position):] = str(version)
    return served


def score_run(results_json: Path, run_dir: Path) -> list[dict[str, Any]]:
    """Score every guardrail decision of one stream bench run (its results ``.json`` and its ``runs/`` folder)."""
    import json

    from driftwise.drift.adapter import predict_proba
    from driftwise.models.registry import Registry
    from driftwise.service.runtime import load_from_registry

    results = json.loads(Path(results_json).read_text())
    stream = np.load(Path(run_dir) / "stream.npz")
    x, y = stream["X"], stream["y"]
    phases, per_phase = results["phases_run"], int(results["config"]["phase_events"])
    domain = np.repeat(np.arange(len(phases)), per_phase)[:len(y)]
    adaptive = np.asarray(results["correct"]["adaptive"], bool)
    frozen = np.asarray(results["correct"]["no_adapt"], bool)
    served = served_versions(len(y), str(results["base_version"]), results["swaps"]["adaptive"])
    registry = Registry(Path(run_dir) / "registry-adaptive")

    def offline(version: int, idx: np.ndarray) -> np.ndarray:
        model = load_from_registry(registry, results.get("model_name", "digits"), version, device="cpu").model
        return predict_proba(model, x[idx]).argmax(1) == y[idx]

    rows = score_decisions(results["versions"], served, adaptive, frozen, domain, offline_correct=offline)
    for row in rows:
        row["family"] = phases[int(row["domain"])] if row["domain"] is not None else None
        row["run"] = Path(results_json).stem
    return rows


def main(pairs: Sequence[tuple[Path, Path]], out: Path) -> dict[str, Any]:
    """Score several runs together and write ``out`` (markdown) with its ``.json``."""
    import json

    rows = [row for results_json, run_dir in pairs for row in score_run(results_json, run_dir)]
    summary = {"candidates": rates(rows), "interims": rates(rows, kinds=("normalize",)),
               "candidates vs alternative": rates(rows, verdict="verdict_vs_alternative"),
               "interims vs alternative": rates(rows, kinds=("normalize",), verdict="verdict_vs_alternative")}
    lines = [f"# Guardrail decisions scored: {', '.join(sorted({r['run'] for r in rows}))}", "",
             f"Command: `python -m driftwise.bench.guardrail_decisions {out} " + " ".join(f"{a} {b}" for a, b in pairs) + "`", "",
             f"False accept: promoted, then worse than the frozen twin by more than {100 * MARGIN:.0f} point on the "
             f"events it served. False reject: refused, though run offline on the next {HORIZON} events of its phase "
             f"it beats the frozen twin by more than {100 * MARGIN:.0f} point. Under {MIN_EVENTS} events: too few "
             "to judge. *vs alternative*: the same, against what would have served instead (a promotion: the model "
             "it replaced, run offline on the events it served; a rejection: what the service served on those events).",
             ""]
    def rate(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1%}"

    for kind, r in summary.items():
        lines.append(f"* **{kind}**: {r['false_accepts']} false accepts of {r['promotions_judged']} promotions judged "
                     f"(rate {rate(r['false_accept_rate'])}), {r['false_rejects']} false rejects of {r['rejections_judged']} "
                     f"rejections judged (rate {rate(r['false_reject_rate'])}), {r['too_few']} too few to judge; "
                     f"{r['apart_judged']} counted apart (cancelled by the loop, or stale with their domain gone), "
                     f"{r['apart_would_gain']} of them would have gained over 1 point")
    lines += ["", "| run | version | kind | status | family | events | gain vs frozen (points) | verdict | alternative "
              "| gain vs alternative (points) | verdict vs alternative |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['run']} | {r['version']} | {r['kind']} | {_status(r)} "
              f"| {r['family']} | {r['events']} | "
              f"{r['gain_points']:+.1f} | {r['verdict']} | {_alternative(r['alternative'])} | "
              f"{r['gain_vs_alternative_points']:+.1f} | {r['verdict_vs_alternative']} |" for r in rows]
    out.write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))
    return summary


if __name__ == "__main__":
    import sys

    from driftwise.bench.stream_report import finished_runs_argv

    out, pairs = finished_runs_argv("guardrail_decisions", sys.argv[1:])
    print(main(pairs, out))
