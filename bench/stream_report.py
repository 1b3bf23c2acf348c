"""Scoring and reporting for `driftwise bench stream` (`driftwise.bench.stream` runs it).

Everything is scored in stream order by event id, with the stream's true labels,
which neither twin saw; an event that got no prediction counts as wrong. What the
adaptive twin did comes from its registry's manifests (read as JSON, never
unpickled) and from the versions stamped on its predictions.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from driftwise.drift.corruptions import CLEAN, Stream

if TYPE_CHECKING:
    from driftwise.bench.stream import StreamBenchConfig

MODEL_NAME = "digits"  # the digits domain's; a run's own is ``config.model_name``
SEVERITY = 3
BURST_RUN = 50
WORST_WINDOW = 500
EVENT_PREFIX = "evt"


# -- scoring (pure functions of aligned arrays, in stream order) ------------------------------------------------------
def phase_bounds(phases: Sequence[str], phase_events: int) -> list[tuple[str, int, int]]:
    """``(name, start, stop)`` of each phase."""
    return [(name, k * phase_events, (k + 1) * phase_events) for k, name in enumerate(phases)]


def phase_gains(correct_adapt: np.ndarray, correct_frozen: np.ndarray,
                bounds: Sequence[tuple[str, int, int]]) -> list[dict[str, Any]]:
    """Per phase: both twins' accuracy and the gain in points (adaptive minus no-adapt).

    >>> phase_gains(np.array([1, 1, 0, 1]), np.array([1, 1, 0, 0]), [("clean", 0, 2), ("blur", 2, 4)])[1]["gain_points"]
    50.0
    """
    rows = []
    for name, start, stop in bounds:
        a, f = float(np.mean(correct_adapt[start:stop])), float(np.mean(correct_frozen[start:stop]))
        rows.append({"phase": name, "start": start, "stop": stop, "adaptive": a, "no_adapt": f,
                     "gain_points": 100.0 * (a - f)})
    return rows


def worst_window(diff: np.ndarray, window: int = WORST_WINDOW) -> tuple[float, int]:
    """The lowest mean of ``diff`` over ``window`` consecutive events, and where that window starts.

    >>> worst_window(np.array([0, 0, -1, -1, 0, 1]), 2)
    (-1.0, 2)
    """
    diff = np.asarray(diff, dtype=float)
    window = min(window, len(diff))
    sums = np.convolve(diff, np.ones(window), mode="valid") / window
    start = int(np.argmin(sums))
    return float(sums[start]), start


def first_adapted_delays(versions: np.ndarray, bounds: Sequence[tuple[str, int, int]], base: str) -> list[int | None]:
    """Per drifted phase: events from its start to the first one served by a version new in that phase.

    A version already served before the phase (the last phase's adaptation) does not count.

    >>> first_adapted_delays(np.array(["1", "1", "2", "2", "2", "3"]), [("a", 0, 3), ("b", 3, 6)], "1")
    [2, 2]
    """
    delays: list[int | None] = []
    for name, start, stop in bounds:
        if name == CLEAN:
            continue
        seen = set(versions[:start].tolist()) | {base, ""}
        new = [i for i in range(start, stop) if versions[i] not in seen]
        delays.append(new[0] - start if new else None)
    return delays


def confident_precision(labels: np.ndarray, confidence: np.ndarray, y: np.ndarray,
                        threshold: float) -> tuple[float, int]:
    """Accuracy of the predictions at or above ``threshold`` and how many there were (NaN when none)."""
    mask = confidence >= threshold
    return (float(np.mean(labels[mask] == y[mask])) if mask.any() else float("nan")), int(mask.sum())


def registry_outcomes(registry: Path, name: str, started: datetime, rate: float) -> list[dict[str, Any]]:
    """Every version the adaptive twin published, from manifests only (never unpickled), with the event it came at."""
    from driftwise.models.registry import Registry

    rows = []
    for v in Registry(registry).versions(name):
        m = v.manifest
        created = datetime.fromisoformat(m["created"])
        guard = m.get("guardrails", {})
        kind = "refine" if m.get("refines") else str(m.get("reason", "")).split(":")[0]  # pretrain|normalize|adapt
        rows.append({"version": v.version, "kind": kind, "status": v.status, "parent": m.get("parent"),
                     "reason": m.get("reason"),
                     "refines": m.get("refines"), "cancelled": m.get("cancelled"),
                     "at_event": int((created - started).total_seconds() * rate),
                     "failed": [c["name"] for c in guard.get("checks", []) if not c.get("passed", True)],
                     "guardrail_reasons": guard.get("reasons", []),
                     "n_pseudo": m.get("adaptation", {}).get("n_pseudo"),
                     "n_self_labels": [r.get("n_self_labels") for r in m.get("adaptation", {}).get("rounds", [])],
                     "prior": (m.get("label_shift") or {}).get("prior") if kind == "label_shift" else None})
    return rows


def label_shift_phases(y: np.ndarray, bounds: Sequence[tuple[str, int, int]], versions: np.ndarray,
                       outcomes: Sequence[Mapping[str, Any]], detected: Sequence[int], correct_adapt: np.ndarray,
                       correct_frozen: np.ndarray) -> list[dict[str, Any]]:
    """Per drifted phase of `--families prior`: how much of it a prior-corrected version served, how far each
    served correction's estimated prior was from the phase's true class shares (largest error over the classes),
    and the gain from the first drift confirmed in the phase to its end.

    >>> outcomes = [{"version": 2, "prior": [0.85, 0.15]}]
    >>> row, = label_shift_phases(np.array([0, 0, 0, 1]), [("90/10", 0, 4)], np.array(["1", "2", "2", "2"]),
    ...                           outcomes, [1], np.array([1, 1, 1, 1]), np.array([1, 0, 1, 1]))
    >>> row["served_corrected"], row["corrections"], row["gain_after_detection_points"]
    (0.75, [{'version': '2', 'events': 3, 'prior_error': 0.1}], 33.3)
    """
    priors = {str(o["version"]): np.asarray(o["prior"], dtype=float) for o in outcomes if o.get("prior")}
    rows, k = [], int(np.max(y)) + 1
    for name, start, stop in bounds:
        if name == CLEAN:
            continue
        served = versions[start:stop]
        true = np.bincount(y[start:stop], minlength=k) / (stop - start)
        corrections = [{"version": v, "events": int(np.sum(served == v)),
                        "prior_error": round(float(np.abs(priors[v] - true).max()), 4)}
                       for v in dict.fromkeys(served.tolist()) if v in priors]
        first = next((d for d in detected if start <= d < stop), None)
        gain = (None if first is None else
                round(100.0 * float(np.mean(correct_adapt[first:stop]) - np.mean(correct_frozen[first:stop])), 1))
        rows.append({"phase": name, "true_prior": true.round(4).tolist(),
                     "served_corrected": float(np.isin(served, list(priors)).mean()), "corrections": corrections,
                     "detected_at": first, "gain_after_detection_points": gain})
    return rows


def _served(observed: Any, n: int) -> dict[str, np.ndarray]:
    """A twin's predictions in stream order (label -1, confidence 0, version "" where none came)."""
    from driftwise.service.replay import event_id

    preds = [observed.predictions.get(event_id(EVENT_PREFIX, i)) for i in range(n)]
    return {"label": np.array([p["label"] if p else -1 for p in preds]),
            "confidence": np.array([p["confidence"] if p else 0.0 for p in preds]),
            "version": np.array([str(p["model_version"]) if p else "" for p in preds], dtype=object)}


def _arrival_positions(observed: Any) -> list[int]:
    """Stream positions of the predictions in the order they arrived."""
    return [int(eid.rsplit("-", 1)[1]) for eid in observed.arrivals]


def swaps(observed: Any) -> list[tuple[int, str]]:
    """(stream position, version) wherever the served version changes, in arrival order."""
    out, last = [], None
    for pos, eid in zip(_arrival_positions(observed), observed.arrivals):
        version = str(observed.predictions[eid]["model_version"])
        if last is not None and version != last:
            out.append((pos, version))
        last = version
    return out


def score(stream: Stream, observed: Mapping[str, Any], registry: Path, config: StreamBenchConfig, base: str,
          started: datetime) -> dict[str, Any]:
    """Everything the report says, from both twins' predictions (``observed["adaptive"]``, ``["no_adapt"]``,
    each a `driftwise.service.demo.Observed`) and the adaptive twin's ``registry``."""
    from driftwise.service.settings import Settings

    n, y = len(stream), stream.y
    served = {label: _served(o, n) for label, o in observed.items()}
    correct = {k: v["label"] == y for k, v in served.items()}
    bounds = phase_bounds(config.phases, config.phase_events)
    rows = phase_gains(correct["adaptive"], correct["no_adapt"], bounds)
    threshold = float(Settings.model_fields["confidence_threshold"].default)
    for row in rows:
        sl = slice(row["start"], row["stop"])
        for k, v in served.items():
            row[f"confident_precision_{k}"], row[f"confident_{k}"] = confident_precision(
                v["label"][sl], v["confidence"][sl], y[sl], threshold)
    drifted = stream.domain != CLEAN
    versions = served["adaptive"]["version"]
    worst, at = worst_window(correct["adaptive"].astype(float) - correct["no_adapt"], WORST_WINDOW)
    delays = first_adapted_delays(versions, bounds, base)
    outcomes = registry_outcomes(registry, config.model_name, started, config.rate)
    positions = {label: _arrival_positions(o) for label, o in observed.items()}
    detections = {label: [(positions[label][min(s, len(positions[label])) - 1] if s else 0, r)
                          for s, r in o.detections] for label, o in observed.items()}
    label_shifts = None
    if config.families == "prior":
        label_shifts = label_shift_phases(y, bounds, versions, outcomes, [at for at, _ in detections["adaptive"]],
                                          correct["adaptive"], correct["no_adapt"])
    return {
        "phases": rows,
        "summary": {
            "mean_gain_drifted_points": float(np.mean([r["gain_points"] for r in rows if r["phase"] != CLEAN])),
            "gain_all_points": 100.0 * float(np.mean(correct["adaptive"]) - np.mean(correct["no_adapt"])),
            "clean_gains_points": [r["gain_points"] for r in rows if r["phase"] == CLEAN],
            "worst_window": {"events": WORST_WINDOW, "gain_points": 100.0 * worst, "start": at,
                             "phase": str(stream.domain[at])},
            "adapted_share_drifted": float(np.mean((versions[drifted] != base) & (versions[drifted] != ""))),
            "first_adapted_delay_events": [[r["phase"], d] for r, d in  # a list: a family may come back
                                           zip([r for r in rows if r["phase"] != CLEAN], delays)],
            "missing": {k: int((v["version"] == "").sum()) for k, v in served.items()},
            "outcomes": {f"{kind} {status}": sum(o["kind"] == kind and o["status"] == status for o in outcomes)
                         for kind, status in sorted({(o["kind"], o["status"]) for o in outcomes if o["parent"]})},
            "confidence_threshold": threshold,
        },
        "versions": outcomes,
        "swaps": {label: swaps(o) for label, o in observed.items()},
        "detections": detections,
        **({"label_shifts": label_shifts} if label_shifts is not None else {}),
        "correct": {k: v.astype(int).tolist() for k, v in correct.items()},
    }


def _plot(results: dict[str, Any], path: Path, config: StreamBenchConfig) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    window = max(50, config.phase_events // 10)
    fig, ax = plt.subplots(figsize=(13, 4.8))
    for label, color in (("no_adapt", "tab:gray"), ("adaptive", "tab:blue")):
        c = np.asarray(results["correct"][label], dtype=float)
        ax.plot(np.arange(window - 1, len(c)), np.convolve(c, np.ones(window) / window, mode="valid"), color=color,
                label=f"{label.replace('_', '-')} twin")
    for row in results["phases"]:
        ax.axvspan(row["start"], row["stop"], color="white" if row["phase"] == CLEAN else "tab:orange", alpha=0.08)
        ax.axvline(row["start"], color="k", lw=0.5, alpha=0.4)
        ax.text((row["start"] + row["stop"]) / 2, 0.02, row["phase"], ha="center", fontsize=8)
    for j, (at, _reason) in enumerate(results["detections"]["adaptive"]):
        ax.axvline(at, color="tab:red", ls="--", lw=0.8, label="drift confirmed (adaptive)" if j == 0 else None)
    for j, (at, version) in enumerate(results["swaps"]["adaptive"]):
        ax.axvline(at, color="tab:green", lw=1.2, label="served version changes" if j == 0 else None)
        ax.text(at, 1.01 + 0.03 * (j % 2), f"v{version}", color="tab:green", fontsize=7, ha="center")
    ax.set_ylim(0, 1.08)
    ax.set_xlabel("event")
    ax.set_ylabel(f"accuracy (rolling {window})")
    ax.set_title(f"driftwise bench stream: {_scenario(config)}, {config.rate:g} events/s"
                 + ("" if config.files else f", severity {SEVERITY}"))
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=4, fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _scenario(config: StreamBenchConfig) -> str:
    """What was replayed, for titles: 'heldout families', 'tabular segments, heldout families, bursts', 'your files
    (name)'."""
    if config.files:
        return f"your files ({config.dataset})"
    domain = f"tabular {config.dataset}, " if config.tabular else ""
    return f"{domain}{config.families} families{', bursts' if config.bursts else ''}"


def _delay(d: int | None, rate: float) -> str:
    return "never" if d is None else f"{d} ({d / rate:.0f} s)"


def concept_summary(results: dict[str, Any]) -> str:
    """The label-changing scenario in one paragraph: when labels were asked for, and how far accuracy came back."""
    fb, phases = results["feedback"], results["phases"]
    clean = phases[0]["adaptive"]
    shifted = [r for r in phases if r["phase"] != CLEAN]
    last = shifted[-1]
    promoted = [v for v in results["versions"] if v["parent"] and v["status"] == "approved"
                and v["reason"].startswith("adapt")]
    asked = ("never" if fb["labels_needed_at"] is None else
             f"at event {fb['labels_needed_at']}, **{fb['labels_needed_after_shift']} events after the shift began**")
    sent = (f"{fb['labels_sent']} labels sent (events {fb['labels_sent_events'][0]}-{fb['labels_sent_events'][1]})"
            if fb["labels_sent_events"] else "no labels sent")
    return (f"**Labels needed: {asked}**; {sent}. Self-trained candidates promoted before the labels: "
            f"{sum(v['at_event'] < (fb['labels_sent_events'] or [10**9])[0] for v in promoted)}. Accuracy on the "
            f"last shifted phase ({last['start']}-{last['stop']}): adaptive {last['adaptive']:.3f}, no-adapt "
            f"{last['no_adapt']:.3f}; **{last['adaptive'] / clean:.2f}x the clean phase's {clean:.3f}**.")


def label_shift_table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """`label_shift_phases` as markdown: what a label shift was answered with, and how close its prior was."""
    lines = ["| phase | true prior | share served prior-corrected | corrections served: version (events, largest "
             "prior error) | drift confirmed at | gain from there to the phase's end (points) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        served = ", ".join(f"v{c['version']} ({c['events']}, {c['prior_error']:.3f})" for c in r["corrections"])
        gain = "-" if r["gain_after_detection_points"] is None else f"{r['gain_after_detection_points']:+.1f}"
        lines.append(f"| {r['phase']} | {'/'.join(f'{p:.2f}' for p in r['true_prior'])} | "
                     f"{100 * r['served_corrected']:.0f}% | {served or 'none'} | {r['detected_at'] or 'never'} | "
                     f"{gain} |")
    return lines


def write_report(results: dict[str, Any], config: StreamBenchConfig, out_dir: Path) -> Path:
    """``<stem>.json``, ``.png`` and ``.md`` in ``out_dir``; return the markdown path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{config.stem}.json").write_text(json.dumps(results, indent=2, default=float))
    _plot(results, out_dir / f"{config.stem}.png", config)
    s = results["summary"]
    shifts = "sensor shifts (`driftwise.drift.sensor_shifts`)" if config.tabular else "families"
    if config.files:
        kind = "your own files: the stream file names the phases; nothing here was chosen on them"
    chosen = "may be chosen on (none has been yet)" if config.tabular else "were chosen on"
    kind = (kind if config.files else f"held-out {shifts}: only reported, no method or default was chosen on them"
            if config.families == "heldout" else f"development {shifts}: the ones methods and defaults {chosen}")
    if config.families == "prior":
        kind = ("label shifts: clean events drawn so that one class takes 90% (the class prior moves, each class's "
                "inputs do not); nothing was chosen on these streams")
    if config.concept:
        kind = ("a label-changing shift (inverted images) over three phases; the true labels of "
                f"{results['feedback']['labels_sent']} predictions sent once the adaptive twin asked for labels")
    fmt = lambda p, k: "-" if np.isnan(p) else f"{p:.3f} ({k})"  # noqa: E731
    lines = [
        f"# Stream bench: {_scenario(config)}, seed {config.seed}", "",
        f"Command: `{results['command']}`  ", f"Date: {results['date']}, {results['machine']}  ",
        f"Code: {results['code']}  ",
        f"Wall time {results['wall_seconds']:.0f} s; {len(results['correct']['adaptive'])} events at "
        f"{config.rate:g}/s, {config.phase_events} per phase"
        + ("" if config.files else f", severity {SEVERITY}") + f"; {kind}."
        + (f" Each phase sorted into runs of {BURST_RUN} events of one class." if config.bursts else "")
        + (f"  \nData: {results['data']}." if results.get("data") else ""), "",
        "Real time, real broker: `driftwise pretrain` with the CLI defaults, then two `driftwise serve` processes on "
        "copies of its registry, given only plumbing (registry, name, port, broker, topics, group id): the adaptive "
        "twin with every default, and a `--no-adapt` twin. Both receive the same events at the same rate and share "
        "the machine. Scored by event id with labels neither service saw.", "",
        f"![rolling accuracy]({config.stem}.png)", "",
        f"**Mean gain over drifted phases {s['mean_gain_drifted_points']:+.1f} points** (all events "
        f"{s['gain_all_points']:+.1f}); clean-phase gains "
        + ", ".join(f"{g:+.1f}" for g in s["clean_gains_points"])
        + f"; worst {s['worst_window']['events']}-event window {s['worst_window']['gain_points']:+.1f} points "
        f"(from event {s['worst_window']['start']}, {s['worst_window']['phase']}); "
        f"{100 * s['adapted_share_drifted']:.0f}% of drifted events served by an adapted model; "
        "versions published: " + (", ".join(f"{k} {v}" for k, v in s["outcomes"].items()) or "none")
        + ". Predictions missing: "
        + ", ".join(f"{k} {v}" for k, v in s["missing"].items()) + ".", "",
        "| phase | events | no-adapt | adaptive | gain (points) | first adapted prediction after (events) | "
        "confident precision no-adapt (n) | confident precision adaptive (n) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    delays = iter(d for _, d in s["first_adapted_delay_events"])
    for r in results["phases"]:
        delay = "" if r["phase"] == CLEAN else _delay(next(delays), config.rate)
        lines.append(f"| {r['phase']} | {r['start']}-{r['stop']} | {r['no_adapt']:.3f} | {r['adaptive']:.3f} | "
                     f"{r['gain_points']:+.1f} | {delay} | "
                     f"{fmt(r['confident_precision_no_adapt'], r['confident_no_adapt'])} | "
                     f"{fmt(r['confident_precision_adaptive'], r['confident_adaptive'])} |")
    if "feedback" in results:
        lines += ["", concept_summary(results)]
    if "label_shifts" in results:
        lines += ["", "Label shifts: the right answer is the base with its probabilities re-weighted to the new prior "
                  "(`driftwise.drift.label_shift`), not retraining. Prior error: the largest difference over the "
                  "classes between a served correction's estimated prior and the phase's true class shares.", "",
                  *label_shift_table(results["label_shifts"])]
    lines += [
        "", f"Confident precision: accuracy of the served predictions with confidence >= {s['confidence_threshold']} "
        "(the pseudo-label threshold). It is a proxy for pseudo-label precision, not the thing itself: the buffer "
        "admits on the confidence of the normalisation-adapted model, and the manifests record how many "
        "pseudo-labels and self-labels a candidate trained on, not which, so their precision cannot be scored.", "",
        "Versions in the adaptive twin's registry (manifests only; event = when the manifest was written):", "",
        "| version | status | parent | event | reason | failed guardrails | pseudo-labels | self-labels per round |",
        "|---|---|---|---|---|---|---|---|",
        *[f"| {v['version']} | {v['status']}{' (refines v' + str(v['refines']) + ')' if v['refines'] else ''} | "
          f"{v['parent']} | {v['at_event']} | {v['reason']} | "
          f"{'; '.join(v['guardrail_reasons']) or ', '.join(v['failed']) or v['cancelled'] or '-'} | "
          f"{v['n_pseudo'] if v['n_pseudo'] is not None else '-'} | {v['n_self_labels'] or '-'} |"
          for v in results["versions"]],
        "", "Drift confirmed (adaptive twin) at events " + (", ".join(
            f"{at} ({reason})" for at, reason in results["detections"]["adaptive"]) or "none") + "; no-adapt twin at "
        + (", ".join(str(at) for at, _ in results["detections"]["no_adapt"]) or "none") + ".",
        "Served version changes (adaptive) at " + (", ".join(
            f"{at} -> v{v}" for at, v in results["swaps"]["adaptive"]) or "none") + ".", "",
    ]
    path = out_dir / f"{config.stem}.md"
    path.write_text("\n".join(lines))
    return path


def finished_runs_argv(module: str, argv: Sequence[str]) -> tuple[Path, list[tuple[Path, Path]]]:
    """``OUT.md RESULTS.json RUN_DIR [RESULTS.json RUN_DIR ...]``, the command line of the benches that re-read
    finished `driftwise bench stream` runs (``module`` names one in the usage line): (OUT, [(results, run dir)])."""
    import sys

    if len(argv) < 3 or len(argv) % 2 == 0:
        sys.exit(f"usage: python -m driftwise.bench.{module} OUT.md RESULTS.json RUN_DIR [RESULTS.json RUN_DIR ...]")
    return Path(argv[0]), [(Path(a), Path(b)) for a, b in zip(argv[1::2], argv[2::2])]
