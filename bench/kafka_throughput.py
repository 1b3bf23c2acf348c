"""Kafka section of ``driftwise bench serve``: the stream's events/s against its two limits, in one run.

On a private single-node broker on 127.0.0.1, N events (8x8 digits as JSON)
pre-produced to a fresh 3-partition topic per run, measured three ways:
passthrough (kafka-python doing the stream's work without the model: poll,
decode JSON, produce a same-size record, wait for acks, commit asynchronously
as the service does), model-only
(``Runtime.predict`` on batches of the stream's ``max_batch``) and end-to-end
(the service's own `StreamWorker`, wired as ``driftwise.service.app`` wires it, drift
monitor observing, to the last prediction acknowledged and committed). Rates
count from the first committed batch to the last, so the consumer-group join
does not dilute them. Bar: end-to-end >= 0.85x the slower of the other two (issue 12).
"""

from __future__ import annotations

import inspect
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import numpy as np
import orjson
from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition

from driftwise.service.events import decode_events, encode_event, encode_prediction
from driftwise.service.stream import RECONNECT_BACKOFF_MAX_MS, StreamWorker
from driftwise.service.topics import Topics, ensure_topics

TARGET_RATIO = 0.85  # issue 12: end-to-end >= 0.85x min(passthrough, model-only)
REPLICA_TARGET_RATIO = 0.95  # issue 12: the serving path with drift observation on >= 0.95x with it off
MAX_BATCH: int = inspect.signature(StreamWorker).parameters["max_batch"].default
PARTITIONS = 3
RUN_TIMEOUT_S = 300.0
clock = time.perf_counter
Marks = list[tuple[float, int]]  # (seconds since the consumer started, events committed so far), one per batch


def _rates(marks: Marks) -> dict[str, float]:
    """events/s from the first commit to the last (from the start if there was one batch); startup = first commit."""
    (t0, n0), (t1, n1) = marks[0], marks[-1]
    rate = (n1 - n0) / (t1 - t0) if n1 > n0 else n1 / t1
    return {"events_per_s": round(rate, 1), "startup_s": round(t0, 3), "total_s": round(t1, 3)}


