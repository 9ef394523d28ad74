"""The allocator setting: with it, a freed image-sized buffer stays in the heap for the next request.

Each case runs in a fresh interpreter: glibc's thresholds are process-wide and cannot be put back.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from service.allocator import MMAP_THRESHOLD_MAX, HeapThreads, reuse_freed_memory

# A 20 MiB malloc, as a 1024x1024 float image with a margin: is it mmapped, and is it kept once freed?
PROBE = """
import ctypes, ctypes.util, json, sys
from service.allocator import reuse_freed_memory

class Info(ctypes.Structure):
    names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
    _fields_ = [(name, ctypes.c_size_t) for name in names.split()]

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = Info
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
applied = reuse_freed_memory(int(sys.argv[1]))
size = 20 * 1024 * 1024
before = libc.mallinfo2().hblks
buffer = libc.malloc(size)
ctypes.memset(buffer, 1, size)
mmapped = libc.mallinfo2().hblks - before
libc.free(buffer)
print(json.dumps({"applied": applied, "mmapped": mmapped, "free_in_heap": libc.mallinfo2().fordblks}))
"""


def probe(threshold: int) -> dict[str, int]:
    done = subprocess.run([sys.executable, "-c", PROBE, str(threshold)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_big_buffers_come_from_the_heap_and_stay_there_when_freed() -> None:
    default = probe(0)
    assert default == {"applied": False, "mmapped": 1, "free_in_heap": default["free_in_heap"]}
    assert default["free_in_heap"] < 20 * 1024 * 1024  # the mapping went back to the kernel

    tuned = probe(MMAP_THRESHOLD_MAX)
    assert tuned["applied"] is True
    assert tuned["mmapped"] == 0
    assert tuned["free_in_heap"] >= 20 * 1024 * 1024  # the next request's buffer is already paged in


@pytest.mark.parametrize("threshold", [-1, MMAP_THRESHOLD_MAX + 1])
def test_thresholds_glibc_would_refuse_are_refused_here(threshold: int) -> None:
    with pytest.raises(ValueError, match="mmap threshold"):
        reuse_freed_memory(threshold)


# A codec thread frees 48 MiB of 1 MiB image buffers: with heap reuse they end as the free top of that
# thread's own heap, which glibc's malloc_trim leaves resident. How much of it does the idle release return?
THREAD_TOP = """
import ctypes, json, sys
from service.allocator import release_free_memory, reuse_freed_memory
from service.workers import named_executor

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.malloc_trim.argtypes = [ctypes.c_size_t]

def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

def buffers():
    blocks = [libc.malloc(1 << 20) for _ in range(48)]
    for block in blocks:
        ctypes.memset(block, 1, 1 << 20)
    for block in blocks:
        libc.free(block)

applied = reuse_freed_memory(int(sys.argv[1]))
pool = named_executor(2, "atelier-codec")
before = rss_mib()
pool.submit(buffers).result()
held = rss_mib()
libc.malloc_trim(0)
after_malloc_trim = rss_mib()
release_free_memory()
print(json.dumps({"applied": applied, "held": held - before, "after_malloc_trim": after_malloc_trim - before,
                  "after_release": rss_mib() - before}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_idle_release_returns_the_free_top_of_a_pool_threads_heap() -> None:
    done = subprocess.run(
        [sys.executable, "-c", THREAD_TOP, str(MMAP_THRESHOLD_MAX)], capture_output=True, text=True, check=True
    )
    result = json.loads(done.stdout)
    assert result["applied"] is True
    assert result["held"] > 40  # kept for the next request: the reuse works
    assert result["after_malloc_trim"] > 40  # what malloc_trim alone leaves (the idle residue before)
    assert result["after_release"] < 8, result


def test_heap_threads_tell_how_long_they_have_been_idle() -> None:
    """The idle trim waits for the pools: a running task, or one that ended under ``seconds`` ago, is not idle;
    the trim's own nudges do not count as work."""
    pool = HeapThreads(2)
    try:
        started, release = threading.Event(), threading.Event()
        running = pool.submit(lambda: (started.set(), release.wait(10)))
        assert started.wait(10)
        assert not pool.idle_for(0)
        release.set()
        running.result()
        deadline = time.monotonic() + 5
        while not pool.idle_for(0) and time.monotonic() < deadline:  # the done callback may lag result()
            time.sleep(0.01)
        assert pool.idle_for(0)
        assert not pool.idle_for(0.5)
        time.sleep(0.6)
        pool.trim_heaps()
        assert pool.idle_for(0.5)
    finally:
        pool.shutdown()
