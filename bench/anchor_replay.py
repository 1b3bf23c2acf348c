"""`python -m driftwise.bench.anchor_replay OUT.md RESULTS.json RUN_DIR ...`: the anchor check, replayed.

Every candidate a `driftwise bench stream` run recorded is put through the anchor
check again, once with the fixed margin alone (``anchor_margin``, the rule before)
and once with McNemar's paired test beside it (`driftwise.drift.guardrails.chance_anchor_loss`,
the rule now): the candidate's weights and the model serving when it was judged
come from the run's own registry, the anchors from the serving model's version.
A decision *flips* when the anchor check was its only failure and the paired test
passes it. Each flip is shown with the offline verdicts of
`driftwise.bench.guardrail_decisions` (the candidate run on the events that followed,
against the frozen twin and against what served), so a flip to a harmful promotion
would show.

Writes ``OUT.md`` and its ``.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence


from driftwise.bench.guardrail_decisions import score_run, served_versions
from driftwise.drift.guardrails import GuardrailConfig, anchor_correct, chance_anchor_loss
from driftwise.models.registry import Registry
from driftwise.service.runtime import load_from_registry


def replay_run(results_json: Path, run_dir: Path, config: GuardrailConfig) -> list[dict[str, Any]]:
    """One row per candidate (adapt or refine) of one run: anchors lost and gained, both rules' answers."""
    results = json.loads(Path(results_json).read_text())
    registry = Registry(Path(run_dir) / "registry-adaptive")
    name = results.get("model_name", "digits")
    verdicts = {r["version"]: r for r in score_run(results_json, run_dir)}
    rows = []
    for v in results["versions"]:
        if v["kind"] not in ("adapt", "refine"):
            continue
        # the model serving when the candidate was judged: the latest swap to an earlier version
        earlier = [(at, ver) for at, ver in results["swaps"]["adaptive"] if int(ver) < v["version"]]
        current = served_versions(max(int(v["at_event"]), 0) + 1, str(results["base_version"]), earlier)[-1]
        serving = load_from_registry(registry, name, int(current), device="cpu")
        candidate = load_from_registry(registry, name, int(v["version"]), device="cpu").model
        ax, ay = serving.anchors_x, serving.anchors_y
        before, after = anchor_correct(serving.model, ax, ay), anchor_correct(candidate, ax, ay)
        n, lost, gained = len(ay), int((before & ~after).sum()), int((~before & after).sum())
        drop = (lost - gained) / n
        margin_passes = drop <= config.anchor_margin + 1e-12
        paired_passes = drop <= max(config.anchor_margin, chance_anchor_loss(lost + gained, config.anchor_alpha) / n) + 1e-12
        others = [f for f in v["failed"] if f != "anchor_accuracy"]
        verdict = verdicts.get(v["version"], {})
        rows.append({"run": Path(results_json).stem, "version": v["version"], "kind": v["kind"], "status": v["status"],
                     "current": str(current), "anchors": n, "lost": lost, "gained": gained,
                     "margin_rule": margin_passes, "paired_rule": paired_passes, "other_failures": others,
                     "flips": (not margin_passes) and paired_passes and not others,
                     "verdict": verdict.get("verdict"), "gain_points": verdict.get("gain_points"),
                     "verdict_vs_alternative": verdict.get("verdict_vs_alternative"),
                     "gain_vs_alternative_points": verdict.get("gain_vs_alternative_points")})
    return rows


def main(pairs: Sequence[tuple[Path, Path]], out: Path) -> list[dict[str, Any]]:
    config = GuardrailConfig()
    rows = [row for results_json, run_dir in pairs for row in replay_run(results_json, run_dir, config)]
    shown = [r for r in rows if r["lost"] or not r["margin_rule"] or not r["paired_rule"]]
    flips = [r for r in rows if r["flips"]]

    def points(value: float | None) -> str:
        return "-" if value is None else f"{value:+.1f}"

    lines = [f"# The anchor check replayed: {', '.join(sorted({r['run'] for r in rows}))}", "",
             f"Command: `python -m driftwise.bench.anchor_replay {out} " + " ".join(f"{a} {b}" for a, b in pairs) + "`",
             "", f"{len(rows)} candidates; the margin rule (anchor accuracy down by at most {config.anchor_margin:.0%}) "
             f"refuses {sum(not r['margin_rule'] for r in rows)}, the paired rule (that, or a net loss McNemar's exact "
             f"test at {config.anchor_alpha} puts down to chance) {sum(not r['paired_rule'] for r in rows)}; "
             f"**{len(flips)} decisions flip** (the anchor check was their only failure).", "",
             "Rows: candidates that lost an anchor or failed either rule. Verdicts: "
             "`driftwise.bench.guardrail_decisions`, the candidate offline on the events that followed its decision.", "",
             "| run | version | kind | status | judged against | anchors | lost | gained | margin rule | paired rule "
             "| other failures | flips | gain vs frozen | gain vs alternative |", "|" + "---|" * 14]
    lines += [f"| {r['run']} | {r['version']} | {r['kind']} | {r['status']} | v{r['current']} | {r['anchors']} | "
              f"{r['lost']} | {r['gained']} | {'pass' if r['margin_rule'] else 'fail'} | "
              f"{'pass' if r['paired_rule'] else 'fail'} | {', '.join(r['other_failures']) or '-'} | "
              f"{'**yes**' if r['flips'] else ''} | {points(r['gain_points'])} | {points(r['gain_vs_alternative_points'])} |"
              for r in shown]
    out.write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    import sys

    from driftwise.bench.stream_report import finished_runs_argv

    out, pairs = finished_runs_argv("anchor_replay", sys.argv[1:])
    rows = main(pairs, out)
    print(f"{len(rows)} candidates, {sum(r['flips'] for r in rows)} flips")
