"""The demo's report: rolling accuracy of the served model vs the frozen v1, drift and swaps.

Accuracy uses the stream's true labels, which the service never saw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from driftwise.models.registry import Registry


def _rolling(correct: np.ndarray, window: int) -> np.ndarray:
    kernel = np.ones(window) / window
    return np.convolve(correct.astype(float), kernel, mode="valid")


@torch.inference_mode()
def frozen_predictions(registry: Path, name: str, x: np.ndarray, version: int = 1) -> np.ndarray:
    model = Registry(registry).load(name, version).model
    return np.concatenate([model(torch.as_tensor(x[i:i + 1024])).argmax(1).numpy() for i in range(0, len(x), 1024)])


def write_report(workdir: Path, stream: Any, observed: Any, registry: Path, name: str, phases: Sequence[str],
                 events_per_phase: int, wall_s: float) -> Path:
    """Write ``report.png`` and ``report.md`` into ``workdir``; return the markdown path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from driftwise.service.replay import event_id

    n = len(stream)
    ids = [event_id("evt", i) for i in range(n)]
    have = np.array([i in observed.predictions for i in ids])
    served = np.array([observed.predictions[i]["label"] if i in observed.predictions else -1 for i in ids])
    frozen = frozen_predictions(registry, name, stream.x)
    y = stream.y
    served_ok, frozen_ok = (served == y) & have, frozen == y

    # Swaps (adaptations, rollbacks, fall-backs to the base): where the served version changes, in arrival order.
    swaps: list[tuple[int, str]] = []
    position = {eid: k for k, eid in enumerate(ids)}
    last = None
    for eid in observed.arrivals:
        version = str(observed.predictions[eid]["model_version"])
        if last is not None and version != last:
            swaps.append((position[eid], version))
        last = version

    window = max(50, events_per_phase // 10)
    fig, ax = plt.subplots(figsize=(12, 4.5))
    xs = np.arange(window - 1, n)
    ax.plot(xs, _rolling(frozen_ok, window), color="tab:gray", label="frozen v1 (no adaptation)")
    ax.plot(xs, _rolling(served_ok, window), color="tab:blue", label="driftwise (served model)")
    for k, phase in enumerate(phases):
        ax.axvspan(k * events_per_phase, (k + 1) * events_per_phase, color="tab:orange" if phase != "clean" else "white",
                   alpha=0.08)
        ax.text((k + 0.5) * events_per_phase, 0.02, phase, ha="center", fontsize=9)
    order = {eid: k for k, eid in enumerate(observed.arrivals)}
    arrival_index = sorted(order, key=order.get)
    for j, (seen, _reason) in enumerate(observed.detections):
        at = ids.index(arrival_index[min(seen, len(arrival_index)) - 1]) if seen else 0
        ax.axvline(at, color="tab:red", ls="--", lw=1, label="drift confirmed" if j == 0 else None)
    for j, (at, version) in enumerate(swaps):
        ax.axvline(at, color="tab:green", lw=1.5, label="model swap" if j == 0 else None)
        ax.text(at, 1.01, f"v{version}", color="tab:green", fontsize=8, ha="center")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("event")
    ax.set_ylabel(f"accuracy (rolling {window})")
    ax.set_title("driftwise demo: digits under drift, adapted without labels")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(workdir / "report.png", dpi=120)
    plt.close(fig)

    rows = []
    for k, phase in enumerate(phases):
        sl = slice(k * events_per_phase, (k + 1) * events_per_phase)
        rows.append(f"| {k + 1} | {phase} | {frozen_ok[sl].mean():.3f} | {served_ok[sl].mean():.3f} | "
                    f"{served_ok[sl].mean() - frozen_ok[sl].mean():+.3f} |")
    reg = Registry(registry)
    version_rows = []
    for v in reg.versions(name):
        m = v.manifest
        checks = m.get("guardrails", {}).get("checks", [])
        failed = [c["name"] for c in checks if not c.get("passed", True)]
        version_rows.append(f"| {v.version} | {v.status} | {m.get('parent')} | {m.get('reason', '')} | "
                            f"{', '.join(failed) or '-'} |")
    md = [
        "# driftwise demo report", "",
        f"{n} events in {len(phases)} phases of {events_per_phase}; {int(have.sum())} predictions received; "
        f"wall time {wall_s:.0f} s.", "",
        "![rolling accuracy](report.png)", "",
        "| phase | domain | frozen v1 accuracy | driftwise accuracy | difference |",
        "|---|---|---|---|---|", *rows,
        f"| all | | {frozen_ok.mean():.3f} | {served_ok.mean():.3f} | {served_ok.mean() - frozen_ok.mean():+.3f} |", "",
        f"Drift confirmed {len(observed.detections)} times; {len(swaps)} swaps "
        f"({', '.join(f'v{v} at event {i}' for i, v in swaps) or 'none'}).", "",
        "| version | status | parent | reason | failed guardrails |", "|---|---|---|---|---|", *version_rows, "",
        "Accuracy is scored with the stream's true labels, which the service never saw.",
    ]
    path = workdir / "report.md"
    path.write_text("\n".join(md) + "\n")
    return path
