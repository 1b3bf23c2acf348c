"""`driftwise demo`: the whole loop on one machine, with a report at the end.

1. start a local Kafka broker (unless one is given);
2. pretrain on a source split of scikit-learn digits (10% labels) and publish v1;
3. serve it (`driftwise serve`, HTTP + Kafka + adaptation) as a child process;
4. replay a drifting stream of held-out digits through Kafka:
   clean -> gaussian noise -> rotation -> blur -> contrast -> clean;
5. read every prediction back from the predictions topic and score it with labels
   the service never saw, against the frozen v1 on the same events;
6. write ``report.png`` (rolling accuracy, drift detections, swaps) and ``report.md``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from driftwise.service.localhost import free_port, wait_until_ready
from driftwise.service.topics import Topics, ensure_topics

PHASES = ("clean", "gaussian_noise", "rotation", "blur", "contrast", "clean")
MODEL_NAME = "digits"


@dataclass
class Observed:
    """What the demo saw come back: predictions by event id, and drift events by time."""

    predictions: dict[str, dict] = field(default_factory=dict)
    arrivals: list[str] = field(default_factory=list)  # event ids in arrival order
    detections: list[tuple[int, str]] = field(default_factory=list)  # (predictions seen so far, reason)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _digits_splits(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source half (10% labeled) for pretraining, other half held out for the stream."""
    from driftwise.models.digits import load_digits_images, split_label_fraction

    X, y = load_digits_images()
    order = np.random.default_rng(seed).permutation(len(X))
    src, held = order[: len(X) // 2], order[len(X) // 2:]
    return X[src], split_label_fraction(y[src], 0.1, seed=seed), X[held], y[held]


def _stream(x_pool: np.ndarray, y_pool: np.ndarray, events_per_phase: int, seed: int):  # noqa: ANN202
    from driftwise.drift.corruptions import StreamBuilder

    builder = StreamBuilder(x_pool, y_pool, severity=3, seed=seed)
    return builder.concat([builder.segment(name, events_per_phase) for name in PHASES])


def _consume_predictions(bootstrap: str, topic: str, observed: Observed, stop: threading.Event) -> None:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None, consumer_timeout_ms=500)
    try:
        while not stop.is_set():
            for batch in consumer.poll(timeout_ms=200).values():
                with observed.lock:
                    for record in batch:
                        p = json.loads(record.value)
                        if p["id"] not in observed.predictions:
                            observed.arrivals.append(p["id"])
                        observed.predictions[p["id"]] = p
    finally:
        consumer.close()


DEMO_SERVICE_ENV = {
    # Plumbing only: the demo serves with the defaults a user gets (and `driftwise bench stream` measures).
    "DRIFTWISE_GROUP_ID": "demo",
}


