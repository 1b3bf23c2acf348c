"""`driftwise demo` end to end at toy size: it must always write the plot and the table."""

from __future__ import annotations

from pathlib import Path

import pytest

from driftwise.service.demo import PHASES, run_demo

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_demo_writes_the_plot_and_the_table(tmp_path: Path, kafka_bootstrap: str) -> None:
    report = run_demo(workdir=tmp_path / "demo", bootstrap_servers=kafka_bootstrap, events_per_phase=150, rate=400,
                      pretrain_epochs=2, device="cpu")
    text = report.read_text()
    assert (tmp_path / "demo" / "report.png").stat().st_size > 10_000
    assert f"{150 * len(PHASES)} events in {len(PHASES)} phases" in text
    assert f"{150 * len(PHASES)} predictions received" in text, "every event got a prediction"
    for phase in set(PHASES):
        assert f"| {phase} |" in text
    assert "| 1 | approved | None | pretrain |" in text
