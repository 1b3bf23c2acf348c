"""`python -m driftwise.bench.recipes`: which adaptation recipe closes most of the gap to the oracle?

An offline comparison of `driftwise.drift.adapter.AdaptConfig` variants, the measurement the
defaults were chosen by. For every variant, corruption and window seed: draw 2,256
images (with replacement) from the pool of ``driftwise.bench.drift`` (same source model, same
split), corrupt them at severity 3, adapt on the first 256 (the window, no labels)
and score on the other 2,000. The oracle is the same variant given the window's
true labels (one round, no self-labels), as in ``bench/drift.py``.

Gap closed = (adapted - no-adapt) / (oracle - no-adapt), NaN when the oracle gains
under half a point; inversion counts as 0 (the loop must refuse it, not adapt).
"Held out" scores only the events whose image was not in the window: the oracle
saw those images' labels, so on the others it partly shows what it memorised.

Every variant is an `AdaptConfig`; add one with one line in `VARIANTS`.
Run ``python -m driftwise.bench.recipes [--split val|test] [--windows N] [--variants a,b]``;
writes ``bench/results/recipes.md`` and ``recipes.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from driftwise.bench.drift import Settings, build_source, gap_closed, machine
from driftwise.drift.adapter import AdaptConfig, adapt, predict_proba
from driftwise.drift.corruptions import CORRUPTION_NAMES, corrupt
from driftwise.models.classifier import Classifier

RESULTS = Path(__file__).resolve().parent / "results"
BASE = AdaptConfig(steps=100, rounds=3, self_label_threshold=0.9, max_seconds=1000.0)
"""The recipe every variant changes; ``max_seconds`` so high that CPU load cannot cut training short."""
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "shifts only": {"rotate_degrees": 0.0},
    "200 steps": {"steps": 200},
    "one round": {"rounds": 1},
    "threshold 0.8": {"self_label_threshold": 0.8},
    "tent entropy 0.5": {"entropy_weight": 0.5},
    "fine-tuned weights only": {"finetuned_weight": 1.0},
}
"""Variant name -> the `AdaptConfig` fields it changes in `BASE`."""
REFUSED = ("inversion",)
"""Corruptions the loop must refuse to adapt to: their gap closed counts as 0."""
WINDOW, SCORED, SEVERITY = 256, 2000, 3

Log = Callable[[str], None]


def variant_config(name: str) -> AdaptConfig:
    """The `AdaptConfig` a variant name stands for (clear error for unknown names)."""
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
    return replace(BASE, **VARIANTS[name])


def oracle_config(config: AdaptConfig) -> AdaptConfig:
    """The variant given true labels: one round, no self-labels (as bench/drift.py's oracle)."""
    return replace(config, self_label_threshold=None, rounds=1)


@dataclass
class Draw:
    """One corrupted window and the events scored after it."""

    window_x: np.ndarray
    window_y: np.ndarray
    scored_x: np.ndarray
    scored_y: np.ndarray
    held_out: np.ndarray
    """Scored events whose pool image is not in the window."""


def draws(pool_x: np.ndarray, pool_y: np.ndarray, seed: int, corruptions: Sequence[str] = CORRUPTION_NAMES,
          window: int = WINDOW, scored: int = SCORED, severity: int = SEVERITY) -> dict[str, Draw]:
    """One draw per corruption for window seed ``seed``.

    Indices for every corruption are drawn in `CORRUPTION_NAMES` order from one
    generator, so a corruption's draw does not depend on which others are run.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for i, name in enumerate(CORRUPTION_NAMES):
        idx = rng.integers(0, len(pool_y), window + scored)
        if name not in corruptions:
            continue
        x, y = corrupt(pool_x[idx], name, severity, seed=i + 10 * seed), pool_y[idx]
        out[name] = Draw(x[:window], y[:window], x[window:], y[window:], ~np.isin(idx[window:], idx[:window]))
    return out


def accuracies(model: Classifier, d: Draw) -> tuple[float, float]:
    """Accuracy on all scored events and on the held-out ones."""
    right = predict_proba(model, d.scored_x).argmax(1) == d.scored_y
    return float(right.mean()), float(right[d.held_out].mean()) if d.held_out.any() else float("nan")


def compare(model: Classifier, anchors_x: np.ndarray, anchors_y: np.ndarray, pool_x: np.ndarray,
            pool_y: np.ndarray, variants: dict[str, AdaptConfig], seeds: Sequence[int],
            corruptions: Sequence[str] = CORRUPTION_NAMES, log: Log = print,
            **draw_kwargs: Any) -> list[dict[str, Any]]:
    """One row per (variant, corruption, seed); oracles shared by variants whose oracle config is the same."""
    rows: list[dict[str, Any]] = []
    oracles: dict[tuple[AdaptConfig, str, int], tuple[float, float]] = {}
    for seed in seeds:
        for name, d in draws(pool_x, pool_y, seed, corruptions, **draw_kwargs).items():
            na, na_held = accuracies(model, d)
            for variant, config in variants.items():
                key = (oracle_config(config), name, seed)
                if key not in oracles:
                    oracle = adapt(model, window_x=d.window_x, pseudo_x=None, pseudo_y=None, anchors_x=anchors_x,
                                   anchors_y=anchors_y, feedback_x=d.window_x, feedback_y=d.window_y,
                                   config=key[0], seed=0).candidate
                    oracles[key] = accuracies(oracle, d)
                orc, orc_held = oracles[key]
                t0 = time.perf_counter()
                result = adapt(model, window_x=d.window_x, pseudo_x=None, pseudo_y=None, anchors_x=anchors_x,
                               anchors_y=anchors_y, config=config, seed=0)
                seconds = time.perf_counter() - t0
                ad, ad_held = accuracies(result.candidate, d)
                refused = name in REFUSED
                row = {"variant": variant, "corruption": name, "seed": seed, "adapt_seconds": seconds,
                       "no_adapt": na, "adapted": ad, "oracle": orc,
                       "held_out_events": int(d.held_out.sum()), "held_out_no_adapt": na_held,
                       "held_out_adapted": ad_held, "held_out_oracle": orc_held,
                       "gap_closed_all_events": 0.0 if refused else gap_closed(na, ad, orc),
                       "gap_closed_held_out": 0.0 if refused else gap_closed(na_held, ad_held, orc_held)}
                rows.append(row)
                log(f"seed {seed} {name:16s} {variant:18s} no-adapt {na:.3f} adapted {ad:.3f} oracle {orc:.3f} "
                    f"gap {row['gap_closed_all_events']:.2f} | held out ({d.held_out.mean():.0%}) "
                    f"{na_held:.3f} {ad_held:.3f} {orc_held:.3f} gap {row['gap_closed_held_out']:.2f} "
                    f"| {seconds:.1f} s")
    return rows


def _nanmean(values: Sequence[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return float(np.mean(kept)) if kept else float("nan")


KEYS = ("no_adapt", "adapted", "oracle", "held_out_no_adapt", "held_out_adapted", "held_out_oracle",
        "gap_closed_all_events", "gap_closed_held_out")


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per variant: means over seeds per corruption, means over corruptions, median adaptation seconds.

    Gaps that are NaN (oracle gained nothing) are left out of their means. The mean
    accuracy gain over no-adapt (refused corruptions left out) has no ratio in it:
    where the oracle gains only a point or two on held-out events, one window's gap
    can swing far outside [0, 1], and the gain shows whether a ranking rests on that.
    """
    out: dict[str, dict[str, Any]] = {}
    for variant in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == variant]
        per = {c: {k: _nanmean([r[k] for r in mine if r["corruption"] == c]) for k in KEYS}
               for c in dict.fromkeys(r["corruption"] for r in mine)}
        adapted = [p for c, p in per.items() if c not in REFUSED]
        out[variant] = {"per_corruption": per, "windows": len({r["seed"] for r in mine}),
                        "mean_gap_closed_all_events": _nanmean([p["gap_closed_all_events"] for p in per.values()]),
                        "mean_gap_closed_held_out": _nanmean([p["gap_closed_held_out"] for p in per.values()]),
                        "mean_gain_all_events": _nanmean([p["adapted"] - p["no_adapt"] for p in adapted]),
                        "mean_gain_held_out": _nanmean([p["held_out_adapted"] - p["held_out_no_adapt"]
                                                        for p in adapted]),
                        "median_adapt_seconds": float(np.median([r["adapt_seconds"] for r in mine]))}
    return out