def _offsets(consumer: KafkaConsumer, records: list[Any]) -> dict[TopicPartition, OffsetAndMetadata]:
    offsets: dict[TopicPartition, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
    assigned = consumer.assignment()
    return {tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items() if tp in assigned}


def produce_events(bootstrap: str, topic: str, payloads: list[tuple[bytes, bytes]]) -> None:
    """Pre-produce ``(key, value)`` records to a fresh topic and wait for every ack."""
    ensure_topics(bootstrap, [topic], PARTITIONS)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        futures = [producer.send(topic, key=k, value=v) for k, v in payloads]
        producer.flush(timeout=RUN_TIMEOUT_S)
        for f in futures:
            f.get(timeout=0)
    finally:
        producer.close(timeout=5)


def digit_events(n: int) -> tuple[np.ndarray, list[tuple[bytes, bytes]]]:
    """``n`` events of the bundled digits (cycled), as inputs and as ``(key, value)`` records keyed by id."""
    from driftwise.models.digits import load_digits_images

    images, _ = load_digits_images()
    X = images[np.arange(n) % len(images)]
    return X, [(f"e{i:06d}".encode(), encode_event(f"e{i:06d}", x)) for i, x in enumerate(X)]


@contextmanager
def broker(bootstrap: str | None) -> Iterator[str]:
    """``bootstrap`` if given, else a private broker on a free port, stopped (and purged) on leaving."""
    from driftwise.service.kafka_local import LocalKafka, free_port_pair

    if bootstrap:
        yield bootstrap
        return
    kafka = LocalKafka(free_port_pair(), tie_to_this_process=True, purge_on_stop=True).start()
    try:
        yield kafka.bootstrap
    finally:
        kafka.stop()


def passthrough(bootstrap: str, topics: Topics, n: int, max_batch: int = MAX_BATCH) -> dict[str, Any]:
    """The stream's Kafka work without the model, configured like `StreamWorker`; seconds per stage."""
    stages = dict.fromkeys(("poll", "decode", "produce", "flush", "commit"), 0.0)
    common = {"bootstrap_servers": bootstrap, "reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS}
    confidence = float(np.float32(0.8731))  # a float32 confidence, as long in JSON as a real one
    producer = KafkaProducer(acks="all", linger_ms=5, **common)
    consumer = KafkaConsumer(group_id=f"bench-pass-{uuid.uuid4().hex[:8]}", enable_auto_commit=False,
                             auto_offset_reset="earliest", max_poll_records=max_batch, session_timeout_ms=10000,
                             heartbeat_interval_ms=2500, **common)
    marks: Marks = []
    done, started = 0, clock()
    try:
        consumer.subscribe([topics.events])
        consumer.partitions_for_topic(topics.events)
        while done < n:
            if clock() - started > RUN_TIMEOUT_S:
                raise TimeoutError(f"passthrough: {done} of {n} events after {RUN_TIMEOUT_S:.0f}s")
            t0 = clock()
            records = [r for part in consumer.poll(timeout_ms=500, max_records=max_batch).values() for r in part]
            if not records:
                continue
            t1 = clock()
            events = [orjson.loads(r.value) for r in records]  # the service's JSON parser (service/events.py)
            t2 = clock()
            futures = [producer.send(topics.predictions, key=e["id"].encode(),
                                     value=encode_prediction(e["id"], 7, confidence, "1")) for e in events]
            t3 = clock()
            producer.flush(timeout=120)
            for f in futures:
                f.get(timeout=0)
            t4 = clock()
            consumer.commit_async(_offsets(consumer, records))  # as `StreamWorker` commits (300ae68)
            t5 = clock()
            if marks:  # the first batch's poll also waited for the group join: leave it out, as the rate does
                for stage, seconds in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                    stages[stage] += seconds
            done += len(records)
            marks.append((t5 - started, done))
    finally:
        producer.close(timeout=5)
        consumer.close(autocommit=False)
    steady = max(1, done - marks[0][1])
    return _rates(marks) | {"events": done, "stage_us": {k: round(v / steady * 1e6, 2) for k, v in stages.items()}}


def model_only(runtime: Any, X: np.ndarray, max_batch: int = MAX_BATCH) -> dict[str, Any]:
    """``runtime.predict`` over ``X`` in batches of ``max_batch``, after one warm-up batch."""
    batches = [X[i:i + max_batch] for i in range(0, len(X), max_batch)]
    runtime.predict(batches[0])
    started = clock()
    for b in batches:
        runtime.predict(b)
    seconds = clock() - started
    return {"events_per_s": round(len(X) / seconds, 1), "batch": max_batch, "total_s": round(seconds, 3)}


def end_to_end(registry_root: Path, name: str, bootstrap: str, topics: Topics, n: int,
               observing: str = "monitor") -> dict[str, Any]:
    """The service's stream over ``n`` events, built as ``driftwise.service.app`` builds it.

    ``observing``: ``"monitor"``, the adapter (a lone replica, elected): its drift monitor sees every batch;
    ``"replica"`` (``DRIFTWISE_ROLE=replica``): no monitor, each batch sent to the observations topic instead;
    ``"none"``: neither, for attribution only.
    """
    from driftwise.service.app import init_metric_series, load_current_model, start_background, start_stream, stop_background
    from driftwise.service.settings import Settings
    from driftwise.service.state import ServiceState

    settings = Settings(registry=registry_root, name=name, bootstrap_servers=bootstrap, no_adapt=True,
                        group_id=f"bench-e2e-{uuid.uuid4().hex[:8]}", events_topic=topics.events,
                        predictions_topic=topics.predictions, dlq_topic=topics.dlq, labels_topic=topics.labels,
                        models_topic=topics.models, role="replica" if observing == "replica" else "auto")
    state = ServiceState.build(settings)
    init_metric_series(state.metrics)
    load_current_model(state)
    state.start_observing()
    marks: Marks = []
    try:
        started = clock()
        if observing == "none":
            start_stream(state)
        else:
            start_background(state)  # the roles before the stream, as `driftwise serve` starts them
            started = clock()  # the election (a lone replica's, or a replica's wait) is startup, not the stream's
        while (done := state.stream.processed) < n:
            if clock() - started > RUN_TIMEOUT_S:
                raise TimeoutError(f"end-to-end: {done} of {n} events after {RUN_TIMEOUT_S:.0f}s")
            if done and (not marks or marks[-1][1] != done):
                marks.append((clock() - started, done))
            time.sleep(0.005)
        marks.append((clock() - started, done))
        caught_up = state.flush_observers(timeout=RUN_TIMEOUT_S)
        monitor_done_s = clock() - started
        dead_lettered, batches = state.stream.dead_lettered, state.stream.batches
        adapter = state.controller is not None and state.controller.leading
        sent = state.roles.publisher.sent if state.roles is not None else 0
    finally:
        stop_background(state)
        state.stop_observing()
    if not caught_up or dead_lettered or adapter != (observing == "monitor"):
        raise RuntimeError(f"end-to-end run is not valid: monitor caught up {caught_up}, {dead_lettered} dead letters, "
                           f"adapter {adapter} (observing {observing!r})")
    return _rates(marks) | {"events": done, "mean_batch": round(done / batches, 1), "adapter": adapter,
                            "observations_sent": sent, "monitor_caught_up_s": round(monitor_done_s, 3)}


def _per_event_us(fn: Callable[[], Any], events: int) -> float:
    """Best of 3 timed calls after a warm-up, per event."""
    times = []
    for _ in range(4):
        started = clock()
        fn()
        times.append(clock() - started)
    return round(min(times[1:]) / events * 1e6, 2)


def stage_profile(registry_root: Path, name: str, payloads: list[bytes],
                  max_batch: int = MAX_BATCH) -> dict[str, float]:
    """Microseconds per event of the stages the passthrough lacks (but the forward pass), in-process."""
    from driftwise.service.app import attach_adaptation, load_current_model
    from driftwise.service.settings import Settings
    from driftwise.service.state import ServiceState

    state = ServiceState.build(Settings(registry=registry_root, name=name, no_adapt=True))
    load_current_model(state)
    attach_adaptation(state)  # no observer thread: notify runs the monitor right here
    shape = state.runtime.input_shape
    sample = payloads[:4 * max_batch]
    batches = [sample[i:i + max_batch] for i in range(0, len(sample), max_batch)]
    Xs = [decode_events(b, shape).X for b in batches]
    preds = [state.runtime.predict(X) for X in Xs]

    def monitor() -> None:
        for X, p in zip(Xs, preds):
            state.notify(X, p, "kafka")

    try:
        json_us = _per_event_us(lambda: [orjson.loads(v) for v in sample], len(sample))
        decode_us = _per_event_us(lambda: [decode_events(b, shape) for b in batches], len(sample))
        return {"json_decode_us": json_us, "validate_and_stack_us": round(max(0.0, decode_us - json_us), 2),
                "drift_monitor_us": _per_event_us(monitor, len(sample))}
    finally:
        state.controller.stop()


@contextmanager
def served_process(torch_threads: int) -> Iterator[None]:
    """The process tuning ``driftwise serve`` applies (see `driftwise.service.server.prepare_process`), undone afterwards."""
    import torch
    from threadpoolctl import threadpool_limits

    from driftwise.service.server import GIL_SWITCH_INTERVAL_S

    interval, threads = sys.getswitchinterval(), torch.get_num_threads()
    with threadpool_limits(limits=1, user_api="blas"):
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        torch.set_num_threads(torch_threads)
        try:
            yield
        finally:
            sys.setswitchinterval(interval)
            torch.set_num_threads(threads)


def _records_in(bootstrap: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum(consumer.end_offsets(tps).values())
    finally:
        consumer.close(autocommit=False)


def run_kafka_bench(quick: bool, *, events: int | None = None, bootstrap: str | None = None) -> dict[str, Any]:
    """Passthrough, model-only and end-to-end events/s, interleaved over rounds; medians, ratio, profile.

    Starts (and purges) a private broker unless ``bootstrap`` names one.
    """
    from driftwise.bench.serve import NAME, _publish_default_digits_cnn
    from driftwise.service.runtime import Runtime, load_from_registry
    from driftwise.service.settings import Settings

    n = events if events is not None else (3_000 if quick else 20_000)
    rounds = 1 if quick else 3
    if n < 1:
        raise ValueError(f"events must be >= 1, got {n}")
    runs: dict[str, list[dict[str, Any]]] = {
        k: [] for k in ("passthrough", "model_only", "end_to_end", "replica", "unmonitored")}
    with broker(bootstrap) as bootstrap, TemporaryDirectory(prefix="driftwise-bench-kafka-") as tmp:
        registry, _ = _publish_default_digits_cnn(Path(tmp) / "registry")
        X, payloads = digit_events(n)
        settings = Settings(registry=registry.root, name=NAME)
        runtime = Runtime(settings.device)
        runtime.swap(load_from_registry(registry, NAME, device=runtime.device))
        with served_process(settings.torch_threads):
            for _ in range(rounds):  # interleaved, so a burst of background load hits every kind alike
                topics = {k: Topics().with_suffix(f".b{uuid.uuid4().hex[:8]}") for k in runs if k != "model_only"}
                for t in topics.values():
                    produce_events(bootstrap, t.events, payloads)
                ensure_topics(bootstrap, [topics["passthrough"].predictions], PARTITIONS)
                runs["passthrough"].append(passthrough(bootstrap, topics["passthrough"], n))
                runs["model_only"].append(model_only(runtime, X))
                runs["end_to_end"].append(end_to_end(registry.root, NAME, bootstrap, topics["end_to_end"], n))
                runs["replica"].append(end_to_end(registry.root, NAME, bootstrap, topics["replica"], n,
                                                  observing="replica"))
                runs["unmonitored"].append(end_to_end(registry.root, NAME, bootstrap, topics["unmonitored"], n,
                                                      observing="none"))
                for kind, t in topics.items():
                    runs[kind][-1]["records_out"] = _records_in(bootstrap, t.predictions)
            profile = stage_profile(registry.root, NAME, [v for _, v in payloads])
    rate = {kind: round(statistics.median(r["events_per_s"] for r in rs), 1) for kind, rs in runs.items()}
    slower = min(rate["passthrough"], rate["model_only"])
    ratio, unmonitored_ratio = (round(rate[k] / slower, 3) for k in ("end_to_end", "unmonitored"))
    replica_ratio = round(rate["replica"] / rate["unmonitored"], 3)
    serial = 1.0 / (1.0 / rate["passthrough"] + 1.0 / rate["model_only"])
    stage_us = {k: round(statistics.mean(r["stage_us"][k] for r in runs["passthrough"]), 2)
                for k in runs["passthrough"][0]["stage_us"]}
    return {"settings": {"events": n, "rounds": rounds, "max_batch": MAX_BATCH, "partitions": PARTITIONS,
                         "torch_threads": settings.torch_threads, "device": str(runtime.device),
                         "payload_bytes": len(payloads[0][1])},
            "runs": runs, "events_per_s": rate, "ratio": ratio, "unmonitored_ratio": unmonitored_ratio,
            "replica_ratio": replica_ratio, "replica_bar_met": replica_ratio >= REPLICA_TARGET_RATIO,
            "serial_limit_ratio": round(serial / slower, 3),
            "bar_met": ratio >= TARGET_RATIO, "passthrough_stage_us": stage_us, "profile_us": profile}


def kafka_markdown(r: dict[str, Any]) -> str:
    """The section of ``bench/results/serve.md``: rates, the ratio and its bar, where an event's time goes."""
    cfg, rate, st, pr = r["settings"], r["events_per_s"], r["passthrough_stage_us"], r["profile_us"]
    med = {kind: sorted(runs, key=lambda x: x["events_per_s"])[len(runs) // 2] for kind, runs in r["runs"].items()}
    exact = all(run.get("records_out", cfg["events"]) == cfg["events"] for runs in r["runs"].values() for run in runs)
    stages = [("poll (fetch + record parsing, kafka-python)", st["poll"], "passthrough loop"),
              ("JSON decode (orjson)", st["decode"], "passthrough loop"),
              ("validation (shape, finite, float32) + stack, one array a poll", pr["validate_and_stack_us"],
               "in-process"),
              (f"forward pass, batch {cfg['max_batch']}", round(1e6 / rate["model_only"], 2), "model-only run"),
              ("drift monitor (observer thread)", pr["drift_monitor_us"], "in-process, synchronous"),
              ("encode + produce", st["produce"], "passthrough loop"),
              ("flush (wait for acks=all)", st["flush"], "passthrough loop"),
              ("commit offsets (asynchronous, as the service commits)", st["commit"], "passthrough loop")]
    total, measured = sum(us for _, us, _ in stages), 1e6 / rate["end_to_end"]
    rest = (f"| the rest: GIL hand-offs between the stream, monitor and client threads, the idle feedback and "
            f"control consumers | {measured - total:.1f} | remainder |" if measured >= total else
            f"| ran in parallel (monitor and client I/O threads, second core) | {measured - total:.1f} | remainder |")
    monitor_e2e = measured - 1e6 / rate["unmonitored"]
    top = sorted(stages, key=lambda s: -s[1])[:2]
    e2e, slower = med["end_to_end"], min(rate["passthrough"], rate["model_only"])
    return "\n".join([
        "## Kafka: the stream end-to-end vs passthrough and model-only",
        "",
        f"{cfg['events']} events per run (one 8x8 digit each, {cfg['payload_bytes']} bytes of JSON), pre-produced to a "
        f"fresh {cfg['partitions']}-partition topic on a private single-node broker on 127.0.0.1; {cfg['rounds']} "
        "interleaved round(s), medians. Clients configured as `StreamWorker` configures them (acks=all, linger 5 ms, "
        f"max_poll_records {cfg['max_batch']}); the process tuned as `driftwise serve` tunes it "
        f"({cfg['torch_threads']} torch thread(s), 1 BLAS thread, 1 ms GIL switch interval), device "
        f"{cfg['device']}. Rates count from the first committed batch to the last (the group join is the startup).",
        "",
        "| run | events/s | startup s | total s |",
        "|---|---:|---:|---:|",
        f"| passthrough: kafka-python poll, decode, produce, acks, commit (no model) | {rate['passthrough']:.0f} | "
        f"{med['passthrough']['startup_s']:.2f} | {med['passthrough']['total_s']:.2f} |",
        f"| model-only: `Runtime.predict`, batches of {cfg['max_batch']} | {rate['model_only']:.0f} | - | "
        f"{med['model_only']['total_s']:.2f} |",
        f"| end-to-end: the service's `StreamWorker`, drift monitor observing | {rate['end_to_end']:.0f} | "
        f"{e2e['startup_s']:.2f} | {e2e['total_s']:.2f} |",
        f"| end-to-end as a replica (`DRIFTWISE_ROLE=replica`): no monitor, each batch sent to the adapter on the "
        f"observations topic | {rate['replica']:.0f} | {med['replica']['startup_s']:.2f} | "
        f"{med['replica']['total_s']:.2f} |",
        f"| end-to-end, drift monitor unhooked (attribution only) | {rate['unmonitored']:.0f} | "
        f"{med['unmonitored']['startup_s']:.2f} | {med['unmonitored']['total_s']:.2f} |",
        "",
        f"**A replica's stream with its observations sent / with nothing observed: {r['replica_ratio']:.2f}x**; bar >= "
        f"{REPLICA_TARGET_RATIO}x: **{'met' if r['replica_bar_met'] else 'NOT met'}**. That is what the serving path "
        "of every replica but the adapter pays for drift observation; the adapter (the first end-to-end row, a lone "
        "replica elected) pays for the whole stream's monitoring.",
        "",
        f"**End-to-end / min(passthrough, model-only): {r['ratio']:.2f}x**; bar >= {TARGET_RATIO}x: "
        f"**{'met' if r['bar_met'] else 'NOT met'}** (without the drift monitor: {r['unmonitored_ratio']:.2f}x). "
        "Every passthrough and end-to-end run wrote "
        f"{'exactly' if exact else 'NOT exactly'} {cfg['events']} prediction records; the end-to-end stream ran "
        f"{e2e['mean_batch']:.0f} events per batch, and its drift monitor had observed the last batch "
        f"{e2e['monitor_caught_up_s'] - e2e['total_s']:.2f} s after the last commit.",
        "",
        "Done strictly one after the other, the passthrough's work plus the forward pass would give "
        f"1 / (1/{rate['passthrough']:.0f} + 1/{rate['model_only']:.0f}) = {r['serial_limit_ratio'] * slower:.0f} "
        f"events/s, {r['serial_limit_ratio']:.2f}x the slower: past that, only work that overlaps (the monitor's "
        "thread, the clients' I/O threads, on the second core) raises the ratio.",
        "",
        "Where an event's time goes (us per event; the passthrough's stages exclude its first batch):",
        "",
        "| stage | us/event | measured in |",
        "|---|---:|---|",
        *(f"| {name} | {us:.1f} | {how} |" for name, us, how in stages),
        f"| **sum, if nothing overlapped** | **{total:.0f}** | |",
        rest,
        f"| **measured end-to-end** (1 / rate) | **{measured:.0f}** | |",
        "",
        f"Largest: {top[0][0]}, {top[0][1] / total:.0%} of the sum; then {top[1][0]}, {top[1][1] / total:.0%}. "
        f"The drift monitor costs the stream {monitor_e2e:.0f} us/event end-to-end (with minus without it), "
        f"against {pr['drift_monitor_us']:.0f} us/event when run alone.",
    ])
