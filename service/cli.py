"""The ``driftwise`` command line: pretrain, serve, replay, demo, bench, models.

Every option also reads a ``DRIFTWISE_*`` environment variable of the same name
(``--bootstrap-servers`` <- ``DRIFTWISE_BOOTSTRAP_SERVERS``). Errors a user can fix
print one red line and exit 2, never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Keep a deployed model right while the world drifts.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
models_app = typer.Typer(help="Inspect and steer the model registry.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks; each writes bench/results/<name>.md with the command that made it.",
                        no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(bench_app, name="bench")
console = Console()


def _env(name: str) -> str:
    return f"DRIFTWISE_{name.upper()}"


RegistryOpt = Annotated[Path, typer.Option("--registry", envvar=_env("registry"), help="Registry directory.")]
NameOpt = Annotated[str, typer.Option("--name", envvar=_env("name"), help="Model name in the registry.")]
DeviceOpt = Annotated[str, typer.Option("--device", envvar=_env("device"), help="auto|cpu|cuda")]


def fail(message: str) -> None:
    """Print one clear line and exit non-zero (no traceback for user errors)."""
    console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(2)


def _parse_shape(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        shape = tuple(int(s) for s in text.split(","))
    except ValueError:
        fail(f"--input-shape must look like C,H,W or D, got {text!r}")
    if any(s <= 0 for s in shape):
        fail(f"--input-shape must be positive, got {text!r}")
    return shape


@app.command()
def pretrain(
    data: Annotated[Path, typer.Option("--data", envvar=_env("data"), help="FILE.npz with X and optional y (-1 = unlabeled).")],
    name: NameOpt,
    registry: RegistryOpt,
    objective: Annotated[str, typer.Option(envvar=_env("objective"), help="ae|simclr|byol|simsiam|jepa|none")] = "simclr",
    encoder: Annotated[Optional[str], typer.Option(envvar=_env("encoder"), help="mlp|cnn (default: cnn for images)")] = None,
    input_shape: Annotated[Optional[str], typer.Option(envvar=_env("input_shape"), help="e.g. 1,8,8 to view flat rows as images")] = None,
    head: Annotated[str, typer.Option(envvar=_env("head"), help="linear|finetune")] = "finetune",
    epochs: Annotated[Optional[int], typer.Option(envvar=_env("epochs"), help="SSL pretraining epochs")] = None,
    device: DeviceOpt = "auto",
    seed: Annotated[int, typer.Option(envvar=_env("seed"))] = 0,
) -> None:
    """Pretrain the encoder with an SSL objective, train + calibrate the head, publish version 1 (or next)."""
    from driftwise.models.data import DatasetError, load_npz

    try:
        dataset = load_npz(data)
    except DatasetError as exc:
        fail(str(exc))
    shape = _parse_shape(input_shape)
    if objective not in ("ae", "simclr", "byol", "simsiam", "jepa", "none"):
        fail(f"--objective must be one of ae, simclr, byol, simsiam, jepa, none; got {objective!r}")
    if encoder not in (None, "mlp", "cnn"):
        fail(f"--encoder must be mlp or cnn, got {encoder!r}")
    if head not in ("linear", "finetune"):
        fail(f"--head must be linear or finetune, got {head!r}")
    if device not in ("auto", "cpu", "cuda"):
        fail(f"--device must be auto, cpu or cuda, got {device!r}")
    from driftwise.service.publishing import PretrainRequest, pretrain_and_publish

    request = PretrainRequest(
        dataset=dataset, name=name, registry=registry, objective=None if objective == "none" else objective,
        encoder=encoder, input_shape=shape, head=head, epochs=epochs, device=device, seed=seed,
    )
    try:
        published = pretrain_and_publish(request, console=console)
    except ValueError as exc:
        fail(str(exc))
    _print_metrics(f"{name} v{published.version} published to {registry}", published.manifest["metrics"])


def _print_metrics(title: str, metrics: dict[str, object]) -> None:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)


@app.command()
def serve(
    registry: RegistryOpt,
    name: NameOpt,
    host: Annotated[str, typer.Option(envvar=_env("host"))] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar=_env("port"))] = 8000,
    bootstrap_servers: Annotated[Optional[str], typer.Option(envvar=_env("bootstrap_servers"), help="Kafka HOST:PORT; enables the stream")] = None,
    no_adapt: Annotated[bool, typer.Option("--no-adapt", envvar=_env("no_adapt"), help="Monitor and report drift but never retrain")] = False,
    admin_token: Annotated[Optional[str], typer.Option(envvar=_env("admin_token"), help="Bearer token for admin routes (16+ characters); without one they answer 401")] = None,
    device: DeviceOpt = "auto",
    workers: Annotated[int, typer.Option(envvar=_env("workers"), help="server processes on the port, each a replica; more than one needs --bootstrap-servers (they elect one adapter) or --no-adapt")] = 1,
) -> None:
    """Serve HTTP and, with --bootstrap-servers, the Kafka stream; adapt on drift unless --no-adapt."""
    from pydantic import ValidationError

    from driftwise.service.server import run
    from driftwise.service.settings import Settings

    try:
        settings = Settings(registry=registry, name=name, host=host, port=port, bootstrap_servers=bootstrap_servers,
                            no_adapt=no_adapt, admin_token=admin_token, device=device, workers=workers)
    except ValidationError as exc:
        fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
    run(settings)


@app.command()
def replay(
    data: Annotated[Path, typer.Option("--data", envvar=_env("data"), help="FILE.npz to stream as events")],
    bootstrap_servers: Annotated[str, typer.Option(envvar=_env("bootstrap_servers"))] = "127.0.0.1:9092",
    topic: Annotated[str, typer.Option(envvar=_env("events_topic"))] = "driftwise.events",
    rate: Annotated[Optional[float], typer.Option(envvar=_env("rate"), help="events per second (default: as fast as possible)")] = None,
    limit: Annotated[Optional[int], typer.Option(envvar=_env("limit"), help="stop after this many events")] = None,
    labels_out: Annotated[Optional[Path], typer.Option(help="write hidden labels here (JSON lines id,label)")] = None,
    id_prefix: Annotated[str, typer.Option(help="prefix of event ids")] = "evt",
) -> None:
    """Produce a dataset into the events topic; labels stay out of the events."""
    from driftwise.models.data import DatasetError, load_npz
    from driftwise.service.replay import replay as do_replay

    try:
        load_npz(data, require_labels=False)
    except DatasetError as exc:
        fail(str(exc))
    if rate is not None and rate <= 0:
        fail("--rate must be positive")
    sent = do_replay(data, bootstrap=bootstrap_servers, topic=topic, rate=rate, limit=limit, id_prefix=id_prefix,
                     labels_out=labels_out)
    console.print(f"replayed {sent} events into {topic}")


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(envvar=_env("workdir"), help="where the registry, logs and report go")] = Path("runs/demo"),
    bootstrap_servers: Annotated[Optional[str], typer.Option(envvar=_env("bootstrap_servers"), help="use this broker instead of starting a local one")] = None,
    events_per_phase: Annotated[int, typer.Option(help="events in each drift phase")] = 1500,
    rate: Annotated[float, typer.Option(help="events per second replayed into Kafka")] = 50.0,
    device: DeviceOpt = "auto",
) -> None:
    """Pretrain on digits, serve, stream a drifting dataset through Kafka, adapt, and write a report."""
    from driftwise.service.demo import run_demo

    if events_per_phase < 100 or rate <= 0:
        fail("--events-per-phase must be >= 100 and --rate positive")
    report = run_demo(workdir=workdir, bootstrap_servers=bootstrap_servers, events_per_phase=events_per_phase,
                      rate=rate, device=device, console=console)
    console.print(f"[bold green]report:[/] {report}")


# -- models ----------------------------------------------------------------------
def _registry(path: Path):  # noqa: ANN202 - lazy import keeps `driftwise --help` fast
    from driftwise.models.registry import Registry

    if not path.is_dir():
        fail(f"{path}: no registry here")
    return Registry(path)


@models_app.command("list")
def models_list(registry: RegistryOpt, name: NameOpt) -> None:
    """List versions with status, reason and key metrics; * marks CURRENT."""
    reg = _registry(registry)
    current = reg.current(name)
    table = Table(title=f"{name} in {registry}")
    for col in ("", "version", "status", "parent", "created", "reason", "metrics"):
        table.add_column(col)
    for v in reg.versions(name):
        metrics = ", ".join(f"{k}={val:.3f}" for k, val in v.manifest.get("metrics", {}).items()
                            if isinstance(val, float))
        table.add_row("*" if current and current.version == v.version else "", str(v.version), v.status,
                      str(v.manifest.get("parent")), v.manifest.get("created", "")[:19], v.manifest.get("reason", ""),
                      metrics)
    console.print(table)


@models_app.command("show")
def models_show(registry: RegistryOpt, name: NameOpt, version: Annotated[Optional[int], typer.Argument()] = None) -> None:
    """Print a version's manifest (CURRENT by default)."""
    from driftwise.models.registry import RegistryError

    reg = _registry(registry)
    try:
        info = reg.current(name) if version is None else reg.get(name, version)
    except RegistryError as exc:
        fail(str(exc))
    if info is None:
        fail(f"model {name!r} has no current version")
    console.print_json(data=info.manifest)