def _best(summary: dict[str, dict[str, Any]], key: str) -> str:
    return max(summary, key=lambda v: np.nan_to_num(summary[v][key], nan=-9.0))


def conclusion(summary: dict[str, dict[str, Any]], not_run: Sequence[str]) -> str:
    """One line naming the best variant by mean held-out gap closed (and by mean held-out accuracy gain)."""
    gap, gain = "mean_gap_closed_held_out", "mean_gain_held_out"
    best = _best(summary, gap)
    text = f"Best by mean held-out gap closed: {best} ({summary[best][gap]:.3f})"
    if best != "default" and "default" in summary:
        text += f", against default {summary['default'][gap]:.3f}"
    best = _best(summary, gain)
    if not math.isnan(summary[best][gain]):
        text += f"; by mean held-out accuracy gain (no ratio): {best} ({100 * summary[best][gain]:+.1f} points)"
        if best != "default" and "default" in summary:
            text += f", default {100 * summary['default'][gain]:+.1f}"
    return text + (f"; not run: {', '.join(not_run)}." if not_run else ".")


def _f(x: float, digits: int = 2) -> str:
    return "-" if x is None or math.isnan(x) else f"{x:.{digits}f}"


def write_report(results: dict[str, Any], out_dir: Path) -> Path:
    """recipes.json (everything) and recipes.md (the tables)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "recipes.json").write_text(json.dumps(results, indent=2, default=float))
    summary, names = results["summary"], list(results["summary"])
    corruptions = list(next(iter(summary.values()))["per_corruption"]) if summary else []
    lines = [
        "# Adaptation recipes", "",
        f"Command: `{results['command']}`  ", f"Date: {results['date']}, {results['machine']}  ",
        f"Wall time: {results['wall_seconds']:.0f} s. Pool: {results['split']} split; {results['windows']} window "
        f"seed(s) per corruption; {WINDOW}-event windows at severity {SEVERITY}, scored on {SCORED} other events.", "",
        "Each variant adapts the source model of `bench/drift.py` on the window without labels; the oracle is the "
        "same variant given the window's true labels (one round). Gap closed = (adapted - no-adapt) / "
        "(oracle - no-adapt), left out of means when the oracle gains under half a point; inversion counts as 0 "
        "(the loop must refuse it). Held out: only events whose image was not in the window.", "",
        f"**{results['conclusion']}**", "",
        "## Means over the corruptions", "",
        "| variant | changes | gap closed (held out) | gap closed (all events) | "
        "accuracy gain, points (held out / all events) | median adaptation s |",
        "|---|---|---|---|---|---|",
        *[f"| {v} | {', '.join(f'{k}={x}' for k, x in VARIANTS.get(v, {}).items()) or '-'} | "
          f"{_f(summary[v]['mean_gap_closed_held_out'])} | {_f(summary[v]['mean_gap_closed_all_events'])} | "
          f"{_points(summary[v]['mean_gain_held_out'])} / {_points(summary[v]['mean_gain_all_events'])} | "
          f"{_f(summary[v]['median_adapt_seconds'], 1)} |" for v in names],
        *[f"| {v} | {', '.join(f'{k}={x}' for k, x in VARIANTS.get(v, {}).items())} | not run | not run | - | - |"
          for v in results["not_run"]],
        "", "Accuracy gain: adapted minus no-adapt, averaged over the corruptions the loop adapts to (not "
        f"{', '.join(REFUSED)}). It has no ratio in it; a held-out gap closed is a ratio whose denominator "
        "(oracle minus no-adapt) can be one or two points, so a single window can move it far outside [0, 1].",
    ]
    for title, key in (("held out", "gap_closed_held_out"), ("all events", "gap_closed_all_events")):
        lines += ["", f"## Gap closed per corruption ({title})", "",
                  "| variant | " + " | ".join(corruptions) + " |", "|---" * (len(corruptions) + 1) + "|",
                  *[f"| {v} | " + " | ".join(_f(summary[v]["per_corruption"][c][key]) for c in corruptions) + " |"
                    for v in names]]
    lines += ["", "## Accuracy per corruption (all events: no-adapt / adapted / oracle)", "",
              "| variant | " + " | ".join(corruptions) + " |", "|---" * (len(corruptions) + 1) + "|"]
    for v in names:
        per = summary[v]["per_corruption"]
        lines.append(f"| {v} | " + " | ".join(f"{_f(per[c]['no_adapt'], 3)} / {_f(per[c]['adapted'], 3)} / "
                                             f"{_f(per[c]['oracle'], 3)}" for c in corruptions) + " |")
    lines += ["", "## Base recipe (every variant changes only the fields listed above)", "", "```",
              json.dumps(results["base"], indent=1), "```", ""]
    path = out_dir / "recipes.md"
    path.write_text("\n".join(lines))
    return path


def _points(x: float) -> str:
    return "-" if math.isnan(x) else f"{100 * x:+.1f}"


def check_pool(split: str, windows: int) -> None:
    """The offline benches' pool options (this one's and `driftwise.bench.refine`'s): which split, how many window seeds."""
    if split not in ("test", "val"):
        raise ValueError(f"split must be 'test' or 'val', got {split!r}")
    if windows < 1:
        raise ValueError(f"windows must be >= 1, got {windows}")


