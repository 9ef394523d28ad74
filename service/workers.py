"""Worker threads for CPU-heavy jobs (decode, ONNX Runtime, encode), off the event loop.

Bounded: at most ``max_pending`` jobs queued or running; one more is refused with 503 and
Retry-After instead of growing a queue without limit. Jobs run in a copy of the caller's context,
so logs in a worker carry the request id.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from service.errors import Overloaded
from service.metrics import Metrics

T = TypeVar("T")


class WorkerPool:
    def __init__(self, workers: int, max_pending: int, metrics: Metrics) -> None:
        self.max_pending = max_pending
        self.metrics = metrics
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="atelier-worker")
        self._pending = 0  # only touched on the event loop

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        if self._pending >= self.max_pending:
            raise Overloaded(f"{self._pending} jobs in flight, the limit is {self.max_pending}; retry shortly")
        self._pending += 1
        self.metrics.in_flight.set(self._pending)
        submitted = time.perf_counter()
        context = contextvars.copy_context()

        def job() -> T:
            self.metrics.queue_seconds.observe(time.perf_counter() - submitted)
            return context.run(fn, *args)

        try:
            return await asyncio.wrap_future(self._executor.submit(job))
        finally:
            self._pending -= 1
            self.metrics.in_flight.set(self._pending)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
