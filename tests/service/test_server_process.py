"""How `driftwise serve` runs: process-wide tuning, and several worker processes on one port."""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from driftwise.service.server import fix_mmap_threshold

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")

# After a 4 MB mapped block is freed, glibc raises its mmap threshold past 4 MB: is a 1 MB block mapped then?
PROBE = """
import ctypes, sys
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                              "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "fixed":
    from driftwise.service.server import fix_mmap_threshold
    assert fix_mmap_threshold()
libc.free(libc.malloc(4 << 20))
before = libc.mallinfo2().hblkhd
block = libc.malloc(1 << 20)
print("mapped" if libc.mallinfo2().hblkhd - before >= 1 << 20 else "heap")
"""


def _probe(mode: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    done = subprocess.run([sys.executable, "-c", PROBE, mode], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@glibc
def test_a_fixed_mmap_threshold_keeps_large_blocks_mapped_after_big_frees() -> None:
    assert _probe("default") == "heap", "glibc's dynamic threshold: the reason for fixing it"
    assert _probe("fixed") == "mapped"


def test_a_threshold_the_operator_set_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert fix_mmap_threshold() is False


LOGS = """
import logging, logging.config, sys
from driftwise.service.server import log_config
logging.config.dictConfig(log_config(sys.argv[1]))
log = logging.getLogger("driftwise.service.adaptation")
log.debug("a debug line")
log.info("interim normalisation served in 0.05s")
log.warning("candidate v3 not served: agreement")
"""


@pytest.mark.parametrize("level, shown, hidden", [
    ("info", ["INFO driftwise.service.adaptation: interim normalisation served", "WARNING", "candidate v3"],
     ["a debug line"]),
    ("warning", ["WARNING driftwise.service.adaptation: candidate v3 not served"], ["interim", "a debug line"]),
])
def test_the_service_s_own_decisions_are_logged_at_the_level_set(level: str, shown: list[str],
                                                                  hidden: list[str]) -> None:
    done = subprocess.run([sys.executable, "-c", LOGS, level], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for text in shown:
        assert text in done.stderr
    for text in hidden:
        assert text not in done.stderr


def test_several_workers_without_a_broker_to_elect_an_adapter_are_refused(tmp_path) -> None:
    from pydantic import ValidationError

    from driftwise.service.settings import Settings

    with pytest.raises(ValidationError, match="elect one adapter"):
        Settings(registry=tmp_path, name="m", workers=2)
    assert Settings(registry=tmp_path, name="m", workers=2, no_adapt=True).workers == 2


def test_settings_survive_the_trip_through_the_environment_to_a_worker(tmp_path) -> None:
    from driftwise.service.settings import Settings

    given = Settings(registry=tmp_path, name="m", port=9100, bootstrap_servers="127.0.0.1:9092", workers=3,
                     admin_token="a-token-of-sixteen+", no_adapt=True, confidence_threshold=0.8)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTWISE_")} | given.to_env()
    read = subprocess.run([sys.executable, "-c", "import json; from driftwise.service.settings import Settings; "
                           "print(json.dumps(Settings().to_env()))"], env=env, capture_output=True, text=True, timeout=60)
    assert read.returncode == 0, read.stderr
    assert json.loads(read.stdout) == given.to_env()  # every field, the admin token's secret included


def test_serve_with_two_workers_answers_from_two_processes_on_one_port(registry, tmp_path) -> None:
    import httpx

    from driftwise.service.localhost import free_port, wait_until_ready

    port, log = free_port(), tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTWISE_")}
    proc = subprocess.Popen([sys.executable, "-m", "driftwise.service.cli", "serve", "--registry", str(registry.root),
                             "--name", "digits", "--port", str(port), "--workers", "2", "--no-adapt"], env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/readyz", proc, what="two workers", log=log, timeout=120)
        deadline = time.monotonic() + 60
        while log.read_text().count("Application startup complete") < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert log.read_text().count("Application startup complete") == 2, log.read_text()
        workers = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert len(workers) >= 2, workers  # uvicorn's two workers (and nothing forbids a resource tracker)
        answer = httpx.post(f"http://127.0.0.1:{port}/predict", json={"instances": [[0.0] * 64]}, timeout=10)
        assert answer.status_code == 200 and answer.json()["model_version"] == "1"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
