"""Three `driftwise serve` replicas on one registry and one consumer group, through the real broker.

The scale-out contract: exactly one replica is the adapter; a drift makes one
adaptation, not one per replica; every replica serves what the adapter promotes
within 5 s; when the adapter is killed mid-adaptation another replica takes the
role within 15 s, no version is announced by two adapters, and no event goes
without a prediction. Feedback labels reach the adapter whichever replica served
their events.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from driftwise.drift.corruptions import corrupt
from driftwise.drift.loop import model_reference
from driftwise.models.config import ModelConfig
from driftwise.models.digits import load_digits_images
from driftwise.models.pipeline import fit_model
from driftwise.models.registry import Registry
from driftwise.service.control import decode_announcement
from driftwise.service.kafka_local import free_port_pair
from driftwise.service.topics import ensure_topics
from tests.kafka_support import TopicReader, event_bytes, produce, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(600)]
NAME = "digits"
REPLICAS = 3
FOLLOW_S = 5.0  # every replica serves a promoted version within this
TAKEOVER_S = 15.0  # another replica is the adapter within this after the adapter dies


@dataclass
class Replica:
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    served: dict[str, float] = field(default_factory=dict)  # version -> when first seen serving it

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> Any:
        return httpx.get(self.url + path, timeout=5.0)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def role(self) -> str | None:
        try:
            return self.get("/drift").json().get("role")
        except httpx.HTTPError:
            return None

    def metric(self, name: str, **labels: str) -> float:
        """The sum of a metric's series with these labels (0 when there is none)."""
        total = 0.0
        for line in self.get("/metrics").text.splitlines():
            found = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", line)
            if found and all(f'{k}="{v}"' in (found.group(1) or "") for k, v in labels.items()):
                total += float(found.group(2))
        return total


