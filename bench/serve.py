"""``driftwise bench serve``: serving throughput and latency, as ratios to baselines run in the same go.

HTTP section: ``POST /predict`` on the default digits CNN against a bare FastAPI
echo endpoint that returns the same payload, both under uvicorn with the very
same options (`driftwise.service.server.uvicorn_options`), each in its own process on
127.0.0.1, loaded from this process by a small keep-alive asyncio client
(closed loop at fixed concurrency for throughput; open loop at 200 req/s for the
latency bar, timed from each request's scheduled send so a stall is not
hidden). An in-process profile says where a request's time goes.

Each section is one entry of `SECTIONS`: a function that measures (``quick``
-> dict) and one that renders the dict as markdown. The Kafka section is added
beside the HTTP one.

Run: ``driftwise bench serve [--quick]`` or ``python -m driftwise.bench.serve [--quick]``;
writes ``bench/results/serve.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request, Response

from driftwise.bench.kafka_throughput import kafka_markdown, run_kafka_bench
from driftwise.bench.replica_throughput import replica_markdown, run_replica_bench
from driftwise.service.localhost import free_port, wait_until_ready

RESULTS = Path(__file__).resolve().parent / "results" / "serve.md"
ROOT = Path(__file__).resolve().parent.parent
NAME = "digits"
TARGET_RATIO = 0.6  # issue 12: /predict >= 0.6x a bare echo with one worker
TARGET_P99_MS = 10.0
FIXED_RATE = 200.0
KINDS = ("echo", "predict", "predict-unmonitored")


# -- load generation -------------------------------------------------------------------------------------------------
@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    throughput: float  # successful requests per second
    p50_ms: float
    p99_ms: float
    server_cpu_us: float = 0.0  # server process CPU time (all threads) per request


clock = time.perf_counter  # uvloop's loop.time() only ticks in milliseconds


def _summary(latencies: list[float], errors: int, seconds: float) -> LoadResult:
    ms = np.asarray(latencies) * 1000.0 if latencies else np.zeros(1)
    return LoadResult(len(latencies) + errors, errors, round(seconds, 3), round(len(latencies) / seconds, 1),
                      round(float(np.percentile(ms, 50)), 3), round(float(np.percentile(ms, 99)), 3))


class _Connection:
    """One keep-alive HTTP/1.1 connection; requests go one after another, responses carry a content-length."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    @classmethod
    async def open(cls, port: int) -> "_Connection":
        conn = cls(port)
        await conn._connect()
        return conn

    async def _connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def request(self, raw: bytes) -> int:
        """Send, read the response; a connection the server closed while idle is reopened once."""
        try:
            return await self._exchange(raw)
        except (asyncio.IncompleteReadError, ConnectionError):
            self.close()
            await self._connect()
            return await self._exchange(raw)

    async def _exchange(self, raw: bytes) -> int:
        assert self.reader is not None and self.writer is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lower = head.lower()
        start = lower.index(b"content-length:") + 15
        await self.reader.readexactly(int(lower[start:lower.index(b"\r\n", start)]))
        return int(head[9:12])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _raw_post(port: int, path: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def closed_loop(port: int, raw: bytes, concurrency: int, warmup_s: float, seconds: float) -> LoadResult:
    """``concurrency`` connections each sending back to back; measured after ``warmup_s``."""
    conns = [await _Connection.open(port) for _ in range(concurrency)]
    begin = clock() + warmup_s
    end = begin + seconds
    latencies: list[float] = []
    errors = 0

    async def worker(conn: _Connection) -> None:
        nonlocal errors
        while (now := clock()) < end:
            status = await conn.request(raw)
            if now >= begin:
                if status == 200:
                    latencies.append(clock() - now)
                else:
                    errors += 1

    await asyncio.gather(*(worker(c) for c in conns))
    for c in conns:
        c.close()
    return _summary(latencies, errors, seconds)


async def fixed_rate(port: int, raw: bytes, rate: float, seconds: float, max_connections: int = 256) -> LoadResult:
    """Open loop: request i is due at ``i / rate``; latency counts from when it was due."""
    idle: list[_Connection] = [await _Connection.open(port) for _ in range(8)]
    opened = len(idle)
    latencies: list[float] = []
    errors = 0

    async def one(due: float) -> None:
        nonlocal errors, opened
        if idle:
            conn = idle.pop()
        else:
            opened += 1
            if opened > max_connections:
                raise RuntimeError(f"more than {max_connections} requests outstanding: the server cannot keep up")
            conn = await _Connection.open(port)
        status = await conn.request(raw)
        if status == 200:
            latencies.append(clock() - due)
        else:
            errors += 1
        idle.append(conn)

    start = clock() + 0.05
    tasks = []
    for i in range(int(rate * seconds)):
        due = start + i / rate
        if (delay := due - clock()) > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)
    for c in idle:
        c.close()
    return _summary(latencies, errors, seconds)