def main(split: str = "val", windows: int = 3, variants: Sequence[str] | None = None,
         out_dir: str | Path | None = None, command: str | None = None) -> dict[str, Any]:
    """Compare ``variants`` (default: all of `VARIANTS`) on ``windows`` window seeds; write the results."""
    check_pool(split, windows)
    names = list(variants or VARIANTS)
    configs = {name: variant_config(name) for name in names}
    torch.set_num_threads(1)
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    started, machine_line = time.perf_counter(), machine()
    source = build_source(Settings.make(False, split), log)
    rows = compare(source.model, source.anchors_x, source.anchors_y, source.pool_x, source.pool_y, configs,
                   seeds=range(windows), log=log)
    summary = summarise(rows)
    not_run = [v for v in VARIANTS if v not in summary]
    results = {"command": command or _command(split, windows, names), "date": time.strftime("%Y-%m-%d %H:%M %Z"),
               "machine": machine_line, "split": split, "windows": windows, "source": source.metrics,
               "base": asdict(BASE), "variants": {v: asdict(c) for v, c in configs.items()}, "not_run": not_run,
               "summary": summary, "conclusion": conclusion(summary, not_run), "rows": rows,
               "wall_seconds": time.perf_counter() - started}
    path = write_report(results, Path(out_dir) if out_dir else RESULTS)
    for v, s in summary.items():
        log(f"{v:18s} gap closed held out {_f(s['mean_gap_closed_held_out'])} "
            f"all events {_f(s['mean_gap_closed_all_events'])} median {s['median_adapt_seconds']:.1f} s")
    log(results["conclusion"])
    log(f"wrote {path}")
    return results


def _command(split: str, windows: int, names: Sequence[str]) -> str:
    command = f"python -m driftwise.bench.recipes --split {split} --windows {windows}"
    return command + (f" --variants '{','.join(names)}'" if list(names) != list(VARIANTS) else "")


def parse_variants(text: str | None) -> list[str] | None:
    """``"default,shifts only"`` -> ``["default", "shifts only"]``; None (all) when empty."""
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    for n in names:
        variant_config(n)
    return names or None


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="val", choices=["val", "test"],
                        help="pool: the validation split (method choices) or the test split")
    parser.add_argument("--windows", type=int, default=3, help="window seeds per corruption")
    parser.add_argument("--variants", default=None, help=f"comma-separated, of: {', '.join(VARIANTS)} (default all)")
    parser.add_argument("--out", default=None, help="results folder (default bench/results)")
    args = parser.parse_args()
    try:
        chosen = parse_variants(args.variants)
    except ValueError as exc:
        parser.error(str(exc))
    main(args.split, args.windows, chosen, args.out)