@models_app.command("activate")
def models_activate(registry: RegistryOpt, name: NameOpt, version: Annotated[int, typer.Argument()]) -> None:
    """Point CURRENT at VERSION (a running service follows via the control topic or POST /models/.../activate)."""
    from driftwise.models.registry import RegistryError

    try:
        _registry(registry).activate(name, version)
    except RegistryError as exc:
        fail(str(exc))
    console.print(f"{name}: CURRENT -> {version}")


@models_app.command("rollback")
def models_rollback(registry: RegistryOpt, name: NameOpt) -> None:
    """Re-activate the version that was current before this one."""
    from driftwise.models.registry import RegistryError

    try:
        info = _registry(registry).rollback(name)
    except RegistryError as exc:
        fail(str(exc))
    console.print(f"{name}: rolled back, CURRENT -> {info.version}")


@models_app.command("prune")
def models_prune(registry: RegistryOpt, name: NameOpt,
                 keep: Annotated[int, typer.Option(min=1, help="newest versions to keep")] = 100) -> None:
    """Delete all but the newest KEEP versions; the served one, its ancestors and labeled originals always stay."""
    pruned = _registry(registry).prune(name, keep)
    console.print(f"{name}: removed {len(pruned)} versions" + (f" ({', '.join(map(str, pruned))})" if pruned else ""))