def _run(coro: Any) -> Any:
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


# -- servers ---------------------------------------------------------------------------------------------------------
def echo_app() -> FastAPI:
    """The baseline: a bare FastAPI endpoint that returns the request body as it came."""
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> Response:
        return Response(await request.body(), media_type="application/json")

    @app.get("/readyz")
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    return app


def _serve(kind: str, registry: str, port: int) -> None:
    """Entry point of a server process (``python -m driftwise.bench.serve --serve echo|predict``)."""
    import uvicorn

    from driftwise.service.app import create_app
    from driftwise.service.server import prepare_process, uvicorn_options
    from driftwise.service.settings import Settings

    settings = Settings(registry=registry, name=NAME, port=port)
    prepare_process()  # what `driftwise serve` does, for every server here
    options = uvicorn_options(settings) | {"log_level": "warning"}
    app = echo_app() if kind == "echo" else create_app(settings)
    if kind == "predict-unmonitored":
        _detach_observers(app)
    uvicorn.run(app, **options)


def _detach_observers(app: FastAPI) -> None:
    """Attribution only: the same service with the drift monitor unhooked after startup."""
    serve_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with serve_lifespan(app):
            app.state.service.observers.clear()
            yield

    app.router.lifespan_context = lifespan


class _Server:
    """A server process of one kind, started and waited for; stopped with SIGINT (uvicorn's clean shutdown)."""

    def __init__(self, kind: str, registry: Path, log_dir: Path) -> None:
        self.kind, self.port = kind, free_port()
        self.log = open(log_dir / f"{kind}.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "driftwise.bench.serve", "--serve", kind, "--registry", str(registry), "--port",
             str(self.port)], cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        wait_until_ready(f"http://127.0.0.1:{self.port}/readyz", self.proc, what=f"the {self.kind} server",
                         log=Path(self.log.name))

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far, all threads (Linux /proc)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def get(self, path: str) -> str:
        import httpx

        return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=10).text

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()


# -- HTTP section ----------------------------------------------------------------------------------------------------
def _publish_default_digits_cnn(root: Path) -> tuple[Any, list[float]]:
    """The default digits CNN (the config ``driftwise pretrain`` publishes) and one real digit as payload."""
    import torch

    from driftwise.models.classifier import Classifier
    from driftwise.models.config import ModelConfig
    from driftwise.models.digits import load_digits_images
    from driftwise.models.registry import Registry

    torch.manual_seed(0)
    model = Classifier(ModelConfig(encoder="cnn", input_shape=(1, 8, 8), num_classes=10)).eval()
    registry = Registry(root)
    registry.publish(NAME, model, reason="bench")
    X, _ = load_digits_images()
    return registry, X[0].reshape(-1).tolist()


