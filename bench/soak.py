"""`driftwise bench soak`: one `driftwise serve` under steady mixed load for a bounded time, watched for leaks.

A service that adapts keeps publishing, loading and swapping models for as long as it
runs; what a short bench cannot show is whether anything piles up while it does. So
this runs what a user runs, as the stream bench does (`driftwise.bench.stream`'s helpers): a
local Kafka broker on 127.0.0.1 (or a given one), `driftwise pretrain` with the CLI
defaults, and one `driftwise serve` given only plumbing, so `registry_keep` and every
other setting are the defaults. Then, for ``--minutes`` (30) or ``--max-events``
events, whichever ends first: digits events into Kafka at a fixed rate (50/s) through
clean and every development and held-out corruption in turn (1,500 events each, then
again), so drifts are confirmed, interims and candidates published, swapped and
pruned; and ``POST /predict`` at a fixed open-loop rate (20/s) with the latest
event's features, so HTTP drifts too. Every ``--sample-seconds`` (10) the service
process's RSS, open file descriptors, threads and CPU time are read from /proc, and
the registry's size and version count from disk. Afterwards the predictions topic is
read to its end (up to 2 minutes) and every event without a prediction counts as lost.

Writes ``bench/results/soak[-quick].md``, ``.json`` and ``.png`` (`driftwise.bench.soak_report`:
the bars and how they are judged); the registry and the service's log stay in
``runs/``.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from driftwise.bench.serve import clock
from driftwise.bench.soak_load import EventLoad, HttpLoad, PredictionTally, dir_bytes, phased_rows, probe
from driftwise.bench.soak_report import summarize, write_report
from driftwise.bench.stream import (
    ROOT,
    check_phase_events_and_device,
    code_state,
    launch,
    plumbing_env,
    pretrain_registry,
    run_topics,
    serve_command,
    stop_child,
)
from driftwise.bench.stream_report import MODEL_NAME, SEVERITY
from driftwise.drift.corruptions import CLEAN, DEVELOPMENT_FAMILIES, HELD_OUT_FAMILIES

RESULTS = Path(__file__).resolve().parent / "results"
SOAK_PHASES = (CLEAN, *DEVELOPMENT_FAMILIES, CLEAN, *HELD_OUT_FAMILIES)
DEFAULTS = {"minutes": 30.0, "sample_seconds": 10.0, "phase_events": 1500}
QUICK = {"minutes": 1.0, "sample_seconds": 2.0, "phase_events": 300}
DRAIN_S = 120.0
"""How long predictions may still arrive after the last event was sent."""
LEAD_S = 2.0
"""From starting the loads to the first event and request (the producer connects meanwhile)."""


@dataclass(frozen=True)
class SoakConfig:
    """The soak's options; what is None takes `DEFAULTS` (`QUICK` with ``quick``: 1 minute, 2 s samples, 300-event
    phases, for a smoke run)."""

    minutes: float | None = None
    max_events: int | None = None
    rate: float = 50.0
    http_rate: float = 20.0
    sample_seconds: float | None = None
    phase_events: int | None = None
    seed: int = 0
    device: str = "auto"
    bootstrap_servers: str | None = None
    quick: bool = False

    def __post_init__(self) -> None:
        for key, value in (QUICK if self.quick else DEFAULTS).items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, value)
        if not self.minutes > 0:
            raise ValueError(f"minutes must be positive, got {self.minutes}")
        if self.max_events is not None and self.max_events < 1:
            raise ValueError(f"max_events must be >= 1, got {self.max_events}")
        if not (self.rate > 0 and self.http_rate > 0):
            raise ValueError(f"rate and http_rate must be positive per second, got {self.rate}, {self.http_rate}")
        if not self.sample_seconds > 0:
            raise ValueError(f"sample_seconds must be positive, got {self.sample_seconds}")
        check_phase_events_and_device(self.phase_events, self.device)
        if self.events < 1:
            raise ValueError(f"{self.minutes} minutes at {self.rate:g} events/s is no event at all")

    @property
    def events(self) -> int:
        """Kafka events sent: ``minutes`` at ``rate``, or ``max_events`` if fewer."""
        planned = int(round(self.minutes * 60 * self.rate))
        return planned if self.max_events is None else min(planned, self.max_events)

    @property
    def seconds(self) -> float:
        """How long the load runs."""
        return self.events / self.rate

    @property
    def http_requests(self) -> int:
        return max(1, int(self.seconds * self.http_rate))

    @property
    def stem(self) -> str:
        """``soak`` for the bar's length (what ``bench/results`` keeps); shorter or capped runs get their own name."""
        if self.quick:
            return "soak-quick"
        if self.minutes == DEFAULTS["minutes"] and self.max_events is None:
            return "soak"
        return f"soak-{self.minutes:g}min" + (f"-{self.max_events}events" if self.max_events is not None else "")

    def command(self) -> str:
        """The command line that makes this run (options at their default left out)."""
        base = SoakConfig(quick=self.quick)
        parts = ["driftwise bench soak"] + (["--quick"] if self.quick else [])
        for key in ("minutes", "max_events", "rate", "http_rate", "sample_seconds", "phase_events", "seed", "device"):
            if getattr(self, key) != getattr(base, key):
                value = getattr(self, key)
                parts.append(f"--{key.replace('_', '-')} {value:g}" if isinstance(value, float) else
                             f"--{key.replace('_', '-')} {value}")
        return " ".join(parts)