# -- bench -----------------------------------------------------------------------
QuickOpt = Annotated[bool, typer.Option("--quick", help="small sizes, for a smoke run")]


@bench_app.command("ssl")
def bench_ssl(quick: QuickOpt = False) -> None:
    """SSL objectives vs supervised-only on digits at several label fractions."""
    from driftwise.bench.ssl import main

    main(quick=quick, command="driftwise bench ssl" + (" --quick" if quick else ""))


@bench_app.command("serve")
def bench_serve(
    quick: QuickOpt = False,
    only: Annotated[Optional[list[str]], typer.Option(
        help="run only this section (http, kafka or replicas; repeatable); the report keeps the others")] = None,
) -> None:
    """HTTP and Kafka throughput/latency as ratios against baselines measured in the same run."""
    from driftwise.bench.serve import SECTIONS, main

    known = [key for key, _, _ in SECTIONS]
    for key in only or ():
        if key not in known:
            raise typer.BadParameter(f"{key!r} is not one of {', '.join(known)}", param_hint="--only")
    main(quick=quick, only=only or None)


@bench_app.command("drift")
def bench_drift(quick: QuickOpt = False) -> None:
    """Drift scenarios: detection delay, false alarms, accuracy no-adapt / adapted / oracle."""
    from driftwise.bench.drift import main

    main(quick=quick)


def _check_pool(split: str, windows: int) -> None:
    """The offline adaptation benches' shared options: which pool, how many window seeds."""
    if split not in ("val", "test"):
        fail(f"--split must be val or test, got {split!r}")
    if windows < 1:
        fail(f"--windows must be >= 1, got {windows}")