def _profile(registry: Any, body: bytes) -> dict[str, float]:
    """Microseconds per stage of one single-instance request, measured in this process (1 torch thread)."""
    import torch

    from driftwise.service.routes.predict import parse_instances, render
    from driftwise.service.runtime import Runtime, load_from_registry

    torch.set_num_threads(1)
    runtime = Runtime(device="cpu")
    runtime.swap(load_from_registry(registry, NAME, device="cpu"))
    shape = runtime.input_shape
    X1 = parse_instances(body, shape, 1024)
    X32 = np.repeat(X1, 32, axis=0)
    pred = runtime.predict(X1)

    def per_call_us(fn: Callable[[], Any], n: int) -> float:
        fn()
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for _ in range(n):
                fn()
            best = min(best, (time.perf_counter() - started) / n * 1e6)
        return round(best, 1)

    forward32 = per_call_us(lambda: runtime.predict(X32), 50)
    monitor1, monitor32 = _monitor_cost_us(registry, X1, X32)
    return {
        "drift_monitor_batch1_us": monitor1,
        "drift_monitor_batch32_per_instance_us": round(monitor32 / 32, 1),
        "parse_and_validate_us": per_call_us(lambda: parse_instances(body, shape, 1024), 2000),
        "forward_batch1_us": per_call_us(lambda: runtime.predict(X1), 300),
        "forward_batch32_per_instance_us": round(forward32 / 32, 1),
        "render_us": per_call_us(lambda: render(pred), 2000),
        "model_only_batch1_per_s": round(1e6 / per_call_us(lambda: runtime.predict(X1), 300), 0),
        "model_only_batch32_instances_per_s": round(32e6 / forward32, 0),
    }


def _monitor_cost_us(registry: Any, X1: np.ndarray, X32: np.ndarray) -> tuple[float, float]:
    """Microseconds the service's batch observers (the drift monitor) spend on a batch of 1 and of 32."""
    from driftwise.service.app import attach_adaptation, load_current_model
    from driftwise.service.settings import Settings
    from driftwise.service.state import ServiceState

    state = ServiceState.build(Settings(registry=registry.root, name=NAME, device="cpu", no_adapt=True))
    load_current_model(state)
    attach_adaptation(state)
    rng = np.random.default_rng(0)
    out = []
    try:
        for X in (X1, X32):
            batches = [X + rng.normal(0, 0.01, X.shape).astype(np.float32) for _ in range(20)]
            preds = [state.runtime.predict(b) for b in batches]
            started = time.perf_counter()
            for _ in range(5):
                for b, p in zip(batches, preds):
                    state.notify(b, p, "http")
            out.append(round((time.perf_counter() - started) / 100 * 1e6, 1))
    finally:
        if state.controller is not None:
            state.controller.stop()
    return out[0], out[1]


def _batch_stats(metrics_text: str) -> float:
    values = {}
    for line in metrics_text.splitlines():
        for key in ("driftwise_batch_size_sum", "driftwise_batch_size_count"):
            if line.startswith(key + '{source="http"}'):
                values[key] = float(line.split()[-1])
    count = values.get("driftwise_batch_size_count", 0.0)
    return round(values.get("driftwise_batch_size_sum", 0.0) / count, 2) if count else 0.0


