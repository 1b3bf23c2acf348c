"""How soon does the monitor of a model adapted to one domain see the stream leave it? Offline, development only.

An adapted model serves until its monitor confirms a new drift; on the held-out
stream bench that took 35-90 events a transition, at tens of points under the
frozen model. This measures, per short MMD window (`driftwise.drift.embedding_drift`,
``None``: the 200-event window alone), on development shifts only (digits:
`driftwise.drift.corruptions.DEVELOPMENT_FAMILIES`; tabular:
`driftwise.drift.sensor_shifts.DEVELOPMENT_FAMILIES`):

1. per domain and seed, the source model exactly as ``driftwise pretrain`` makes
   it with no flags (`driftwise.bench.interim_checks.source_model`);
2. per family A (and clean, where the base itself serves), the "adapted" model:
   the base with BatchNorm re-estimated on 128 inputs of A (what the interim and a
   candidate's encoder share), with a reference made on 400 other inputs of A as
   the service makes one (`driftwise.drift.loop.model_reference`, the loop's false-alarm rate;
   the base's at pretraining for clean);
3. false alarms: confirmations of `driftwise.drift.monitor.DriftMonitor` (every detector, as
   served) over 1,500 more inputs of A, in batches of 5;
4. for each other family B, from that point: events until the monitor confirms
   (``latency``; the B segment has 199 events, so 200 means not within it), and the
   events' worth of accuracy the adapted model lost against the base meanwhile.

Run ``python -m driftwise.bench.leave_domain [--seeds 2]``; writes ``bench/results/leave-domain.md`` and ``.json``.
"""

from __future__ import annotations

import copy
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import typer
from rich.console import Console

from driftwise.bench.interim_checks import development_models
from driftwise.drift.adapter import predict_proba
from driftwise.drift.loop import model_reference
from driftwise.drift.loop_config import LoopConfig
from driftwise.drift.monitor import DriftMonitor
from driftwise.drift.normalize import normalized_copy
from driftwise.models.classifier import Classifier

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOMAINS = (("digits", "digits"), ("tabular", "segments"), ("tabular", "phishing"))
SHORT_WINDOWS: tuple[int | None, ...] = (None, 24, 32, 48, 64)
REF_ROWS, NORMALIZE_ROWS, IN_DOMAIN, BATCH, SHIFT_SEEDS = 400, 128, 1500, 5, 2


