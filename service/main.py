"""The app factory: ``create_app(settings)`` wires settings, middleware, routes and the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from service.cache import LruEmbeddingCache
from service.config import Settings
from service.deps import Services
from service.embeddings import Embedder
from service.errors import Problem, install_error_handlers
from service.metrics import Metrics
from service.middleware import BodyLimitMiddleware, RequestContextMiddleware
from service.pipeline import Stylist
from service.registry import ModelRegistry
from service.routes import health, styles, stylize
from service.styles import StyleStore
from service.workers import WorkerPool

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
    registry = await anyio.to_thread.run_sync(ModelRegistry.load, settings)
    for model in registry.all():
        for provider in model.providers:
            metrics.model_info.labels(model.manifest.name, str(model.manifest.version), model.kind, provider).set(1)
    store = StyleStore(settings.style_dir)
    loaded = await anyio.to_thread.run_sync(store.load)
    cache = LruEmbeddingCache(settings.cache_entries)
    embedder = Embedder(cache, metrics, settings.max_pixels, settings.min_image_side)
    pool = WorkerPool(settings.workers, settings.max_pending, metrics)
    app.state.services = Services(
        settings=settings,
        metrics=metrics,
        registry=registry,
        cache=cache,
        store=store,
        pool=pool,
        embedder=embedder,
        stylist=Stylist(settings, embedder, metrics),
    )
    problem = registry.provider_problem()
    extra = {"models": [m.label for m in registry.all()], "styles": loaded, "providers": settings.providers}
    if problem is None:
        log.info("ready", extra=extra)
    else:
        log.error("not ready: %s", problem, extra=extra)
    try:
        yield
    finally:
        app.state.services = None
        pool.shutdown()


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
    app.state.services = None
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_upload_bytes)
    app.add_middleware(RequestContextMiddleware, metrics=app.state.metrics)  # outermost: sees every response
    app.include_router(stylize.router)
    app.include_router(styles.router)
    app.include_router(health.router)
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
