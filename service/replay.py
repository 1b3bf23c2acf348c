"""Replaying a dataset file into the events topic, as a stand-in for live traffic.

Each row of ``X`` becomes one event ``{"id", "features"}`` keyed by its id. The
labels ``y`` never go into the events (the service must work without them);
``labels_out`` writes them aside as JSON lines ``{"id", "label"}`` so a run can
be scored afterwards.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from kafka import KafkaProducer

from driftwise.models.data import load_npz
from driftwise.service.events import encode_event
from driftwise.service.topics import EVENTS, ensure_topics


def event_id(prefix: str, index: int) -> str:
    """The id of row ``index``: sortable and unique within a replay.

    >>> event_id("evt", 42)
    'evt-00000042'
    """
    return f"{prefix}-{index:08d}"


def replay(npz_path: str | Path, *, bootstrap: str, topic: str = EVENTS, rate: float | None = None,
           limit: int | None = None, id_prefix: str = "evt", labels_out: Path | None = None,
           partitions: int = 3, timeout_s: float = 120.0) -> int:
    """Produce the rows of ``npz_path`` (at most ``limit``, at ``rate`` events/s or as fast as possible).

    Returns the number of events the broker acknowledged; raises if any was not.
    """
    if rate is not None and rate <= 0:
        raise ValueError(f"rate must be positive events per second, got {rate}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    if not id_prefix:
        raise ValueError("id_prefix must be non-empty")
    data = load_npz(npz_path, require_labels=False)
    n = len(data.X) if limit is None else min(limit, len(data.X))
    ensure_topics(bootstrap, [topic], partitions)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    labels = open(labels_out, "w", encoding="utf-8") if labels_out is not None else None
    futures = []
    try:
        started = time.monotonic()
        for i in range(n):
            if rate is not None:
                delay = started + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            eid = event_id(id_prefix, i)
            futures.append(producer.send(topic, key=eid.encode(), value=encode_event(eid, data.X[i])))
            if labels is not None and data.y[i] >= 0:
                labels.write(json.dumps({"id": eid, "label": int(data.y[i])}) + "\n")
        producer.flush(timeout=timeout_s)
        for f in futures:
            f.get(timeout=0)  # raises the delivery error of any event that did not make it
    finally:
        producer.close(timeout=5)
        if labels is not None:
            labels.close()
    return len(futures)
