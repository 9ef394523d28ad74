"""Bounded work: the admission queue, the codec threads, deadlines and disconnected clients.

- ``Admission`` is the bounded queue. A request takes one slot per image (a batch request takes one
  per item) for as long as its images are queued or running; when the slots are gone, new requests
  get 429 with Retry-After at once instead of waiting without limit.
- ``CodecPool`` runs CPU-heavy codec work (decode, resize, encode) on threads, off the event loop, in
  a copy of the caller's context so logs in a worker carry the request id. It keeps its own bound as
  a safety net for callers outside the admission queue (style registration). Its threads are named
  ``atelier-codec`` in the OS (``named_executor``; the micro-batcher's are ``atelier-infer``).
- ``within_deadline`` ends work that overruns its deadline with ``DeadlineExceeded`` (504), and
  ``until_disconnect`` ends work whose client went away with ``ClientClosedRequest`` (499). Either
  way the work is cancelled: queued items leave the micro-batcher and the codec queue unrun.
"""

from __future__ import annotations

import asyncio
import contextvars
import ctypes
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

from service.allocator import HeapThreads
from service.errors import BatchTooLarge, ClientClosedRequest, DeadlineExceeded, Overloaded
from service.metrics import Metrics

T = TypeVar("T")
Receive = Callable[[], Awaitable[dict[str, Any]]]


PR_SET_NAME = 15  # from linux/prctl.h


def named_executor(threads: int, name: str) -> ThreadPoolExecutor:
    """A thread pool whose threads carry ``name`` in the OS as well as in Python, so ``top -H`` and
    /proc/<pid>/task/*/comm tell codec threads from inference threads from ONNX Runtime's own. Their
    heaps hold the requests' buffers, so the idle trim reaches them (``HeapThreads``)."""
    return HeapThreads(max_workers=threads, thread_name_prefix=name, initializer=_name_os_thread, initargs=(name,))


def _name_os_thread(name: str) -> None:
    if sys.platform.startswith("linux"):
        # The process's own symbols include the C library's.
        ctypes.CDLL(None).prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)  # the kernel keeps 15 bytes


class Admission:
    """At most ``max_pending`` images admitted at once; only touched on the event loop."""

    def __init__(self, max_pending: int, metrics: Metrics) -> None:
        self.max_pending = max_pending
        self.metrics = metrics
        self.pending = 0

    @contextmanager
    def admit(self, count: int = 1) -> Iterator[None]:
        if count > self.max_pending:
            self.metrics.rejected.labels("batch-too-large").inc()
            raise BatchTooLarge(
                f"{count} images in one request; this server admits at most {self.max_pending} at once "
                "(ATELIER_MAX_PENDING): split the batch"
            )
        if self.pending + count > self.max_pending:
            self.metrics.rejected.labels("queue-full").inc()
            raise Overloaded(
                f"{self.pending} images queued or running and {count} more asked for; the limit is "
                f"{self.max_pending}; retry shortly"
            )
        self.pending += count
        self.metrics.in_flight.set(self.pending)
        try:
            yield
        finally:
            self.pending -= count
            self.metrics.in_flight.set(self.pending)


class CodecPool:
    """The codec threads (``ATELIER_CODEC_THREADS``), named ``atelier-codec``."""

    def __init__(self, threads: int, max_pending: int) -> None:
        self.max_pending = max_pending
        self._executor = named_executor(threads, "atelier-codec")
        self._pending = 0  # only touched on the event loop

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        if self._pending >= self.max_pending:
            raise Overloaded(f"{self._pending} jobs waiting for a codec thread, the limit is {self.max_pending}")
        self._pending += 1
        context = contextvars.copy_context()
        try:
            # Cancelling the awaiting task cancels the job too while it still waits for a thread.
            return await asyncio.wrap_future(self._executor.submit(context.run, fn, *args))
        finally:
            self._pending -= 1

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


async def within_deadline(work: Awaitable[T], timeout_s: float, metrics: Metrics) -> T:
    try:
        return await asyncio.wait_for(work, timeout_s)
    except TimeoutError:
        metrics.rejected.labels("deadline").inc()
        raise DeadlineExceeded(f"no answer within this server's deadline of {timeout_s:g} s; retry later") from None


async def until_disconnect(work: Coroutine[Any, Any, T], receive: Receive, metrics: Metrics) -> T:
    """Await ``work``, cancelling it if the client disconnects first.

    Called once the request body has been read: from then on the server's next ASGI message is
    ``http.disconnect``, which uvicorn sends only when the client closes the connection.
    """
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        watcher.cancel()
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        metrics.rejected.labels("client-disconnected").inc()
        raise ClientClosedRequest("the client closed the connection; its queued work was dropped")
    return task.result()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
