"""`python -m driftwise.bench.interim_window`: which inputs should an interim be normalised on, right after a domain change?

A drift is confirmed some tens of events after it began, and the interim is made
soon after, on the latest inputs: some of them are still the old domain's (the
source's, or after a fallback the previous drift's). This scores, offline on
development shifts only (severity 3, the CLI-default models of digits,
ImageSegments and Phishing, `driftwise.bench.interim_checks.source_model`), the interim's
gain on the rest of the pool when its window is the new domain's latest 32, 64 or
128 inputs alone, or 128 of which a third, two thirds or 85% are the old domain's
(clean, or another development family); and each 128-window again after
`driftwise.drift.change_point.latest_domain` cut it to the newest domain it found in the
base's embeddings ("trimmed"; on the windows with no change, a cut is a false one).

Writes ``bench/results/interim-window.md`` and ``.json``.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from driftwise.bench.bn_prior import DOMAINS
from driftwise.bench.interim_checks import RESULTS, development_models
from driftwise.drift import corruptions
from driftwise.drift.adapter import embed, predict_proba
from driftwise.drift.change_point import latest_domain
from driftwise.drift.normalize import normalized_copy

SEVERITY, SHIFT_SEEDS, MODEL_SEEDS = 3, 3, 2
PURE = (32, 64, 128)
MIXED = ((128, 1 / 3), (128, 2 / 3), (128, 0.85))


def windows() -> list[str]:
    mixed = [f"128, {share:.0%} old" for _, share in MIXED]
    return ([f"{n} new" for n in PURE] + ["128 new, trimmed"]
            + [name for m in mixed for name in (m, f"{m}, trimmed")])


def main(out: Path = RESULTS / "interim-window.md") -> None:
    console = Console()
    torch.manual_seed(0)
    start, rows = time.time(), []
    for m in development_models(DOMAINS, MODEL_SEEDS, console):
        base, x_pool, y_pool, families = m.model, m.x_pool, m.y_pool, m.families
        for i, family in enumerate(families):
            for old_name in (corruptions.CLEAN, families[(i + 1) % len(families)]):
                for s in range(SHIFT_SEEDS):
                    rng = np.random.default_rng(1000 * m.seed + s)
                    new = m.shift(x_pool, family, 100 * s, SEVERITY)
                    old = m.shift(x_pool, old_name, 100 * s + 1, SEVERITY)
                    idx = rng.permutation(len(y_pool))
                    win, rest = idx[:128], idx[128:]
                    acc_base = float((predict_proba(base, new[rest]).argmax(1) == y_pool[rest]).mean())
                    gains = {}
                    for n in PURE:
                        gains[f"{n} new"] = _gain(base, new[win[-n:]], new[rest], y_pool[rest], acc_base)
                    cut = latest_domain(embed(base, new[win])).start
                    gains["128 new, trimmed"] = _gain(base, new[win[cut:]], new[rest], y_pool[rest], acc_base)
                    starts = {"128 new": cut}
                    for n, share in MIXED:
                        k = int(round(share * n))
                        x = np.concatenate([old[win[:k]], new[win[k:n]]])
                        gains[f"128, {share:.0%} old"] = _gain(base, x, new[rest], y_pool[rest], acc_base)
                        cut = latest_domain(embed(base, x)).start
                        gains[f"128, {share:.0%} old, trimmed"] = _gain(base, x[cut:], new[rest], y_pool[rest], acc_base)
                        starts[f"128, {share:.0%} old"] = cut
                    rows.append({"dataset": m.dataset, "seed": m.seed, "family": family, "old": old_name,
                                 "shift_seed": s, "base_accuracy": acc_base, "gains": gains, "starts": starts})
    write(rows, out, time.time() - start)


def _gain(base, window: np.ndarray, x: np.ndarray, y: np.ndarray, acc_base: float) -> float:  # noqa: ANN001
    acc = float((predict_proba(normalized_copy(base, window), x).argmax(1) == y).mean())
    return 100 * (acc - acc_base)


def write(rows: list[dict], out: Path, wall: float) -> None:
    names = windows()
    lines = ["# Interim window right after a domain change (development shifts only)", "",
             "Command: `python -m driftwise.bench.interim_window`  ",
             f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, wall time {wall:.0f} s  ",
             f"{MODEL_SEEDS} model seeds x {SHIFT_SEEDS} shift seeds per development family at severity {SEVERITY}; "
             "gain in accuracy points of the interim over the base on the rest of the new domain's pool. "
             "\"old\": the share of the window from the domain before (clean, or another development family).", "",
             "| dataset | old domain | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        for old in ("clean", "another family"):
            chosen = [r for r in rows if r["dataset"] == dataset and (r["old"] == "clean") == (old == "clean")]
            lines.append(f"| {dataset} | {old} | " + " | ".join(
                f"{np.mean([r['gains'][n] for r in chosen]):+.2f} (worst {min(r['gains'][n] for r in chosen):+.1f})"
                for n in names) + " |")
    for old in ("clean", "another family"):
        chosen = [r for r in rows if (r["old"] == "clean") == (old == "clean")]
        lines.append(f"| all | {old} | " + " | ".join(
            f"{np.mean([r['gains'][n] for r in chosen]):+.2f} (worst {min(r['gains'][n] for r in chosen):+.1f})"
            for n in names) + " |")
    lines += ["", "Where `latest_domain` cut each 128-window (the newest domain's true start in brackets):", ""]
    for name, true_start in [("128 new", 0)] + [(f"128, {sh:.0%} old", int(round(sh * n))) for n, sh in MIXED]:
        cuts = np.array([r["starts"][name] for r in rows])
        found = cuts[cuts > 0]
        lines.append(f"* {name} ({true_start}): cut in {len(found)} of {len(cuts)}"
                     + (f", median start {np.median(found):.0f} (range {found.min()}-{found.max()})" if len(found) else ""))
    out.write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS / "interim-window.md")