def service_command(config: SoakConfig, registry: Path, port: int, bootstrap: str) -> list[str]:
    """`driftwise serve` as users run it, adapting, with plumbing flags only (`driftwise.bench.stream.serve_command`)."""
    return serve_command(registry, port, bootstrap, no_adapt=False, device=config.device)


def registry_summary(root: Path, name: str, keep: int) -> dict[str, Any]:
    """What the registry holds at the end: versions published, kept and pruned, by kind and status, and whether the
    served version and every ancestor up to its labeled original are still on disk."""
    from driftwise.models.registry import Registry

    registry = Registry(root)
    versions = {v.version: v for v in registry.versions(name)}
    lineage, version = [], registry.current(name)
    while version is not None and version.version not in lineage:
        lineage.append(version.version)
        parent = version.manifest.get("parent")
        version = None if parent is None else versions.get(int(parent))
    root_reached = bool(lineage) and versions[lineage[-1]].manifest.get("parent") is None
    kinds = Counter(f"{str(v.manifest.get('reason', '?')).split(':')[0]} {v.status}" for v in versions.values())
    published = max(versions, default=0)
    return {"published": published, "kept": len(versions), "pruned": published - len(versions), "keep": keep,
            "by_kind": dict(sorted(kinds.items())), "current": lineage[0] if lineage else None, "lineage": lineage,
            "lineage_present": root_reached, "mb": dir_bytes(root) / 2**20}


