"""The stream's throughput against the number of `driftwise serve` replicas: a section of ``driftwise bench serve``.

R real replicas (processes, every default, one consumer group, one registry)
are started and left to settle (one elected adapter, the partitions spread);
then N events are produced to the events topic as fast as one producer can, and
the rate is read from the predictions themselves: N over the span of their
broker timestamps. Each R runs on fresh topics and a fresh group, interleaved
over rounds. On this machine every replica shares the same two cores with the
broker and the client, so the table says how much a second process overlaps,
not how a deployment on separate machines scales.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from driftwise.bench.kafka_throughput import broker, digit_events, produce_events
from driftwise.service.localhost import free_port, wait_until_ready
from driftwise.service.topics import Topics, ensure_topics

PARTITIONS = 6  # divisible by 1, 2 and 3 replicas
SETTLE_S = 8.0  # after every replica is ready: joins and the first rebalances are over
RUN_TIMEOUT_S = 300.0


def _replicas(count: int, registry: Path, bootstrap: str, topics: Topics, log_dir: Path) -> list[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTWISE_")}
    env.update({"DRIFTWISE_REGISTRY": str(registry), "DRIFTWISE_NAME": "digits", "DRIFTWISE_BOOTSTRAP_SERVERS": bootstrap,
                "DRIFTWISE_GROUP_ID": f"bench-replicas-{uuid.uuid4().hex[:8]}", "DRIFTWISE_EVENTS_TOPIC": topics.events,
                "DRIFTWISE_PREDICTIONS_TOPIC": topics.predictions, "DRIFTWISE_DLQ_TOPIC": topics.dlq,
                "DRIFTWISE_LABELS_TOPIC": topics.labels, "DRIFTWISE_MODELS_TOPIC": topics.models,
                "DRIFTWISE_ADAPTER_TOPIC": f"{topics.models}.adapter",
                "DRIFTWISE_OBSERVATIONS_TOPIC": f"{topics.models}.observations"})
    procs = []
    for i in range(count):
        port = free_port()
        log = log_dir / f"replicas{count}-{i}.log"
        proc = subprocess.Popen([sys.executable, "-m", "driftwise.service.cli", "serve", "--port", str(port)], env=env,
                                stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(proc)
        wait_until_ready(f"http://127.0.0.1:{port}/readyz", proc, what=f"replica {i}", log=log, timeout=180)
    return procs


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, 9)


def _prediction_span(bootstrap: str, topic: str, n: int) -> tuple[int, float]:
    """(distinct ids predicted, seconds from the first prediction's timestamp to the last) once all ``n`` are in."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ids: set[bytes] = set()
        first, last = float("inf"), 0.0
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while len(ids) < n and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for r in records:
                    ids.add(r.key)
                    first, last = min(first, r.timestamp / 1000), max(last, r.timestamp / 1000)
        return len(ids), last - first
    finally:
        consumer.close(autocommit=False)


def one_run(count: int, registry: Path, bootstrap: str, payloads: list[tuple[bytes, bytes]], log_dir: Path) -> dict[str, Any]:
    topics = Topics().with_suffix(f".r{uuid.uuid4().hex[:8]}")
    ensure_topics(bootstrap, [topics.events, topics.predictions], PARTITIONS)
    procs = _replicas(count, registry, bootstrap, topics, log_dir)
    try:
        time.sleep(SETTLE_S)
        produce_events(bootstrap, topics.events, payloads)
        predicted, span = _prediction_span(bootstrap, topics.predictions, len(payloads))
    finally:
        _stop(procs)
    if predicted < len(payloads):
        raise RuntimeError(f"{count} replicas predicted {predicted} of {len(payloads)} events")
    return {"replicas": count, "events": len(payloads), "span_s": round(span, 3),
            "events_per_s": round(len(payloads) / span, 1)}


def run_replica_bench(quick: bool, *, counts: tuple[int, ...] = (1, 2), events: int | None = None,
                      bootstrap: str | None = None) -> dict[str, Any]:
    """Events/s of the stream with each replica count, interleaved over rounds; medians and ratios to one replica."""
    from driftwise.bench.serve import _publish_default_digits_cnn

    n = events if events is not None else (2_000 if quick else 20_000)
    rounds = 1 if quick else 3
    runs: dict[int, list[dict[str, Any]]] = {c: [] for c in counts}
    with broker(bootstrap) as bootstrap, TemporaryDirectory(prefix="driftwise-bench-replicas-") as tmp:
        registry, _ = _publish_default_digits_cnn(Path(tmp) / "registry")
        _, payloads = digit_events(n)
        for _ in range(rounds):
            for c in counts:
                runs[c].append(one_run(c, registry.root, bootstrap, payloads, Path(tmp)))
    rate = {c: round(statistics.median(r["events_per_s"] for r in rs), 1) for c, rs in runs.items()}
    return {"settings": {"events": n, "rounds": rounds, "partitions": PARTITIONS, "cores": os.cpu_count()},
            "runs": {str(c): rs for c, rs in runs.items()}, "events_per_s": {str(c): r for c, r in rate.items()},
            "ratio_to_one": {str(c): round(r / rate[counts[0]], 2) for c, r in rate.items()}}


def replica_markdown(r: dict[str, Any]) -> str:
    cfg = r["settings"]
    rows = [f"| {c} | {r['events_per_s'][c]:.0f} | {r['ratio_to_one'][c]:.2f}x |" for c in r["events_per_s"]]
    return "\n".join([
        "## Kafka: throughput against replicas",
        "",
        f"{cfg['events']} events produced at once to a {cfg['partitions']}-partition topic, after the replicas (real "
        "`driftwise serve` processes, every default, one group and registry: one elected adapter monitoring the "
        "whole stream, the others sending it their batches) have settled; events/s from the predictions' broker "
        f"timestamps, {cfg['rounds']} interleaved round(s), medians. All replicas, the broker and the producer share "
        f"this machine's {cfg['cores']} cores.",
        "",
        "| replicas | events/s | vs one |",
        "|---:|---:|---:|",
        *rows,
        "",
        "On separate machines each replica brings its own cores, so the stream should scale with replicas up to the "
        "events topic's partitions, less the adapter's extra work: it monitors every replica's batches (about 70-100 "
        "us of CPU per event, measured above) and trains candidates. Here the second replica can only use what the "
        "first leaves of two shared cores.",
    ])
