"""Process-wide tuning `driftwise serve` applies before it starts serving."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

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
