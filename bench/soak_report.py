"""Scoring and reporting for `driftwise bench soak` (`driftwise.bench.soak` runs it).

The bar (issue 13): a soak of 30 minutes or 1,000,000 events, whose service still swaps models over its
second half (else it measured a service that no longer adapts); over its second half,
after warm-up, the service's RSS and open file descriptors grow by at most 5%; the
p99 latency of ``POST /predict`` over the last 5 minutes is within 1.5x of the first
5 minutes'; no event is lost (an event sent to Kafka with no prediction on the
predictions topic, or an HTTP request without a 200).

Growth compares the median of the first tenth of the second half's samples with the
median of its last tenth (9 samples each in 30 minutes at 10 s), so one sample taken
while a candidate's weights sit beside the served ones neither makes nor breaks it
(the peak is reported beside it); a steady leak shows at 90% of its size.
A run shorter than 25 minutes compares its first and last fifth instead of 5 minutes,
and the report says so. Kafka's end-to-end latency (from when the event was due to
when its prediction was read back) is reported the same way, not barred.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

GROWTH_LIMIT = 0.05
P99_RATIO_LIMIT = 1.5
P99_WINDOW_S = 300.0
BAR_SECONDS = 1800.0
BAR_EVENTS = 1_000_000


# -- the numbers (pure functions of arrays; times in seconds from the start of the load) ---------------------------
def growth(times: Sequence[float], values: Sequence[float], end: float) -> dict[str, float]:
    """Relative growth of ``values`` over the second half of ``[0, end]``: its last tenth's median over its first's.

    >>> g = growth(range(10), [100, 200, 100, 100, 100, 100, 101, 102, 103, 104], end=9)
    >>> g["from"], g["to"], round(g["growth"], 3), g["peak"]
    (100.0, 104.0, 0.04, 104.0)
    """
    t, v = np.asarray(times, dtype=float), np.asarray(values, dtype=float)
    half = v[(t >= end / 2) & (t <= end)]
    if len(half) < 2:
        return {"from": float("nan"), "to": float("nan"), "growth": float("nan"), "peak": float("nan"), "samples": 0}
    k = max(1, len(half) // 10)
    start, stop = float(np.median(half[:k])), float(np.median(half[-k:]))
    return {"from": start, "to": stop, "growth": (stop - start) / start if start else float("inf"),
            "peak": float(half.max()), "samples": int(len(half))}


def p99_ms(latency_s: np.ndarray) -> float:
    """The 99th percentile in milliseconds of the finite latencies (errors are NaN); NaN when there are none."""
    ok = np.asarray(latency_s, dtype=float)
    ok = ok[np.isfinite(ok)]
    return float(1000.0 * np.percentile(ok, 99)) if len(ok) else float("nan")


def edge_window_s(duration: float) -> float:
    """5 minutes, or a fifth of a run shorter than 25 minutes.

    >>> edge_window_s(1800), edge_window_s(60)
    (300.0, 12.0)
    """
    return min(P99_WINDOW_S, duration / 5)


def edge_p99(due: np.ndarray, latency: np.ndarray, duration: float) -> dict[str, float]:
    """p99 of what was due in the first and in the last `edge_window_s` of the load, and last over first.

    >>> due = np.arange(100.0)
    >>> lat = np.where(due < 50, 0.010, 0.014)
    >>> r = edge_p99(due, lat, 100.0)
    >>> r["window_s"], round(r["first_ms"], 1), round(r["last_ms"], 1), round(r["ratio"], 2)
    (20.0, 10.0, 14.0, 1.4)
    """
    window = edge_window_s(duration)
    due = np.asarray(due, dtype=float)
    first, last = p99_ms(latency[due < window]), p99_ms(latency[due >= duration - window])
    return {"window_s": window, "first_ms": first, "last_ms": last, "ratio": last / first if first else float("nan")}


def intervals(edges: Sequence[float], due: np.ndarray, latency: np.ndarray) -> list[dict[str, float]]:
    """Per interval ``[edges[i], edges[i + 1])`` of due times: requests, errors, p50 and p99 in ms.

    >>> rows = intervals([0, 10, 20], np.array([1.0, 2.0, 15.0]), np.array([0.002, np.nan, 0.004]))
    >>> [(r["n"], r["errors"], round(r["p99_ms"], 1)) for r in rows]
    [(2, 1, 2.0), (1, 0, 4.0)]
    """
    rows = []
    for start, stop in zip(edges[:-1], edges[1:]):
        inside = (due >= start) & (due < stop)
        lat = latency[inside]
        ok = lat[np.isfinite(lat)]
        rows.append({"start": float(start), "stop": float(stop), "n": int(inside.sum()),
                     "errors": int((~np.isfinite(lat)).sum()),
                     "p50_ms": float(1000 * np.median(ok)) if len(ok) else float("nan"), "p99_ms": p99_ms(lat)})
    return rows


def bars(rss: Mapping[str, float], fds: Mapping[str, float], p99: Mapping[str, float], lost: int,
         seconds: float, events: int, late_swaps: int) -> dict[str, dict[str, Any]]:
    """Each bar with what was measured and whether it is met (NaN is never met).

    ``late_swaps``: model swaps over the second half. A service that stopped adapting publishes, loads and
    swaps nothing, so its memory and latency say nothing of one that adapts: the run does not count (a soak
    whose loop went quiet after 3 minutes met every other bar).
    """
    return {
        "adapting": {"swaps": late_swaps, "limit": 1, "met": late_swaps >= 1},
        "length": {"seconds": seconds, "events": events,
                   "met": bool(seconds >= BAR_SECONDS * 0.999 or events >= BAR_EVENTS)},
        "rss": {**rss, "limit": GROWTH_LIMIT, "met": bool(rss["growth"] <= GROWTH_LIMIT)},
        "fds": {**fds, "limit": GROWTH_LIMIT, "met": bool(fds["growth"] <= GROWTH_LIMIT)},
        "p99": {**p99, "limit": P99_RATIO_LIMIT, "met": bool(p99["ratio"] <= P99_RATIO_LIMIT)},
        "lost": {"events": lost, "limit": 0, "met": lost == 0},
    }


def summarize(*, samples: list[dict[str, Any]], seconds: float, sample_seconds: float,
              http_due: np.ndarray, http_latency: np.ndarray, http_sent: int, http_errors: Mapping[str, int],
              kafka_due: np.ndarray, kafka_arrived: np.ndarray, kafka_sent: int, kafka_acked: int,
              duplicates: int, swap_times: Sequence[float]) -> dict[str, Any]:
    """The bars, the load's counts and the per-interval latencies, from the run's raw arrays (times relative to the
    start of the load; ``http_due``/``kafka_due`` NaN for what was never sent, ``kafka_arrived`` NaN for no
    prediction; ``swap_times`` when the served version changed)."""
    sent = np.isfinite(kafka_due)
    missing = int((sent & ~np.isfinite(kafka_arrived)).sum())
    kafka_latency = np.where(sent, kafka_arrived - kafka_due, np.nan)
    http_failed = int(sum(http_errors.values()))
    times = [s["t"] for s in samples]
    edges = list(np.arange(0.0, seconds, sample_seconds)) + [seconds]
    http_rows = intervals(edges, http_due, http_latency)
    kafka_rows = intervals(edges, kafka_due, kafka_latency)
    return {
        "load": {"seconds": seconds, "kafka_sent": kafka_sent, "kafka_acked": kafka_acked,
                 "kafka_unacked": kafka_sent - kafka_acked, "kafka_missing": missing, "kafka_duplicates": duplicates,
                 "http_sent": http_sent, "http_ok": http_sent - http_failed, "http_errors": dict(http_errors)},
        "intervals": [{"start": h["start"], "stop": h["stop"], "http_n": h["n"], "http_p50_ms": h["p50_ms"],
                       "http_p99_ms": h["p99_ms"], "kafka_n": k["n"], "kafka_p50_ms": k["p50_ms"],
                       "kafka_p99_ms": k["p99_ms"]} for h, k in zip(http_rows, kafka_rows)],
        "kafka_edges": edge_p99(kafka_due, kafka_latency, seconds),
        "bars": bars(growth(times, [s["rss_mb"] for s in samples], seconds),
                     growth(times, [s["fds"] for s in samples], seconds),
                     edge_p99(http_due, http_latency, seconds), missing + http_failed, seconds, kafka_sent,
                     sum(1 for t in swap_times if t >= seconds / 2)),
    }


# -- the report ------------------------------------------------------------------------------------------------------
def _met(bar: Mapping[str, Any]) -> str:
    return "**met**" if bar["met"] else "**NOT met**"


def bar_rows(b: Mapping[str, Any], load: Mapping[str, Any]) -> list[str]:
    """The bars as a markdown table, one row each."""
    window = b["p99"]["window_s"]
    edge = "5 minutes" if window >= P99_WINDOW_S else f"fifth ({window:.0f} s)"
    errors = ", ".join(f"{k} {v}" for k, v in load["http_errors"].items()) or "none"
    return [
        "| bar | measured | limit | |", "|---|---|---|---|",
        f"| length | {b['length']['seconds'] / 60:.1f} min, {b['length']['events']:,} events | 30 min or "
        f"{BAR_EVENTS:,} events | {_met(b['length'])} |",
        *(f"| {label} growth over the second half | {b[k]['growth']:+.1%} ({b[k]['from']:.{p}f} -> "
          f"{b[k]['to']:.{p}f}{unit}, peak {b[k]['peak']:.{p}f}) | <= {GROWTH_LIMIT:.0%} | {_met(b[k])} |"
          for k, label, unit, p in (("rss", "RSS", " MB", 1), ("fds", "open file descriptors", "", 0))),
        f"| POST /predict p99, last {edge} / first | {b['p99']['ratio']:.2f}x ({b['p99']['first_ms']:.1f} -> "
        f"{b['p99']['last_ms']:.1f} ms) | <= {P99_RATIO_LIMIT}x | {_met(b['p99'])} |",
        f"| model swaps over the second half (the loop still acting) | {b['adapting']['swaps']} | >= 1 | "
        f"{_met(b['adapting'])} |",
        f"| events lost | {b['lost']['events']} ({load['kafka_missing']} of {load['kafka_sent']:,} Kafka events "
        f"without a prediction; {load['http_sent'] - load['http_ok']} of {load['http_sent']:,} HTTP requests "
        f"failed: {errors}) | 0 | {_met(b['lost'])} |",
    ]


def verdict(b: Mapping[str, Any]) -> str:
    """One plain sentence: every bar met, or which are not."""
    names = {"adapting": "the loop still acting", "length": "length", "rss": "RSS", "fds": "file descriptors",
             "p99": "p99 latency", "lost": "no loss"}
    missed = [names[k] for k, bar in b.items() if not bar["met"]]
    short = "" if b["p99"]["window_s"] >= P99_WINDOW_S else (
        f" This run was shorter than 25 minutes, so its p99 windows are its first and last fifth "
        f"({b['p99']['window_s']:.0f} s each), not 5 minutes.")
    return ("**Every bar is met.**" if not missed else f"**Not met: {', '.join(missed)}.**") + short


def _nan(x: float, fmt: str = ".1f") -> str:
    return "-" if x is None or not np.isfinite(x) else format(x, fmt)


def timeline(results: Mapping[str, Any], rows: int = 30) -> list[str]:
    """About ``rows`` samples, evenly spread, as a table, each with the latency of the interval that ends at it."""
    sample_s, seconds = results["config"]["sample_seconds"], results["load"]["seconds"]
    every = max(sample_s, seconds / rows)
    lines = ["| time | RSS MB | +children MB | fds | threads | CPU s | registry MB | versions | events sent | "
             "predicted | HTTP p50 ms | HTTP p99 ms | Kafka p99 ms |", "|" + "---:|" * 13]
    next_at = 0.0
    for s in results["samples"]:
        if s["t"] < next_at and s is not results["samples"][-1]:
            continue
        next_at = s["t"] + every - sample_s / 2  # samples come a few ms late; none is skipped for that
        ended = [r for r in results["intervals"] if r["stop"] <= s["t"] + sample_s / 2]
        i = ended[-1] if ended and ended[-1]["stop"] > s["t"] - sample_s / 2 else {}
        lines.append(f"| {int(s['t'] // 60)}:{int(s['t'] % 60):02d} | {s['rss_mb']:.1f} | "
                     f"{s['tree_rss_mb'] - s['rss_mb']:.1f} | {s['fds']} | {s['threads']} | {s['cpu_s']:.0f} | "
                     f"{s['registry_mb']:.2f} | {s['versions']} | "
                     f"{s['events_sent']:,} | {s['events_predicted']:,} | {_nan(i.get('http_p50_ms', np.nan))} | "
                     f"{_nan(i.get('http_p99_ms', np.nan))} | {_nan(i.get('kafka_p99_ms', np.nan))} |")
    return lines


def registry_lines(reg: Mapping[str, Any], samples: Sequence[Mapping[str, Any]]) -> list[str]:
    """What was published, kept and pruned, and whether what was served was always on disk."""
    lineage = " -> ".join(f"v{v}" for v in reversed(reg["lineage"]))
    gone = [s for s in samples if not s.get("served_on_disk", True)]
    return [
        f"Published up to v{reg['published']}; {reg['kept']} versions on disk at the end ({reg['mb']:.2f} MB), "
        f"{reg['pruned']} pruned by `registry_keep` = {reg['keep']} (the default). By status and kind: "
        + (", ".join(f"{k} {v}" for k, v in reg["by_kind"].items()) or "none") + ".",
        f"Served at the end: v{reg['current']}; its lineage ({lineage}) "
        + ("is all on disk." if reg["lineage_present"] else "is **not** all on disk.")
        + (f" The version serving the stream was on disk at every one of the {len(samples)} samples." if not gone else
           f" The version serving the stream was **missing from disk** at {len(gone)} of {len(samples)} samples "
           f"(first at {gone[0]['t']:.0f} s: v{gone[0]['served']})."),
    ]


def _plot(results: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s, b = results["samples"], results["bars"]
    t = np.array([x["t"] for x in s]) / 60
    end = results["load"]["seconds"] / 60
    fig, axes = plt.subplots(5, 1, figsize=(11, 12), sharex=True)
    panels = [("service RSS (MB)", "rss_mb"), ("open file descriptors", "fds"), ("threads", "threads"),
              ("registry (MB)", "registry_mb")]
    for ax, (label, key) in zip(axes, panels):
        ax.plot(t, [x[key] for x in s], color="tab:blue")
        ax.set_ylabel(label, color="tab:blue")
        ax.axvspan(end / 2, end, color="tab:green", alpha=0.06)
    for ax, label, values in ((axes[0], "adapter workers' RSS (MB)", [x["tree_rss_mb"] - x["rss_mb"] for x in s]),
                              (axes[3], "versions", [x["versions"] for x in s])):
        twin = ax.twinx()
        twin.plot(t, values, color="tab:orange", lw=0.8, ls="--")
        twin.set_ylabel(label, color="tab:orange")
    ax = axes[4]
    mid = np.array([(r["start"] + r["stop"]) / 2 for r in results["intervals"]]) / 60
    for key, label, style in (("http_p50_ms", "POST /predict p50", "-"), ("http_p99_ms", "POST /predict p99", "-"),
                              ("kafka_p99_ms", "Kafka end-to-end p99", ":")):
        ax.plot(mid, [r[key] for r in results["intervals"]], style, label=label)
    window = b["p99"]["window_s"] / 60
    for lo in (0.0, end - window):
        ax.axvspan(lo, lo + window, color="tab:red", alpha=0.07)
    ax.set_yscale("log")
    ax.set_ylabel("latency (ms)")
    ax.set_xlabel("minutes from the start of the load (green: second half; red: the p99 windows)")
    ax.legend(fontsize=8, loc="upper right")
    load = results["load"]
    axes[0].set_title(f"driftwise bench soak: {load['kafka_sent']:,} Kafka events and {load['http_sent']:,} HTTP "
                      f"requests in {end:.1f} min")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(results: dict[str, Any], stem: str, out_dir: Path) -> Path:
    """``<stem>.json``, ``.png`` and ``.md`` in ``out_dir``; return the markdown path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{stem}.json").write_text(json.dumps(results, indent=2, default=float))
    _plot(results, out_dir / f"{stem}.png")
    c, load, b, m = results["config"], results["load"], results["bars"], results["metrics"]
    lines = [
        "# Soak: one `driftwise serve` under steady mixed load", "",
        f"Command: `{results['command']}`  ", f"Date: {results['date']}, {results['machine']}  ",
        f"Code: {results['code']}  ", f"Wall time {results['wall_seconds']:.0f} s.", "",
        f"Load for {load['seconds'] / 60:.1f} min: {load['kafka_sent']:,} Kafka events at {c['rate']:g}/s, "
        f"{c['phase_events']} per phase, through {', '.join(results['phases_cycle'])} and again (severity "
        f"{results['severity']}); {load['http_sent']:,} `POST /predict` requests of one instance (the latest event's "
        f"features) at {c['http_rate']:g}/s, open loop, latency from when each was due. One `driftwise serve` with "
        "every default (only registry, name, port, broker, topics and group id given) on the registry "
        "`driftwise pretrain` published with the CLI defaults"
        + ("" if results["pretrained_by_run"] else " (not here: this run was given a registry, as tests do)")
        + f"; a real Kafka broker on 127.0.0.1; samples of the service process every {c['sample_seconds']:g} s "
        "from /proc.", "",
        f"![soak]({stem}.png)", "",
        *bar_rows(b, load), "", verdict(b), "",
        f"Kafka end-to-end p99 (not barred): first {_nan(results['kafka_edges']['first_ms'])} ms, last "
        f"{_nan(results['kafka_edges']['last_ms'])} ms ({_nan(results['kafka_edges']['ratio'], '.2f')}x). Broker "
        f"acknowledged {load['kafka_acked']:,} of {load['kafka_sent']:,} events; {load['kafka_duplicates']} "
        f"duplicate predictions (at-least-once); dead-letter topic {m.get('dlq', 0):.0f}.", "",
        "## Adaptation and the registry", "",
        f"Drifts confirmed {m.get('drift_confirmed', 0):.0f}; adaptations by outcome: "
        + (", ".join(f"{k} {v:.0f}" for k, v in m.get("adaptations", {}).items()) or "none")
        + "; model swaps by reason: "
        + (", ".join(f"{k} {v:.0f}" for k, v in m.get("swaps", {}).items() if v) or "none")
        + f"; the served version changed {len(results['swaps'])} times on the predictions topic.", "",
        *registry_lines(results["registry"], results["samples"]), "",
        "## Over time", "",
        *timeline(results), "",
        "RSS, fds, threads and CPU are the `driftwise serve` process's own; +children is its adapter workers' "
        "resident memory (shared pages counted again). Latencies are of what was due in the sample interval "
        "ending there.", "",
    ]
    path = out_dir / f"{stem}.md"
    path.write_text("\n".join(lines))
    return path