def run_http_bench(quick: bool) -> dict[str, Any]:
    """Echo vs /predict: throughput and latency at fixed concurrency, and p99 at 200 req/s."""
    rounds, warmup, seconds, rate_seconds, concurrency = (1, 1.0, 3.0, 5.0, 32) if quick else (3, 2.0, 8.0, 15.0, 32)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="driftwise-bench-") as tmp:
        registry, instance = _publish_default_digits_cnn(Path(tmp) / "registry")
        body = json.dumps({"instances": [instance]}).encode()
        profile = _profile(registry, body)
        servers = {kind: _Server(kind, registry.root, Path(tmp)) for kind in KINDS}
        try:
            raws = {kind: _raw_post(server.port, "/echo" if kind == "echo" else "/predict", body)
                    for kind, server in servers.items()}
            closed: dict[str, list[LoadResult]] = {kind: [] for kind in KINDS}
            for _ in range(rounds):  # interleaved, so a burst of background load hits all alike
                for kind in KINDS:
                    cpu_before = servers[kind].cpu_seconds()
                    result = _run(closed_loop(servers[kind].port, raws[kind], concurrency, warmup, seconds))
                    result.server_cpu_us = round((servers[kind].cpu_seconds() - cpu_before) * 1e6
                                                 / max(1.0, result.throughput * (seconds + warmup)), 1)
                    closed[kind].append(result)
            rated = {kind: _run(fixed_rate(servers[kind].port, raws[kind], FIXED_RATE, rate_seconds))
                     for kind in ("echo", "predict")}
            mean_batch = _batch_stats(servers["predict"].get("/metrics"))
        finally:
            for server in servers.values():
                server.stop()

    def median(kind: str, field: str) -> float:
        return round(statistics.median(getattr(r, field) for r in closed[kind]), 3)

    summary = {kind: {f: median(kind, f) for f in ("throughput", "p50_ms", "p99_ms", "server_cpu_us")}
               for kind in closed}
    ratio = round(summary["predict"]["throughput"] / summary["echo"]["throughput"], 3)
    return {
        "unmonitored_throughput_ratio": round(
            summary["predict-unmonitored"]["throughput"] / summary["echo"]["throughput"], 3),
        "settings": {"rounds": rounds, "warmup_s": warmup, "seconds": seconds, "concurrency": concurrency,
                     "fixed_rate": FIXED_RATE, "fixed_rate_seconds": rate_seconds, "payload_bytes": len(body)},
        "closed_loop": {k: [asdict(r) for r in v] for k, v in closed.items()},
        "summary": summary,
        "throughput_ratio": ratio,
        "p50_ratio": round(summary["predict"]["p50_ms"] / summary["echo"]["p50_ms"], 2),
        "p99_ratio": round(summary["predict"]["p99_ms"] / summary["echo"]["p99_ms"], 2),
        "fixed_rate": {k: asdict(v) for k, v in rated.items()},
        "mean_http_batch": mean_batch,
        "profile": profile,
        "bars": {"throughput_ratio_ok": ratio >= TARGET_RATIO,
                 "p99_at_200rps_ok": rated["predict"].p99_ms <= TARGET_P99_MS and rated["predict"].errors == 0},
        "loadavg_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    }


def http_markdown(r: dict[str, Any]) -> str:
    s, fr, p = r["summary"], r["fixed_rate"], r["profile"]
    cfg = r["settings"]

    def ok(flag: bool) -> str:
        return "met" if flag else "NOT met"

    lines = [
        "## HTTP: POST /predict vs a bare FastAPI echo",
        "",
        f"Payload: one 8x8 digit ({cfg['payload_bytes']} bytes of JSON). Both servers: uvicorn, 1 worker, uvloop, "
        f"httptools, no access log, on 127.0.0.1. Closed loop: {cfg['concurrency']} keep-alive connections, "
        f"{cfg['seconds']:.0f} s measured after {cfg['warmup_s']:.0f} s warm-up, {cfg['rounds']} interleaved "
        f"round(s), medians. Load average (1 min) before/after: {r['loadavg_before_after']}.",
        "",
        "| server | req/s | p50 ms | p99 ms | server CPU us/request |",
        "|---|---:|---:|---:|---:|",
        *(f"| {label} | {s[k]['throughput']:.0f} | {s[k]['p50_ms']:.2f} | {s[k]['p99_ms']:.2f} | "
          f"{s[k]['server_cpu_us']:.0f} |"
          for k, label in (("echo", "echo"), ("predict", "/predict"),
                           ("predict-unmonitored", "/predict, drift monitor unhooked (attribution only)"))),
        "",
        f"**/predict / echo throughput: {r['throughput_ratio']:.2f}x** (p50 {r['p50_ratio']:.2f}x, p99 "
        f"{r['p99_ratio']:.2f}x); without the drift monitor: {r['unmonitored_throughput_ratio']:.2f}x.",
        "",
        f"Mean instances per forward pass under this load: {r['mean_http_batch']} (micro-batching).",
        "",
        f"Open loop at {cfg['fixed_rate']:.0f} req/s for {cfg['fixed_rate_seconds']:.0f} s "
        "(latency from each request's scheduled send):",
        "",
        "| server | requests | errors | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|",
        *(f"| {k} | {v['requests']} | {v['errors']} | {v['p50_ms']:.2f} | {v['p99_ms']:.2f} |" for k, v in fr.items()),
        "",
        f"Bars: throughput >= {TARGET_RATIO}x echo: **{ok(r['bars']['throughput_ratio_ok'])}** "
        f"({r['throughput_ratio']:.2f}x); p99 <= {TARGET_P99_MS:.0f} ms at {cfg['fixed_rate']:.0f} req/s: "
        f"**{ok(r['bars']['p99_at_200rps_ok'])}** ({fr['predict']['p99_ms']:.2f} ms).",
        "",
        "Where a single-instance request's server time goes (in-process, 1 torch thread, best of 3):",
        "",
        "| stage | us |",
        "|---|---:|",
        f"| parse + validate body | {p['parse_and_validate_us']} |",
        f"| forward pass, batch of 1 | {p['forward_batch1_us']} |",
        f"| forward pass per instance, batch of 32 | {p['forward_batch32_per_instance_us']} |",
        f"| render response | {p['render_us']} |",
        f"| drift monitor (batch observers), batch of 1 | {p['drift_monitor_batch1_us']} |",
        f"| drift monitor per instance, batch of 32 | {p['drift_monitor_batch32_per_instance_us']} |",
        "",
        f"Model only: {p['model_only_batch1_per_s']:.0f} forward passes/s at batch 1, "
        f"{p['model_only_batch32_instances_per_s']:.0f} instances/s at batch 32.",
        "",
        *_where_the_time_goes(r),
    ]
    return "\n".join(lines)


def _where_the_time_goes(r: dict[str, Any]) -> list[str]:
    """Split /predict's extra server CPU per request (over echo) into its parts."""
    s, p, b = r["summary"], r["profile"], max(1.0, r["mean_http_batch"])
    extra = s["predict"]["server_cpu_us"] - s["echo"]["server_cpu_us"]
    monitor = s["predict"]["server_cpu_us"] - s["predict-unmonitored"]["server_cpu_us"]
    model = (p["forward_batch1_us"] + (b - 1) * p["forward_batch32_per_instance_us"]) / b
    parse_render = p["parse_and_validate_us"] + p["render_us"]
    rest = extra - monitor - model - parse_render
    lines = [
        f"Where /predict's extra {extra:.0f} us of server CPU per request (over echo's "
        f"{s['echo']['server_cpu_us']:.0f} us) goes, under the closed-loop load:",
        "",
        "| part | us/request | how it is known |",
        "|---|---:|---|",
        f"| drift monitor (observer thread) | {monitor:.0f} | CPU with minus without it |",
        f"| model forward at the mean batch of {b:.1f} | {model:.0f} | profile above |",
        f"| parse + render | {parse_render:.0f} | profile above |",
        f"| the rest: batcher hand-offs, GIL switches between loop, forward and observer threads, "
        f"cache misses | {rest:.0f} | remainder |",
        "",
        "One process, one GIL: the event loop, the forward thread and the monitor share it, so on this "
        "2-core machine (shared with the client) their Python time adds up, and /predict reaches "
        f"{r['throughput_ratio']:.2f}x of an endpoint that does nothing.",
    ]
    echo_p99 = r["fixed_rate"]["echo"]["p99_ms"]
    if echo_p99 > TARGET_P99_MS:
        lines += ["", f"At {FIXED_RATE:.0f} req/s even the echo baseline had a p99 of {echo_p99:.1f} ms in this run "
                      f"(load average {r['loadavg_before_after']}): the tail is the machine's scheduling, not "
                      "the service's."]
    return lines


# -- the report ------------------------------------------------------------------------------------------------------
SECTIONS: list[tuple[str, Callable[[bool], dict[str, Any]], Callable[[dict[str, Any]], str]]] = [
    ("http", run_http_bench, http_markdown),
    ("kafka", run_kafka_bench, kafka_markdown),
    ("replicas", run_replica_bench, replica_markdown),
]
"""(key, measure, render) per section; each rendering starts with its own ``## `` heading."""
HEADINGS = {"http": "## HTTP:", "kafka": "## Kafka: the stream", "replicas": "## Kafka: throughput against replicas"}
"""How each section's heading begins, to find it in a report written before (``--only``)."""


def _header(quick: bool, only: list[str] | None) -> list[str]:
    import torch

    flags = (" --quick" if quick else "") + "".join(f" --only {key}" for key in only or ())
    return [
        "# Serving benchmark",
        "",
        f"Command: `driftwise bench serve{flags}` (or `python -m driftwise.bench.serve{flags}`). "
        f"Generated {time.strftime('%Y-%m-%d %H:%M:%S %Z')} on {platform.machine()}, {os.cpu_count()} CPU cores, "
        f"Python {platform.python_version()}, torch {torch.__version__}, CUDA "
        f"{'available' if torch.cuda.is_available() else 'not available'}. Client and servers share the machine; "
        "ratios are measured in the same run so the machine's speed mostly cancels out.",
    ]


def _split_sections(text: str) -> tuple[list[str], dict[str, str]]:
    """A report's header blocks and its sections by key (a section runs from its heading to the next ``## ``)."""
    sections: dict[str, str] = {}
    head, *rest = ("\n" + text).split("\n## ")
    header = [paragraph for paragraph in head.strip("\n").split("\n\n") if paragraph.strip()]
    for block in rest:
        block = "## " + block.rstrip("\n")
        key = next((k for k, h in HEADINGS.items() if block.startswith(h)), None)
        if key is None:
            raise ValueError(f"unknown section in the report: {block.splitlines()[0]!r}")
        sections[key] = block
    return header, sections


def write_report(results: dict[str, Any], quick: bool, path: Path = RESULTS, only: list[str] | None = None) -> Path:
    """Write every section in ``results``; with ``only``, replace just those sections of the report at ``path``."""
    sections = {key: render(results[key]) for key, _, render in SECTIONS if key in results}
    if only and path.exists():
        old_header, old = _split_sections(path.read_text())
        regenerated = (f"Regenerated alone by `driftwise bench serve --only {' --only '.join(only)}` on "
                       f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}: the {', '.join(only)} section(s); "
                       "every other section is from the command above.")
        header = [b for b in old_header if not b.startswith("Regenerated alone by")] + [regenerated]
        sections = {key: sections.get(key, old.get(key)) for key, _, _ in SECTIONS if key in sections or key in old}
        text = "\n\n".join([*header, *sections.values()])
    else:
        text = "\n\n".join(["\n".join(_header(quick, only)), *sections.values()])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    return path


