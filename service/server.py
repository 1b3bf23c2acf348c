"""Run the app under uvicorn: one worker, uvloop and httptools (from ``uvicorn[standard]``).

One worker on purpose: the process holds the model, the micro-batcher and the
Kafka consumer; scale out with more processes that share a consumer group.
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn

from driftwise.service.app import create_app
from driftwise.service.settings import Settings

GIL_SWITCH_INTERVAL_S = 0.001


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
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)


def run(settings: Settings) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM stop the stream and batcher cleanly)."""
    prepare_process()
    uvicorn.run(create_app(settings), **uvicorn_options(settings))
