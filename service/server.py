"""Run the app under uvicorn: one worker, uvloop and httptools (from ``uvicorn[standard]``).

One worker on purpose: the process holds the model, the micro-batcher and the
Kafka consumer; scale out with more processes that share a consumer group.
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Any

import uvicorn

from driftwise.service.app import create_app
from driftwise.service.settings import Settings

GIL_SWITCH_INTERVAL_S = 0.001
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The server options ``driftwise serve`` uses (the benchmark serves its baseline with the same)."""
    return {
        "host": settings.host,
        "port": settings.port,
        "workers": 1,
        "loop": "uvloop",
        "http": "httptools",
        "log_level": "info",
        "access_log": settings.access_log,
        "lifespan": "on",
        "timeout_graceful_shutdown": 10,
    }


def prepare_process() -> None:
    """Process-wide tuning for serving (``driftwise serve`` and the benchmark's servers).

    * The drift monitor's small numpy ops only lose to BLAS threads fighting torch and the event loop.
    * The forward pass runs in a worker thread beside the event loop; with Python's default 5 ms GIL
      switch interval either can stall the other that long. 1 ms keeps such stalls inside the budget.
    * Few malloc arenas, so memory freed by one thread is reused by the others (`limit_malloc_arenas`).
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    limit_malloc_arenas()


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas (as ``MALLOC_ARENA_MAX`` would); True if this process's allocator took it.

    glibc gives a thread that finds the allocator busy an arena of its own, up to 8 per core, and memory freed
    into one is rarely returned to the system. A service whose twenty-odd threads (event loop, forward pass,
    Kafka clients, the drift checks) keep allocating arrays of changing sizes then grows for hours: the
    30-minute soak saw RSS rise steadily, +8% over its second half. A ``MALLOC_ARENA_MAX`` the operator set
    wins; other allocators (musl, jemalloc preloaded) are left alone.
    """
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(_M_ARENA_MAX, arenas) == 1


def run(settings: Settings) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM stop the stream and batcher cleanly)."""
    prepare_process()
    uvicorn.run(create_app(settings), **uvicorn_options(settings))
