"""Let glibc reuse freed image buffers instead of handing them back to the kernel after every request.

A 1024x1024 request allocates and frees tens of megabytes of short-lived arrays: the decoded image, its
float tensor, ONNX Runtime's output, the uint8 result. glibc serves big allocations with fresh mmap()s
(past a threshold that adapts only up to a point) and returns freed memory at the top of a heap once
it exceeds 128 KiB, so each request page-faulted its buffers back in, a large share of the codec
threads' CPU (docs/performance.md; neither threshold alone helped). On a many-core GPU host those
faults from every codec thread can also serialise on the process's memory-map lock.

``reuse_freed_memory`` raises glibc's mmap threshold (allocations up to it come from the heap) and its
trim threshold (up to twice that stays mapped at the top of each heap once freed), both through
``mallopt``. Resident memory then stays at the working set instead of dipping between requests.
Elsewhere than glibc it does nothing.

The price is at idle: glibc's ``malloc_trim`` returns the free pages inside every heap and the top of
the main one, but not the free top of a thread's own heap (the codec and inference threads have
theirs), which only ``free`` trims, and only above the trim threshold: at twice 32 MiB, never, since
those heaps are 64 MiB at most. After a large request those tops held 60-100 MB at idle
(docs/hardening.md). ``release_free_memory`` therefore also has each thread of the pools made by
``HeapThreads`` free one block under glibc's default threshold, which trims its heap's top, and puts
the threshold back.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import Any

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc refuses more on 64-bit: HEAP_MAX_SIZE / 2
GLIBC_TRIM_THRESHOLD = 128 * 1024  # glibc's default
# A block over glibc's 64 KiB consolidation threshold, whose free() trims its heap; under any mmap
# threshold reuse_freed_memory sets (1 MiB at least), so it comes from the heap.
NUDGE_BYTES = 256 * 1024
NUDGE_WAIT_S = 1.0  # longest wait for a busy pool thread to take its nudge

_raised_trim_threshold = 0  # what reuse_freed_memory set; 0 while glibc's defaults hold
_nudge_lock = threading.Lock()  # one thread at a time lowers the process-wide threshold


def reuse_freed_memory(threshold_bytes: int) -> bool:
    """Keep allocations up to ``threshold_bytes`` in the heap; False where glibc's mallopt is not there.

    0 leaves glibc's defaults alone.
    """
    if threshold_bytes == 0:
        return False
    if not 0 < threshold_bytes <= MMAP_THRESHOLD_MAX:
        raise ValueError(f"the mmap threshold must be 1 to {MMAP_THRESHOLD_MAX} bytes, got {threshold_bytes}")
    libc = _glibc()
    if libc is None:
        log.info("not glibc: the allocator keeps its defaults")
        return False
    # mallopt returns 1 on success, 0 on a refused value.
    applied = bool(
        libc.mallopt(M_MMAP_THRESHOLD, threshold_bytes) and libc.mallopt(M_TRIM_THRESHOLD, 2 * threshold_bytes)
    )
    global _raised_trim_threshold
    _raised_trim_threshold = 2 * threshold_bytes if applied else 0
    return applied


def release_free_memory() -> bool:
    """Return the heaps' free memory to the kernel: after a large request, once idle, so its holes and
    the tops of the threads' heaps do not stay resident; False where glibc is not there."""
    libc = _glibc()
    if libc is None or not hasattr(libc, "malloc_trim"):
        return False
    if _raised_trim_threshold:
        _trim_own_heap()
        for pool in list(_POOLS):
            pool.trim_heaps()
    return bool(libc.malloc_trim(0))


def heap_threads_idle(seconds: float) -> bool:
    """Whether every ``HeapThreads`` pool has run nothing for ``seconds``: a request's last frees (its
    encode, after the model run) are done, so a trim now reaches them."""
    return all(pool.idle_for(seconds) for pool in list(_POOLS))


def _trim_own_heap() -> None:
    """Trim the free top of the calling thread's heap: free one block while the threshold is glibc's."""
    libc = _glibc()
    if libc is None or not _raised_trim_threshold:
        return
    with _nudge_lock:
        libc.mallopt(M_TRIM_THRESHOLD, GLIBC_TRIM_THRESHOLD)
        try:
            libc.free(libc.malloc(NUDGE_BYTES))
        finally:
            libc.mallopt(M_TRIM_THRESHOLD, _raised_trim_threshold)


class HeapThreads(ThreadPoolExecutor):
    """A thread pool whose threads' heaps ``release_free_memory`` trims, and whose activity
    ``heap_threads_idle`` sees."""

    def __init__(self, max_workers: int, **kwargs: Any) -> None:
        super().__init__(max_workers=max_workers, **kwargs)
        self.threads = max_workers
        self._activity = threading.Lock()
        self._running = 0
        self._last_end = time.monotonic()
        _POOLS.add(self)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self._activity:
            self._running += 1
        try:
            future = super().submit(fn, *args, **kwargs)
        except BaseException:
            self._ended()
            raise
        future.add_done_callback(lambda _: self._ended())
        return future

    def _ended(self) -> None:
        with self._activity:
            self._running -= 1
            self._last_end = time.monotonic()

    def idle_for(self, seconds: float) -> bool:
        with self._activity:
            return self._running == 0 and time.monotonic() - self._last_end >= seconds

    def trim_heaps(self) -> None:
        """One nudge on each thread: every task waits for the others at a barrier, so no thread takes
        two; a thread still busy after ``NUDGE_WAIT_S`` is left for the next trim."""
        barrier = threading.Barrier(self.threads)

        def nudge() -> None:
            _trim_own_heap()
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(NUDGE_WAIT_S)

        try:
            futures = [super(HeapThreads, self).submit(nudge) for _ in range(self.threads)]
        except RuntimeError:  # shut down
            return
        wait_futures(futures, timeout=2 * NUDGE_WAIT_S)


_POOLS: weakref.WeakSet[HeapThreads] = weakref.WeakSet()


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    libc = ctypes.CDLL(None)  # the process's own symbols, the C library's among them
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    libc.free.restype = None
    return libc
