"""Run the app under uvicorn, with uvloop and httptools (from ``uvicorn[standard]``).

Each worker process holds a model, a micro-batcher and a Kafka consumer: it is a
replica (`driftwise.service.roles`). ``--workers N`` runs N of them on one port
(uvicorn shares the socket), which with a broker elect one adapter among them and
with every other replica of the deployment; the default is one.
"""

from __future__ import annotations

import copy
import ctypes
import os
import sys
from typing import Any

import uvicorn
import uvicorn.config

from driftwise.service.app import create_app
from driftwise.service.settings import Settings

GIL_SWITCH_INTERVAL_S = 0.001
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's initial value, kept fixed
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The server options ``driftwise serve`` uses (the benchmark serves its baseline with the same)."""
    return {
        "host": settings.host,
        "port": settings.port,
        "workers": settings.workers,
        "loop": "uvloop",
        "http": "httptools",
        "log_level": "info",
        "log_config": log_config(settings.log_level),
        "access_log": settings.access_log,
        "lifespan": "on",
        "timeout_graceful_shutdown": 10,
    }


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging configuration, plus the service's own loggers (``driftwise.*``) at ``level``.

    Without it only their warnings reached stderr, bare, through Python's last-resort handler: an operator could
    not see when a drift was confirmed or what served since, short of polling ``GET /drift``.

    >>> config = log_config("info")
    >>> config["loggers"]["driftwise"]["level"], config["loggers"]["uvicorn"]["level"]
    ('INFO', 'INFO')
    """
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["formatters"]["driftwise"] = {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    config["handlers"]["driftwise"] = {"formatter": "driftwise", "class": "logging.StreamHandler",
                                       "stream": "ext://sys.stderr"}
    config["loggers"]["driftwise"] = {"handlers": ["driftwise"], "level": level.upper(), "propagate": False}
    return config


def prepare_process() -> None:
    """Process-wide tuning for serving (``driftwise serve`` and the benchmark's servers).

    * The drift monitor's small numpy ops only lose to BLAS threads fighting torch and the event loop.
    * The forward pass runs in a worker thread beside the event loop; with Python's default 5 ms GIL
      switch interval either can stall the other that long. 1 ms keeps such stalls inside the budget.
    * Buffers of 128 KB and more are mapped on their own and returned when freed (`fix_mmap_threshold`).
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    fix_mmap_threshold()


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Keep glibc's mmap threshold fixed (as ``MALLOC_MMAP_THRESHOLD_`` would); True if the allocator took it.

    glibc serves a large allocation with its own mapping, unmapped when freed, but each time such a block
    is freed it raises the threshold (up to 32 MB). After the first few model copies and batches have come
    and gone, blocks of hundreds of KB (weights of an interim or a candidate, activations, safetensors
    buffers) come from the heap arenas instead, where the twenty-odd threads' frees fragment them and little
    goes back to the system. The 30-minute soak saw RSS climb 8% over its second half; with the threshold
    fixed at 128 KB (and the feedback memory reserved up front) a 12-minute soak rose 0.7% and sat 150 MB
    lower. A value the operator set wins; other allocators (musl, a preloaded jemalloc) are left alone.
    """
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(_M_MMAP_THRESHOLD, threshold) == 1


def run(settings: Settings) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM stop the stream and batcher cleanly).

    With several workers uvicorn starts each from the app factory, and each reads its settings back from the
    ``DRIFTWISE_*`` environment, set here from ``settings``.
    """
    prepare_process()
    if settings.workers == 1:
        uvicorn.run(create_app(settings), **uvicorn_options(settings))
        return
    os.environ.update(settings.to_env())
    uvicorn.run("driftwise.service.server:worker_app", factory=True, **uvicorn_options(settings))


def worker_app() -> Any:
    """The app in a worker process uvicorn started (``--workers N``): tuned as `run` tunes its own process."""
    prepare_process()
    return create_app()