def service_metrics(url: str) -> dict[str, Any]:
    """Counters from the service's ``/metrics``: dead letters, confirmed drifts, adaptations and swaps."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, Any] = {"dlq": 0.0, "drift_confirmed": 0.0, "adaptations": {}, "swaps": {}}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text):
        for s in family.samples:
            if s.name == "driftwise_dlq_total":
                out["dlq"] += s.value
            elif s.name == "driftwise_drift_confirmed_total":
                out["drift_confirmed"] += s.value
            elif s.name == "driftwise_adaptations_total":
                out["adaptations"][s.labels.get("outcome", "?")] = s.value
            elif s.name == "driftwise_model_swaps_total":
                out["swaps"][s.labels.get("reason", "?")] = s.value
    return out


def _watch(proc: Any, registry: Path, loads: tuple[EventLoad, HttpLoad], tally: PredictionTally, start: float,
           config: SoakConfig, console: Console) -> list[dict[str, Any]]:
    """Sample every ``sample_seconds`` from ``start`` until every event sent has a prediction (or `DRAIN_S` after
    the load's end); show progress; raise as soon as the service or a load fails."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    events, http = loads
    samples: list[dict[str, Any]] = []
    deadline = start + config.seconds + DRAIN_S
    with Progress(TextColumn("[bold]soak"), BarColumn(), TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
                  TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("soak", total=config.seconds, status="")
        version = "-"
        for k in itertools.count():
            time.sleep(max(0.0, start + k * config.sample_seconds - clock()))
            if proc.poll() is not None:
                raise RuntimeError(f"driftwise serve exited with code {proc.returncode} (see runs/{config.stem})")
            failed = [t.error for t in (events, http, tally) if t.error]
            if failed:
                raise RuntimeError("; ".join(failed))
            served = tally.version
            sample = {"t": clock() - start, **probe(proc.pid, registry, MODEL_NAME), "events_sent": events.sent,
                      "events_predicted": tally.predicted, "http_sent": http.sent,
                      "http_errors": sum(http.errors.values()), "served": served,
                      "served_on_disk": served == "-" or (registry / MODEL_NAME / served).is_dir()}
            samples.append(sample)
            if tally.version != version:
                version = tally.version
                progress.console.log(f"serving v{version} after {tally.predicted} predictions")
            progress.update(task, completed=min(sample["t"], config.seconds), status=(
                f"events {events.sent}/{tally.predicted} predicted, HTTP {http.sent} "
                f"({sample['http_errors']} errors) | RSS {sample['rss_mb']:.0f} MB, {sample['fds']} fds, "
                f"{sample['threads']} threads | {sample['versions']} versions"))
            loaded = not events.is_alive() and not http.is_alive()
            if (loaded and tally.predicted >= events.sent) or clock() > deadline:
                return samples
    return samples


@contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """In the main thread, SIGTERM (a ``timeout``, a cancelled job) raises SystemExit, so ``finally`` still stops
    the service: it runs in its own session, and would outlive a process killed by the default handler."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def leave(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, leave)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(config: SoakConfig, out_dir: Path | None = None, console: Console | None = None, *,
        pretrained: Path | None = None) -> Path:
    """The whole soak (see the module docstring); the service, the loads and the broker always stop, on SIGTERM too.

    ``pretrained``: a registry to copy instead of running `driftwise pretrain` (tests, which cannot wait for it);
    the report says so. Returns the markdown report's path.
    """
    with sigterm_as_exit():
        return _soak(config, out_dir, console, pretrained)


def _soak(config: SoakConfig, out_dir: Path | None, console: Console | None, pretrained: Path | None) -> Path:
    from driftwise.bench.drift import machine
    from driftwise.service.demo import _digits_splits
    from driftwise.service.kafka_local import LocalKafka, free_port_pair
    from driftwise.service.localhost import free_port, wait_until_ready
    from driftwise.service.settings import Settings

    console = console or Console()
    started_wall, machine_line, code = clock(), machine(), code_state()
    workdir = ROOT / "runs" / config.stem
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    broker, proc, threads = None, None, []
    load_stop, read_stop = threading.Event(), threading.Event()
    try:
        bootstrap = config.bootstrap_servers
        if bootstrap is None:
            console.rule("[bold]Kafka: a local single-node broker")
            broker = LocalKafka(free_port_pair(), tie_to_this_process=True, purge_on_stop=True).start()
            bootstrap = broker.bootstrap
        x_src, y_src, x_pool, y_pool = _digits_splits(config.seed)
        registry = workdir / "registry"
        if pretrained is None:
            console.rule("[bold]driftwise pretrain on digits (CLI defaults)")
            pretrain_registry(workdir, registry, x_src, y_src, MODEL_NAME, "1,8,8")
        else:
            shutil.copytree(pretrained, registry)

        console.rule("[bold]driftwise serve: every default, plumbing only")
        run_id = uuid.uuid4().hex[:8]
        topics = run_topics(bootstrap, f".soak-{run_id}")
        port = free_port()
        command = service_command(config, registry, port, bootstrap)
        proc = launch(command, plumbing_env(dict(os.environ), topics, f"soak-{run_id}"), workdir / "serve.log")
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(f"{url}/readyz", proc, what="driftwise serve", timeout=180, interval=0.5,
                         log=workdir / "serve.log")

        console.rule(f"[bold]{config.events:,} events at {config.rate:g}/s and {config.http_requests:,} requests at "
                     f"{config.http_rate:g}/s over {config.seconds / 60:.1f} min")
        tally = PredictionTally(bootstrap, topics.predictions, config.events, read_stop)
        start = clock() + LEAD_S
        rows = phased_rows(x_pool, y_pool, SOAK_PHASES, int(config.phase_events), severity=SEVERITY, seed=config.seed)
        events = EventLoad(bootstrap, topics.events, rows, config.events, config.rate, start, load_stop)
        http = HttpLoad(port, lambda: x_pool[0] if events.latest is None else events.latest, config.http_requests,
                        config.http_rate, start, load_stop)
        threads = [tally, events, http]
        for th in threads:
            th.start()
        samples = _watch(proc, registry, (events, http), tally, start, config, console)
        load_stop.set()
        for th in (events, http):
            th.join(timeout=30)
        read_stop.set()
        tally.join(timeout=10)
        metrics = service_metrics(url)
        keep = int(Settings.model_fields["registry_keep"].default)

        console.rule("[bold]report")
        results = {
            "command": config.command(), "date": time.strftime("%Y-%m-%d %H:%M %Z"), "machine": machine_line,
            "code": code, "config": asdict(config), "phases_cycle": list(SOAK_PHASES), "severity": SEVERITY,
            "pretrained_by_run": pretrained is None, "service": {"pid": proc.pid, "command": command[1:]},
            "samples": samples, "phases": [(i, due - start, name) for i, due, name in events.phases],
            "swaps": [(t - start, v) for t, v in tally.swaps], "registry": registry_summary(registry, MODEL_NAME, keep),
            "metrics": metrics,
            **summarize(samples=samples, seconds=config.seconds, sample_seconds=float(config.sample_seconds),
                        http_due=http.due - start, http_latency=http.latency, http_sent=http.sent,
                        http_errors=http.errors, kafka_due=events.due - start, kafka_arrived=tally.arrived - start,
                        kafka_sent=events.sent, kafka_acked=int(events.acked.sum()), duplicates=tally.duplicates,
                        swap_times=[t - start for t, _ in tally.swaps]),
        }
        results["wall_seconds"] = clock() - started_wall
        return write_report(results, config.stem, Path(out_dir) if out_dir else RESULTS)
    finally:
        load_stop.set()
        read_stop.set()
        for th in threads:
            if th.ident is not None:  # started
                th.join(timeout=30)
        if proc is not None:
            stop_child(proc)
        if broker is not None:
            broker.stop()
