"""`driftwise bench ssl`: does self-supervised pretraining pay off when labels are scarce?

On scikit-learn's digits (8x8) with a fixed stratified train/test split, for
every label fraction and seed: a supervised-only baseline (the same network,
heads, augmentations and schedule, from a random encoder) against each SSL
objective with a linear probe and with fine-tuning. Reported: clean test
accuracy, ECE after temperature scaling, wall time. Each (objective, seed) is
pretrained once, on all training inputs without labels, and reused for every
fraction and head; that is exactly what `driftwise.models.pipeline.fit_model` does per
fraction, since pretraining never sees labels.

Hyperparameters were chosen with ``--holdout validation`` (a split of the
training set); the test set is only used for the table that gets committed.

Writes ``<out_dir>/ssl.md`` (tables, mean ± std over seeds, the bars, the
command) and ``ssl.json`` (every run). ``python -m driftwise.bench.ssl --help``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from driftwise.models.calibration import expected_calibration_error
from driftwise.models.config import ModelConfig
from driftwise.models.digits import load_digits_images, split_label_fraction
from driftwise.models.pipeline import fit_classifier, pretrain

FRACTIONS = (0.02, 0.05, 0.1, 1.0)
SEEDS = (0, 1, 2)
OBJECTIVES = ("ae", "simclr", "byol", "simsiam", "jepa")
HEADS = ("linear", "finetune")
PRETRAIN_EPOCHS = 100
HEAD_STEPS = 300
SUPERVISED_HEAD_STEPS = 600
OBJECTIVE_HPARAMS: dict[str, dict[str, Any]] = {"simclr": {"temperature": 0.5}, "jepa": {"mask_ratio": 0.25}}
SUPERVISED = "supervised"
TUNING_NOTES = """\
How the settings were chosen (validation split: 25% of the training set, seeds 0-2, never the test set):

- SimCLR temperature 0.5 over 0.2 (2% labels, linear probe: 0.863 vs 0.781).
- Pretraining length: 150 epochs on the 1,010-image validation-train set beat 60 (SimCLR 2% linear 0.890 vs
  0.863, BYOL 0.831 vs 0.780 on seed 0); 100 epochs on the 1,347-image training set is the same number of steps (500).
- Supervised-only fine-tuning steps: 600 over 300 and 150 (2%: 0.732 vs 0.720 vs 0.703), so the baseline gets
  its best schedule; SSL fine-tuning was flat between 150 and 300 steps (2%: 0.852 vs 0.846; 10%: 0.957 vs 0.960).
- Temperature scaling with a gaussian prior on log T (std 0.5): the calibration split is tiny at low label
  fractions and a loose prior fits T to a handful of examples (10% labels, seed 0, linear: validation ECE 0.050
  with std 0.5, 0.060 with 1, 0.068 with 2, 0.027 with 0.25; at 100%: 0.010 with 0.5, 0.017 with 0.25).
- JEPA mask ratio 0.25 over 0.4 (seed 0, linear: 2% 0.656 vs 0.632, 10% 0.890 vs 0.852); BYOL base momentum
  0.99 kept (0.97 tied: 2% 0.777 vs 0.780, 10% 0.938 vs 0.935, seed 0, 60 epochs).

Caveat: the validation-train set has 1,010 images, so "2%" there meant 2 labels per class (20) against 3 (30)
on the real training set; that is why supervised-only looked weaker on validation (0.73) than on test (0.86).
The choices above compare settings at equal label counts, so they stand, but the size of the 2% margin was
not known before the test run."""


def digits_split(holdout: str = "test") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, y_train, X_eval, y_eval): the fixed 75/25 test split, or a validation split inside its train part."""
    if holdout not in ("test", "validation"):
        raise ValueError(f"holdout must be 'test' or 'validation', got {holdout!r}")
    X, y = load_digits_images()
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
    if holdout == "validation":
        X_tr, X_te, y_tr, y_te = train_test_split(X_tr, y_tr, test_size=0.25, stratify=y_tr, random_state=1)
    return X_tr, y_tr, X_te, y_te


