"""The Kafka section of ``driftwise bench serve`` on the real broker, at toy size: a report with real numbers."""

from __future__ import annotations

import pytest

from driftwise.bench.kafka_throughput import REPLICA_TARGET_RATIO, TARGET_RATIO, kafka_markdown, run_kafka_bench

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(240)]
EVENTS = 300


@pytest.fixture(scope="module")
def report(kafka_bootstrap: str) -> dict:
    return run_kafka_bench(quick=True, events=EVENTS, bootstrap=kafka_bootstrap)


def test_every_rate_is_measured_and_positive(report: dict) -> None:
    assert set(report["events_per_s"]) == {"passthrough", "model_only", "end_to_end", "replica", "unmonitored"}
    assert all(rate > 0 for rate in report["events_per_s"].values())
    assert all(us >= 0 for us in report["profile_us"].values())
    assert report["profile_us"]["drift_monitor_us"] > 0


def test_every_event_gets_exactly_one_prediction_record(report: dict) -> None:
    for kind in ("passthrough", "end_to_end", "replica", "unmonitored"):
        (run,) = report["runs"][kind]
        assert run["events"] == EVENTS
        assert run["records_out"] == EVENTS


def test_each_end_to_end_run_observes_as_its_role_does(report: dict) -> None:
    (monitored,), (replica,), (bare,) = (report["runs"][k] for k in ("end_to_end", "replica", "unmonitored"))
    assert monitored["adapter"] and monitored["observations_sent"] == 0  # a lone replica, elected: it monitors
    assert not replica["adapter"] and replica["observations_sent"] > 0  # every batch goes to the adapter
    assert not bare["adapter"] and bare["observations_sent"] == 0


def test_ratio_is_end_to_end_over_the_slower_baseline(report: dict) -> None:
    rate = report["events_per_s"]
    expected = rate["end_to_end"] / min(rate["passthrough"], rate["model_only"])
    assert report["ratio"] == pytest.approx(expected, abs=1e-3)
    assert report["bar_met"] == (report["ratio"] >= TARGET_RATIO)
    assert 0 < report["serial_limit_ratio"] <= 1


def test_markdown_states_the_ratio_the_bar_and_the_profile(report: dict) -> None:
    text = kafka_markdown(report)
    assert text.startswith("## Kafka")
    assert f"{report['ratio']:.2f}x" in text
    assert (f"{TARGET_RATIO}x: **met**" in text) == report["bar_met"]
    assert (f"{REPLICA_TARGET_RATIO}x: **met**" in text) == report["replica_bar_met"]
    assert f"{report['replica_ratio']:.2f}x" in text
    assert "drift monitor" in text and "commit offsets" in text


def test_zero_events_is_refused() -> None:
    with pytest.raises(ValueError, match="events must be >= 1"):
        run_kafka_bench(quick=True, events=0, bootstrap="127.0.0.1:1")
