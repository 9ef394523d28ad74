"""The composition root: ``build_services(settings)`` builds what requests need, ``Services.close`` ends it.

The app's lifespan, the in-process benchmark (bench/peer.py) and the in-process tests all build the
service this way, so they run the same wiring: registry, caches and style store, the codec threads,
the micro-batcher, the Stylist and the admission queue.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
from fastapi import Request

from service.batching import MicroBatcher
from service.cache import EmbeddingCache
from service.cache_redis import RedisBackend, cache_and_store
from service.config import Settings
from service.embeddings import Embedder
from service.limits import DECODE_BUDGET
from service.metrics import Metrics
from service.registry import LoadedModel, ModelRegistry
from service.style_resolution import StyleFields, StyleSpec, resolve_style
from service.styles import StyleStore
from service.stylist import Stylist
from service.video_jobs import VideoJobs, build_video_jobs
from service.workers import Admission, CodecPool, until_disconnect, within_deadline

T = TypeVar("T")


@dataclass
class Services:
    settings: Settings
    metrics: Metrics
    registry: ModelRegistry
    cache: EmbeddingCache
    store: StyleStore
    codec: CodecPool
    batcher: MicroBatcher
    embedder: Embedder
    stylist: Stylist
    admission: Admission
    videos: VideoJobs
    redis: RedisBackend | None = None  # the shared backend, when ATELIER_REDIS_URL is set
    styles_loaded: int = 0  # registered styles read from the store at start

    async def resolve(self, fields: StyleFields, owner: str) -> tuple[LoadedModel, StyleSpec]:
        """``resolve_style`` off the event loop: with a Redis-backed style store, a style_id lookup is network I/O."""
        return await anyio.to_thread.run_sync(resolve_style, fields, self.registry, self.store, owner)

    async def run_admitted(self, request: Request, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """One image's worth of work, admitted to the bounded queue (429 when full), under the deadline
        (504) and cancelled when the client goes away (499). ``work`` makes the coroutine only once admitted."""
        with self.admission.admit():
            timed = within_deadline(work(), self.settings.request_timeout_s, self.metrics)
            return await until_disconnect(timed, request.receive, self.metrics)

    async def close(self) -> None:
        """Stop the batcher and the codec threads (queued work is dropped) and close Redis."""
        self.videos.close()
        await self.batcher.stop()
        self.codec.shutdown()
        if self.redis is not None:
            self.redis.close()


async def build_services(settings: Settings, metrics: Metrics | None = None) -> Services:
    """Load the models (warmed up), open the caches and the style store, start the codec and inference threads."""
    metrics = metrics or Metrics()
    registry = await anyio.to_thread.run_sync(ModelRegistry.load, settings)
    for model in registry.all():
        for provider in model.providers:
            metrics.model_info.labels(model.manifest.name, str(model.manifest.version), model.kind, provider).set(1)
    cache, store, redis_backend = cache_and_store(settings, metrics)
    store.expect_models({m.label: m.manifest.embedding_size for m in registry.all()})
    try:
        loaded = await anyio.to_thread.run_sync(store.load)
        if redis_backend is not None:  # logs and exports its state now; serving does not wait for Redis
            await anyio.to_thread.run_sync(redis_backend.check)
    except BaseException:
        if redis_backend is not None:
            redis_backend.close()
        raise
    DECODE_BUDGET.configure(settings.decode_pixels)
    embedder = Embedder(cache, metrics, settings.max_pixels, settings.min_image_side)
    codec = CodecPool(settings.codec_thread_count, settings.max_pending)
    batcher = MicroBatcher(
        settings.batch_size(registry.on_gpu),
        settings.max_batch_wait_ms / 1000,
        settings.inference_threads,
        metrics,
        max_batch_elements=3 * settings.batch_pixels(registry.on_gpu),  # the transformer's input has three channels
    )
    return Services(
        settings=settings,
        metrics=metrics,
        registry=registry,
        cache=cache,
        store=store,
        codec=codec,
        batcher=batcher,
        embedder=embedder,
        stylist=Stylist(settings, embedder, metrics, codec, batcher),
        admission=Admission(settings.max_pending, metrics),
        videos=build_video_jobs(settings, registry, metrics),
        redis=redis_backend,
        styles_loaded=loaded,
    )


@asynccontextmanager
async def running_services(settings: Settings, metrics: Metrics | None = None) -> AsyncIterator[Services]:
    """``build_services`` for the length of a block, closed at its end whatever happens in it."""
    services = await build_services(settings, metrics)
    try:
        yield services
    finally:
        await services.close()
