"""`driftwise bench stream`: the twins run what users get, and the scoring is right on known arrays."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from driftwise.bench.stream import (
    PLUMBING_ENV,
    StreamBenchConfig,
    build_stream,
    burst_order,
    plumbing_env,
    pretrain_command,
    serve_command,
    tabular_splits,
    twin_command,
)
from driftwise.bench.stream_report import first_adapted_delays, phase_bounds, phase_gains, score, worst_window
from driftwise.drift import sensor_shifts
from driftwise.drift.corruptions import CLEAN, HELD_OUT_FAMILIES
from driftwise.service.topics import Topics

PLUMBING_FLAGS = {"--registry", "--name", "--port", "--bootstrap-servers", "--device"}


def _flags(cmd: list[str]) -> set[str]:
    return {a for a in cmd if a.startswith("--")}


def test_adaptive_twin_gets_plumbing_flags_only():
    cmd = serve_command(Path("/r"), 8123, "127.0.0.1:9092", no_adapt=False)
    assert cmd[1:4] == ["-m", "driftwise.service.cli", "serve"]
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
    from driftwise.bench.stream import without_settings

    assert without_settings({"HOME": "/h", "DRIFTWISE_EPOCHS": "5", "DRIFTWISE_OBJECTIVE": "ae"}) == {"HOME": "/h"}


def test_pretrain_runs_the_cli_defaults():
    cmd = pretrain_command(Path("d.npz"), Path("reg"))
    assert cmd[1:4] == ["-m", "driftwise.service.cli", "pretrain"]
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


def test_the_concept_scenario_is_a_label_changing_shift_three_phases_long_between_clean_ones():
    config = StreamBenchConfig(families="concept")
    assert config.concept and config.phases == (CLEAN, "inversion", "inversion", "inversion", CLEAN)
    assert config.stem == "stream-concept-seed0"
    with pytest.raises(ValueError, match="digits scenario"):
        StreamBenchConfig(families="concept", domain="tabular")


def test_feedback_labels_follow_the_alarm_one_per_prediction_until_the_count_is_sent():
    from driftwise.bench.stream import FeedbackSender, Twin

    sent: list[tuple[str, bytes]] = []

    class Producer:
        def send(self, topic: str, value: bytes) -> None:
            sent.append((topic, value))

        def flush(self, timeout: float) -> None:
            pass

    observed = _Observed(np.zeros(10, int), ["1"] * 10)
    twin = Twin("adaptive", proc=None, url="", topics=Topics(), registry=Path("."), observed=observed)
    sender = FeedbackSender(twin, {e: 7 for e in observed.arrivals}, Producer(), count=4)
    sender.step(3, {"policy": {"labels_needed": False}})
    assert sent == []
    sender.step(5, {"policy": {"labels_needed": True}})
    sender.step(10, {"policy": {"labels_needed": True}})
    assert sender.needed_at == 5 and sender.sent == observed.arrivals[5:9]
    assert [json.loads(v) for _, v in sent] == [{"id": e, "label": 7} for e in observed.arrivals[5:9]]
    assert {t for t, _ in sent} == {Topics().labels}


def test_config_refuses_bad_options():
    with pytest.raises(ValueError, match="families"):
        StreamBenchConfig(families="all")
    with pytest.raises(ValueError, match="rate"):
        StreamBenchConfig(rate=0)
    with pytest.raises(ValueError, match="phase_events"):
        StreamBenchConfig(phase_events=10)
    expected = "driftwise bench stream --families heldout --seed 0 --rate 50 --phase-events 1500"
    assert StreamBenchConfig().command() == expected


# -- --domain tabular -------------------------------------------------------------------------------------------------
def test_tabular_twins_get_plumbing_flags_only_and_serve_the_datasets_model():
    config = StreamBenchConfig(domain="tabular")
    adaptive = twin_command(config, "adaptive", Path("/r"), 8123, "127.0.0.1:9092")
    frozen = twin_command(config, "no_adapt", Path("/r"), 8123, "127.0.0.1:9092")
    assert adaptive[1:4] == ["-m", "driftwise.service.cli", "serve"]
    assert _flags(adaptive) <= PLUMBING_FLAGS and "--device" not in adaptive
    assert frozen == adaptive + ["--no-adapt"]
    assert adaptive[adaptive.index("--name") + 1] == "segments"
    assert twin_command(StreamBenchConfig(), "adaptive", Path("/r"), 1, "b") == serve_command(
        Path("/r"), 1, "b", no_adapt=False), "digits twins are what they were"


def test_tabular_pretrain_runs_the_cli_defaults_on_flat_rows():
    config = StreamBenchConfig(domain="tabular", dataset="phishing")
    cmd = pretrain_command(Path("d.npz"), Path("reg"), config.model_name, config.input_shape)
    assert cmd[1:4] == ["-m", "driftwise.service.cli", "pretrain"]
    assert _flags(cmd) == {"--data", "--name", "--registry"}, "no --input-shape: the CLI picks its flat-row path"
    assert cmd[cmd.index("--name") + 1] == "phishing"
    digits = StreamBenchConfig()
    assert pretrain_command(Path("d.npz"), Path("reg"), digits.model_name, digits.input_shape) == pretrain_command(
        Path("d.npz"), Path("reg"))


def test_tabular_config_defaults_phases_stem_and_command():
    config = StreamBenchConfig(domain="tabular")
    assert (config.dataset, config.rate, config.phase_events) == ("segments", 100.0, 3000)
    assert config.phases == (CLEAN, *sensor_shifts.HELD_OUT_FAMILIES, CLEAN)
    assert StreamBenchConfig(domain="tabular", families="dev").phases == (
        CLEAN, *sensor_shifts.DEVELOPMENT_FAMILIES, CLEAN)
    assert config.stem == "stream-tabular-segments-heldout-seed0"
    assert StreamBenchConfig(domain="tabular", dataset="phishing", quick=True, bursts=True).stem == (
        "stream-tabular-phishing-heldout-bursts-seed0-quick")
    assert config.command() == ("driftwise bench stream --domain tabular --dataset segments --families heldout "
                                "--seed 0 --rate 100 --phase-events 3000")
    quick = StreamBenchConfig(domain="tabular", quick=True)
    assert quick.phases == (CLEAN, *sensor_shifts.HELD_OUT_FAMILIES[:2], CLEAN) and quick.phase_events == 300
    with pytest.raises(ValueError, match="dataset"):
        StreamBenchConfig(domain="tabular", dataset="digits")
    with pytest.raises(ValueError, match="dataset"):
        StreamBenchConfig(dataset="segments")
    with pytest.raises(ValueError, match="domain"):
        StreamBenchConfig(domain="audio")


@pytest.mark.parametrize("dataset, n, d, k", [("segments", 2310, 18, 7), ("phishing", 1250, 9, 2),
                                              ("breast-cancer", 569, 30, 2), ("shuttle", 4000, 9, 2),
                                              ("waveform-skewed", 3000, 21, 3), ("agrawal", 3000, 9, 2)])
def test_tabular_splits_are_packaged_data_halved_with_ten_percent_labels(dataset, n, d, k):
    x_src, y_src, x_pool, y_pool = tabular_splits(dataset, seed=0)
    assert x_src.dtype == x_pool.dtype == np.float32 and x_src.shape[1] == x_pool.shape[1] == d
    assert len(x_src) + len(x_pool) == n and len(x_src) == n // 2
    assert sorted(set(y_pool.tolist())) == list(range(k)) and sorted(set(y_src[y_src >= 0].tolist())) == list(range(k))
    assert 0.08 <= float(np.mean(y_src >= 0)) <= 0.12 and set(y_src.tolist()) <= set(range(-1, k))
    again = tabular_splits(dataset, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip((x_src, y_src, x_pool, y_pool), again))


def test_tabular_stream_shifts_each_phase_by_the_source_scale():
    rng = np.random.default_rng(0)
    ref = (rng.normal(size=(200, 6)) * [1, 10, 100, 0.1, 1, 5]).astype(np.float32)
    pool = ref[:80].copy()
    y = np.arange(80) % 7
    phases = (CLEAN, *sensor_shifts.HELD_OUT_FAMILIES, CLEAN)
    s = build_stream(pool, y, phases, 100, seed=0, bursts=True, reference=ref)
    assert len(s) == 500 and s.x.shape == (500, 6) and s.drift_points == [100, 200, 300, 400]
    assert list(s.domain[[0, 100, 200, 300, 400]]) == list(phases)
    assert np.array_equal(s.y, y[s.image])
    assert np.array_equal(s.x[:100], pool[s.image[:100]]) and not np.array_equal(s.x[100:400], pool[s.image[100:400]])


class _Observed:
    """What `driftwise.service.demo.Observed` holds, filled from arrays."""

    def __init__(self, labels: np.ndarray, versions: list[str], confidence: float = 0.95) -> None:
        import threading

        from driftwise.service.replay import event_id

        self.lock = threading.Lock()

        self.arrivals = [event_id("evt", i) for i in range(len(labels))]
        self.predictions = {e: {"id": e, "label": int(lab), "confidence": confidence, "model_version": v}
                            for e, lab, v in zip(self.arrivals, labels, versions)}
        self.detections = [(len(labels) // 4 + 10, "confidence")]


@pytest.mark.parametrize("k", [2, 7])
def test_scoring_works_for_two_and_seven_classes(tmp_path, k):
    from driftwise.drift.corruptions import Stream

    config = StreamBenchConfig(domain="tabular", dataset="phishing" if k == 2 else "segments", families="dev",
                               phase_events=100, rate=100.0)
    phases = config.phases
    n = 100 * len(phases)
    y = np.arange(n) % k
    stream = Stream(np.zeros((n, 3), np.float32), y, np.repeat(np.array(phases, dtype=object), 100))
    frozen = y.copy()
    frozen[100:300] = (y[100:300] + 1) % k  # wrong on every drifted event
    adaptive = frozen.copy()
    adaptive[150:300] = y[150:300]  # right from 50 events into the first shift
    versions = ["1"] * 150 + ["2"] * (n - 150)
    from datetime import datetime, timezone

    out = score(stream, {"adaptive": _Observed(adaptive, versions), "no_adapt": _Observed(frozen, ["1"] * n)},
                tmp_path / "registry", config, "1", datetime.now(timezone.utc))
    gains = [r["gain_points"] for r in out["phases"]]
    drifted = phases[1:-1]  # clean, the development families, clean
    assert gains == pytest.approx([0.0, 50.0, 100.0] + [0.0] * (len(phases) - 3))
    assert out["summary"]["mean_gain_drifted_points"] == pytest.approx(150.0 / len(drifted))
    assert out["summary"]["first_adapted_delay_events"] == [[drifted[0], 50]] + [[p, None] for p in drifted[1:]]
    assert out["summary"]["adapted_share_drifted"] == pytest.approx(1 - 0.5 / len(drifted))  # all but 50 events
    assert out["summary"]["missing"] == {"adaptive": 0, "no_adapt": 0} and out["versions"] == []
    assert out["swaps"]["adaptive"] == [(150, "2")]


def test_cli_refuses_a_dataset_of_another_domain_before_any_work():
    from typer.testing import CliRunner

    from driftwise.service.cli import app

    result = CliRunner().invoke(app, ["bench", "stream", "--domain", "tabular", "--dataset", "digits"])
    assert result.exit_code == 2 and "dataset" in result.output


def test_a_family_that_comes_back_keeps_a_first_adapted_delay_per_phase(tmp_path):
    from datetime import datetime, timezone

    from driftwise.drift.corruptions import Stream

    config = StreamBenchConfig(families="concept", phase_events=100, rate=100.0)
    n = 100 * len(config.phases)
    y = np.arange(n) % 10
    stream = Stream(np.zeros((n, 64), np.float32), y, np.repeat(np.array(config.phases, dtype=object), 100))
    versions = ["1"] * 120 + ["2"] * 100 + ["1"] * 90 + ["3"] * (n - 310)  # adapted 20, -, 10 events in
    out = score(stream, {"adaptive": _Observed(y, versions), "no_adapt": _Observed(y, ["1"] * n)},
                tmp_path / "registry", config, "1", datetime.now(timezone.utc))
    assert out["summary"]["first_adapted_delay_events"] == [["inversion", 20], ["inversion", None], ["inversion", 10]]


def test_the_prior_scenario_moves_the_class_shares_and_leaves_each_class_inputs_alone():
    config = StreamBenchConfig(domain="tabular", dataset="agrawal", families="prior", phase_events=1000, rate=100.0)
    assert config.phases == (CLEAN, "90% class 1", CLEAN, "90% class 0", CLEAN)
    assert config.stem == "stream-tabular-agrawal-prior-seed0" and "--families prior" in config.command()
    x_src, _, x_pool, y_pool = tabular_splits("agrawal", 0)
    stream = build_stream(x_pool, y_pool, config.phases, 1000, seed=0, bursts=False, reference=x_src)
    shares = [np.mean(stream.y[i * 1000:(i + 1) * 1000] == 1) for i in range(5)]
    assert shares[1] == pytest.approx(0.9, abs=0.03) and shares[3] == pytest.approx(0.1, abs=0.03)
    assert shares[0] == pytest.approx(np.mean(y_pool == 1), abs=0.03)
    pool_rows = {row.tobytes() for row in x_pool}  # clean inputs: every event is a pool row as it is
    assert all(row.tobytes() in pool_rows for row in stream.x[1000:2000])


def test_label_shift_phases_say_how_far_each_served_correction_was_from_the_true_prior(tmp_path):
    from datetime import datetime, timezone

    from driftwise.drift.corruptions import Stream

    config = StreamBenchConfig(domain="tabular", dataset="agrawal", families="prior", phase_events=100, rate=100.0)
    n = 100 * len(config.phases)
    y = np.zeros(n, dtype=np.int64)
    y[100:200] = np.arange(100) % 10 != 0  # 90% class 1
    y[300:400] = np.arange(100) % 10 == 0  # 90% class 0
    stream = Stream(np.zeros((n, 3), np.float32), y, np.repeat(np.array(config.phases, dtype=object), 100))
    registry = _registry_with_a_label_shift_correction(tmp_path, prior=[0.2, 0.8])
    versions = ["1"] * 130 + ["2"] * 70 + ["1"] * (n - 200)
    out = score(stream, {"adaptive": _Observed(y, versions), "no_adapt": _Observed(y, ["1"] * n)}, registry,
                config, "1", datetime.now(timezone.utc))
    first, second = out["label_shifts"]
    assert first["phase"] == "90% class 1" and first["true_prior"] == [0.1, 0.9]
    assert first["served_corrected"] == pytest.approx(0.7)
    assert first["corrections"] == [{"version": "2", "events": 70, "prior_error": pytest.approx(0.1)}]
    assert second["served_corrected"] == 0.0 and second["corrections"] == []


def _registry_with_a_label_shift_correction(tmp_path: Path, prior: list[float]) -> Path:
    """A registry holding v1 (pretrained) and v2, a prior correction of it (manifests are all the report reads)."""
    from driftwise.models.classifier import Classifier
    from driftwise.models.config import ModelConfig
    from driftwise.models.registry import Registry

    registry = Registry(tmp_path / "registry")
    model = Classifier(ModelConfig(encoder="mlp", input_shape=(3,), num_classes=2, embed_dim=4))
    registry.publish("agrawal", model, reason="pretrain")
    registry.publish("agrawal", model, reason="label_shift: embedding MMD", parent=1,
                     extra={"interim": True, "label_shift": {"prior": prior, "explains": True}})
    return tmp_path / "registry"


# -- --source/--stream: your own data and drift ----------------------------------------------------------------------
def _your_files(tmp_path: Path, phases: list[str], per_phase: int = 100, k: int = 3,
                shape: tuple[int, ...] = (4,)) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    y_src = np.full(60, -1)
    y_src[:3 * k] = np.arange(3 * k) % k
    n = per_phase * len(phases)
    np.savez(tmp_path / "src.npz", X=rng.random((60, *shape)).astype(np.float32), y=y_src)
    np.savez(tmp_path / "mine.npz", X=rng.random((n, *shape)).astype(np.float32), y=np.arange(n) % k,
             phase=np.repeat(np.array(phases), per_phase))
    return tmp_path / "src.npz", tmp_path / "mine.npz"


def test_your_files_set_the_phases_their_length_and_the_report_names(tmp_path):
    src, mine = _your_files(tmp_path, [CLEAN, "fog", "glare", CLEAN], shape=(1, 2, 2))
    config = StreamBenchConfig(source=str(src), stream=str(mine), shape="1,2,2")
    assert config.files and (config.domain, config.families) == ("files", "yours")
    assert config.phases == (CLEAN, "fog", "glare", CLEAN) and config.phase_events == 100 and config.rate == 50.0
    assert config.stem == "stream-files-mine" and config.input_shape == "1,2,2"
    assert config.command() == f"driftwise bench stream --source {src} --stream {mine} --input-shape 1,2,2 --rate 50"
    stream = StreamBenchConfig(source=str(src), stream=str(mine))
    from driftwise.bench.stream import splits

    x_src, y_src, x_pool, y_pool = splits(stream)
    assert x_src.shape == (60, 1, 2, 2) and x_pool.shape == (400, 1, 2, 2) and list(y_pool[:4]) == [0, 1, 2, 0]


def test_your_files_are_refused_with_what_is_wrong(tmp_path):
    from driftwise.bench.stream_files import StreamFilesError

    src, mine = _your_files(tmp_path, [CLEAN, "fog"])
    with pytest.raises(ValueError, match="go together"):
        StreamBenchConfig(source=str(src))
    with pytest.raises(ValueError, match="--families"):
        StreamBenchConfig(source=str(src), stream=str(mine), families="dev")
    with pytest.raises(ValueError, match="set by the stream file"):
        StreamBenchConfig(source=str(src), stream=str(mine), phase_events=300)
    with pytest.raises(ValueError, match="--input-shape is for your own files"):
        StreamBenchConfig(shape="1,8,8")
    np.savez(tmp_path / "uneven.npz", X=np.zeros((300, 4), np.float32), y=np.zeros(300, int),
             phase=np.array([CLEAN] * 100 + ["fog"] * 200))
    with pytest.raises(StreamFilesError, match="equal length"):
        StreamBenchConfig(source=str(src), stream=str(tmp_path / "uneven.npz"))
    np.savez(tmp_path / "wide.npz", X=np.zeros((200, 5), np.float32), y=np.zeros(200, int),
             phase=np.array([CLEAN] * 200))
    with pytest.raises(StreamFilesError, match="shape"):
        StreamBenchConfig(source=str(src), stream=str(tmp_path / "wide.npz"))
    np.savez(tmp_path / "nolabels.npz", X=np.zeros((200, 4), np.float32), y=np.zeros(200, int))
    with pytest.raises(StreamFilesError, match="missing phase"):
        StreamBenchConfig(source=str(src), stream=str(tmp_path / "nolabels.npz"))
    np.savez(tmp_path / "unknown.npz", X=np.zeros((200, 4), np.float32), y=np.full(200, 7),
             phase=np.array([CLEAN] * 200))
    with pytest.raises(StreamFilesError, match="classes of the source"):
        StreamBenchConfig(source=str(src), stream=str(tmp_path / "unknown.npz"))


def test_cli_refuses_a_stream_without_a_source_before_any_work(tmp_path):
    from typer.testing import CliRunner

    from driftwise.service.cli import app

    _, mine = _your_files(tmp_path, [CLEAN, "fog"])
    result = CliRunner().invoke(app, ["bench", "stream", "--stream", str(mine)])
    assert result.exit_code == 2 and "go together" in result.output