def run_serve_bench(quick: bool, only: list[str] | None = None) -> dict[str, Any]:
    """Run every section (or those in ``only``), write ``bench/results/serve.md``, return the numbers."""
    unknown = set(only or ()) - {key for key, _, _ in SECTIONS}
    if unknown:
        raise ValueError(f"unknown section(s) {sorted(unknown)}; expected some of {[k for k, _, _ in SECTIONS]}")
    results = {key: measure(quick) for key, measure, _ in SECTIONS if not only or key in only}
    write_report(results, quick, only=only)
    return results


def main(quick: bool = False, only: list[str] | None = None) -> None:
    results = run_serve_bench(quick, only)
    if "http" in results:
        http = results["http"]
        print(f"HTTP /predict: {http['throughput_ratio']:.2f}x echo throughput, "
              f"p99 {http['fixed_rate']['predict']['p99_ms']:.2f} ms at {FIXED_RATE:.0f} req/s")
    if "kafka" in results:
        kafka = results["kafka"]
        print(f"Kafka end-to-end: {kafka['ratio']:.2f}x the slower of passthrough and model-only "
              f"({kafka['events_per_s']['end_to_end']:.0f} events/s)")
    if "replicas" in results:
        print(f"Replicas: {results['replicas']['ratio_to_one']} events/s relative to one replica")
    print(f"report: {RESULTS}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m driftwise.bench.serve", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs, for a smoke test")
    parser.add_argument("--only", action="append", choices=[key for key, _, _ in SECTIONS],
                        help="run only this section (repeatable) and replace it in the existing report")
    parser.add_argument("--serve", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--registry", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve, args.registry, args.port)
    else:
        main(quick=args.quick, only=args.only)
