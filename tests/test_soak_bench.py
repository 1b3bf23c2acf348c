"""`driftwise bench soak`: the bars are judged right on known numbers, the load counts what it must, and a short
soak against the real broker loses nothing and leaves nothing running."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from driftwise.bench.soak import SOAK_PHASES, SoakConfig, registry_summary, service_command, sigterm_as_exit
from driftwise.bench.soak_load import (
    HttpLoad,
    PredictionTally,
    descendants,
    dir_bytes,
    open_fds,
    phased_rows,
    proc_status,
    version_count,
)
from driftwise.bench.soak_report import bars, edge_p99, edge_window_s, growth, summarize, verdict, write_report
from driftwise.bench.serve import clock
from driftwise.drift.corruptions import CLEAN

PLUMBING_FLAGS = {"--registry", "--name", "--port", "--bootstrap-servers", "--device"}


# -- the bars ---------------------------------------------------------------------------------------------------------
def test_memory_that_settles_after_warm_up_is_flat_and_a_leak_is_not():
    t = np.arange(0, 1800, 10.0)
    settles = np.where(t < 300, 200 + t / 3, 300.0) + np.random.default_rng(0).normal(0, 1, len(t))
    assert abs(growth(t, settles, 1800)["growth"]) < 0.01
    creep = growth(t, 300 + t / 60, 1800)  # +15 MB over the second half, 4.7% of 315
    assert 0.04 < creep["growth"] < 0.047, "a steady trend shows at 90% of its size"
    assert growth(t, 300 + t / 30, 1800)["growth"] > 0.05, "30 MB more over the second half is a leak"
    step = np.where(t < 1700, 300.0, 330.0)
    assert growth(t, step, 1800)["growth"] == pytest.approx(0.1), "a late step shows in full"


def test_one_spike_in_the_second_half_is_the_peak_not_the_growth():
    t = np.arange(0, 600, 10.0)
    rss = np.full(len(t), 400.0)
    rss[[30, 59]] = 800.0  # the first and the last sample of the second half
    g = growth(t, rss, 600)
    assert g["growth"] == 0.0 and g["peak"] == 800.0
    assert np.isnan(growth([0.0], [1.0], 600)["growth"]), "no second half, no verdict"


def test_samples_taken_while_draining_do_not_count_towards_growth():
    t = np.arange(0, 130, 10.0)
    rss = np.where(t <= 100, 300.0, 900.0)
    assert growth(t, rss, 100)["growth"] == 0.0


def test_p99_windows_are_five_minutes_or_a_fifth_of_a_short_run():
    assert edge_window_s(1800) == 300.0 and edge_window_s(3600) == 300.0 and edge_window_s(600) == 120.0
    due = np.arange(0, 1800, 0.05)
    latency = np.where(due < 300, 0.010, np.where(due >= 1500, 0.020, 0.100))
    r = edge_p99(due, latency, 1800)
    assert r["first_ms"] == pytest.approx(10.0) and r["last_ms"] == pytest.approx(20.0) and r["ratio"] == 2.0
    latency[::7] = np.nan  # errors have no latency and do not count in the percentile
    assert edge_p99(due, latency, 1800)["ratio"] == pytest.approx(2.0)


def test_every_bar_with_nan_or_over_its_limit_is_not_met():
    flat = {"from": 100.0, "to": 101.0, "growth": 0.01, "peak": 102.0}
    p99 = {"window_s": 300.0, "first_ms": 10.0, "last_ms": 14.0, "ratio": 1.4}
    ok = bars(flat, flat, p99, 0, 1800.0, 90_000, 3)
    assert all(b["met"] for b in ok.values())
    assert not bars(flat, flat, p99, 0, 600.0, 30_000, 3)["length"]["met"], "10 minutes is not a soak"
    assert bars(flat, flat, p99, 0, 600.0, 1_000_000, 3)["length"]["met"], "or a million events"
    assert not bars({**flat, "growth": 0.051}, flat, p99, 0, 1800.0, 1, 3)["rss"]["met"]
    assert not bars(flat, {**flat, "growth": float("nan")}, p99, 0, 1800.0, 1, 3)["fds"]["met"]
    assert not bars(flat, flat, {**p99, "ratio": 1.51}, 0, 1800.0, 1, 3)["p99"]["met"]
    assert not bars(flat, flat, p99, 1, 1800.0, 1, 3)["lost"]["met"]
    assert not bars(flat, flat, p99, 0, 1800.0, 90_000, 0)["adapting"]["met"], "a loop gone quiet measures nothing"


def _synthetic(seconds: float = 60.0, missing: int = 0, http_errors: int = 0) -> dict:
    """What a run's summary would be: flat probes, steady latencies, ``missing`` events with no prediction."""
    rng = np.random.default_rng(0)
    n_events, n_http = int(seconds * 50), int(seconds * 20)
    kafka_due = np.arange(n_events) / 50.0
    arrived = kafka_due + rng.uniform(0.01, 0.05, n_events)
    arrived[:missing] = np.nan
    http_due = np.arange(n_http) / 20.0
    latency = rng.uniform(0.002, 0.008, n_http)
    latency[:http_errors] = np.nan
    samples = [{"t": t, "rss_mb": 400.0 + (t < 10) * 50, "tree_rss_mb": 700.0, "fds": 40, "threads": 30,
                "cpu_s": t / 2, "registry_mb": 1.0 + t / 100, "versions": 1 + int(t // 20), "events_sent": int(t * 50),
                "events_predicted": int(t * 50), "http_sent": int(t * 20), "http_errors": 0}
               for t in np.arange(0, seconds + 1, 2.0)]
    out = summarize(samples=samples, seconds=seconds, sample_seconds=2.0, http_due=http_due, http_latency=latency,
                    http_sent=n_http, http_errors=Counter({"HTTP 503": http_errors}) if http_errors else Counter(),
                    kafka_due=kafka_due, kafka_arrived=arrived, kafka_sent=n_events, kafka_acked=n_events,
                    duplicates=3, swap_times=[12.0, 40.0])
    return {"command": "driftwise bench soak --quick", "date": "today", "machine": "x86_64, 2 CPUs", "code": "abc",
            "config": {"rate": 50.0, "http_rate": 20.0, "phase_events": 300, "sample_seconds": 2.0},
            "phases_cycle": list(SOAK_PHASES), "severity": 3, "pretrained_by_run": True, "samples": samples,
            "phases": [[0, 0.0, CLEAN]], "swaps": [[12.0, "2"]], "metrics": {"dlq": 0.0, "drift_confirmed": 2.0,
                                                                             "adaptations": {"promoted": 1.0},
                                                                             "swaps": {"adapt": 1.0}},
            "registry": {"published": 4, "kept": 4, "pruned": 0, "keep": 100, "by_kind": {"adapt approved": 1},
                         "current": 4, "lineage": [4, 1], "lineage_present": True, "mb": 1.5},
            "wall_seconds": 99.0, **out}


def test_lost_counts_events_without_a_prediction_and_failed_requests():
    clean = _synthetic()
    assert clean["bars"]["lost"] == {"events": 0, "limit": 0, "met": True}
    lossy = _synthetic(missing=2, http_errors=3)
    assert lossy["bars"]["lost"]["events"] == 5 and not lossy["bars"]["lost"]["met"]
    assert lossy["load"]["kafka_missing"] == 2 and lossy["load"]["http_ok"] == 1200 - 3
    assert lossy["load"]["http_errors"] == {"HTTP 503": 3}
    assert len(clean["intervals"]) == 30 and sum(r["http_n"] for r in clean["intervals"]) == 1200
    assert sum(r["kafka_n"] for r in clean["intervals"]) == 3000


def test_report_says_plainly_which_bars_are_met(tmp_path):
    results = _synthetic(missing=1)
    path = write_report(results, "soak-test", tmp_path)
    text = path.read_text()
    assert (tmp_path / "soak-test.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "soak-test.json").read_text())["bars"]["lost"]["events"] == 1
    assert "Command: `driftwise bench soak --quick`" in text and "Code: abc" in text
    assert "**Not met: length, no loss.**" in text
    assert "first and last fifth (12 s each)" in text
    assert "| RSS growth over the second half | +0.0%" in text and "**met**" in text
    assert "Served at the end: v4; its lineage (v1 -> v4) is all on disk." in text
    assert f"on disk at every one of the {len(results['samples'])} samples" in text
    results["samples"][5].update(served="3", served_on_disk=False)
    assert "**missing from disk** at 1 of" in write_report(results, "soak-test", tmp_path).read_text()
    assert verdict(_synthetic()["bars"]).startswith("**Not met: length.**")


# -- the configuration and the service it runs ------------------------------------------------------------------------
def test_config_defaults_are_the_bars_soak_and_quick_is_a_minute():
    config = SoakConfig()
    assert (config.minutes, config.rate, config.http_rate, config.sample_seconds) == (30.0, 50.0, 20.0, 10.0)
    assert config.events == 90_000 and config.seconds == 1800.0 and config.http_requests == 36_000
    assert config.stem == "soak" and config.command() == "driftwise bench soak"
    quick = SoakConfig(quick=True)
    assert (quick.minutes, quick.sample_seconds, quick.phase_events, quick.events) == (1.0, 2.0, 300, 3000)
    assert quick.stem == "soak-quick" and quick.command() == "driftwise bench soak --quick"
    capped = SoakConfig(max_events=1_000, rate=100.0)
    assert capped.events == 1_000 and capped.seconds == 10.0
    assert capped.command() == "driftwise bench soak --max-events 1000 --rate 100"
    assert capped.stem == "soak-30min-1000events" and SoakConfig(minutes=3).stem == "soak-3min", (
        "a shorter run never overwrites the soak's results")


def test_config_refuses_bad_options():
    for kwargs, word in (({"minutes": 0}, "minutes"), ({"max_events": 0}, "max_events"), ({"rate": -1}, "rate"),
                         ({"http_rate": 0}, "http_rate"), ({"sample_seconds": 0}, "sample_seconds"),
                         ({"phase_events": 10}, "phase_events"), ({"device": "tpu"}, "device")):
        with pytest.raises(ValueError, match=word):
            SoakConfig(**kwargs)


def test_cli_refuses_bad_options_before_any_work():
    from typer.testing import CliRunner

    from driftwise.service.cli import app

    result = CliRunner().invoke(app, ["bench", "soak", "--minutes", "0"])
    assert result.exit_code == 2 and "minutes" in result.output


def test_the_soaked_service_gets_plumbing_flags_only_and_adapts():
    cmd = service_command(SoakConfig(), Path("/r"), 8123, "127.0.0.1:9092")
    assert cmd[1:4] == ["-m", "driftwise.service.cli", "serve"]
    assert {a for a in cmd if a.startswith("--")} <= PLUMBING_FLAGS
    assert "--device" not in cmd and "--no-adapt" not in cmd


def test_sigterm_unwinds_so_the_service_is_stopped_and_the_old_handler_comes_back():
    import signal

    before = signal.getsignal(signal.SIGTERM)
    cleaned = []
    with pytest.raises(SystemExit) as exit_info:
        with sigterm_as_exit():
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
            finally:
                cleaned.append(True)
    assert exit_info.value.code == 128 + signal.SIGTERM and cleaned == [True]
    assert signal.getsignal(signal.SIGTERM) is before


def test_events_cycle_through_every_phase_without_end():
    x = np.random.default_rng(0).random((40, 1, 8, 8)).astype(np.float32)
    rows = phased_rows(x, np.arange(40) % 10, ("clean", "blur", "rotation"), 5, severity=3, seed=0)
    names = [next(rows)[0] for _ in range(35)]
    assert names == (["clean"] * 5 + ["blur"] * 5 + ["rotation"] * 5) * 2 + ["clean"] * 5
    assert next(rows)[1].shape == (1, 8, 8)
    assert SOAK_PHASES.count(CLEAN) == 2 and len(set(SOAK_PHASES)) == len(SOAK_PHASES) - 1


# -- the load and the probes ------------------------------------------------------------------------------------------
def test_predictions_are_counted_once_per_event_and_swaps_noted():
    tally = PredictionTally("127.0.0.1:1", "t", 4, threading.Event())
    for i, version in ((0, "1"), (1, "1"), (1, "1"), (3, "2")):
        tally._count({"id": f"soak-{i:08d}", "model_version": version}, float(i))
    assert tally.predicted == 3 and tally.duplicates == 1
    assert np.isnan(tally.arrived[2]) and tally.arrived[1] == 1.0
    assert tally.swaps == [(0.0, "1"), (3.0, "2")]


def test_requests_nobody_answers_are_errors_each_counted():
    from driftwise.service.localhost import free_port

    http = HttpLoad(free_port(), lambda: np.zeros(64, np.float32), 10, 200.0, clock() + 0.05, threading.Event(),
                    timeout_s=2.0)
    http.start()
    http.join(timeout=20)
    assert not http.is_alive() and http.error is None
    assert http.sent == 10 and sum(http.errors.values()) == 10 and np.isnan(http.latency).all()
    assert np.isfinite(http.due).all()


def test_probes_read_this_process_and_its_children(tmp_path):
    status = proc_status(os.getpid())
    assert status["rss_kb"] > 10_000 and status["threads"] >= 1
    before = open_fds(os.getpid())
    with open(tmp_path / "f", "w"):
        assert open_fds(os.getpid()) == before + 1
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in descendants(os.getpid())
    finally:
        child.kill()
        child.wait()
    (tmp_path / "reg" / "m" / "1").mkdir(parents=True)
    (tmp_path / "reg" / "m" / "2").mkdir()
    (tmp_path / "reg" / "m" / ".pruned-3-abc").mkdir()
    (tmp_path / "reg" / "m" / "1" / "w").write_bytes(b"x" * 1000)
    assert version_count(tmp_path / "reg", "m") == 2 and version_count(tmp_path / "reg", "none") == 0
    assert dir_bytes(tmp_path / "reg") == 1000


def test_registry_summary_follows_the_served_lineage(tmp_path):
    from driftwise.models.classifier import Classifier
    from driftwise.models.config import ModelConfig
    from driftwise.models.registry import Registry

    reg = Registry(tmp_path)
    model = Classifier(ModelConfig(encoder="mlp", input_shape=(4,), num_classes=3))
    for parent, reason in ((None, "pretrain"), (1, "normalize: x"), (1, "adapt: x"), (1, "adapt: y")):
        reg.publish("m", model, reason=reason, parent=parent)
    reg.activate("m", 3)
    reg.prune("m", keep=1)
    s = registry_summary(tmp_path, "m", keep=1)
    assert (s["published"], s["kept"], s["pruned"], s["current"], s["lineage"]) == (4, 3, 1, 3, [3, 1])
    assert s["lineage_present"] and s["by_kind"] == {"adapt approved": 2, "pretrain approved": 1}


# -- a short soak, for real -------------------------------------------------------------------------------------------
@pytest.fixture
def small_registry(tmp_path: Path) -> Path:
    """A CNN with a linear head on the bench's source half (half a second, where `driftwise pretrain` takes 20)."""
    from driftwise.drift.loop import model_reference
    from driftwise.models.config import ModelConfig
    from driftwise.models.pipeline import fit_model
    from driftwise.models.registry import Registry
    from driftwise.service.demo import _digits_splits

    x_src, y_src, _, _ = _digits_splits(0)
    result = fit_model(x_src, y_src, ModelConfig(encoder="cnn", input_shape=(1, 8, 8), num_classes=10, width=16,
                                                 embed_dim=64), objective=None, head="linear", device="cpu", seed=0)
    Registry(tmp_path / "given").publish("digits", result.model, reason="pretrain", anchors=result.anchors,
                                         reference=model_reference(result.model, x_src), metrics={})
    return tmp_path / "given"


@pytest.mark.kafka
@pytest.mark.timeout(300)
def test_a_half_minute_soak_loses_nothing_and_stops_the_service(kafka_bootstrap, small_registry, tmp_path):
    from driftwise.bench.soak import run

    config = SoakConfig(quick=True, minutes=0.5, bootstrap_servers=kafka_bootstrap)
    started = time.monotonic()
    path = run(config, tmp_path / "out", pretrained=small_registry)
    results = json.loads((tmp_path / "out" / "soak-quick.json").read_text())
    load, samples = results["load"], results["samples"]
    assert (load["kafka_sent"], load["kafka_acked"], load["http_sent"]) == (1500, 1500, 600)
    assert load["kafka_missing"] == 0 and load["http_ok"] == 600, load
    assert results["bars"]["lost"]["met"] and not results["bars"]["length"]["met"]
    assert len(samples) >= 15 and all(s["rss_mb"] > 50 and s["fds"] > 5 and s["threads"] > 2 for s in samples)
    assert all(s["versions"] >= 1 and s["registry_mb"] > 0 and s["served_on_disk"] for s in samples)
    assert samples[-1]["events_predicted"] == 1500
    assert sum(r["http_n"] for r in results["intervals"]) == 600
    assert results["registry"]["lineage_present"] and not results["pretrained_by_run"]
    assert "(not here: this run was given a registry, as tests do)" in path.read_text()
    assert (tmp_path / "out" / "soak-quick.png").exists()
    with pytest.raises(ProcessLookupError):
        os.kill(results["service"]["pid"], 0)
    assert time.monotonic() - started < 150
