"""`python -m driftwise.bench.thresholds`: which pseudo-label confidence threshold should be the default?

The pseudo-label buffer keeps an event when its calibrated confidence passes a
threshold. Too low and the candidate trains on its own mistakes; too high and a
window yields too few labels to learn from. This measures both sides, offline,
on development shifts only (`driftwise.drift.corruptions.DEVELOPMENT_FAMILIES`; inversion
is a concept shift and held-out families are never looked at here):

1. the source model exactly as ``driftwise pretrain`` makes it with no flags
   (simclr, cnn for 1x8x8, finetuned head, default epochs), on the demo's source
   split (half of digits, 10% labels), published to a cached registry and
   loaded back;
2. windows of 256 held-out images per family (severity 3) and clean, one per
   window seed; on each, the model as served (unadapted) and its BatchNorm
   re-estimated on the window (`driftwise.drift.normalize.normalized_copy`, the interim
   the loop serves first);
3. per threshold tau: precision (share of confident predictions that are right)
   and yield (share of the window that is confident), counts pooled over the
   window seeds, for a global rule (confidence >= tau) and two per-class rules
   (FreeMatch-style: class c's bar is tau * m_c / max m; see `class_thresholds`).

Run ``python -m driftwise.bench.thresholds [--windows 3] [--seed 0] [--quick]``; writes
``bench/results/thresholds.md`` and ``thresholds.json`` (``thresholds-quick.*`` with --quick).
``--seed`` changes the source split and pretraining seed (default 0, the CLI's).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from driftwise.drift.adapter import predict_proba
from driftwise.drift.corruptions import CLEAN, CORRUPTION_NAMES, DEVELOPMENT_FAMILIES, corrupt
from driftwise.drift.normalize import normalized_copy
from driftwise.models.classifier import Classifier
from driftwise.models.data import Dataset
from driftwise.models.registry import Registry
from driftwise.service.demo import _digits_splits
from driftwise.service.publishing import PretrainRequest, pretrain_and_publish

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.97, 0.99)
FAMILIES = DEVELOPMENT_FAMILIES  # inversion is a concept shift, the held-out families are never tuned on
"""Development families: every corruption but the label-changing one."""
MODELS = ("unadapted", "bn")
RULES = ("global", "freematch", "classconf")
MODES = tuple(f"{m}/{r}" for m in MODELS for r in RULES)
"""Model (as served; BatchNorm re-estimated on the window) x rule (global tau; two per-class rules)."""
TARGETS = (0.95, 0.9)
WINDOW, SEVERITY, MODEL_NAME = 256, 3, "digits"
QUICK_EPOCHS = 2
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "driftwise-bench-cache" / "thresholds"
"""Where pretrained source models are kept between runs (keyed by seed, epochs and `CODE`)."""
CODE = ("models", "service/publishing.py", "drift/loop.py")
"""What the cached source model depends on: a change here retrains it."""


# -- scoring ----------------------------------------------------------------------
def class_thresholds(p: np.ndarray, tau: float, rule: str = "freematch") -> np.ndarray:
    """Per-class bars: tau scaled by each class's learning status over the best class's (never above tau).

    A class the model is still unsure of on this window gets a lower bar, so it
    is not starved of pseudo-labels. ``freematch``: status = the window's mean
    probability of the class (FreeMatch's local estimate). ``classconf``: status =
    the mean confidence of the events predicted as the class (classes never
    predicted get tau; no event needs their bar).
    """
    if rule == "freematch":
        m = p.mean(axis=0)
    elif rule == "classconf":
        conf, pred = p.max(axis=1), p.argmax(axis=1)
        m = np.array([conf[pred == c].mean() if (pred == c).any() else np.nan for c in range(p.shape[1])])
        m = np.where(np.isnan(m), np.nanmax(m), m)
    else:
        raise ValueError(f"unknown per-class rule {rule!r}")
    return tau * m / m.max()


def confident(p: np.ndarray, tau: float, rule: str = "global") -> np.ndarray:
    """Which rows of probabilities ``p`` (n, k) pass ``tau`` under ``rule`` (one of `RULES`)."""
    conf = p.max(axis=1)
    if rule == "global":
        return conf >= tau
    return conf >= class_thresholds(p, tau, rule)[p.argmax(axis=1)]


def counts(p: np.ndarray, y: np.ndarray, tau: float, rule: str = "global") -> tuple[int, int, int]:
    """(confident, confident and right, window size): pooled across windows before dividing."""
    keep = confident(p, tau, rule)
    return int(keep.sum()), int((keep & (p.argmax(axis=1) == y)).sum()), len(y)


def precision_yield(c: Sequence[int]) -> tuple[float, float]:
    """Precision (NaN when nothing is confident) and yield from pooled `counts`."""
    n_conf, n_right, n = c
    return (n_right / n_conf if n_conf else math.nan), (n_conf / n if n else math.nan)


def summarize(table: dict[str, dict[str, dict[float, list[int]]]], families: Sequence[str],
              thresholds: Sequence[float] = THRESHOLDS) -> dict[str, dict[float, dict[str, float]]]:
    """Per mode and tau: mean and worst precision, mean yield over ``families`` (each family weighs the same)."""
    out: dict[str, dict[float, dict[str, float]]] = {}
    for mode in MODES:
        out[mode] = {}
        for tau in thresholds:
            py = [precision_yield(table[f][mode][tau]) for f in families]
            prec = [p for p, _ in py if not math.isnan(p)]
            out[mode][tau] = {"precision": float(np.mean(prec)) if prec else math.nan,
                              "worst_precision": float(min(prec)) if prec else math.nan,
                              "yield": float(np.mean([y for _, y in py])),
                              "families_with_labels": len(prec)}
    return out


def best_threshold(summary: dict[float, dict[str, float]], target: float) -> float | None:
    """The tau with the most mean yield among those whose mean precision is >= ``target`` (None if none)."""
    ok = [t for t, s in summary.items() if not math.isnan(s["precision"]) and s["precision"] >= target]
    return max(ok, key=lambda t: (summary[t]["yield"], -t)) if ok else None


# -- the run ----------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    windows: int = 3
    """Window seeds per family."""
    seed: int = 0
    """Source split and pretraining seed (the CLI's default)."""
    quick: bool = False
    """`QUICK_EPOCHS` of pretraining instead of the CLI's default, for a smoke run."""

    @property
    def epochs(self) -> int | None:
        """Pretraining epochs; None = the `driftwise pretrain` default."""
        return QUICK_EPOCHS if self.quick else None


def pretrain_request(x_src: np.ndarray, y_src: np.ndarray, registry: Path, s: Settings) -> PretrainRequest:
    """The `PretrainRequest` `driftwise pretrain --data F --name digits --registry R` builds (no other flags)."""
    return PretrainRequest(dataset=Dataset(x_src, y_src), name=MODEL_NAME, registry=registry, objective="simclr",
                           encoder=None, input_shape=None, head="finetune", epochs=s.epochs, device="auto",
                           seed=s.seed)


def _code_hash() -> str:
    h = hashlib.sha256()
    for entry in CODE:
        path = ROOT / entry
        for f in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            h.update(f.read_bytes())
    return h.hexdigest()[:12]


def source_model(s: Settings, cache: Path, console: Console) -> tuple[Classifier, dict[str, Any], np.ndarray, np.ndarray]:
    """The pretrained source model (from the cache when this code made it before) and the held-out half."""
    x_src, y_src, x_held, y_held = _digits_splits(s.seed)
    registry = cache / f"seed{s.seed}-epochs{s.epochs or 'default'}-{_code_hash()}" / "registry"
    reg = Registry(registry)
    if reg.current(MODEL_NAME) is None:
        console.print(f"pretraining the source model into {registry}")
        pretrain_and_publish(pretrain_request(x_src, y_src, registry, s), console=console)
    else:
        console.print(f"source model from cache: {registry}")
    loaded = reg.load(MODEL_NAME, device="cpu")
    return loaded.model.eval(), dict(loaded.info.manifest.get("metrics", {})), x_held, y_held


def window(x: np.ndarray, y: np.ndarray, family: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Window ``seed`` of ``family``: 256 distinct held-out images (same ones for every family), corrupted."""
    idx = np.random.default_rng(seed).choice(len(y), size=min(WINDOW, len(y)), replace=False)
    if family == CLEAN:
        return x[idx], y[idx]
    return corrupt(x[idx], family, SEVERITY, seed=1000 * seed + CORRUPTION_NAMES.index(family)), y[idx]


def measure(model: Classifier, x_held: np.ndarray, y_held: np.ndarray, s: Settings,
            console: Console) -> tuple[dict[str, dict[str, dict[float, list[int]]]], dict[str, dict[str, float]]]:
    """Pooled counts per family, mode and tau; and per family/model the window accuracy and mean confidence."""
    families = (CLEAN, *FAMILIES)
    table = {f: {m: {t: [0, 0, 0] for t in THRESHOLDS} for m in MODES} for f in families}
    stats = {f: {f"{m}_{k}": 0.0 for m in MODELS for k in ("accuracy", "confidence")} for f in families}
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("windows", total=len(families) * s.windows)
        for family in families:
            for seed in range(s.windows):
                progress.update(task, description=f"{family} seed {seed}")
                x, y = window(x_held, y_held, family, seed)
                probs = {"unadapted": predict_proba(model, x), "bn": predict_proba(normalized_copy(model, x), x)}
                for m, p in probs.items():
                    stats[family][f"{m}_accuracy"] += float((p.argmax(1) == y).mean()) / s.windows
                    stats[family][f"{m}_confidence"] += float(p.max(1).mean()) / s.windows
                    for rule in RULES:
                        for tau in THRESHOLDS:
                            c = counts(p, y, tau, rule)
                            table[family][f"{m}/{rule}"][tau] = [a + b for a, b in zip(table[family][f"{m}/{rule}"][tau], c)]
                progress.advance(task)
    return table, stats


# -- report -----------------------------------------------------------------------
def _f(v: float) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def _header(first: str) -> list[str]:
    return [f"| {first} | " + " | ".join(f"`{m}`" for m in MODES) + " |", "|" + "---|" * (1 + len(MODES))]


def family_table(rows: dict[str, dict[str, list[int]]]) -> list[str]:
    """One family's rows (as stored in the json: tau keys are strings); cells are precision / yield."""
    lines = _header("tau")
    for tau in THRESHOLDS:
        cells = [" / ".join(map(_f, precision_yield(rows[m][str(tau)]))) for m in MODES]
        lines.append(f"| {tau} | " + " | ".join(cells) + " |")
    return lines


def summary_table(summary: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """The summary as stored in the json (tau keys are strings); cells are precision (worst) / yield."""
    lines = _header("tau")
    for tau in THRESHOLDS:
        row = {m: summary[m][str(tau)] for m in MODES}
        cells = [f"{_f(row[m]['precision'])} ({_f(row[m]['worst_precision'])}) / {_f(row[m]['yield'])}" for m in MODES]
        lines.append(f"| {tau} | " + " | ".join(cells) + " |")
    return lines


def report(results: dict[str, Any]) -> str:
    s, summary, choices = results["settings"], results["summary"], results["choices"]
    lines = [
        "# Pseudo-label confidence threshold, development shifts", "",
        f"Command: `{results['command']}`", "",
        f"Machine: {results['machine']}; wall time {results['wall_s']:.0f} s.", "",
        "Source model: `driftwise pretrain` defaults (objective simclr, cnn encoder, finetuned head, "
        f"epochs {s['epochs'] or 'default'}), seed {s['seed']}, on the demo's source split (half of digits, "
        f"10% labels). Clean held-out accuracy {_f(results['clean_accuracy'])}, temperature "
        f"{_f(float(results['model_metrics'].get('temperature', math.nan)))}.", "",
        f"Windows: {s['windows']} window seed(s) x {WINDOW} distinct held-out images per family, severity {SEVERITY}. "
        "Families: development only (" + ", ".join(FAMILIES) + "); inversion (concept shift) and the held-out "
        "families are not used.", "",
        "Modes: `unadapted` is the model as served; `bn` has BatchNorm re-estimated on the window "
        "(`driftwise.drift.normalize.normalized_copy`, the interim the loop serves first). `global` keeps confidence >= tau. "
        "Per-class rules (FreeMatch-style): class c's bar is tau * m_c / max_c m_c, never above tau; `freematch` "
        "takes m_c = the window's mean probability of class c (FreeMatch's local estimate), `classconf` the mean "
        "confidence of the window's events predicted c. Precision = right / confident, yield = confident / window, "
        "counts pooled over the window seeds. Cells: precision / yield.", "",
        "## Summary: mean over development families", "",
        "Cells: mean precision (worst family) / mean yield, each family weighing the same.", "",
        *summary_table(summary), "",
    ]
    for mode in MODES:
        picks = ", ".join(f"precision >= {t}: tau {choices[mode][str(t)] if choices[mode][str(t)] is not None else 'none'}"
                          for t in TARGETS)
        lines.append(f"* `{mode}`: {picks}")
    lines += ["", *recommendation(summary, choices), "",
              "## Accuracy and mean confidence per family (mean over windows)", "",
              "| family | unadapted acc | bn acc | unadapted conf | bn conf |", "|---|---|---|---|---|"]
    for f, st in results["stats"].items():
        lines.append(f"| {f} | {_f(st['unadapted_accuracy'])} | {_f(st['bn_accuracy'])} | "
                     f"{_f(st['unadapted_confidence'])} | {_f(st['bn_confidence'])} |")
    for f, rows in results["table"].items():
        kind = "no shift" if f == CLEAN else "development family"
        lines += ["", f"## {f} ({kind})", "", *family_table(rows)]
    return "\n".join(lines) + "\n"


def recommendation(summary: dict[str, dict[str, dict[str, float]]], choices: dict[str, dict[str, Any]]) -> list[str]:
    """The default this run supports: `bn/global` decides, since the adapter self-labels with that model and rule."""
    tau = choices["bn/global"][str(TARGETS[0])]
    if tau is None:
        return ["**Default:** no threshold reaches mean precision 0.95 on the BN-adapted model; keep the strictest."]
    b, u = summary["bn/global"][str(tau)], summary["unadapted/global"][str(tau)]
    return [f"**Default:** tau {tau}, the most yield with mean precision >= {TARGETS[0]} on the BN-adapted model "
            "(the model the adapter self-labels with, `driftwise.drift.adapter.adapt`, and the interim that serves first): "
            f"precision {_f(b['precision'])} (worst family {_f(b['worst_precision'])}), yield {_f(b['yield'])}. "
            f"The unadapted model at tau {tau}: precision {_f(u['precision'])} "
            f"(worst {_f(u['worst_precision'])}), yield {_f(u['yield'])}."] + [
            f"Margin, BN-adapted: tau {t} gives precision {_f(summary['bn/global'][str(t)]['precision'])} "
            f"(worst {_f(summary['bn/global'][str(t)]['worst_precision'])}), yield "
            f"{_f(summary['bn/global'][str(t)]['yield'])}." for t in _neighbours(tau)]


def _neighbours(tau: float) -> list[float]:
    i = THRESHOLDS.index(tau)
    return [THRESHOLDS[j] for j in (i - 1, i + 1) if 0 <= j < len(THRESHOLDS)]


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"


def run(s: Settings, out: Path, cache: Path, command: str, console: Console | None = None) -> dict[str, Any]:
    """Measure, write ``thresholds[-quick].md/.json`` under ``out``, return the results."""
    console = console or Console()
    started = time.perf_counter()
    model, metrics, x_held, y_held = source_model(s, cache, console)
    table, stats = measure(model, x_held, y_held, s, console)
    summary = summarize(table, FAMILIES)
    results: dict[str, Any] = {
        "command": command, "machine": machine(), "settings": {"windows": s.windows, "epochs": s.epochs,
                                                               "seed": s.seed, "window": WINDOW, "severity": SEVERITY},
        "families": list(FAMILIES), "thresholds": list(THRESHOLDS),
        "model_metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))},
        "clean_accuracy": float((predict_proba(model, x_held).argmax(1) == y_held).mean()),
        "stats": stats,
        "table": {f: {m: {str(t): c for t, c in r.items()} for m, r in rows.items()} for f, rows in table.items()},
        "summary": {m: {str(t): v for t, v in r.items()} for m, r in summary.items()},
        "choices": {m: {str(t): best_threshold(summary[m], t) for t in TARGETS} for m in MODES},
    }
    results["wall_s"] = time.perf_counter() - started
    out.mkdir(parents=True, exist_ok=True)
    stem = "thresholds-quick" if s.quick else "thresholds"
    (out / f"{stem}.json").write_text(json.dumps(results, indent=1, allow_nan=True) + "\n")
    (out / f"{stem}.md").write_text(report(results))
    console.print(f"wrote {out / stem}.md/.json in {results['wall_s']:.0f} s")
    return results


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m driftwise.bench.thresholds", description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=3, help="window seeds per family")
    parser.add_argument("--seed", type=int, default=0, help="source split and pretraining seed")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_EPOCHS} pretraining epochs, for a smoke run")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE,
                        help="where the pretrained source model is kept between runs")
    args = parser.parse_args(argv)
    if args.windows < 1:
        parser.error("--windows must be >= 1")
    command = "python -m driftwise.bench.thresholds" + (f" --windows {args.windows}" if args.windows != 3 else "") + (
        f" --seed {args.seed}" if args.seed else "") + (" --quick" if args.quick else "")
    settings = Settings(windows=args.windows, seed=args.seed, quick=args.quick)
    return run(settings, args.out, args.cache_dir, command)


if __name__ == "__main__":
    main()
