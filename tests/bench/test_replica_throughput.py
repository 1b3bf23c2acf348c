"""The replicas section of ``driftwise bench serve`` on the real broker, at toy size: real processes, real numbers."""

from __future__ import annotations

import pytest

from driftwise.bench.replica_throughput import replica_markdown, run_replica_bench

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(400)]
EVENTS = 400


@pytest.fixture(scope="module")
def report(kafka_bootstrap: str) -> dict:
    return run_replica_bench(quick=True, counts=(1, 2), events=EVENTS, bootstrap=kafka_bootstrap)


def test_every_replica_count_predicts_every_event_at_a_measured_rate(report: dict) -> None:
    for count in ("1", "2"):
        (run,) = report["runs"][count]
        assert run["events"] == EVENTS and run["span_s"] > 0
        assert report["events_per_s"][count] == run["events_per_s"] > 0
    assert report["ratio_to_one"]["1"] == 1.0


def test_the_table_names_each_count_and_its_ratio(report: dict) -> None:
    text = replica_markdown(report)
    assert text.startswith("## Kafka: throughput against replicas")
    assert f"| 2 | {report['events_per_s']['2']:.0f} | {report['ratio_to_one']['2']:.2f}x |" in text
