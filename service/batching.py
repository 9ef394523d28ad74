"""Dynamic micro-batching: concurrent model runs on inputs of one exact shape go to ONNX Runtime as one batch.

The shape follows Ray Serve's ``@serve.batch``: one public entry (``MicroBatcher.run``), two settings
checked up front (``max_batch_size``, ``max_wait_s``), one future per caller, results handed back by
row index, an error reaching every caller of the batch, and no polling: a queue's drain task sleeps on
an event until an item arrives or the wait is over.

A bucket (``BatchKey``) is a model, a stage and an exact per-item input shape. Inputs of different
sizes are never padded to a common canvas: reflect padding to a bigger canvas changes the
instance-norm statistics and so the picture. Near sizes share a batch when the service pads them to
the same multiple-of-4 shape (510x510 and 512x512 both run as 512x512), each with its own reflect
padding, exactly as an unbatched run pads it, and each is cropped back to its own size afterwards.
Every network here is per-sample (convolutions and instance norms), so a row of a batched run equals
the same input run alone, to float rounding.

Batches run on a small dedicated executor (one thread by default): on a CPU one ONNX Runtime run
already uses every core. A batch is taken from its queue only when a thread is free, so while one
runs, new requests gather into the next batch (greedy batching) and ``max_wait_s`` only matters
when the executor is idle. A caller that is cancelled (deadline, disconnected client) leaves its
item behind, and the item is skipped when a batch is taken: cancelled work that has not started
never reaches ONNX Runtime (a run that has started cannot be interrupted and finishes unread).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from service.metrics import Metrics
from service.workers import named_executor

log = logging.getLogger(__name__)

BatchFn = Callable[..., np.ndarray]


@dataclass(frozen=True)
class BatchKey:
    """What may share a batch: the same model, the same stage, the same per-item input shapes."""

    model: str
    stage: str
    shapes: tuple[tuple[int, ...], ...]


@dataclass
class _Item:
    inputs: tuple[np.ndarray, ...]  # each with a leading batch dimension of 1
    future: asyncio.Future[np.ndarray]
    queued_at: float


@dataclass
class _Queue:
    fn: BatchFn
    items: deque[_Item] = field(default_factory=deque)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def take(self, limit: int) -> list[_Item]:
        """Up to ``limit`` items whose callers still wait; cancelled ones are dropped here."""
        batch: list[_Item] = []
        while self.items and len(batch) < limit:
            item = self.items.popleft()
            if not item.future.done():
                batch.append(item)
        return batch


class _Staging(threading.local):
    """An inference thread's buffers for stacking batches, one per model input, reused run after run.

    A batch of large images stacks past the largest block glibc keeps in its heap
    (``service.allocator``), so a fresh array each run would be mapped and page-faulted in anew
    (docs/performance.md). A buffer grows to the largest batch its thread has stacked,
    which ``max_batch_elements`` bounds, and is never shrunk. ONNX Runtime reads its inputs during the
    run and returns new arrays, so the next run may overwrite the buffer.
    """

    def __init__(self) -> None:
        self.buffers: dict[int, np.ndarray] = {}

    def stack(self, index: int, column: tuple[np.ndarray, ...]) -> np.ndarray:
        first = column[0]
        shape = (sum(array.shape[0] for array in column), *first.shape[1:])
        nbytes = math.prod(shape) * first.itemsize
        buffer = self.buffers.get(index)
        if buffer is None or buffer.nbytes < nbytes:
            buffer = self.buffers[index] = np.empty(nbytes, np.uint8)
        return np.concatenate(column, out=buffer[:nbytes].view(first.dtype).reshape(shape))


_staging = _Staging()


def _run_stacked(fn: BatchFn, inputs: list[tuple[np.ndarray, ...]]) -> np.ndarray:
    """``fn`` on the items' inputs stacked along the batch axis. Runs on an inference thread: stacking
    large images is a big copy, which on the event loop would stall every other request."""
    if len(inputs) == 1:
        return fn(*inputs[0])
    return fn(*(_staging.stack(index, column) for index, column in enumerate(zip(*inputs, strict=True))))


class MicroBatcher:
    """Groups concurrent calls with the same ``BatchKey`` into one call of ``fn`` on stacked inputs."""

    def __init__(
        self, max_batch_size: int, max_wait_s: float, threads: int, metrics: Metrics, max_batch_elements: int = 0
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must not be negative, got {max_wait_s}")
        self.max_batch_size = max_batch_size
        # Bounds a run's memory: big images get smaller batches (0 = no bound but max_batch_size).
        self.max_batch_elements = max_batch_elements
        self.max_wait_s = max_wait_s
        self.metrics = metrics
        self._executor = named_executor(threads, "atelier-infer")
        # A batch is taken from its queue only when a thread is free to run it: until then its items
        # stay where cancellation can still drop them, and later arrivals can still join them.
        self._slots = asyncio.Semaphore(threads)
        self._queues: dict[BatchKey, _Queue] = {}
        self._drains: set[asyncio.Task[None]] = set()

    async def run(self, key: BatchKey, fn: BatchFn, *inputs: np.ndarray) -> np.ndarray:
        """``fn(*inputs)`` for one item (leading dimension 1), run in a batch with its peers; returns its row."""
        loop = asyncio.get_running_loop()
        item = _Item(inputs, loop.create_future(), loop.time())
        queue = self._queues.get(key)
        if queue is None:
            # One drain task per active bucket; it ends (and the bucket goes) when its queue is empty.
            queue = self._queues[key] = _Queue(fn)
            task = asyncio.create_task(self._drain(key, queue), name=f"batch {key.model} {key.stage}")
            self._drains.add(task)
            task.add_done_callback(self._drains.discard)
        queue.items.append(item)
        queue.arrived.set()
        return await item.future

    def batch_limit(self, key: BatchKey) -> int:
        """Most items per run for a bucket: ``max_batch_size``, fewer when its first input is large."""
        if not self.max_batch_elements:
            return self.max_batch_size
        return max(1, min(self.max_batch_size, self.max_batch_elements // math.prod(key.shapes[0])))

    async def _drain(self, key: BatchKey, queue: _Queue) -> None:
        limit = self.batch_limit(key)
        try:
            while queue.items:
                await self._fill(queue, limit)
                async with self._slots:
                    batch = queue.take(limit)
                    if batch:
                        await self._execute(key, queue.fn, batch)
        finally:
            # No await between the empty check and this: a new item always finds a live drain or none.
            del self._queues[key]
            for item in queue.items:
                item.future.cancel()

    async def _fill(self, queue: _Queue, limit: int) -> None:
        """Wait until a full batch is queued or ``max_wait_s`` has passed since the oldest item arrived."""
        loop = asyncio.get_running_loop()
        deadline = queue.items[0].queued_at + self.max_wait_s
        while len(queue.items) < limit:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            queue.arrived.clear()
            try:
                await asyncio.wait_for(queue.arrived.wait(), remaining)
            except TimeoutError:
                return

    async def _execute(self, key: BatchKey, fn: BatchFn, batch: list[_Item]) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        for item in batch:
            self.metrics.queue_seconds.observe(now - item.queued_at)
        self.metrics.batch_size.labels(key.model, key.stage).observe(len(batch))
        started = time.perf_counter()
        try:
            output = await loop.run_in_executor(self._executor, _run_stacked, fn, [item.inputs for item in batch])
        except asyncio.CancelledError:  # stop() during a run: nobody will set these futures any more
            for item in batch:
                item.future.cancel()
            raise
        except Exception as exc:  # the batch failed as a whole: every caller in it gets the error
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        finally:
            self.metrics.inference_seconds.labels(key.model, key.stage).observe(time.perf_counter() - started)
        for row, item in enumerate(batch):
            if not item.future.done():
                item.future.set_result(output[row : row + 1])

    async def stop(self) -> None:
        """Cancel the queued work and wait for the running batches; called from the lifespan."""
        for task in list(self._drains):
            task.cancel()
        await asyncio.gather(*self._drains, return_exceptions=True)
        self._executor.shutdown(wait=True, cancel_futures=True)