def run_demo(*, workdir: Path, bootstrap_servers: str | None, events_per_phase: int = 1500, rate: float = 50.0,
             pretrain_epochs: int = 40, device: str = "auto", seed: int = 0, console: Console | None = None) -> Path:
    """Run the demo end to end; return the path of the markdown report."""
    from driftwise.models.data import Dataset
    from driftwise.service.kafka_local import LocalKafka, free_port_pair
    from driftwise.service.publishing import PretrainRequest, pretrain_and_publish

    console = console or Console()
    workdir = Path(workdir)
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    registry = workdir / "registry"
    broker = None
    started = time.monotonic()
    if bootstrap_servers is None:
        console.rule("[bold]1. Kafka: a local single-node broker from Maven Central jars")
        broker = LocalKafka(free_port_pair(), tie_to_this_process=True, purge_on_stop=True).start()
        bootstrap_servers = broker.bootstrap
    console.print(f"Kafka at {bootstrap_servers}")
    proc = None
    try:
        console.rule("[bold]2. Pretrain on digits (source half, 10% labels)")
        x_src, y_src, x_held, y_held = _digits_splits(seed)
        published = pretrain_and_publish(
            PretrainRequest(dataset=Dataset(x_src, y_src), name=MODEL_NAME, registry=registry, objective="simclr",
                            epochs=pretrain_epochs, device=device, seed=seed), console=console)
        console.print(f"published v{published.version}: " + ", ".join(
            f"{k}={v:.3f}" for k, v in published.manifest["metrics"].items() if isinstance(v, float)))

        console.rule("[bold]3. Serve (HTTP + Kafka + adaptation)")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = open(workdir / "serve.log", "w")
        # Topics of this run only, so a shared broker's earlier runs never mix in.
        topics = Topics().with_suffix(f".demo-{uuid.uuid4().hex[:8]}")
        env = {**os.environ, **DEMO_SERVICE_ENV, "DRIFTWISE_BOOTSTRAP_SERVERS": bootstrap_servers,
               "DRIFTWISE_EVENTS_TOPIC": topics.events, "DRIFTWISE_PREDICTIONS_TOPIC": topics.predictions,
               "DRIFTWISE_DLQ_TOPIC": topics.dlq, "DRIFTWISE_LABELS_TOPIC": topics.labels,
               "DRIFTWISE_MODELS_TOPIC": topics.models}
        ensure_topics(bootstrap_servers, [topics.events, topics.predictions, topics.dlq, topics.labels], partitions=3)
        ensure_topics(bootstrap_servers, [topics.models], partitions=1, compacted=[topics.models])
        proc = subprocess.Popen([sys.executable, "-m", "driftwise.service.cli", "serve", "--registry", str(registry), "--name",
                                 MODEL_NAME, "--port", str(port), "--device", device], stdout=log,
                                stderr=subprocess.STDOUT, env=env)
        wait_until_ready(f"{url}/readyz", proc, what="driftwise serve", interval=0.5,
                         log=workdir / "serve.log")
        console.print(f"serving at {url} (log: {workdir / 'serve.log'})")

        console.rule("[bold]4. Replay a drifting stream through Kafka")
        stream = _stream(x_held, y_held, events_per_phase, seed)
        observed = _run_stream(stream, bootstrap_servers, topics, url, rate, workdir, console)

        console.rule("[bold]5. Report")
        from driftwise.service.demo_report import write_report

        report = write_report(workdir, stream, observed, registry, MODEL_NAME, PHASES, events_per_phase,
                              wall_s=time.monotonic() - started)
        return report
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if broker is not None:
            broker.stop()


def _run_stream(stream, bootstrap: str, topics: Topics, url: str, rate: float, workdir: Path,  # noqa: ANN001
                console: Console) -> Observed:
    from driftwise.service.replay import event_id, replay

    data = workdir / "stream.npz"
    np.savez(data, X=stream.x, y=stream.y)
    observed, stop = Observed(), threading.Event()
    reader = threading.Thread(target=_consume_predictions, args=(bootstrap, topics.predictions, observed, stop),
                              daemon=True)
    reader.start()
    producer = threading.Thread(target=replay, kwargs=dict(npz_path=data, bootstrap=bootstrap, topic=topics.events, rate=rate,
                                                           id_prefix="evt"), daemon=True)
    producer.start()
    total, last_detections = len(stream), 0
    deadline = time.monotonic() + total / rate + 180
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("predictions", total=total, status="")
        while time.monotonic() < deadline:
            with observed.lock:
                seen = len(observed.predictions)
                version = observed.predictions[observed.arrivals[-1]]["model_version"] if observed.arrivals else "-"
            try:
                drift = httpx.get(f"{url}/drift", timeout=2.0).json()
            except httpx.HTTPError:
                drift = {}
            detections = int(drift.get("confirmed_drifts", 0))
            if detections > last_detections:
                observed.detections.append((seen, str(drift.get("last_reason", "drift"))))
                last_detections = detections
            state = drift.get("state", "")
            progress.update(task, completed=seen, status=f"model v{version}  {state}")
            if seen >= total:
                break
            time.sleep(0.5)
    stop.set()
    reader.join(timeout=10)
    producer.join(timeout=10)
    missing = [i for i in range(total) if event_id("evt", i) not in observed.predictions]
    if missing:
        console.print(f"[yellow]{len(missing)} events got no prediction before the deadline[/]")
    return observed