@bench_app.command("recipes")
def bench_recipes(
    split: Annotated[str, typer.Option(help="val (method choices) or test")] = "val",
    windows: Annotated[int, typer.Option(help="window seeds per corruption")] = 3,
    variants: Annotated[Optional[str], typer.Option(help="comma-separated variant names (default: all)")] = None,
    out: Annotated[Optional[Path], typer.Option(help="results folder (default bench/results)")] = None,
) -> None:
    """Adaptation recipe variants offline: gap closed to the oracle per corruption (not part of `all`)."""
    from driftwise.bench.recipes import main, parse_variants

    _check_pool(split, windows)
    try:
        chosen = parse_variants(variants)
    except ValueError as exc:
        fail(str(exc))
    command = f"driftwise bench recipes --split {split} --windows {windows}" + (
        f" --variants '{variants}'" if chosen else "")
    main(split, windows, chosen, out, command=command)


@bench_app.command("refine")
def bench_refine(
    split: Annotated[str, typer.Option(help="val (method choices) or test")] = "val",
    windows: Annotated[int, typer.Option(help="window seeds per corruption")] = 3,
    refine_after: Annotated[int, typer.Option(help="events after the first window the refinement adds")] = 512,
    out: Annotated[Optional[Path], typer.Option(help="results folder (default bench/results)")] = None,
) -> None:
    """The base re-adapted on the first window and the next events, against the first candidate (not in `all`)."""
    from driftwise.bench.refine import main

    _check_pool(split, windows)
    try:
        main(split, windows, refine_after, out,
             command=f"driftwise bench refine --split {split} --windows {windows} --refine-after {refine_after}")
    except ValueError as exc:
        fail(str(exc))


@bench_app.command("stream")
def bench_stream(
    families: Annotated[str, typer.Option(help="heldout (only reported), dev (defaults chosen on), concept (a label-changing shift; labels sent when asked for), or prior (label shifts: one class takes 90%)")] = "heldout",
    domain: Annotated[str, typer.Option(help="digits (8x8 images) or tabular (packaged or generated rows, sensor shifts)")] = "digits",
    dataset: Annotated[Optional[str], typer.Option(help="tabular: segments (default), phishing, breast-cancer, shuttle, waveform-skewed or agrawal (driftwise.bench.tabular_data)")] = None,
    rate: Annotated[Optional[float], typer.Option(help="events per second replayed to each twin (default 50; tabular 100)")] = None,
    phase_events: Annotated[Optional[int], typer.Option(help="events in each phase (default 1500; tabular 3000)")] = None,
    seed: Annotated[int, typer.Option(help="data split and stream seed")] = 0,
    bursts: Annotated[bool, typer.Option("--bursts", help="each phase in runs of 50 events of one class")] = False,
    source: Annotated[Optional[Path], typer.Option(help="your own data: SRC.npz (X, y with -1 unlabeled) to pretrain on; with --stream")] = None,
    stream: Annotated[Optional[Path], typer.Option(help="your own drift: STREAM.npz (X, y, phase per event, 'clean' for undrifted), replayed as it is")] = None,
    input_shape: Annotated[Optional[str], typer.Option(help="with --source: C,H,W to pretrain on images")] = None,
    bootstrap_servers: Annotated[Optional[str], typer.Option(help="use this broker, not a local one")] = None,
    device: DeviceOpt = "auto",
    out: Annotated[Optional[Path], typer.Option(help="results folder (default bench/results)")] = None,
    quick: QuickOpt = False,
) -> None:
    """The real service against a real broker in real time, beside a --no-adapt twin (not part of `all`)."""
    from driftwise.bench.stream import StreamBenchConfig, run

    try:
        config = StreamBenchConfig(families=families, rate=rate, phase_events=phase_events, seed=seed, bursts=bursts,
                                   quick=quick, device=device, bootstrap_servers=bootstrap_servers, domain=domain,
                                   dataset=dataset, source=None if source is None else str(source),
                                   stream=None if stream is None else str(stream), shape=input_shape)
    except ValueError as exc:
        fail(str(exc))
    report = run(config, out, console=console)
    console.print(f"[bold green]report:[/] {report}")


