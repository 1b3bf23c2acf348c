"""Draw the dashboard's panels with matplotlib from a live Prometheus, for places Grafana can't reach.

Grafana does not run on the build machines, so the README's picture of the
dashboard is drawn here instead: every panel of ``dashboards/driftwise.json`` is
range-queried through Prometheus' HTTP API and plotted in the dashboard's order.
The heatmap is drawn from the same ``le`` buckets Grafana would use.

Usage, with a Prometheus scraping a running service::

    .venv/bin/python deploy/grafana/render.py --prometheus http://127.0.0.1:9090 --out dashboard.png
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from deploy.grafana.dashboard import build_dashboard, panels  # noqa: E402

COLUMNS = 3


def query_range(client: httpx.Client, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
    response = client.get("/api/v1/query_range", params={"query": expr, "start": start, "end": end, "step": step})
    body = response.json()
    if body.get("status") != "success":
        raise RuntimeError(f"{expr}: {body}")
    return body["data"]["result"]


def _legend(fmt: str, labels: dict[str, str]) -> str:
    for key, value in labels.items():
        fmt = fmt.replace("{{" + key + "}}", value)
    return fmt


def _plot_series(ax: Any, panel: dict[str, Any], series: list[tuple[str, dict[str, Any]]], t0: float) -> None:
    for legend, result in series:
        values = np.array([[float(t), float(v)] for t, v in result["values"]])
        ax.plot((values[:, 0] - t0) / 60.0, values[:, 1], label=_legend(legend, result["metric"]), lw=1.2)
    if panel["fieldConfig"]["defaults"].get("thresholds"):
        for step in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]:
            if step.get("value") is not None:
                ax.axhline(step["value"], color=step["color"], ls="--", lw=0.8)
    if series:
        ax.legend(fontsize=6, loc="upper left")


def _plot_heatmap(ax: Any, results: list[dict[str, Any]], t0: float) -> None:
    buckets = sorted(results, key=lambda r: float(r["metric"]["le"]))
    if not buckets:
        return
    times = np.array([float(t) for t, _ in buckets[0]["values"]])
    cumulative = np.array([[float(v) for _, v in b["values"]][: len(times)] for b in buckets])
    counts = np.diff(cumulative, axis=0, prepend=0.0)  # cumulative `le` buckets -> per-bucket counts
    edges = [float(b["metric"]["le"]) for b in buckets]
    labels = [f"{e:g}" if math.isfinite(e) else "+Inf" for e in edges]
    ax.imshow(counts, aspect="auto", origin="lower", cmap="Oranges",
              extent=((times[0] - t0) / 60.0, (times[-1] - t0) / 60.0, 0, len(edges)))
    ax.set_yticks(np.arange(len(edges)) + 0.5, labels, fontsize=6)


def annotation_times(client: httpx.Client, dashboard: dict[str, Any], start: float, end: float,
                     step: float) -> list[tuple[str, str, float]]:
    """(name, colour, time) where an annotation query turns positive, as Grafana marks them."""
    marks = []
    for annotation in dashboard["annotations"]["list"]:
        for result in query_range(client, annotation["expr"], start, end, step):
            previous = 0.0
            for t, v in result["values"]:
                value = float(v)
                if value > 0 and not previous > 0:
                    marks.append((annotation["name"], annotation["iconColor"], float(t)))
                previous = value
    return marks


def render(prometheus_url: str, out: Path, minutes: float = 15.0) -> Path:
    """Write a PNG with one subplot per dashboard panel, over the last ``minutes``."""
    dashboard = build_dashboard()
    shown = panels(dashboard)
    end = time.time()
    start, step = end - minutes * 60.0, max(1.0, minutes * 60.0 / 240)
    rows = math.ceil(len(shown) / COLUMNS)
    fig, axes = plt.subplots(rows, COLUMNS, figsize=(COLUMNS * 5.2, rows * 2.8), squeeze=False)
    with httpx.Client(base_url=prometheus_url, timeout=30.0) as client:
        marks = annotation_times(client, dashboard, start, end, step)
        for ax, panel in zip(axes.flat, shown):
            results = [(t.get("legendFormat", ""), query_range(client, t["expr"], start, end, step))
                       for t in panel["targets"]]
            if panel["type"] == "heatmap":
                _plot_heatmap(ax, results[0][1], start)
            else:
                _plot_series(ax, panel, [(legend, r) for legend, rs in results for r in rs], start)
            for _, color, t in marks:
                ax.axvline((t - start) / 60.0, color=color, lw=0.8, alpha=0.6, ls=":")
            ax.set_title(panel["title"], fontsize=9)
            ax.tick_params(labelsize=6)
            ax.set_xlabel("minutes", fontsize=6)
    for ax in axes.flat[len(shown):]:
        ax.axis("off")
    names = ", ".join(f"{name} ({color})" for name, color, _ in dict.fromkeys((n, c, 0.0) for n, c, _ in marks))
    fig.suptitle(f"driftwise dashboard, drawn from Prometheus over {minutes:.1f} min"
                 + (f"; dotted lines: {names}" if names else ""), fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090")
    parser.add_argument("--out", type=Path, default=Path("dashboard.png"))
    parser.add_argument("--minutes", type=float, default=15.0)
    args = parser.parse_args(argv)
    print(render(args.prometheus, args.out, args.minutes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
