"""`driftwise bench interim`: which cheap checks should decide whether the interim model may serve?

The interim (`driftwise.drift.normalize`) is the served model with BatchNorm re-estimated
on the latest 128 inputs. Its checks run on that window alone, without labels.
This scores each set of checks as a classifier, offline, on development shifts
only (digits: `driftwise.drift.corruptions.DEVELOPMENT_FAMILIES`; tabular:
`driftwise.drift.sensor_shifts.DEVELOPMENT_FAMILIES`; held-out families are never looked
at here):

1. per domain and seed, the source model exactly as ``driftwise pretrain`` makes
   it with no flags (digits; river's ImageSegments, Phishing and Waveform drawn 80/15/5, the stream
   bench's splits);
2. per family (and clean) and shift seed, a 128-event window in four orders:
   ``iid`` (random), ``bursts`` (runs of 50 events of one class, the correlated
   setting), ``mixed`` (a third of the window still from the clean domain, as
   when a drift is confirmed a few dozen events in) and ``short`` (48 events, as
   `driftwise.drift.normalize.newest_domain` cuts a window soon after a change);
3. the interim's gain: its accuracy minus the base's on the rest of the pool
   under the same shift (what it would score while serving);
4. per set of checks (`RULES`, each a `driftwise.drift.normalize.NormalizeConfig`, run by
   `driftwise.drift.normalize.check_interim` itself): accepted, false accepts (accepted,
   gain below -1 point), false rejects (refused, gain above +1 point), and the
   mean gain of the decisions (a refused interim gains 0).

Run ``driftwise bench interim [--seeds 2]``; writes ``bench/results/interim-checks.md`` and ``.json``.
"""

from __future__ import annotations

import json
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from rich.console import Console
from rich.progress import Progress

from driftwise.drift import corruptions, sensor_shifts
from driftwise.drift.adapter import predict_proba
from driftwise.drift.normalize import NormalizeConfig, check_interim, normalized_copy
from driftwise.models.classifier import Classifier
from driftwise.models.data import Dataset
from driftwise.models.registry import Registry
from driftwise.service.publishing import PretrainRequest, pretrain_and_publish

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOMAINS = (("digits", "digits"), ("tabular", "segments"), ("tabular", "phishing"), ("tabular", "waveform-skewed"))
ORDERS = ("iid", "bursts", "mixed", "short")
SHORT = 48  # inputs of a window cut to its newest domain a few dozen events after a change
WINDOW, RUN, OLD_SHARE, SHIFT_SEEDS, SEVERITY = 128, 50, 1 / 3, 4, 3
FALSE_ACCEPT, FALSE_REJECT = -1.0, 1.0
"""Points of gain below which an accepted interim is a false accept, above which a refused one is a false reject."""
RULES: dict[str, NormalizeConfig] = {
    "default": NormalizeConfig(),
    "default + confidence gain > 0": NormalizeConfig(min_confidence_gain=0.0),
    "correlation <= 0.1": NormalizeConfig(max_correlation=0.1),
    "correlation <= 0.3": NormalizeConfig(max_correlation=0.3),
    "no checks": NormalizeConfig(max_correlation=1.0, class_shift_z=1e9),
    "default + confidence loss >= 1%": NormalizeConfig(min_confidence_loss=0.01),
    "default + confidence loss >= 2%": NormalizeConfig(min_confidence_loss=0.02),
    "default + confidence loss >= 5%": NormalizeConfig(min_confidence_loss=0.05),
    "default + entropy >= 0.8 of base's or prior's": NormalizeConfig(min_entropy_ratio=0.8),
    "class shift z 2": NormalizeConfig(class_shift_z=2.0),
}
"""Each set of checks scored; "default" is what the loop runs (`NormalizeConfig()`)."""


Shift = Callable[..., np.ndarray]
"""``shift(x, family, seed, severity=SEVERITY)``: ``x`` under a family of the domain ("clean": a copy)."""


