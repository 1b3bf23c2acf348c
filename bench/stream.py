"""`driftwise bench stream`: what users get, in real time, beside a `--no-adapt` twin on the same events.

The other drift benches run the loop in-process on a simulated clock; this one runs
the real thing. A local Kafka broker (or a given one); `driftwise pretrain` with its
defaults, as a subprocess; two `driftwise serve` subprocesses on copies of that
registry, one with no flags but plumbing (registry, name, port, broker, topics and
group id) and one `--no-adapt`; the same drifting stream replayed into both twins'
event topics at a fixed rate (clean, each family at severity 3, clean); both
predictions topics read back and scored by event id against labels the services
never saw. `--families heldout` streams families no method or default was chosen on
(`driftwise.drift.corruptions.HELD_OUT_FAMILIES`); `--bursts` sorts each phase into runs of one
class (correlated arrivals, as when a batch of one kind of item comes in).

`--families concept` (digits) streams a label-changing shift instead: clean, then
`driftwise.drift.corruptions.CONCEPT_FAMILIES` (inverted images: what the model was sure of is
now wrong) for three phases, then clean. Self-training cannot fix that, so the right
answer is "labels needed": the bench watches the adaptive twin's ``GET /drift`` and,
once it says labels are needed, sends the true labels of its next
`FEEDBACK_LABELS` predictions to its ``driftwise.labels`` topic, as an operator
answering the alarm would. The report says when labels were asked for, and how
accuracy on the shift recovered against clean accuracy.

`--families prior` streams label shifts: clean events drawn so that class 1, then
class 0, takes 90% of a phase (`LABEL_SHIFTS`), clean phases between. The inputs of
each class do not move, so the right answer is Bayes' rule on the base
(`driftwise.drift.label_shift`), not retraining; the report says how much of each
phase a prior-corrected version served and how far its estimated prior was from the
phase's true class shares.

`--domain tabular` runs the same bench on a dataset of `driftwise.bench.tabular_data` (each
ships inside a package or is generated, no download): river's ImageSegments
(`--dataset segments`, 7 classes, the default), Phishing (2 classes), scikit-learn's
breast cancer (2 classes, 63/37), river's Shuttle (2 classes, 93/7), river's
Waveform drawn to an 80/15/5 prior (3 classes) or river's Agrawal generator (2
classes), split like digits (source half with 10% labels for
`driftwise pretrain`, which then picks its MLP path for flat rows; the other half
is the stream's pool), through the sensor shifts of `driftwise.drift.sensor_shifts` scaled
by the source half's feature stds. Its defaults are 3,000-event phases at 100
events/s.

Why twins, and why plumbing only: the gain a user sees is adaptive minus frozen on
the same events at the same time, with the defaults they would get
(`tests/test_stream_bench.py` pins that). Both twins share the machine's cores, so
the adaptive twin's adaptations compete with the frozen one's serving, as they
would with any neighbour.

Writes ``bench/results/stream-[tabular-<dataset>-]<families>[-bursts]-seed<N>.md``
(``-quick`` added for ``--quick``), ``.json`` and ``.png``; logs and registries stay in
``runs/``.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from rich.console import Console

from driftwise.bench import stream_files, tabular_data
from driftwise.bench.stream_report import BURST_RUN, EVENT_PREFIX, MODEL_NAME, SEVERITY, score, write_report
from driftwise.drift import sensor_shifts
from driftwise.drift.corruptions import CLEAN, CONCEPT_FAMILIES, DEVELOPMENT_FAMILIES, HELD_OUT_FAMILIES, Stream, StreamBuilder
from driftwise.service.topics import Topics

if TYPE_CHECKING:
    from driftwise.models.registry import ModelVersion
    from driftwise.service.runtime import ModelSnapshot

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
# The only DRIFTWISE_* variables a twin gets: where things are, never how to adapt.
PLUMBING_ENV = frozenset({"DRIFTWISE_EVENTS_TOPIC", "DRIFTWISE_PREDICTIONS_TOPIC", "DRIFTWISE_DLQ_TOPIC",
                          "DRIFTWISE_LABELS_TOPIC", "DRIFTWISE_MODELS_TOPIC", "DRIFTWISE_GROUP_ID"})
TWINS = ("adaptive", "no_adapt")
DOMAINS = ("digits", "tabular", "files")
# --dataset for --domain tabular (files inside a package or generated, no download).
TABULAR_DATASETS = tabular_data.DATASETS
# (events per second, events per phase) when not given.
DEFAULTS = {"digits": (50.0, 1500), "tabular": (100.0, 3000)}
FAMILY_SETS = ("dev", "heldout", "concept", "prior")
LABEL_SHIFTS = {"90% class 1": (1, 0.9), "90% class 0": (0, 0.9)}
"""`--families prior`'s phases: (majority class, its share); the other classes share the rest equally."""
FEEDBACK_LABELS = 300
"""True labels sent (``--families concept``) once the adaptive twin says labels are needed."""
CONCEPT_PHASES = 3
"""Phases of the label-changing shift in a row: the alarm, the labels, the recovery."""


