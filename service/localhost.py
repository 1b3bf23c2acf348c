"""Starting local servers by hand (demo, benchmarks, tests): a free port, and waiting until one answers.

One copy of the "poll until ready or until the process dies" loop, so every
caller reports a dead process at once instead of waiting out its timeout.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_ready(url: str, process: subprocess.Popen, *, what: str, timeout: float = 120.0,
                     interval: float = 0.2, log: Path | None = None) -> None:
    """Poll ``url`` until it answers 200; raise if ``process`` exits first or ``timeout`` passes.

    The error names ``what`` and, with ``log``, ends with that log's text.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode}{_tail(log)}")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(interval)
    raise RuntimeError(f"{what} was not ready after {timeout:.0f}s{_tail(log)}")


def _tail(log: Path | None) -> str:
    if log is None:
        return "; see its log"
    return ":\n" + (log.read_text(errors="replace")[-4000:] if log.exists() else "(no log)")
