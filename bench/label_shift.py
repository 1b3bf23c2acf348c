"""`driftwise bench labelshift`: is a new class prior recognised, estimated and corrected, and only then?

Offline, on the CLI-default source models of `driftwise.bench.interim_checks` (digits,
river's ImageSegments and Phishing), per seed:

* **label shifts**: the pool resampled to a skewed prior. Development priors
  (``max_mmd_ratio`` was chosen on these): 80/15/5-style (multi-class) or 90/10
  (binary) with class 0 or 1 the majority. Held-out priors (only reported): the
  last class the majority at 70%, a Dirichlet(0.5) draw, and binary 95/5 and
  30/70.
* **covariate shifts**: the domain's development and held-out families, classes
  in their pool shares: a label shift must not be seen here.

For each, the first 128 events are the window (what the service's NORMALIZE
sees). What the service would serve: the prior-corrected base if
`driftwise.drift.label_shift.explain_by_label_shift` says so, else the BatchNorm interim if
its checks pass, else the frozen base. Scored on the rest of the pool against
the frozen base; the estimated prior against the resampled one.

Run ``driftwise bench labelshift [--seeds 2]``; writes ``bench/results/label-shift.md`` and ``.json``.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from driftwise.bench.interim_checks import DOMAINS, source_model
from driftwise.drift import corruptions, sensor_shifts
from driftwise.drift.adapter import predict_proba
from driftwise.drift.label_shift import LabelShiftConfig, explain_by_label_shift, prior_corrected_copy
from driftwise.drift.normalize import check_interim, normalized_copy
from driftwise.models.registry import Registry

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
WINDOW, SHIFT_SEED = 128, 7


def priors(k: int, rng: np.random.Generator) -> list[tuple[str, str, np.ndarray]]:
    """(name, split, prior) of the label shifts for ``k`` classes."""
    def skew(major: int, share: float, second: float) -> np.ndarray:
        p = np.full(k, (1.0 - share - second) / max(k - 2, 1)) if k > 2 else np.zeros(k)
        p[(major + 1) % k] = second if k > 2 else 1.0 - share
        p[major] = share
        return p / p.sum()

    if k == 2:
        dev = [("90/10 on class 0", skew(0, 0.9, 0.1)), ("90/10 on class 1", skew(1, 0.9, 0.1))]
        held = [("95/5 on class 0", skew(0, 0.95, 0.05)), ("30/70", skew(1, 0.7, 0.3))]
    else:
        dev = [("80/15/5 on class 0", skew(0, 0.8, 0.15)), ("80/15/5 on class 1", skew(1, 0.8, 0.15))]
        held = [(f"70% on class {k - 1}", skew(k - 1, 0.7, 0.1)), ("Dirichlet(0.5)", rng.dirichlet([0.5] * k))]
    return [(n, "dev", p) for n, p in dev] + [(n, "held-out", p) for n, p in held]


def resample(y: np.ndarray, prior: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices into the pool drawn (with replacement) so that the classes follow ``prior``."""
    counts = np.bincount(y, minlength=len(prior)).astype(np.float64)
    w = prior[y] / np.maximum(counts[y], 1.0)
    return rng.choice(len(y), size=len(y), p=w / w.sum())


def served_accuracy(base, x: np.ndarray, y: np.ndarray, anchors_x, anchors_y, cfg: LabelShiftConfig,
                    source_z: np.ndarray | None = None) -> dict[str, Any]:
    """What the service's NORMALIZE would serve for window ``x[:WINDOW]``, scored on the rest."""
    window, rest, y_rest = x[:WINDOW], x[WINDOW:], y[WINDOW:]
    shift = explain_by_label_shift(base, window, anchors_x, anchors_y, cfg, source_z=source_z)
    if shift.explains:
        served, what = prior_corrected_copy(base, shift), "label shift"
    elif shift.inputs_moved:  # a prior's signature, but a class's inputs moved: no interim, the base serves
        served, what = base, "base (inputs moved)"
    else:
        interim = normalized_copy(base, window)
        passed = check_interim(base, interim, window).passed
        served, what = (interim, "interim") if passed else (base, "base")
    acc = lambda m: float((predict_proba(m, rest).argmax(1) == y_rest).mean())  # noqa: E731
    true = np.bincount(y, minlength=len(shift.prior)) / len(y)
    return {"served": what, "explains": shift.explains, "mmd_ratio": shift.mmd_ratio, "class_p": shift.class_p,
            "prior_error": float(np.abs(shift.prior - true).max()), "frozen": acc(base), "accuracy": acc(served),
            "bn_interim": acc(normalized_copy(base, window))}


