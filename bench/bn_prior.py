"""`python -m driftwise.bench.bn_prior`: should the interim's BatchNorm statistics keep some of the source's?

The interim (`driftwise.drift.normalize`) replaces every BatchNorm's statistics with those
of the latest 128 inputs. On a strong shift that is most of the gain; on a mild
one the window's sampling noise (and its class mix) may cost more than the shift
did. Schneider et al. (2020, "Improving robustness against common corruptions by
covariate shift adaptation") mix the two, weighting the source like ``N`` samples:
``mean = (N * mean_source + n * mean_window) / (N + n)``, and the same for the
variance. This scores ``N`` offline on development shifts only, at mild, middle
and strong severities (1, 3, 5), on the CLI-default models of digits, ImageSegments
and Phishing (`driftwise.bench.interim_checks.source_model`): the interim's accuracy minus the
base's on the rest of the pool under the same shift.

Writes ``bench/results/bn-prior.md`` and ``.json``.
"""

from __future__ import annotations

import copy
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from driftwise.bench.interim_checks import RESULTS, development_models
from driftwise.drift import corruptions
from driftwise.drift.adapter import predict_proba
from driftwise.drift.normalize import normalized_copy
from driftwise.models.classifier import Classifier

DOMAINS = (("digits", "digits"), ("tabular", "segments"), ("tabular", "phishing"))
PRIORS = (0, 16, 64, 128, 256)
SEVERITIES = (1, 3, 5)
WINDOW, SHIFT_SEEDS, MODEL_SEEDS = 128, 3, 2


def mixed(base: Classifier, interim: Classifier, prior: int, n: int) -> Classifier:
    """``interim`` with each BatchNorm's statistics mixed with ``base``'s, the source weighing ``prior`` samples."""
    out = copy.deepcopy(interim)
    w = prior / (prior + n)
    norms = [m for m in out.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    sources = [m for m in base.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m, s in zip(norms, sources):
        m.running_mean.copy_(w * s.running_mean + (1 - w) * m.running_mean)
        m.running_var.copy_(w * s.running_var + (1 - w) * m.running_var)
    return out.eval()


def main(out: Path = RESULTS / "bn-prior.md") -> None:
    console = Console()
    torch.manual_seed(0)
    start = time.time()
    rows = []
    for m in development_models(DOMAINS, MODEL_SEEDS, console):
        base, x_pool, y_pool = m.model, m.x_pool, m.y_pool
        for family in (corruptions.CLEAN, *m.families):
            for severity in (SEVERITIES if family != corruptions.CLEAN else (3,)):
                for s in range(SHIFT_SEEDS):
                    rng = np.random.default_rng(1000 * m.seed + s)
                    x = m.shift(x_pool, family, 100 * s, severity)
                    idx = rng.permutation(len(y_pool))
                    win, rest = idx[:WINDOW], idx[WINDOW:]
                    acc_base = float((predict_proba(base, x[rest]).argmax(1) == y_pool[rest]).mean())
                    interim = normalized_copy(base, x[win])
                    gains = {}
                    for prior in PRIORS:
                        model = mixed(base, interim, prior, WINDOW) if prior else interim
                        acc = float((predict_proba(model, x[rest]).argmax(1) == y_pool[rest]).mean())
                        gains[prior] = 100 * (acc - acc_base)
                    rows.append({"dataset": m.dataset, "seed": m.seed, "family": family, "severity": severity,
                                 "shift_seed": s, "base_accuracy": acc_base, "gains": gains})
    write(rows, out, time.time() - start)


def write(rows: list[dict], out: Path, wall: float) -> None:
    def table(select, title: str) -> list[str]:
        lines = [f"### {title}", "", "| prior N | " + " | ".join(f"sev {v}" for v in SEVERITIES) + " | all shifted | "
                 "worst case | clean |", "|---|" + "---|" * (len(SEVERITIES) + 3)]
        chosen = [r for r in rows if select(r)]
        for prior in PRIORS:
            cells = []
            for sev in SEVERITIES:
                g = [r["gains"][prior] for r in chosen if r["family"] != "clean" and r["severity"] == sev]
                cells.append(f"{np.mean(g):+.2f}" if g else "")
            shifted = [r["gains"][prior] for r in chosen if r["family"] != "clean"]
            clean = [r["gains"][prior] for r in chosen if r["family"] == "clean"]
            lines.append(f"| {prior} | " + " | ".join(cells) + f" | {np.mean(shifted):+.2f} | {min(shifted):+.1f} | "
                         f"{np.mean(clean):+.2f} |")
        return lines + [""]

    lines = ["# BatchNorm interim: how much of the source's statistics to keep (development shifts only)", "",
             "Command: `python -m driftwise.bench.bn_prior`  ",
             f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, wall time {wall:.0f} s  ",
             f"{MODEL_SEEDS} model seeds x {SHIFT_SEEDS} shift seeds per development family and severity; window "
             f"{WINDOW} iid inputs, gain in accuracy points against the base on the rest of the pool. Prior N: the "
             "source's statistics weigh as N samples against the window's 128 (0: the window's alone, today's "
             "interim).", ""]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        lines += table(lambda r, d=dataset: r["dataset"] == d, dataset)
    lines += table(lambda r: True, "all three")
    out.write_text("\n".join(lines))
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS / "bn-prior.md")