def source_model(domain: str, dataset: str, seed: int, registry: Path
                 ) -> tuple[Classifier, np.ndarray, np.ndarray, Shift]:
    """The CLI-default model of a domain, its held-out pool and the domain's `Shift`."""
    from driftwise.bench.stream import tabular_splits
    from driftwise.service.demo import _digits_splits

    if domain == "digits":
        x_src, y_src, x_pool, y_pool = _digits_splits(seed)
        def make(x: np.ndarray, family: str, s: int, severity: int = SEVERITY) -> np.ndarray:
            return corruptions.corrupt(x, family, severity, seed=s)
    else:
        x_src, y_src, x_pool, y_pool = tabular_splits(dataset, seed)
        def make(x: np.ndarray, family: str, s: int, severity: int = SEVERITY) -> np.ndarray:
            return sensor_shifts.shift(x, family, x_src, severity, seed=s)
    pretrain_and_publish(PretrainRequest(dataset=Dataset(x_src, y_src), name=dataset, registry=registry,
                                         objective="simclr", encoder=None, input_shape=None, head="finetune",
                                         epochs=None, device="auto", seed=seed), console=Console(quiet=True))
    return Registry(registry).load(dataset).model.eval(), x_pool, y_pool, make


@dataclass(frozen=True)
class DevelopmentModel:
    """A CLI-default source model, its stream pool, the development families of its domain and its `Shift`."""

    domain: str
    dataset: str
    seed: int
    families: tuple[str, ...]
    model: Classifier
    x_pool: np.ndarray
    y_pool: np.ndarray
    shift: Shift


def development_models(domains: Sequence[tuple[str, str]], seeds: int,
                       console: Console) -> Iterator[DevelopmentModel]:
    """Each domain's source model (`source_model`) for seeds ``0..seeds-1``, on the CPU, with progress shown."""
    with tempfile.TemporaryDirectory() as tmp, Progress(console=console) as progress:
        task = progress.add_task("models", total=len(domains) * seeds)
        for domain, dataset in domains:
            families = corruptions.DEVELOPMENT_FAMILIES if domain == "digits" else sensor_shifts.DEVELOPMENT_FAMILIES
            for seed in range(seeds):
                base, x_pool, y_pool, make = source_model(domain, dataset, seed, Path(tmp) / f"{dataset}-{seed}")
                yield DevelopmentModel(domain, dataset, seed, tuple(families), base.cpu().eval(), x_pool, y_pool, make)
                progress.advance(task)


def window_order(y: np.ndarray, order: str, rng: np.random.Generator) -> np.ndarray:
    """Indices into the pool: the first `WINDOW` are the window, in arrival order."""
    from driftwise.bench.stream import burst_order

    perm = rng.permutation(len(y))
    return perm[burst_order(y[perm], RUN, rng)] if order == "bursts" else perm


def measure_case(base: Classifier, x_clean: np.ndarray, x: np.ndarray, y: np.ndarray, order: str,
                 rng: np.random.Generator, reference: float) -> dict[str, Any]:
    """One window: the interim's gain on the rest of the pool and every rule's decision (``reference``: the base's
    mean confidence on source data, as its reference statistics hold it)."""
    idx = window_order(y, order, rng)
    win = x[idx[:SHORT if order == "short" else WINDOW]].copy()
    if order == "mixed":
        n_old = int(round(OLD_SHARE * WINDOW))
        win[:n_old] = x_clean[idx[:n_old]]
    rest = idx[WINDOW:]
    interim = normalized_copy(base, win)
    acc_base = float((predict_proba(base, x[rest]).argmax(1) == y[rest]).mean())
    acc_interim = float((predict_proba(interim, x[rest]).argmax(1) == y[rest]).mean())
    default = check_interim(base, interim, win, NormalizeConfig(min_confidence_gain=0.0, min_confidence_loss=0.0),
                            reference)
    return {"gain": 100 * (acc_interim - acc_base), "base_accuracy": acc_base,
            "checks": {c.name: float(c.value) for c in default.checks},
            "accepted": {name: check_interim(base, interim, win, cfg, reference).passed
                         for name, cfg in RULES.items()}}


def score(cases: Sequence[dict[str, Any]], rule: str) -> dict[str, float]:
    """A rule's decisions over ``cases`` as a classifier of helpful interims."""
    accepted = [c for c in cases if c["accepted"][rule]]
    refused = [c for c in cases if not c["accepted"][rule]]
    return {"n": len(cases), "accepted": len(accepted),
            "false_accepts": sum(c["gain"] < FALSE_ACCEPT for c in accepted),
            "false_rejects": sum(c["gain"] > FALSE_REJECT for c in refused),
            "mean_decided_gain": float(np.mean([c["gain"] if c["accepted"][rule] else 0.0 for c in cases]))
            if cases else float("nan"),
            "worst_accepted": min((c["gain"] for c in accepted), default=0.0)}


