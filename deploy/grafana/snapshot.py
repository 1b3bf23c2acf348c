"""Reproduce ``dashboard.png``: a real drift episode, scraped by a real Prometheus, drawn by ``render.py``.

It pretrains a small digits model with ``driftwise pretrain``, starts a private
local Kafka broker and ``driftwise serve``, feeds clean digits over HTTP and Kafka
(with feedback labels and a few undecodable events), then the same traffic
corrupted by Gaussian noise (digits-C, severity 4). Prometheus (Debian package)
scrapes every 2 s; afterwards every dashboard panel is drawn from it. About five
minutes on two CPU cores::

    .venv/bin/python deploy/grafana/snapshot.py --out deploy/grafana/dashboard.png
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from sklearn.datasets import load_digits

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from deploy.grafana.render import render  # noqa: E402
from driftwise.drift.corruptions import corrupt  # noqa: E402
from driftwise.service.kafka_local import LocalKafka, free_port_pair  # noqa: E402
from driftwise.service.topics import Topics, ensure_topics  # noqa: E402
from driftwise.service.localhost import free_port, wait_until_ready  # noqa: E402
from tests.prometheus_support import running_prometheus  # noqa: E402


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "driftwise.service.cli", *args]


def _traffic(url: str, bootstrap: str, topics: Topics, X: np.ndarray, y: np.ndarray, *, clean_s: float,
             drift_s: float, seed: int = 1) -> None:
    """Clean, then noisy digits: 4 per HTTP request and 4 Kafka events (plus their labels) every ~50 ms."""
    from kafka import KafkaProducer

    rng = np.random.default_rng(seed)
    noisy = lambda x: corrupt(x.reshape(-1, 1, 8, 8), "gaussian_noise", 4,  # noqa: E731
                              seed=int(rng.integers(1 << 30))).reshape(len(x), -1)
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    sent = 0
    try:
        with httpx.Client(base_url=url, timeout=30.0) as client:
            for seconds, transform in ((clean_s, lambda x: x), (drift_s, noisy)):
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    idx = rng.integers(0, len(X), 8)
                    xs = transform(X[idx])
                    client.post("/predict", json={"instances": xs[:4].tolist()})
                    for row, label in zip(xs[4:], y[idx[4:]]):
                        sent += 1
                        producer.send(topics.events, json.dumps({"id": f"e{sent}", "features": row.tolist()}).encode())
                        producer.send(topics.labels, json.dumps({"id": f"e{sent}", "label": int(label)}).encode())
                    if sent % 400 == 0:
                        producer.send(topics.events, b"{not json")
                    time.sleep(0.05)
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=10)


def snapshot(out: Path, clean_s: float = 90.0, drift_s: float = 150.0) -> Path:
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    env = {**os.environ, "DRIFTWISE_TORCH_THREADS": "1", "DRIFTWISE_MIN_PSEUDO_LABELS": "100"}
    with tempfile.TemporaryDirectory(prefix="driftwise-snapshot-") as tmp:
        data, registry = Path(tmp) / "digits.npz", Path(tmp) / "registry"
        order = np.random.default_rng(0).permutation(len(X))[:400]
        np.savez(data, X=X[order], y=y[order])
        subprocess.run(_cli("pretrain", "--data", str(data), "--name", "digits", "--registry", str(registry),
                            "--encoder", "mlp", "--objective", "ae", "--epochs", "1", "--head", "linear",
                            "--device", "cpu"), check=True, env=env, capture_output=True)
        with LocalKafka(free_port_pair(), tie_to_this_process=True, purge_on_stop=True) as kafka:
            topics = Topics().with_suffix(f".snapshot{os.getpid()}")
            ensure_topics(kafka.bootstrap, topics.all, partitions=2, compacted=topics.compacted)
            env.update({"DRIFTWISE_EVENTS_TOPIC": topics.events, "DRIFTWISE_PREDICTIONS_TOPIC": topics.predictions,
                        "DRIFTWISE_DLQ_TOPIC": topics.dlq, "DRIFTWISE_LABELS_TOPIC": topics.labels,
                        "DRIFTWISE_MODELS_TOPIC": topics.models, "DRIFTWISE_GROUP_ID": f"snapshot{os.getpid()}"})
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            with open(Path(tmp) / "serve.log", "wb") as log:
                process = subprocess.Popen(
                    _cli("serve", "--registry", str(registry), "--name", "digits", "--port", str(port),
                         "--bootstrap-servers", kafka.bootstrap), stdout=log, stderr=subprocess.STDOUT, env=env)
            try:
                wait_until_ready(f"{url}/readyz", process, what="driftwise serve", interval=0.5)
                with running_prometheus(f"127.0.0.1:{port}", scrape_interval="2s") as prometheus:
                    started = time.time()
                    _traffic(url, kafka.bootstrap, topics, X, y, clean_s=clean_s, drift_s=drift_s)
                    time.sleep(6)
                    return render(prometheus.url, out, minutes=(time.time() - started) / 60.0 + 0.3)
            finally:
                process.terminate()
                process.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("dashboard.png"))
    parser.add_argument("--clean-seconds", type=float, default=90.0)
    parser.add_argument("--drift-seconds", type=float, default=150.0)
    args = parser.parse_args(argv)
    print(snapshot(args.out, args.clean_seconds, args.drift_seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
