"""`driftwise bench collapse`: where should "the served model's confidence collapsed" start?

A candidate the guardrails refuse is usually a drift the model can learn from
later. A label-changing drift (`driftwise.drift.corruptions.CONCEPT_FAMILIES`) is not:
pseudo-labels cannot teach it, and a user should be asked for labels after one
refusal, not three. `driftwise.drift.loop_config.LoopConfig.collapse_confidence` tells the
two apart by the served model's mean confidence relative to its reference mean.

This measures that ratio offline, on development shifts only, for the model the
service serves after a confirmed drift (the BatchNorm interim on the latest 128
inputs, `driftwise.drift.normalize.normalized_copy`) and for the frozen base (served when
the interim is refused). The default is chosen between the highest concept ratio
and the lowest covariate one of the interim. Inversion is the only concept
family, so it is also the only evidence for the concept side: not held out.

Run ``driftwise bench collapse [--seeds 2]``; writes ``bench/results/collapse-confidence.md`` and ``.json``.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any


from driftwise.bench.interim_checks import DOMAINS, source_model
from driftwise.drift import corruptions, sensor_shifts
from driftwise.drift.adapter import predict_proba
from driftwise.drift.loop_config import LoopConfig
from driftwise.drift.normalize import normalized_copy
from driftwise.models.registry import Registry

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
WINDOW, SHIFT_SEED = 128, 7


def families(domain: str) -> tuple[str, ...]:
    """Development families of a domain, then its concept ones (digits only)."""
    if domain == "digits":
        return corruptions.DEVELOPMENT_FAMILIES + corruptions.CONCEPT_FAMILIES
    return sensor_shifts.DEVELOPMENT_FAMILIES


def measure(seeds: int) -> list[dict[str, Any]]:
    """One row per domain, seed and family: base and interim confidence ratios and accuracies."""
    rows = []
    for domain, dataset in DOMAINS:
        for seed in range(seeds):
            with tempfile.TemporaryDirectory() as tmp:
                base, x_pool, y_pool, make = source_model(domain, dataset, seed, Path(tmp))
                expected = float(Registry(Path(tmp)).load(dataset).reference["confidence_mean"][0])
            for family in ("clean",) + families(domain):
                x = x_pool if family == "clean" else make(x_pool, family, SHIFT_SEED)
                row: dict[str, Any] = {"dataset": dataset, "seed": seed, "family": family,
                                       "concept": family in corruptions.CONCEPT_FAMILIES}
                for name, model in (("base", base), ("interim", normalized_copy(base, x[:WINDOW]))):
                    p = predict_proba(model, x[WINDOW:])
                    row[f"{name}_ratio"] = float(p.max(1).mean() / expected)
                    row[f"{name}_accuracy"] = float((p.argmax(1) == y_pool[WINDOW:]).mean())
                rows.append(row)
    return rows


def write(rows: list[dict[str, Any]], out: Path, command: str) -> Path:
    """The table and the separation of concept from covariate ratios, beside the shipped default."""
    covariate = [r["interim_ratio"] for r in rows if not r["concept"] and r["family"] != "clean"]
    concept = [r["interim_ratio"] for r in rows if r["concept"]]
    lines = [
        "# Confidence collapse: served confidence relative to the reference, development shifts",
        "",
        f"Command: `{command}`  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        "Ratio: mean max-probability on the pool after the first 128 events, divided by the reference's "
        "`confidence_mean`. Interim: BatchNorm re-estimated on those 128 events (what the service serves "
        "once a drift is confirmed); base: the frozen model.",
        "",
        f"Interim ratio, covariate shifts: min {min(covariate):.2f}; concept (inversion, not held out): "
        f"max {max(concept):.2f}. Shipped `collapse_confidence` = {LoopConfig().collapse_confidence}.",
        "",
        "| dataset | seed | family | base ratio | interim ratio | base accuracy | interim accuracy |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {r['dataset']} | {r['seed']} | {r['family']}{' (concept)' if r['concept'] else ''} | "
              f"{r['base_ratio']:.2f} | {r['interim_ratio']:.2f} | {r['base_accuracy']:.3f} | "
              f"{r['interim_accuracy']:.3f} |" for r in rows]
    out.mkdir(parents=True, exist_ok=True)
    (out / "collapse-confidence.json").write_text(json.dumps({"command": command, "rows": rows}, indent=1))
    path = out / "collapse-confidence.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def run(seeds: int, out: Path, command: str) -> Path:
    return write(measure(seeds), out, command)


if __name__ == "__main__":
    print(run(2, RESULTS, "python -m driftwise.bench.collapse_confidence"))
