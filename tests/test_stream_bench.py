"""`driftwise bench stream`: the twins run what users get, and the scoring is right on known arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.stream import (
    PLUMBING_ENV,
    StreamBenchConfig,
    build_stream,
    burst_order,
    plumbing_env,
    pretrain_command,
    serve_command,
)
from bench.stream_report import first_adapted_delays, phase_bounds, phase_gains, worst_window
from drift.corruptions import CLEAN, HELD_OUT_FAMILIES
from service.topics import Topics

PLUMBING_FLAGS = {"--registry", "--name", "--port", "--bootstrap-servers", "--device"}


def _flags(cmd: list[str]) -> set[str]:
    return {a for a in cmd if a.startswith("--")}


def test_adaptive_twin_gets_plumbing_flags_only():
    cmd = serve_command(Path("/r"), 8123, "127.0.0.1:9092", no_adapt=False)
    assert cmd[1:4] == ["-m", "service.cli", "serve"]
    assert _flags(cmd) <= PLUMBING_FLAGS
    assert "--device" not in cmd, "device stays the default unless the user picks one"


def test_no_adapt_twin_differs_by_no_adapt_alone():
    adaptive = serve_command(Path("/r"), 8123, "127.0.0.1:9092", no_adapt=False, device="cpu")
    frozen = serve_command(Path("/r"), 8123, "127.0.0.1:9092", no_adapt=True, device="cpu")
    assert frozen == adaptive + ["--no-adapt"]


def test_twin_env_drops_every_tuning_variable_from_the_shell():
    shell = {"PATH": "/bin", "DRIFTWISE_COOLDOWN_SECONDS": "5", "DRIFTWISE_MIN_PSEUDO_LABELS": "30",
             "DRIFTWISE_CONFIDENCE_THRESHOLD": "0.5", "DRIFTWISE_NO_ADAPT": "true", "DRIFTWISE_GROUP_ID": "other"}
    topics = Topics().with_suffix(".x")
    env = plumbing_env(shell, topics, "g1")
    assert env["PATH"] == "/bin"
    assert {k for k in env if k.startswith("DRIFTWISE_")} == PLUMBING_ENV
    assert env["DRIFTWISE_GROUP_ID"] == "g1" and env["DRIFTWISE_EVENTS_TOPIC"] == topics.events
    assert env["DRIFTWISE_PREDICTIONS_TOPIC"] == topics.predictions and env["DRIFTWISE_MODELS_TOPIC"] == topics.models


def test_pretrain_env_drops_every_driftwise_variable():
    from bench.stream import without_settings

    assert without_settings({"HOME": "/h", "DRIFTWISE_EPOCHS": "5", "DRIFTWISE_OBJECTIVE": "ae"}) == {"HOME": "/h"}


def test_pretrain_runs_the_cli_defaults():
    cmd = pretrain_command(Path("d.npz"), Path("reg"))
    assert cmd[1:4] == ["-m", "service.cli", "pretrain"]
    assert _flags(cmd) == {"--data", "--name", "--registry", "--input-shape"}
    assert cmd[cmd.index("--input-shape") + 1] == "1,8,8"


def test_phase_gains_in_points_per_phase():
    adaptive = np.array([1, 1, 1, 1, 1, 0, 1, 1, 1, 1])
    frozen = np.array([1, 1, 1, 1, 0, 0, 0, 0, 1, 1])
    rows = phase_gains(adaptive, frozen, phase_bounds(["clean", "haze", "clean"], 4)[:2] + [("clean", 8, 10)])
    assert [r["phase"] for r in rows] == ["clean", "haze", "clean"]
    assert [r["gain_points"] for r in rows] == pytest.approx([0.0, 75.0, 0.0])
    assert rows[1]["adaptive"] == 0.75 and rows[1]["no_adapt"] == 0.0


def test_worst_window_finds_the_lowest_stretch():
    diff = np.zeros(2000)
    diff[1200:1500] = -1.0
    value, start = worst_window(diff, 500)
    assert value == pytest.approx(-0.6) and 1000 <= start <= 1200
    assert worst_window(np.array([0.5, -0.5]), 500) == (0.0, 0), "a window longer than the stream is the stream"


def test_first_adapted_delay_counts_only_versions_new_in_the_phase():
    versions = np.array(["1"] * 5 + ["1", "1", "2", "2", "2"] + ["2", "2", "1", "3", "3"], dtype=object)
    bounds = [("clean", 0, 5), ("haze", 5, 10), ("shear", 10, 15)]
    assert first_adapted_delays(versions, bounds, base="1") == [2, 3]
    assert first_adapted_delays(np.array(["1"] * 15, dtype=object), bounds, base="1") == [None, None]


def test_bursts_keep_each_phase_and_make_one_class_runs():
    y = np.repeat(np.arange(10), 30)
    order = burst_order(y, 50, np.random.default_rng(0))
    assert sorted(order.tolist()) == list(range(300))
    changes = int((np.diff(y[order]) != 0).sum())
    assert changes <= 9, "every class arrives in one run when it has fewer events than a run"


def test_stream_has_clean_each_family_clean(tmp_path):
    config = StreamBenchConfig(quick=True)
    assert config.phases == (CLEAN, *HELD_OUT_FAMILIES[:2], CLEAN)
    assert config.phase_events == 300 and config.rate == 100.0
    assert config.stem == "stream-heldout-seed0-quick"
    x = np.random.default_rng(0).random((60, 1, 8, 8)).astype(np.float32)
    y = np.arange(60) % 10
    s = build_stream(x, y, config.phases, 100, seed=0, bursts=True)
    assert len(s) == 400 and s.drift_points == [100, 200, 300]
    assert list(s.domain[[0, 100, 200, 300]]) == list(config.phases)
    assert np.array_equal(s.y, y[s.image])


def test_config_refuses_bad_options():
    with pytest.raises(ValueError, match="families"):
        StreamBenchConfig(families="all")
    with pytest.raises(ValueError, match="rate"):
        StreamBenchConfig(rate=0)
    with pytest.raises(ValueError, match="phase_events"):
        StreamBenchConfig(phase_events=10)
    expected = "driftwise bench stream --families heldout --seed 0 --rate 50 --phase-events 1500"
    assert StreamBenchConfig().command() == expected