def subsets(cases: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    shifted = [c for c in cases if c["family"] != corruptions.CLEAN]
    return {"shifted, iid": [c for c in shifted if c["order"] == "iid"],
            "shifted, mixed": [c for c in shifted if c["order"] == "mixed"],
            "shifted, bursts": [c for c in shifted if c["order"] == "bursts"],
            f"shifted, {SHORT} iid": [c for c in shifted if c["order"] == "short"],
            "clean, any order": [c for c in cases if c["family"] == corruptions.CLEAN]}


def run(seeds: int, out: Path, command: str, console: Console | None = None) -> Path:
    console = console or Console()
    torch.manual_seed(0)
    start = time.time()
    cases: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, Progress(console=console) as progress:
        task = progress.add_task("domains", total=len(DOMAINS) * seeds)
        for domain, dataset in DOMAINS:
            families = (corruptions.DEVELOPMENT_FAMILIES if domain == "digits" else sensor_shifts.DEVELOPMENT_FAMILIES)
            for seed in range(seeds):
                progress.update(task, description=f"{dataset} seed {seed}")
                base, x_pool, y_pool, make = source_model(domain, dataset, seed, Path(tmp) / f"{dataset}-{seed}")
                rng = np.random.default_rng(seed)
                reference = float(predict_proba(base, x_pool).max(1).mean())
                for family in (corruptions.CLEAN, *families):
                    for s in range(SHIFT_SEEDS):
                        x = x_pool.copy() if family == corruptions.CLEAN else make(x_pool, family, 1000 + s)
                        for order in ORDERS:
                            case = measure_case(base, x_pool, x, y_pool, order, rng, reference)
                            cases.append({"dataset": dataset, "seed": seed, "family": family, "shift_seed": s,
                                          "order": order, **case})
                progress.advance(task)
    table = {rule: {name: score(sub, rule) for name, sub in subsets(cases).items()} for rule in RULES}
    out.mkdir(parents=True, exist_ok=True)
    (out / "interim-checks.json").write_text(json.dumps({"command": command, "table": table, "cases": cases}, indent=1))
    path = out / "interim-checks.md"
    path.write_text(report(table, cases, command, time.time() - start))
    return path


def report(table: dict[str, dict[str, dict[str, float]]], cases: Sequence[dict[str, Any]], command: str,
           wall_s: float) -> str:
    datasets = sorted({(c["dataset"], c["seed"]) for c in cases})
    lines = [
        "# Interim checks, scored as classifiers (development shifts only)", "",
        f"Command: `{command}`  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, torch {torch.__version__}, "
        f"wall time {wall_s:.0f} s  ",
        f"Source models: `driftwise pretrain` defaults on {', '.join(f'{d} seed {s}' for d, s in datasets)}. "
        f"Windows of {WINDOW} events, severity {SEVERITY}, {SHIFT_SEEDS} shift seeds per family; orders: iid, "
        f"bursts (runs of {RUN} of one class), mixed (a third of the window from the clean domain), short (the first "
        f"{SHORT} of an iid window, as `newest_domain` cuts one a few dozen events after a change). Gain: the "
        "interim's accuracy minus the base's on the rest of the pool under the same shift, in points. False accept: "
        f"accepted with gain < {FALSE_ACCEPT:+.0f}; false reject: refused with gain > {FALSE_REJECT:+.0f}.", "",
        "| checks | cases | n | accepted | false accepts | false rejects | mean decided gain | worst accepted |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for rule, subs in table.items():
        for name, s in subs.items():
            lines.append(f"| {rule} | {name} | {s['n']} | {s['accepted']} | {s['false_accepts']} | "
                         f"{s['false_rejects']} | {s['mean_decided_gain']:+.2f} | {s['worst_accepted']:+.1f} |")
    lines += ["", "Gain of the interim by family and order (mean over seeds and shift seeds, points):", "",
              "| dataset | family | iid | mixed | bursts | short |", "|---|---|---|---|---|---|"]
    for dataset in dict.fromkeys(c["dataset"] for c in cases):
        for family in dict.fromkeys(c["family"] for c in cases if c["dataset"] == dataset):
            g = {o: np.mean([c["gain"] for c in cases if c["dataset"] == dataset and c["family"] == family
                             and c["order"] == o]) for o in ORDERS}
            lines.append(f"| {dataset} | {family} | {g['iid']:+.1f} | {g['mixed']:+.1f} | {g['bursts']:+.1f} | {g['short']:+.1f} |")
    return "\n".join(lines) + "\n"