def label_shift_prior(phase: str, k: int) -> np.ndarray:
    """The class prior of `--families prior` phase ``phase`` for ``k`` classes.

    >>> label_shift_prior("90% class 1", 2).round(2).tolist(), label_shift_prior("90% class 0", 3).round(2).tolist()
    ([0.1, 0.9], [0.9, 0.05, 0.05])
    """
    major, share = LABEL_SHIFTS[phase]
    prior = np.full(k, (1.0 - share) / (k - 1))
    prior[major] = share
    return prior


def check_phase_events_and_device(phase_events: int, device: str) -> None:
    """The checks every real-time bench makes of its phase length and device (stream, soak)."""
    if phase_events < 100:
        raise ValueError(f"phase_events must be >= 100, got {phase_events}")
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")


@functools.lru_cache(maxsize=1)
def _load_your_files(source: str, stream: str) -> stream_files.StreamFiles:
    """Read once: the config's checks, the splits, the report's data line and the replay all need them."""
    return stream_files.load(source, stream)


@dataclass(frozen=True)
class StreamBenchConfig:
    """The bench's options; ``quick`` means 300 events per phase, two families, 100 events/s.

    ``rate`` and ``phase_events`` default by domain (`DEFAULTS`); ``dataset`` is "digits" for
    the digits domain and one of `TABULAR_DATASETS` (default "segments") for the tabular one.
    """

    families: str = "heldout"
    rate: float | None = None
    phase_events: int | None = None
    seed: int = 0
    bursts: bool = False
    quick: bool = False
    device: str = "auto"
    bootstrap_servers: str | None = None
    domain: str = "digits"
    dataset: str | None = None
    source: str | None = None
    """``--source SRC.npz`` with ``stream``: your own data and drift (`driftwise.bench.stream_files`); domain "files"."""
    stream: str | None = None
    shape: str | None = None
    """``--input-shape`` for `driftwise pretrain` on your files (images as C,H,W); none for flat rows."""

    def __post_init__(self) -> None:
        if (self.source is None) != (self.stream is None):
            raise ValueError("--source and --stream go together")
        if self.source is not None:
            self._files_post_init()
            return
        if self.shape is not None:
            raise ValueError("--input-shape is for your own files (--source, --stream)")
        if self.domain not in DOMAINS[:2]:
            raise ValueError(f"domain must be digits or tabular, got {self.domain!r}")
        if self.dataset is None:
            object.__setattr__(self, "dataset", "digits" if self.domain == "digits" else "segments")
        allowed = ("digits",) if self.domain == "digits" else tuple(TABULAR_DATASETS)
        if self.dataset not in allowed:
            raise ValueError(f"dataset for the {self.domain} domain must be {' or '.join(allowed)}, "
                             f"got {self.dataset!r}")
        rate, phase_events = DEFAULTS[self.domain]
        if self.rate is None:
            object.__setattr__(self, "rate", rate)
        if self.phase_events is None:
            object.__setattr__(self, "phase_events", phase_events)
        if self.families not in FAMILY_SETS:
            raise ValueError(f"families must be one of {', '.join(FAMILY_SETS)}, got {self.families!r}")
        if self.families == "concept" and self.tabular:
            raise ValueError("--families concept is a digits scenario (inverted images)")
        if not self.rate > 0:
            raise ValueError(f"rate must be positive events per second, got {self.rate}")
        check_phase_events_and_device(self.phase_events, self.device)
        if self.quick:
            object.__setattr__(self, "phase_events", 300)
            object.__setattr__(self, "rate", 100.0)

    def _files_post_init(self) -> None:
        """Your files fix the phases and their length; rate defaults as for digits."""
        if self.domain not in ("digits", "files") or self.families != "heldout" or self.bursts or self.quick:
            raise ValueError("--source/--stream take no --domain, --families, --bursts or --quick: "
                             "the stream file says what drifts and in what order")
        files = self.your_files
        object.__setattr__(self, "domain", "files")
        object.__setattr__(self, "families", "yours")
        if self.phase_events not in (None, files.phase_events):
            raise ValueError(f"--phase-events is set by the stream file ({files.phase_events})")
        object.__setattr__(self, "phase_events", files.phase_events)
        object.__setattr__(self, "dataset", self.dataset or Path(str(self.stream)).stem)
        if self.rate is None:
            object.__setattr__(self, "rate", DEFAULTS["digits"][0])
        if not self.rate > 0:
            raise ValueError(f"rate must be positive events per second, got {self.rate}")

    @property
    def files(self) -> bool:
        return self.domain == "files"

    @property
    def your_files(self) -> stream_files.StreamFiles:
        """``--source`` and ``--stream``, read and checked once per process (`driftwise.bench.stream_files`)."""
        return _load_your_files(str(self.source), str(self.stream))

    @property
    def tabular(self) -> bool:
        return self.domain == "tabular"

    @property
    def phases(self) -> tuple[str, ...]:
        if self.files:
            return self.your_files.phases
        if self.tabular:
            held, dev = sensor_shifts.HELD_OUT_FAMILIES, sensor_shifts.DEVELOPMENT_FAMILIES
        else:
            held, dev = HELD_OUT_FAMILIES, DEVELOPMENT_FAMILIES
        if self.concept:
            return (CLEAN, *(CONCEPT_FAMILIES[0],) * CONCEPT_PHASES, CLEAN)
        if self.families == "prior":
            first, second = LABEL_SHIFTS
            return (CLEAN, first, CLEAN, second, CLEAN)
        names = held if self.families == "heldout" else dev
        return (CLEAN, *(names[:2] if self.quick else names), CLEAN)

    @property
    def concept(self) -> bool:
        """The label-changing scenario: labels are sent when the adaptive twin asks for them."""
        return self.families == "concept"

    @property
    def model_name(self) -> str:
        """The registry name both twins serve: the dataset's ("digits", "segments", "breast-cancer", ...)."""
        return str(self.dataset)

    @property
    def input_shape(self) -> str | None:
        """`driftwise pretrain --input-shape`: digits' rows are 1x8 images; tabular rows stay flat (no flag)."""
        if self.files:
            return self.shape
        return None if self.tabular else "1,8,8"

    @property
    def stem(self) -> str:
        if self.files:
            return f"stream-files-{self.dataset}"
        bursts, quick = "-bursts" if self.bursts else "", "-quick" if self.quick else ""
        domain = f"tabular-{self.dataset}-" if self.tabular else ""
        return f"stream-{domain}{self.families}{bursts}-seed{self.seed}{quick}"

    def command(self) -> str:
        parts = ["driftwise bench stream"]
        if self.files:
            parts += [f"--source {self.source}", f"--stream {self.stream}"]
            parts += [f"--input-shape {self.shape}"] if self.shape else []
            parts += [f"--rate {self.rate:g}"]
            return " ".join(parts + ([f"--device {self.device}"] if self.device != "auto" else []))
        if self.tabular:
            parts += ["--domain tabular", f"--dataset {self.dataset}"]
        parts += [f"--families {self.families}", f"--seed {self.seed}"]
        if self.quick:
            parts.append("--quick")
        else:
            parts += [f"--rate {self.rate:g}", f"--phase-events {self.phase_events}"]
        if self.bursts:
            parts.append("--bursts")
        if self.device != "auto":
            parts.append(f"--device {self.device}")
        return " ".join(parts)