def _evaluate(model: torch.nn.Module, X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    with torch.inference_mode():
        probs = model(torch.as_tensor(X)).softmax(1)
    accuracy = float((probs.argmax(1).numpy() == y).mean())
    return accuracy, expected_calibration_error(probs, torch.as_tensor(y))


def run_job(job: dict[str, Any]) -> list[dict[str, Any]]:
    """One (objective or supervised, seed): pretrain once, then every fraction x head. Runs in a worker."""
    torch.set_num_threads(job["threads"])
    X_tr, y_tr, X_ev, y_ev = digits_split(job["holdout"])
    config = ModelConfig(encoder=job["encoder"], input_shape=X_tr.shape[1:], num_classes=10)
    objective, seed = job["objective"], job["seed"]
    state, pretrain_s = None, 0.0
    if objective != SUPERVISED:
        state, report = pretrain(
            X_tr, config, objective, epochs=job["epochs"], device=job["device"], seed=seed,
            objective_kwargs=OBJECTIVE_HPARAMS.get(objective),
        )
        pretrain_s = report.wall_time_s
    heads = ("finetune",) if objective == SUPERVISED else HEADS
    steps = job["supervised_head_steps"] if objective == SUPERVISED else job["head_steps"]
    rows = []
    for fraction in job["fractions"]:
        y_partial = split_label_fraction(y_tr, fraction, seed=seed)
        for head in heads:
            start = time.perf_counter()
            model, metrics, _ = fit_classifier(
                X_tr, y_partial, config, encoder_state=state, head=head, device=job["device"], seed=seed,
                steps=steps,
            )
            accuracy, ece = _evaluate(model, X_ev, y_ev)
            rows.append(
                dict(objective=objective, head=head, fraction=fraction, seed=seed, n_labels=metrics["n_labeled"],
                     accuracy=accuracy, ece=ece, temperature=metrics["temperature"], pretrain_s=pretrain_s,
                     head_s=time.perf_counter() - start)
            )
    return rows


def _mean_std(values: Sequence[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def summarize(rows: list[dict[str, Any]], fractions: Sequence[float]) -> list[dict[str, Any]]:
    """One entry per (objective, head): per-fraction accuracy/ECE lists, and mean times."""
    table = []
    for objective in dict.fromkeys(r["objective"] for r in rows):
        for head in dict.fromkeys(r["head"] for r in rows if r["objective"] == objective):
            mine = [r for r in rows if r["objective"] == objective and r["head"] == head]
            table.append(
                dict(objective=objective, head=head,
                     accuracy={f: [r["accuracy"] for r in mine if r["fraction"] == f] for f in fractions},
                     ece={f: [r["ece"] for r in mine if r["fraction"] == f] for f in fractions},
                     pretrain_s=float(np.mean([r["pretrain_s"] for r in mine])),
                     head_s=float(np.mean([r["head_s"] for r in mine])))
            )
    return table


def bar_verdicts(table: list[dict[str, Any]], fractions: Sequence[float]) -> list[str]:
    """The issue's bars, checked on these numbers (means over seeds), one line each."""
    lines = []
    ssl = [t for t in table if t["objective"] != SUPERVISED]
    supervised = next((t for t in table if t["objective"] == SUPERVISED), None)
    mean = lambda t, key, f: float(np.mean(t[key][f]))  # noqa: E731
    if 0.1 in fractions and ssl:
        best = max(ssl, key=lambda t: mean(t, "accuracy", 0.1))
        ok = mean(best, "accuracy", 0.1) >= 0.95
        lines.append(f"- 10% labels, best SSL model >= 0.95 accuracy: **{'met' if ok else 'NOT met'}** "
                     f"({best['objective']}/{best['head']}: {mean(best, 'accuracy', 0.1):.3f})")
    if 0.02 in fractions and ssl and supervised:
        base = mean(supervised, "accuracy", 0.02)
        best = max(ssl, key=lambda t: mean(t, "accuracy", 0.02))
        gain = mean(best, "accuracy", 0.02) - base
        lines.append(f"- 2% labels, best SSL beats supervised-only by >= 5 points: **{'met' if gain >= 0.05 else 'NOT met'}** "
                     f"({best['objective']}/{best['head']} {mean(best, 'accuracy', 0.02):.3f} vs supervised {base:.3f}: "
                     f"{100 * gain:+.1f} points)")
        for obj in dict.fromkeys(t["objective"] for t in ssl):
            top = max((t for t in ssl if t["objective"] == obj), key=lambda t: mean(t, "accuracy", 0.02))
            g = mean(top, "accuracy", 0.02) - base
            if g < 0.05:
                lines.append(f"  - {obj} alone does not: best head {top['head']} {mean(top, 'accuracy', 0.02):.3f} "
                             f"({100 * g:+.1f} points)")
    for f in fractions:
        best = max(table, key=lambda t: mean(t, "accuracy", f))
        ece = mean(best, "ece", f)
        above = [f"{t['objective']}/{t['head']} {mean(t, 'ece', f):.3f}" for t in table if mean(t, "ece", f) > 0.05]
        lines.append(f"- ECE after temperature scaling <= 0.05 at {f:.0%} labels (most accurate model, "
                     f"{best['objective']}/{best['head']}): **{'met' if ece <= 0.05 else 'NOT met'}** ({ece:.3f}); "
                     + (f"above 0.05: {', '.join(above)}" if above else "every model meets it"))
    return lines


def render_markdown(table: list[dict[str, Any]], fractions: Sequence[float], settings: dict[str, Any],
                    command: str, n_labels: dict[float, int], wall_s: float, threads: int) -> str:
    heading = " | ".join(f"{f:.0%} ({n_labels[f]} labels)" for f in fractions)
    rule = "|".join(["---"] * (len(fractions) + 2))
    out = ["# SSL benchmark: digits (8x8), CNN encoder", "", f"Made by: `{command}`", "",
           f"Settings: {json.dumps(settings)}; total wall time {wall_s / 60:.1f} min on {platform.machine()} "
           f"({threads} torch thread(s) per worker).", "",
           f"Evaluated on the fixed held-out **{settings['holdout']}** split ({settings['n_eval']} images); "
           f"mean ± std over seeds {settings['seeds']} (seed = which labels are kept + initialisation). "
           "Hyperparameters were chosen on a validation split carved from the training set, never on the test set. "
           "Of the labels, 20% (at least one per class kept for training) are held out to fit the temperature. "
           f"Fine-tuning runs {settings['head_steps']} steps; supervised-only, trained from scratch, gets "
           f"{settings['supervised_head_steps']} (its best on validation), with the same augmentations, LP-FT head "
           "and calibration.", ""]
    for key, title in (("accuracy", f"Clean {settings['holdout']} accuracy"),
                       ("ece", "ECE after temperature scaling (15 bins)")):
        out += [f"## {title}", "", f"| objective | head | {heading} |", f"|{rule}|"]
        for t in table:
            out.append(f"| {t['objective']} | {t['head']} | " + " | ".join(_mean_std(t[key][f]) for f in fractions) + " |")
        out.append("")
    out += ["## Wall time (mean per run, seconds)", "", "| objective | head | pretrain (once per seed) | head + calibration |",
            "|---|---|---|---|"]
    out += [f"| {t['objective']} | {t['head']} | {t['pretrain_s']:.1f} | {t['head_s']:.1f} |" for t in table]
    out += ["", "## Bars (issue 2)", "", *bar_verdicts(table, fractions), "", "## Tuning", "", TUNING_NOTES]
    return "\n".join(out)


def write_results(rows: list[dict[str, Any]], settings: dict[str, Any], command: str, wall_s: float, threads: int,
                  out_dir: str | Path, name: str) -> list[dict[str, Any]]:
    """Summarise ``rows`` into ``<out_dir>/<name>.md`` and ``.json``; returns the summary table."""
    fractions = settings["fractions"]
    table = summarize(rows, fractions)
    _, y_tr, _, _ = digits_split(settings["holdout"])
    n_labels = {f: int((split_label_fraction(y_tr, f, seed=0) >= 0).sum()) for f in fractions}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.md").write_text(render_markdown(table, fractions, settings, command, n_labels, wall_s, threads))
    (out / f"{name}.json").write_text(
        json.dumps(dict(command=command, settings=settings, wall_s=wall_s, threads=threads, runs=rows), indent=1)
    )
    return table


def run_ssl_bench(
    fractions: Sequence[float] = FRACTIONS,
    seeds: Sequence[int] = SEEDS,
    objectives: Sequence[str] = OBJECTIVES,
    encoder: str = "cnn",
    epochs: int = PRETRAIN_EPOCHS,
    head_steps: int = HEAD_STEPS,
    supervised_head_steps: int = SUPERVISED_HEAD_STEPS,
    holdout: str = "test",
    device: str = "auto",
    workers: int = 2,
    out_dir: str | Path = "bench/results",
    name: str = "ssl",
    command: str = "python -m driftwise.bench.ssl",
) -> list[dict[str, Any]]:
    """Run everything, write ``<out_dir>/<name>.md`` and ``.json``, return the summary table."""
    if min(workers, epochs, head_steps, supervised_head_steps) < 1:
        raise ValueError("workers, epochs, head_steps and supervised_head_steps must be >= 1")
    start = time.perf_counter()
    threads = 1 if workers > 1 else torch.get_num_threads()
    common = dict(holdout=holdout, encoder=encoder, epochs=epochs, head_steps=head_steps,
                  supervised_head_steps=supervised_head_steps, device=device, fractions=list(fractions), threads=threads)
    jobs = [dict(common, objective=o, seed=s) for o in (SUPERVISED, *objectives) for s in seeds]
    rows: list[dict[str, Any]] = []
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        for job, result in zip(jobs, pool.map(run_job, jobs)):
            rows.extend(result)
            print(f"[bench ssl] {job['objective']} seed {job['seed']}: "
                  + ", ".join(f"{r['head']}@{r['fraction']:.0%}={r['accuracy']:.3f}" for r in result), file=sys.stderr, flush=True)
    wall_s = time.perf_counter() - start
    X_tr, _, X_ev, _ = digits_split(holdout)
    settings = dict(common, objectives=list(objectives), seeds=list(seeds), workers=workers, n_train=len(X_tr),
                    n_eval=len(X_ev), objective_hparams=OBJECTIVE_HPARAMS)
    settings.pop("threads")
    return write_results(rows, settings, command, wall_s, threads, out_dir, name)


def main(quick: bool = False, argv: Sequence[str] | None = None, command: str | None = None) -> list[dict[str, Any]]:
    """Entry point for `driftwise bench ssl` and ``python -m driftwise.bench.ssl``; ``quick`` is a one-minute smoke run.

    ``command`` is what gets written into the results as the way to remake them
    (default: the equivalent ``python -m driftwise.bench.ssl ...`` line).
    """
    parser = argparse.ArgumentParser(prog="python -m driftwise.bench.ssl", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke run, written to ssl_quick.md")
    parser.add_argument("--holdout", choices=["test", "validation"], default="test")
    parser.add_argument("--epochs", type=int, default=PRETRAIN_EPOCHS)
    parser.add_argument("--head-steps", type=int, default=HEAD_STEPS)
    parser.add_argument("--supervised-head-steps", type=int, default=SUPERVISED_HEAD_STEPS)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out-dir", default="bench/results")
    args = parser.parse_args([] if argv is None else argv)
    quick = quick or args.quick
    if command is None:
        flags = list(argv or []) + (["--quick"] if quick and not args.quick else [])
        command = " ".join(["python -m driftwise.bench.ssl", *flags])
    shared = dict(holdout=args.holdout, device=args.device, workers=args.workers, out_dir=args.out_dir, command=command)
    if quick:
        return run_ssl_bench(fractions=(0.02, 0.1), seeds=(0,), objectives=("simclr",), epochs=3, head_steps=20,
                             supervised_head_steps=20, name="ssl_quick", **shared)
    return run_ssl_bench(epochs=args.epochs, head_steps=args.head_steps, supervised_head_steps=args.supervised_head_steps,
                         name="ssl" if args.holdout == "test" else "ssl_validation", **shared)


if __name__ == "__main__":
    main(argv=sys.argv[1:])
