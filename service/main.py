"""The app factory: ``create_app(settings)`` wires settings, middleware, routes and the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from service.allocator import reuse_freed_memory
from service.batching import MicroBatcher
from service.cache_redis import cache_and_store
from service.config import Settings
from service.deps import Services
from service.embeddings import Embedder
from service.errors import Problem, install_error_handlers
from service.metrics import Metrics
from service.middleware import BodyLimitMiddleware, RequestContextMiddleware
from service.pipeline import Stylist
from service.registry import ModelRegistry
from service.routes import batch, health, presets, styles, stylize, web
from service.thumbnails import PresetThumbnails
from service.workers import Admission, WorkerPool

log = logging.getLogger(__name__)

API_VERSION = "1.0.0"
DESCRIPTION = (
    "Stylise photos with any painting (a style image, a registered style, a preset or a blend) using "
    "ONNX Runtime.\n\nErrors are RFC 9457 problem details (`application/problem+json`). When API keys "
    "are configured, every /v1 route needs `Authorization: Bearer <key>`."
)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    metrics: Metrics = app.state.metrics
    heap_reuse = reuse_freed_memory(settings.heap_reuse_mib * 1024 * 1024)
    registry = await anyio.to_thread.run_sync(ModelRegistry.load, settings)
    for model in registry.all():
        for provider in model.providers:
            metrics.model_info.labels(model.manifest.name, str(model.manifest.version), model.kind, provider).set(1)
    cache, store, redis_backend = cache_and_store(settings, metrics)
    store.expect_models({m.label: m.manifest.embedding_size for m in registry.all()})
    loaded = await anyio.to_thread.run_sync(store.load)
    if redis_backend is not None:  # logs and exports its state now; serving does not wait for Redis
        await anyio.to_thread.run_sync(redis_backend.check)
    embedder = Embedder(cache, metrics, settings.max_pixels, settings.min_image_side)
    pool = WorkerPool(settings.codec_threads, settings.max_pending)
    batch_pixels = settings.batch_pixels(registry.on_gpu)
    batch_size = settings.batch_size(registry.on_gpu)
    batcher = MicroBatcher(
        batch_size,
        settings.max_batch_wait_ms / 1000,
        settings.inference_threads,
        metrics,
        max_batch_elements=3 * batch_pixels,  # the transformer's input has three channels
    )
    app.state.services = Services(
        settings=settings,
        metrics=metrics,
        registry=registry,
        cache=cache,
        store=store,
        pool=pool,
        embedder=embedder,
        stylist=Stylist(settings, embedder, metrics, pool, batcher),
        admission=Admission(settings.max_pending, metrics),
        redis=redis_backend,
    )
    problem = registry.provider_problem()
    extra = {
        "models": [m.label for m in registry.all()],
        "styles": loaded,
        "providers": settings.providers,
        "processes": settings.process_count,
        "max_batch_size": batch_size,
        "max_batch_pixels": batch_pixels,
        "heap_reuse_mib": settings.heap_reuse_mib if heap_reuse else 0,
    }
    if problem is None:
        log.info("ready", extra=extra)
    else:
        log.error("not ready: %s", problem, extra=extra)
    try:
        yield
    finally:
        app.state.services = None
        await batcher.stop()
        pool.shutdown()
        if redis_backend is not None:
            redis_backend.close()
        metrics.process_exited()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = FastAPI(
        title="Atelier",
        version=API_VERSION,
        summary="Arbitrary neural style transfer (Ghiasi et al. 2017) over HTTP",
        description=DESCRIPTION,
        lifespan=lifespan,
        form_limits={"max_part_size": settings.max_field_bytes, "max_fields": 64, "max_files": 8},
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.state.thumbnails = PresetThumbnails()
    app.state.services = None
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_upload_bytes, timeout_s=settings.body_timeout_s)
    app.add_middleware(RequestContextMiddleware, metrics=app.state.metrics)  # outermost: sees every response
    app.include_router(stylize.router)
    app.include_router(batch.router)
    app.include_router(styles.router)
    app.include_router(health.router)
    app.include_router(presets.router)
    app.include_router(web.router)
    app.mount(web.STATIC_PREFIX, web.static_files(), name="web")
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema plus the Problem schema the error responses refer to."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, summary=app.summary, description=app.description, routes=app.routes
        )
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        app.openapi_schema = schema
    return app.openapi_schema