def _forward(model: Classifier, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.inference_mode():
        logits, z = model.forward_with_embedding(torch.as_tensor(np.asarray(x, dtype=np.float32)))
    return torch.softmax(logits, 1).numpy(), z.numpy()


def _feed(monitor: DriftMonitor, p: np.ndarray, z: np.ndarray, *, stop_at_first: bool) -> list[int]:
    """Indices at which the monitor confirmed (it is reset after each, as the service re-follows)."""
    confirmed = []
    for start in range(0, len(p), BATCH):
        monitor.update(p[start:start + BATCH], z[start:start + BATCH])
        if monitor.newly_confirmed:
            confirmed.append(start + BATCH - 1)
            if stop_at_first:
                break
            monitor.reset()
    return confirmed


def measure(seeds: int = 2, console: Console | None = None) -> list[dict[str, Any]]:
    console = console or Console()
    rows: list[dict[str, Any]] = []
    far = LoopConfig().reference_false_alarm_rate
    for dm in development_models(DOMAINS, seeds, console):
        rng = np.random.default_rng(dm.seed)
        perm = rng.permutation(len(dm.y_pool))
        ref_idx, stream_idx = perm[:REF_ROWS], perm[REF_ROWS:]
        families = ("clean", *dm.families)
        base = dm.model
        for s in range(SHIFT_SEEDS):
            def shifted(idx: np.ndarray, family: str) -> np.ndarray:
                """One domain per family and shift seed: a sensor shift's seed picks its sensors."""
                x = dm.x_pool[idx]
                return x.copy() if family == "clean" else dm.shift(x, family, 100 + s)

            for a in families:
                model = base if a == "clean" else normalized_copy(base, shifted(stream_idx[:NORMALIZE_ROWS], a))
                # in-domain: the stream part replayed, as the stream bench replays its pool
                passes = -(-IN_DOMAIN // len(stream_idx))
                xa = np.concatenate([shifted(stream_idx, a)] * passes)[:IN_DOMAIN]
                pa, za = _forward(model, xa)
                b_idx = stream_idx[-199:]
                segments = {b: shifted(b_idx, b) for b in families if b != a}
                scored = {b: (_forward(model, segments[b]), predict_proba(base, segments[b]).argmax(1))
                          for b in segments}
                for short in SHORT_WINDOWS:
                    stats = {"false_alarm_rate": far} if a != "clean" else {}
                    reference = model_reference(model, shifted(ref_idx, a), short_window=short, **stats)
                    monitor = DriftMonitor(reference, seed=dm.seed)
                    alarms = _feed(monitor, pa, za, stop_at_first=False)
                    monitor.reset()
                    _feed(monitor, pa[-300:], za[-300:], stop_at_first=True)  # a warm window of A before B
                    for b, ((pb, zb), base_pred) in scored.items():
                        m = copy.deepcopy(monitor)
                        hit = _feed(m, pb, zb, stop_at_first=True)
                        latency = hit[0] + 1 if hit else 200
                        y = dm.y_pool[b_idx]
                        lost = float(((base_pred == y).astype(float) - (pb.argmax(1) == y))[:latency].sum())
                        rows.append({"domain": dm.dataset, "seed": dm.seed, "shift_seed": s, "from": a, "to": b,
                                     "short_window": short, "false_alarms": len(alarms), "in_domain": len(pa),
                                     "latency": latency, "lost": lost,
                                     "base_minus_model": float((base_pred == y).mean() - (pb.argmax(1) == y).mean())})
            console.print(f"{dm.dataset} seed {dm.seed} shift seed {s}: done")
    return rows


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for short in SHORT_WINDOWS:
        for domain in sorted({r["domain"] for r in rows}):
            sel = [r for r in rows if r["short_window"] == short and r["domain"] == domain]
            # false alarms: one count per (model, seed, shift seed, from) stream, not per destination
            streams = {(r["seed"], r["shift_seed"], r["from"]): (r["false_alarms"], r["in_domain"]) for r in sel}
            base_streams = [v for k, v in streams.items() if k[2] == "clean"]
            adapted_streams = [v for k, v in streams.items() if k[2] != "clean"]
            costly = [r for r in sel if r["base_minus_model"] > 0.05 and r["from"] != "clean"]
            out.append({
                "short_window": short, "domain": domain,
                "false_alarms_base_per_10k": 1e4 * sum(f for f, _ in base_streams) / max(sum(n for _, n in base_streams), 1),
                "false_alarms_adapted_per_10k": 1e4 * sum(f for f, _ in adapted_streams)
                / max(sum(n for _, n in adapted_streams), 1),
                "median_latency": float(np.median([r["latency"] for r in sel])),
                "median_latency_costly": float(np.median([r["latency"] for r in costly])) if costly else float("nan"),
                "not_within_199": float(np.mean([r["latency"] >= 200 for r in sel])),
                "lost_per_costly_transition": float(np.mean([r["lost"] for r in costly])) if costly else float("nan"),
                "transitions": len(sel), "costly": len(costly),
            })
    return out


def write(rows: list[dict[str, Any]], summary: list[dict[str, Any]], seeds: int, seconds: float,
          out: Path = RESULTS) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "leave-domain.json").write_text(json.dumps({"rows": rows, "summary": summary}, indent=1))
    lines = [
        "# Leaving an adapted domain: how soon the monitor sees it (offline, development shifts only)", "",
        f"Command: `python -m driftwise.bench.leave_domain --seeds {seeds}`  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, wall time {seconds:.0f} s",
        "", (__doc__ or "").split("\n\n", 1)[1].split("Run ``")[0].strip(), "",
        "Costly: transitions where the adapted model is more than 5 points under the base on B (the ones that "
        "hurt while it serves). Lost: events' worth of accuracy under the base before confirmation.", "",
        "| short window | domain | false alarms / 10k, base | false alarms / 10k, adapted | median latency "
        "| median latency, costly | not within 199 | lost per costly transition | transitions (costly) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary:
        lines.append(f"| {r['short_window'] or 'none (200 only)'} | {r['domain']} | {r['false_alarms_base_per_10k']:.1f} "
                     f"| {r['false_alarms_adapted_per_10k']:.1f} | {r['median_latency']:.0f} "
                     f"| {r['median_latency_costly']:.0f} | {r['not_within_199']:.0%} "
                     f"| {r['lost_per_costly_transition']:.1f} | {r['transitions']} ({r['costly']}) |")
    path = out / "leave-domain.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(seeds: int = typer.Option(2, help="source models per domain")) -> None:
    torch.set_num_threads(1)
    start = time.perf_counter()
    rows = measure(seeds)
    summary = summarise(rows)
    print(write(rows, summary, seeds, time.perf_counter() - start))


if __name__ == "__main__":
    typer.run(main)
