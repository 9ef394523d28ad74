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
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc refuses more on 64-bit: HEAP_MAX_SIZE / 2


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
    return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold_bytes) and libc.mallopt(M_TRIM_THRESHOLD, 2 * threshold_bytes))


def release_free_memory() -> bool:
    """Return the heaps' free pages to the kernel (glibc ``malloc_trim``): after a large request, once
    idle, so its holes do not stay resident; False where glibc is not there."""
    libc = _glibc()
    if libc is None or not hasattr(libc, "malloc_trim"):
        return False
    return bool(libc.malloc_trim(0))


def _glibc() -> ctypes.CDLL | None:
    libc = ctypes.CDLL(None)  # the process's own symbols, the C library's among them
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    return libc