def measure(seeds: int) -> list[dict[str, Any]]:
    cfg, rows = LabelShiftConfig(), []
    for domain, dataset in DOMAINS:
        for seed in range(seeds):
            with tempfile.TemporaryDirectory() as tmp:
                base, x_pool, y_pool, make = source_model(domain, dataset, seed, Path(tmp))
                loaded = Registry(Path(tmp)).load(dataset)
            ax, ay = loaded.anchors_x, loaded.anchors_y
            source_z = None if loaded.reference is None else loaded.reference.get("embedding_sample")
            rng = np.random.default_rng(seed)
            for name, split, prior in priors(base.config.num_classes, rng):
                idx = resample(y_pool, prior, rng)
                rows.append({"dataset": dataset, "seed": seed, "kind": "label", "shift": name, "split": split,
                             **served_accuracy(base, x_pool[idx], y_pool[idx], ax, ay, cfg, source_z)})
            families = ((corruptions.DEVELOPMENT_FAMILIES, corruptions.HELD_OUT_FAMILIES) if domain == "digits"
                        else (sensor_shifts.DEVELOPMENT_FAMILIES, sensor_shifts.HELD_OUT_FAMILIES))
            for split, names in zip(("dev", "held-out"), families):
                for family in names:
                    x = make(x_pool, family, SHIFT_SEED)
                    rows.append({"dataset": dataset, "seed": seed, "kind": "covariate", "shift": family,
                                 "split": split, **served_accuracy(base, x, y_pool, ax, ay, cfg, source_z)})
    return rows


def summary(rows: list[dict[str, Any]]) -> list[str]:
    """One line per (kind, split): recognised share, served gain over frozen, worst case, prior error."""
    lines = []
    for kind in ("label", "covariate"):
        for split in ("dev", "held-out"):
            r = [x for x in rows if x["kind"] == kind and x["split"] == split]
            if not r:
                continue
            gain = [100 * (x["accuracy"] - x["frozen"]) for x in r]
            line = (f"* {kind} shifts, {split}: recognised as label shift {sum(x['explains'] for x in r)}/{len(r)}; "
                    f"served minus frozen mean {np.mean(gain):+.1f} points, worst {min(gain):+.1f}")
            if kind == "label":
                bn = [100 * (x["bn_interim"] - x["frozen"]) for x in r]
                line += (f"; the BatchNorm interim alone would be mean {np.mean(bn):+.1f}, worst {min(bn):+.1f}; "
                         f"prior error (max over classes) median {np.median([x['prior_error'] for x in r]):.3f}, "
                         f"max {max(x['prior_error'] for x in r):.3f}")
            lines.append(line)
    return lines


def write(rows: list[dict[str, Any]], out: Path, command: str) -> Path:
    lines = [
        "# Label shift: recognised, estimated, corrected (offline, what NORMALIZE would serve)", "",
        f"Command: `{command}`  ", f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  ",
        f"`LabelShiftConfig()` = `{LabelShiftConfig()}`", "",
        "Window: the first 128 events of a shifted pool; scored on the rest. Served: the prior-corrected base when "
        "the drift is recognised as a label shift, else the BatchNorm interim if its checks pass, else the frozen "
        "base; when the MMD ratio says label shift but the per-class test says a class's inputs moved, the base. "
        "Development rows chose `max_mmd_ratio`; held-out rows are only reported. Per-class p: the "
        "Bonferroni-adjusted smallest p-value of the per-class test (`class_conditional_p`), run when the MMD ratio "
        "passes.", "",
        *summary(rows), "",
        "| dataset | seed | kind | shift | split | served | MMD ratio | per-class p | prior error | frozen | served acc "
        "| BN interim |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {r['dataset']} | {r['seed']} | {r['kind']} | {r['shift']} | {r['split']} | {r['served']} | "
              f"{'-' if r['mmd_ratio'] is None else format(r['mmd_ratio'], '.2f')} | "
              f"{'-' if r.get('class_p') is None else format(r['class_p'], '.3f')} | {r['prior_error']:.3f} | "
              f"{r['frozen']:.3f} | {r['accuracy']:.3f} | {r['bn_interim']:.3f} |" for r in rows]
    out.mkdir(parents=True, exist_ok=True)
    (out / "label-shift.json").write_text(json.dumps({"command": command, "rows": rows}, indent=1))
    path = out / "label-shift.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def run(seeds: int, out: Path, command: str) -> Path:
    return write(measure(seeds), out, command)