@bench_app.command("soak")
def bench_soak(
    minutes: Annotated[Optional[float], typer.Option(help="how long the load runs (default 30; --quick 1)")] = None,
    max_events: Annotated[Optional[int], typer.Option(help="stop after this many Kafka events, if sooner")] = None,
    rate: Annotated[float, typer.Option(help="Kafka events per second")] = 50.0,
    http_rate: Annotated[float, typer.Option(help="POST /predict requests per second (open loop)")] = 20.0,
    sample_seconds: Annotated[Optional[float], typer.Option(help="seconds between samples (default 10; --quick 2)")] = None,
    phase_events: Annotated[Optional[int], typer.Option(help="events in each drift phase (default 1500; --quick 300)")] = None,
    seed: Annotated[int, typer.Option(help="data split and stream seed")] = 0,
    bootstrap_servers: Annotated[Optional[str], typer.Option(help="use this broker, not a local one")] = None,
    device: DeviceOpt = "auto",
    out: Annotated[Optional[Path], typer.Option(help="results folder (default bench/results)")] = None,
    quick: QuickOpt = False,
) -> None:
    """One service under steady HTTP + Kafka load with drifts: RSS, fds, threads, registry, p99 over time (not in `all`)."""
    from driftwise.bench.soak import SoakConfig, run

    try:
        config = SoakConfig(minutes=minutes, max_events=max_events, rate=rate, http_rate=http_rate,
                            sample_seconds=sample_seconds, phase_events=phase_events, seed=seed, device=device,
                            bootstrap_servers=bootstrap_servers, quick=quick)
    except ValueError as exc:
        fail(str(exc))
    report = run(config, out, console=console)
    console.print(f"[bold green]report:[/] {report}")


@bench_app.command("thresholds")
def bench_thresholds(
    windows: Annotated[int, typer.Option(help="256-event windows per development family")] = 3,
    seed: Annotated[int, typer.Option(help="source model and window seed")] = 0,
    out: Annotated[Optional[Path], typer.Option(help="results folder (default bench/results)")] = None,
    quick: QuickOpt = False,
) -> None:
    """Pseudo-label precision and yield against the confidence threshold, on development shifts only."""
    from driftwise.bench.thresholds import DEFAULT_CACHE, RESULTS, Settings, run

    run(Settings(windows=windows, seed=seed, quick=quick), out or RESULTS, DEFAULT_CACHE,
        command="driftwise bench thresholds" + (f" --windows {windows}" if windows != 3 else "")
                + (f" --seed {seed}" if seed else "") + (" --quick" if quick else ""))


@bench_app.command("interim")
def bench_interim(
    seeds: Annotated[int, typer.Option(help="source models (data split and pretraining seed) per domain")] = 2,
    out: Annotated[Optional[Path], typer.Option(help="results folder (default bench/results)")] = None,
) -> None:
    """The interim model's cheap checks scored as classifiers of helpful interims, on development shifts only."""
    from driftwise.bench.interim_checks import RESULTS, run

    path = run(seeds, out or RESULTS, "driftwise bench interim" + (f" --seeds {seeds}" if seeds != 2 else ""))
    console.print(f"[bold green]report:[/] {path}")


@bench_app.command("collapse")
def bench_collapse(
    seeds: Annotated[int, typer.Option(help="source models (data split and pretraining seed) per domain")] = 2,
    out: Annotated[Optional[Path], typer.Option(help="results folder (default bench/results)")] = None,
) -> None:
    """Served confidence relative to the reference under covariate and concept shifts (development only)."""
    from driftwise.bench.collapse_confidence import RESULTS, run

    path = run(seeds, out or RESULTS, "driftwise bench collapse" + (f" --seeds {seeds}" if seeds != 2 else ""))
    console.print(f"[bold green]report:[/] {path}")


@bench_app.command("labelshift")
def bench_labelshift(
    seeds: Annotated[int, typer.Option(help="source models (data split and pretraining seed) per domain")] = 2,
    out: Annotated[Optional[Path], typer.Option(help="results folder (default bench/results)")] = None,
) -> None:
    """Label shifts recognised and corrected, covariate shifts not taken for them (dev and held-out priors)."""
    from driftwise.bench.label_shift import RESULTS, run

    path = run(seeds, out or RESULTS, "driftwise bench labelshift" + (f" --seeds {seeds}" if seeds != 2 else ""))
    console.print(f"[bold green]report:[/] {path}")


@bench_app.command("all")
def bench_all(quick: QuickOpt = False) -> None:
    """Every benchmark, one after the other."""
    bench_ssl(quick)
    bench_serve(quick)
    bench_drift(quick)


if __name__ == "__main__":  # pragma: no cover
    app()