@pytest.fixture(scope="module")
def source_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small BN CNN trained briefly on 900 digits, published with its reference (as in test_adaptation_e2e)."""
    X, y = load_digits_images()
    order = np.random.default_rng(0).permutation(len(X))[:900]
    config = ModelConfig(encoder="cnn", input_shape=(1, 8, 8), num_classes=10, width=16, embed_dim=64)
    result = fit_model(X[order], y[order], config, objective=None, head="finetune", device="cpu", seed=0)
    root = tmp_path_factory.mktemp("registry")
    Registry(root).publish(NAME, result.model, reason="pretrain", anchors=result.anchors,
                           reference=model_reference(result.model, X[order]), metrics={})
    return root


class Deployment:
    """N replicas of `driftwise serve` sharing a registry, a group and topics; a thread records what each serves."""

    def __init__(self, registry: Path, bootstrap: str, workdir: Path, replicas: int = REPLICAS) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.bootstrap = bootstrap
        self.topics = {key: f"driftwise.{key}.{suffix}" for key in
                       ("events", "predictions", "dlq", "labels", "models", "adapter", "observations")}
        ensure_topics(bootstrap, [self.topics["events"], self.topics["predictions"]], partitions=REPLICAS)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTWISE_")}
        self.env.update({f"DRIFTWISE_{key.upper()}_TOPIC": name for key, name in self.topics.items()})
        self.env.update({
            "DRIFTWISE_REGISTRY": str(registry), "DRIFTWISE_NAME": NAME, "DRIFTWISE_BOOTSTRAP_SERVERS": bootstrap,
            "DRIFTWISE_GROUP_ID": f"replicas-{suffix}", "DRIFTWISE_PREWARM_ADAPTER": "false",
            "DRIFTWISE_TORCH_THREADS": "1", "DRIFTWISE_COOLDOWN_SECONDS": "0", "DRIFTWISE_MIN_PSEUDO_LABELS": "30",
            "DRIFTWISE_REFINE_AFTER": "0"})
        self.workdir, self.count = workdir, replicas
        self.replicas: list[Replica] = []
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, daemon=True)

    def start(self) -> None:
        for i in range(self.count):
            port = free_port_pair(offsets=(0,))
            log = self.workdir / f"replica-{i}.log"
            proc = subprocess.Popen([sys.executable, "-m", "driftwise.service.cli", "serve", "--port", str(port)],
                                    env=self.env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                                    start_new_session=True)  # its own process group: kill -9 takes its workers too
            self.replicas.append(Replica(port, proc, log))
        for r in self.replicas:
            wait_for(lambda r=r: self._ready(r), 120, f"replica on {r.port} ready\n{self.logs()}")
        for r in self.replicas:  # the group has spread the events topic's partitions over every replica
            wait_for(lambda r=r: "driftwise_consumer_lag{" in r.get("/metrics").text, 60,
                     f"partitions for the replica on {r.port}\n{self.logs()}")
        self._watcher.start()

    def _ready(self, replica: Replica) -> bool:
        assert replica.alive(), self.logs()
        try:
            return replica.get("/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    def _watch(self) -> None:
        while not self._stop.is_set():
            for r in self.replicas:
                if not r.alive():
                    continue
                try:
                    version = r.get("/readyz").json()["model_version"]
                except (httpx.HTTPError, KeyError, ValueError):
                    continue
                r.served.setdefault(str(version), time.monotonic())
            time.sleep(0.1)

    def adapters(self) -> list[Replica]:
        return [r for r in self.replicas if r.alive() and r.role() == "adapter"]

    def the_adapter(self) -> Replica:
        found = self.adapters()
        assert len(found) == 1, f"{len(found)} adapters\n{self.logs()}"
        return found[0]

    def logs(self) -> str:
        return "\n".join(f"--- {r.log.name}\n{r.log.read_text()[-3000:]}" for r in self.replicas if r.log.exists())

    def stop(self) -> None:
        self._stop.set()
        for r in self.replicas:
            if r.alive():
                r.proc.send_signal(signal.SIGTERM)
        for r in self.replicas:
            try:
                r.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(r.proc.pid, signal.SIGKILL)


@pytest.fixture
def deployment(request: pytest.FixtureRequest, tmp_path: Path, source_registry: Path,
               kafka_bootstrap: str) -> Iterator[Deployment]:
    registry = tmp_path / "registry"
    shutil.copytree(source_registry, registry)
    deployment = Deployment(registry, kafka_bootstrap, tmp_path, replicas=getattr(request, "param", REPLICAS))
    try:
        deployment.start()
        yield deployment
    finally:
        deployment.stop()


def events(x: np.ndarray, prefix: str) -> list[tuple[bytes, bytes]]:
    return [(f"{prefix}-{i}".encode(), event_bytes(f"{prefix}-{i}", row.ravel().tolist())) for i, row in enumerate(x)]


def produce_slowly(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]], per_second: float) -> None:
    """In chunks of 50 at ``per_second``: real time, so drift is confirmed while the stream still flows."""
    for start in range(0, len(records), 50):
        produce(bootstrap, topic, records[start:start + 50])
        time.sleep(50 / per_second)


def announcements(bootstrap: str, topic: str) -> list[tuple[int, int | None]]:
    """(version, epoch) of every record on the control topic, in order."""
    with TopicReader(bootstrap, topic) as reader:
        records = reader.read_until(lambda rs: False, 5)
    return [(a.version, a.epoch) for a in (decode_announcement(r.value) for r in records)]


def test_one_adapter_adapts_for_all_replicas_and_a_killed_adapter_is_replaced(deployment: Deployment) -> None:
    d, bootstrap = deployment, deployment.bootstrap
    X, _ = load_digits_images()
    held = X[np.random.default_rng(0).permutation(len(X))[900:]]
    adapter = d.the_adapter()

    # A drift, through all three replicas' partitions: one adaptation, made by the adapter alone.
    noisy = corrupt(np.concatenate([held, held])[:1400], "gaussian_noise", severity=4, seed=1)
    sent = events(held[:400], "clean") + events(noisy, "noisy")
    produce_slowly(bootstrap, d.topics["events"], sent, per_second=200)
    wait_for(lambda: (adapter.get("/drift").json().get("last_adaptation") or {}).get("outcome") is not None, 180,
             f"the adapter's first adaptation\n{d.logs()}")
    others = [r for r in d.replicas if r is not adapter]
    assert adapter.metric("driftwise_adaptations_total") == 1
    assert adapter.metric("driftwise_observations_total", outcome="received") > 0  # the other replicas' batches too
    for r in others:
        assert r.metric("driftwise_adaptations_total") == 0 and r.metric("driftwise_normalizations_total") == 0
    current = adapter.get("/readyz").json()["model_version"]
    assert current != "1", f"nothing served for the drift\n{d.logs()}"
    wait_for(lambda: all(current in r.served for r in d.replicas), FOLLOW_S + 2, f"every replica serves v{current}")
    lags = [r.served[current] - adapter.served[current] for r in others]
    assert max(lags) <= FOLLOW_S, lags

    # Another drift; kill -9 the adapter while it adapts: another replica takes over and adapts afresh.
    contrast = corrupt(np.concatenate([held, held])[:1400], "contrast", severity=5, seed=2)
    feeder = threading.Thread(target=produce_slowly,
                              args=(bootstrap, d.topics["events"], events(contrast, "second"), 100.0), daemon=True)
    feeder.start()
    wait_for(lambda: adapter.get("/drift").json()["state"] == "adapting", 120, f"the second adaptation\n{d.logs()}")
    os.killpg(adapter.proc.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    took = wait_for(lambda: len(d.adapters()) == 1, TAKEOVER_S, f"a new adapter\n{d.logs()}")
    successor = d.the_adapter()
    assert successor is not adapter and took <= TAKEOVER_S
    feeder.join()
    more = events(contrast[:800], "more")
    produce_slowly(bootstrap, d.topics["events"], more, per_second=100)
    wait_for(lambda: successor.get("/drift").json().get("last_adaptation") is not None
             or successor.metric("driftwise_normalizations_total") > 0, 120,
             f"the successor acting on the drift\n{d.logs()}")

    # No version announced by two adapters; epochs only grow.
    announced = announcements(bootstrap, d.topics["models"])
    epochs = [e for _, e in announced if e is not None]
    assert epochs == sorted(epochs), announced
    by_version: dict[int, set[int | None]] = {}
    for version, epoch in announced:
        by_version.setdefault(version, set()).add(epoch)
    adapted = {v: e for v, e in by_version.items() if v != 1}
    assert all(len(e) == 1 for e in adapted.values()), announced
    assert time.monotonic() - killed_at < 300

    # Every event has a prediction (at least once), whichever replica served it and whoever died.
    ids = {key.decode() for key, _ in sent + events(contrast, "second") + more}
    with TopicReader(bootstrap, d.topics["predictions"]) as reader:
        records = reader.read_until(lambda rs: ids <= {json.loads(r.value)["id"] for r in rs}, 90)
    missing = ids - {json.loads(r.value)["id"] for r in records}
    assert not missing, f"{len(missing)} events without a prediction, e.g. {sorted(missing)[:5]}"


@pytest.mark.parametrize("deployment", [2], indirect=True)
def test_feedback_labels_reach_the_adapter_whichever_replica_served_their_events(deployment: Deployment) -> None:
    d, bootstrap = deployment, deployment.bootstrap
    X, y = load_digits_images()
    sent = events(X[:300], "labeled")
    produce(bootstrap, d.topics["events"], sent)
    with TopicReader(bootstrap, d.topics["predictions"]) as reader:
        records = reader.read_until(lambda rs: len({r.key for r in rs}) >= len(sent), 90)
    served_by = {json.loads(r.value)["id"] for r in records}
    assert len(served_by) == len(sent)
    adapter = d.the_adapter()
    other = next(r for r in d.replicas if r is not adapter)
    assert other.metric("driftwise_observations_total", outcome="sent") > 0, "both replicas served some events"
    wait_for(lambda: adapter.metric("driftwise_observations_total", outcome="received") >= 1, 30,
             "the other replica's batches at the adapter")
    time.sleep(2)  # the last observations arrive a moment after the predictions
    labels = [(key, json.dumps({"id": key.decode(), "label": int(label)}).encode())
              for (key, _), label in zip(sent, y[:300])]
    produce(bootstrap, d.topics["labels"], labels)
    wait_for(lambda: adapter.metric("driftwise_feedback_labels_total") >= len(labels), 60,
             f"every label joined at the adapter\n{d.logs()}")
    assert other.metric("driftwise_feedback_labels_total") == 0  # the adapter alone reads the labels
    accuracy = adapter.get("/metrics").text
    assert re.search(r"^driftwise_live_accuracy (0\.\d+|1\.0)$", accuracy, flags=re.M), "live accuracy from all labels"