# -- the data -------------------------------------------------------------------------------------------------------
def tabular_splits(dataset: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """As `driftwise.service.demo._digits_splits`: source half (10% labeled, the rest -1) and the held-out half."""
    from driftwise.models.digits import split_label_fraction

    X, y = tabular_data.load(dataset)
    order = np.random.default_rng(seed).permutation(len(X))
    src, held = order[: len(X) // 2], order[len(X) // 2:]
    return X[src], split_label_fraction(y[src], 0.1, seed=seed), X[held], y[held]


def splits(config: StreamBenchConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_source, y_source with -1 for unlabeled, x_pool, y_pool)`` of the config's dataset (your files: the
    stream's events and labels are the "pool", replayed as they are)."""
    if config.files:
        files = config.your_files
        return files.x_source, files.y_source, files.stream.x, files.stream.y
    if config.tabular:
        return tabular_splits(str(config.dataset), config.seed)
    from driftwise.service.demo import _digits_splits

    return _digits_splits(config.seed)


# -- the stream -----------------------------------------------------------------------------------------------------
def burst_order(y: np.ndarray, run: int, rng: np.random.Generator) -> np.ndarray:
    """A permutation of ``range(len(y))`` in runs of at most ``run`` events of one class, runs shuffled.

    >>> order = burst_order(np.array([0, 1, 0, 1, 0, 1]), 3, np.random.default_rng(0))
    >>> sorted(order.tolist()), np.array([0, 1, 0, 1, 0, 1])[order].tolist() in ([0, 0, 0, 1, 1, 1], [1, 1, 1, 0, 0, 0])
    ([0, 1, 2, 3, 4, 5], True)
    """
    chunks = []
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        chunks += [members[i:i + run] for i in range(0, len(members), run)]
    return np.concatenate([chunks[k] for k in rng.permutation(len(chunks))])


def build_stream(pool_x: np.ndarray, pool_y: np.ndarray, phases: Sequence[str], phase_events: int, *, seed: int,
                 bursts: bool, reference: np.ndarray | None = None) -> Stream:
    """One segment of ``phase_events`` per phase at severity 3, each optionally sorted into one-class runs; a phase
    of `LABEL_SHIFTS` is clean events drawn to its class prior (a label shift).

    With a ``reference`` (the source features) the pool is tabular and the phases are sensor shifts
    scaled by its stds; without, the pool is images and the phases are corruptions.
    """
    builder = (StreamBuilder(pool_x, pool_y, severity=SEVERITY, seed=seed) if reference is None else
               sensor_shifts.SensorStreamBuilder(pool_x, pool_y, reference, severity=SEVERITY, seed=seed))
    rng = np.random.default_rng(seed + 1)
    parts = []
    k = int(np.max(pool_y)) + 1
    for name in phases:
        part = (builder.prior_segment(name, label_shift_prior(name, k), phase_events) if name in LABEL_SHIFTS else
                builder.segment(name, phase_events))
        if bursts:
            o = burst_order(part.y, BURST_RUN, rng)
            part = Stream(part.x[o], part.y[o], part.domain[o], image=None if part.image is None else part.image[o])
        parts.append(part)
    return builder.concat(parts)


def replayed_stream(config: StreamBenchConfig, x_src: np.ndarray, x_pool: np.ndarray, y_pool: np.ndarray) -> Stream:
    """The events a run of ``config`` replays: your stream file as it is, or `build_stream` on the pool (`splits`)."""
    if config.files:
        return config.your_files.stream
    return build_stream(x_pool, y_pool, config.phases, int(config.phase_events or 0), seed=config.seed,
                        bursts=config.bursts, reference=x_src if config.tabular else None)


# -- the twins: exactly what a user types, plus where things are -------------------------------------------------------
def pretrain_command(data: Path, registry: Path, name: str = MODEL_NAME,
                     input_shape: str | None = "1,8,8") -> list[str]:
    """`driftwise pretrain` with the CLI's defaults: data, name, registry and the image shape (none for flat
    rows), nothing else."""
    cmd = [sys.executable, "-m", "driftwise.service.cli", "pretrain", "--data", str(data), "--name", name,
           "--registry", str(registry)]
    return cmd + (["--input-shape", input_shape] if input_shape else [])


def serve_command(registry: Path, port: int, bootstrap: str, *, no_adapt: bool, device: str = "auto",
                  name: str = MODEL_NAME) -> list[str]:
    """`driftwise serve` with plumbing flags only; the twin differs by ``--no-adapt`` alone."""
    cmd = [sys.executable, "-m", "driftwise.service.cli", "serve", "--registry", str(registry), "--name", name,
           "--port", str(port), "--bootstrap-servers", bootstrap]
    if device != "auto":
        cmd += ["--device", device]
    return cmd + (["--no-adapt"] if no_adapt else [])


def pretrained_snapshot(run_dir: Path) -> "ModelSnapshot":
    """Version 1 of a finished run's ``registry-no_adapt`` (``runs/stream-*``): the model `driftwise pretrain` made."""
    from driftwise.models.registry import Registry
    from driftwise.service.runtime import load_from_registry

    registry = Path(run_dir) / "registry-no_adapt"
    (name,) = [p.name for p in registry.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return load_from_registry(Registry(registry), name, 1, device="cpu")


def pretrain_registry(workdir: Path, registry: Path, x_src: np.ndarray, y_src: np.ndarray, name: str,
                      input_shape: str | None) -> ModelVersion:
    """Run `pretrain_command` on the source rows (log in ``workdir``); return the published `ModelVersion`."""
    from driftwise.models.registry import Registry

    np.savez(workdir / "pretrain.npz", X=x_src, y=y_src)
    with open(workdir / "pretrain.log", "w") as log:
        subprocess.run(pretrain_command(workdir / "pretrain.npz", registry, name, input_shape),
                       env=without_settings(dict(os.environ)), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                       stdin=subprocess.DEVNULL, check=True, timeout=1200)
    current = Registry(registry).current(name)
    assert current is not None, "pretrain published nothing"
    return current


def twin_command(config: StreamBenchConfig, label: str, registry: Path, port: int, bootstrap: str) -> list[str]:
    """The `serve_command` of twin ``label`` ("adaptive" or "no_adapt") in a run of ``config``."""
    if label not in TWINS:
        raise ValueError(f"twin must be one of {', '.join(TWINS)}, got {label!r}")
    return serve_command(registry, port, bootstrap, no_adapt=label == "no_adapt", device=config.device,
                         name=config.model_name)


def without_settings(environ: dict[str, str]) -> dict[str, str]:
    """``environ`` less every ``DRIFTWISE_*`` variable: a developer's shell must not tune what is measured."""
    return {k: v for k, v in environ.items() if not k.startswith("DRIFTWISE_")}


def plumbing_env(environ: dict[str, str], topics: Topics, group_id: str) -> dict[str, str]:
    """`without_settings` plus the twin's own topics and consumer group."""
    env = without_settings(environ)
    env.update({"DRIFTWISE_EVENTS_TOPIC": topics.events, "DRIFTWISE_PREDICTIONS_TOPIC": topics.predictions,
                "DRIFTWISE_DLQ_TOPIC": topics.dlq, "DRIFTWISE_LABELS_TOPIC": topics.labels,
                "DRIFTWISE_MODELS_TOPIC": topics.models, "DRIFTWISE_GROUP_ID": group_id})
    return env


# -- running it -------------------------------------------------------------------------------------------------------
@dataclass
class Twin:
    """One `driftwise serve` child, its topics, and what came back from it."""

    label: str
    proc: subprocess.Popen
    url: str
    topics: Topics
    registry: Path
    observed: Any  # driftwise.service.demo.Observed
    confirmed: int = 0
    version: str = "-"

    @property
    def detections(self) -> list[tuple[int, str]]:
        return self.observed.detections


def run_topics(bootstrap: str, suffix: str) -> Topics:
    """A run's own topics (events, predictions, DLQ and labels with 3 partitions, models compacted), created."""
    from driftwise.service.topics import ensure_topics

    topics = Topics().with_suffix(suffix)
    ensure_topics(bootstrap, [topics.events, topics.predictions, topics.dlq, topics.labels], partitions=3)
    ensure_topics(bootstrap, [topics.models], partitions=1, compacted=[topics.models])
    return topics


def launch(cmd: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """A child in its own session (so `stop_child` reaches its adapter workers), output to ``log_path``."""
    with open(log_path, "w") as log:
        return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def _start_twin(label: str, registry: Path, bootstrap: str, run_id: str, workdir: Path,
                config: StreamBenchConfig) -> Twin:
    from driftwise.service.demo import Observed
    from driftwise.service.localhost import free_port

    topics = run_topics(bootstrap, f".stream-{run_id}-{label}")
    port = free_port()
    proc = launch(twin_command(config, label, registry, port, bootstrap),
                  plumbing_env(dict(os.environ), topics, f"stream-{run_id}-{label}"), workdir / f"serve-{label}.log")
    return Twin(label, proc, f"http://127.0.0.1:{port}", topics, registry, Observed())


def stop_child(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL to the child's own process group (its adapter workers) after 30 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
            return
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, 9)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait(timeout=10)


def _replay_both(data: Path, bootstrap: str, twins: Sequence[Twin], rate: float,
                 errors: list[str]) -> list[threading.Thread]:
    """The same file into every twin's events topic, each paced at ``rate``; failures land in ``errors``."""
    from driftwise.service.replay import replay

    def one(topic: str) -> None:
        try:
            replay(data, bootstrap=bootstrap, topic=topic, rate=rate, id_prefix=EVENT_PREFIX, timeout_s=60.0)
        except Exception as exc:  # noqa: BLE001 - reported after the run, which then fails
            errors.append(f"replay into {topic}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=one, args=(t.topics.events,), daemon=True) for t in twins]
    for th in threads:
        th.start()
    return threads


def _drift(url: str) -> dict[str, Any]:
    import httpx

    try:
        return httpx.get(f"{url}/drift", timeout=2.0).json()
    except (httpx.HTTPError, ValueError):
        return {}


@dataclass
class FeedbackSender:
    """Once the twin says labels are needed, the true labels of its next ``count`` predictions go to its labels
    topic (``{"id", "label"}``, what `driftwise.service.feedback` joins), as fast as the predictions come back."""

    twin: Twin
    labels: dict[str, int]
    producer: Any
    """A `kafka.KafkaProducer` (or anything with its ``send``, ``flush`` and ``close``)."""
    count: int = FEEDBACK_LABELS
    needed_at: int | None = None
    """Predictions the twin had made when it first said labels are needed."""
    sent: list[str] = field(default_factory=list)

    def step(self, seen: int, drift: dict[str, Any]) -> None:
        if self.needed_at is None and (drift.get("policy") or {}).get("labels_needed"):
            self.needed_at = seen
        if self.needed_at is None or len(self.sent) >= self.count:
            return
        with self.twin.observed.lock:
            due = self.twin.observed.arrivals[self.needed_at + len(self.sent): self.needed_at + self.count]
        for eid in due:
            self.producer.send(self.twin.topics.labels, json.dumps({"id": eid, "label": self.labels[eid]}).encode())
            self.sent.append(eid)
        self.producer.flush(timeout=10)

    def close(self) -> None:
        self.producer.close(timeout=10)


def _watch(twins: Sequence[Twin], total: int, deadline: float, console: Console,
           feedback: FeedbackSender | None = None) -> None:
    """Show progress until every twin has every prediction or the deadline passes; note each confirmed drift
    (and, with ``feedback``, send labels when the adaptive twin asks for them)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]{task.description:>9}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=console) as progress:
        tasks = {t.label: progress.add_task(t.label, total=total, status="") for t in twins}
        while time.monotonic() < deadline:
            done = True
            for t in twins:
                with t.observed.lock:
                    seen = len(t.observed.predictions)
                    last = t.observed.arrivals[-1] if t.observed.arrivals else None
                    version = t.observed.predictions[last]["model_version"] if last else "-"
                drift = _drift(t.url)
                if int(drift.get("confirmed_drifts", 0)) > t.confirmed:
                    t.confirmed = int(drift["confirmed_drifts"])
                    t.detections.append((seen, str(drift.get("last_reason", "drift"))))
                    progress.console.log(f"{t.label}: drift confirmed after {seen} predictions "
                                         f"({drift.get('last_reason')})")
                if str(version) != t.version:
                    progress.console.log(f"{t.label}: serving v{version} after {seen} predictions")
                    t.version = str(version)
                if feedback is not None and feedback.twin is t:
                    asked = feedback.needed_at is not None
                    feedback.step(seen, drift)
                    if feedback.needed_at is not None and not asked:
                        progress.console.log(f"{t.label}: labels needed after {seen} predictions; sending "
                                             f"{feedback.count} labels")
                progress.update(tasks[t.label], completed=seen, status=f"v{version} {drift.get('state', '')}")
                done = done and seen >= total
                if t.proc.poll() is not None:
                    raise RuntimeError(f"the {t.label} twin exited with code {t.proc.returncode}")
            if done:
                return
            time.sleep(0.5)


def feedback_summary(feedback: FeedbackSender, stream: Stream, config: StreamBenchConfig) -> dict[str, Any]:
    """When labels were asked for (in stream events, and after the label-changing shift began) and which were sent."""
    from driftwise.service.replay import event_id

    position = {event_id(EVENT_PREFIX, i): i for i in range(len(stream))}
    with feedback.twin.observed.lock:
        arrivals = list(feedback.twin.observed.arrivals)
    asked = None if feedback.needed_at is None else position[arrivals[max(feedback.needed_at - 1, 0)]]
    shift_start = config.phases.index(CONCEPT_FAMILIES[0]) * int(config.phase_events)
    sent = sorted(position[e] for e in feedback.sent)
    return {"labels_needed_at": asked, "labels_needed_after_shift": None if asked is None else asked - shift_start,
            "labels_sent": len(sent), "labels_sent_events": [sent[0], sent[-1]] if sent else None}


def code_state() -> str:
    """The commit the services ran, and the tracked files changed on top of it (a shared tree moves)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30).stdout

    dirty = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no").splitlines()]
    return git("rev-parse", "--short", "HEAD").strip() + (f" + uncommitted {', '.join(dirty)}" if dirty else "")


def data_line(config: StreamBenchConfig, x_src: np.ndarray, y_src: np.ndarray, x_pool: np.ndarray) -> str:
    """What was pretrained on and streamed from, in one line for the report."""
    if config.files:
        return stream_files.describe(config.your_files, str(config.source), str(config.stream))
    what = ("scikit-learn's digits (8x8)" if not config.tabular else
            f"{tabular_data.describe(str(config.dataset))} ({x_src.shape[1]} features)")
    k = int(y_src.max()) + 1
    return (f"{what}, {k} classes: {len(x_src)} source rows ({int((y_src >= 0).sum())} labeled) for pretraining, "
            f"a pool of {len(x_pool)} other rows drawn for the stream")


def run(config: StreamBenchConfig, out_dir: Path | None = None, console: Console | None = None) -> Path:
    """The whole bench (see the module docstring); children and the broker always stop; return the report."""
    from driftwise.bench.drift import machine
    from driftwise.service.demo import _consume_predictions
    from driftwise.service.kafka_local import LocalKafka, free_port_pair
    from driftwise.service.localhost import wait_until_ready

    console = console or Console()
    started_wall, machine_line, code = time.monotonic(), machine(), code_state()
    workdir = ROOT / "runs" / config.stem
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    broker, twins, readers = None, [], []
    stop = threading.Event()
    try:
        bootstrap = config.bootstrap_servers
        if bootstrap is None:
            console.rule("[bold]Kafka: a local single-node broker")
            broker = LocalKafka(free_port_pair(), tie_to_this_process=True, purge_on_stop=True).start()
            bootstrap = broker.bootstrap
        console.rule(f"[bold]driftwise pretrain on {config.dataset} (CLI defaults)")
        x_src, y_src, x_held, y_held = splits(config)
        registry = workdir / "registry"
        current = pretrain_registry(workdir, registry, x_src, y_src, config.model_name, config.input_shape)
        base = str(current.version)
        console.print(f"v{base}: " + ", ".join(f"{k}={v:.3f}" for k, v in current.manifest["metrics"].items()
                                                if isinstance(v, float) and "accuracy" in k))

        console.rule("[bold]two twins: driftwise serve, and driftwise serve --no-adapt")
        run_id = uuid.uuid4().hex[:8]
        for label in TWINS:
            copy = workdir / f"registry-{label}"
            shutil.copytree(registry, copy)
            twins.append(_start_twin(label, copy, bootstrap, run_id, workdir, config))
        for t in twins:
            wait_until_ready(f"{t.url}/readyz", t.proc, what=f"the {t.label} twin", timeout=180, interval=0.5,
                             log=workdir / f"serve-{t.label}.log")

        console.rule(f"[bold]replay {' -> '.join(config.phases)} at {config.rate:g} events/s")
        stream = replayed_stream(config, x_src, x_held, y_held)
        np.savez(workdir / "stream.npz", X=stream.x, y=stream.y)
        for t in twins:
            readers.append(threading.Thread(target=_consume_predictions, daemon=True,
                                            args=(bootstrap, t.topics.predictions, t.observed, stop)))
            readers[-1].start()
        errors: list[str] = []
        started = datetime.now(timezone.utc)
        feedback = None
        if config.concept:
            from driftwise.service.replay import event_id

            from kafka import KafkaProducer

            adaptive = next(t for t in twins if t.label == "adaptive")
            feedback = FeedbackSender(adaptive, {event_id(EVENT_PREFIX, i): int(label) for i, label in
                                                 enumerate(stream.y)},
                                      KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5))
        replays = _replay_both(workdir / "stream.npz", bootstrap, twins, config.rate, errors)
        seconds = len(stream) / config.rate
        try:
            _watch(twins, len(stream), time.monotonic() + seconds + 120 + 0.25 * seconds, console, feedback)
        finally:
            if feedback is not None:
                feedback.close()
        for th in replays:
            th.join(timeout=30)
        if errors:
            raise RuntimeError("; ".join(errors))
        final_drift = _drift(next(t.url for t in twins if t.label == "adaptive"))
        stop.set()
        for th in readers:
            th.join(timeout=10)

        console.rule("[bold]score and report")
        adaptive_registry = next(t.registry for t in twins if t.label == "adaptive")
        results = {"command": config.command(), "date": time.strftime("%Y-%m-%d %H:%M %Z"), "machine": machine_line,
                   "code": code, "config": asdict(config), "phases_run": list(config.phases), "base_version": base,
                   "model_name": config.model_name, "data": data_line(config, x_src, y_src, x_held),
                   "base_metrics": current.manifest["metrics"],
                   **score(stream, {t.label: t.observed for t in twins}, adaptive_registry, config, base, started),
                   **({"feedback": feedback_summary(feedback, stream, config)} if feedback is not None else {}),
                   "final_drift_adaptive": {k: final_drift.get(k) for k in ("state", "confirmed_drifts", "policy",
                                                                             "last_adaptation", "loop")},
                   "wall_seconds": time.monotonic() - started_wall}
        return write_report(results, config, Path(out_dir) if out_dir else RESULTS)
    finally:
        stop.set()
        for t in twins:
            stop_child(t.proc)
        if broker is not None:
            broker.stop()
