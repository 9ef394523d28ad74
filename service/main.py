"""The app factory: ``create_app(settings)`` wires settings, middleware, routes and the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from service.allocator import reuse_freed_memory
from service.config import Settings
from service.errors import Problem, install_error_handlers
from service.live import LiveGate
from service.metrics import Metrics
from service.middleware import BodyLimitMiddleware, RequestContextMiddleware
from service.openapi_schema import for_generated_clients, operation_id
from service.routes import batch, health, live, presets, styles, stylize, videos, web
from service.services import Services, build_services
from service.thumbnails import PresetThumbnails

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
    heap_reuse = reuse_freed_memory(settings.heap_reuse_mib * 1024 * 1024)
    services = await build_services(settings, app.state.metrics)
    app.state.services = services
    _log_readiness(services, heap_reuse)
    try:
        yield
    finally:
        app.state.services = None
        await services.close()
        app.state.metrics.process_exited()


def _log_readiness(services: Services, heap_reuse: bool) -> None:
    settings, registry = services.settings, services.registry
    extra = {
        "models": [m.label for m in registry.all()],
        "styles": services.styles_loaded,
        "providers": settings.providers,
        "processes": settings.process_count,
        "max_batch_size": settings.batch_size(registry.on_gpu),
        "max_batch_pixels": settings.batch_pixels(registry.on_gpu),
        "heap_reuse_mib": settings.heap_reuse_mib if heap_reuse else 0,
    }
    problem = registry.provider_problem()
    if problem is None:
        log.info("ready", extra=extra)
    else:
        log.error("not ready: %s", problem, extra=extra)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = FastAPI(
        title="Atelier",
        version=API_VERSION,
        summary="Arbitrary neural style transfer (Ghiasi et al. 2017) over HTTP",
        description=DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        form_limits={"max_part_size": settings.max_field_bytes, "max_fields": 64, "max_files": 8},
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.state.thumbnails = PresetThumbnails()
    app.state.services = None
    app.state.live = LiveGate(settings.live_max_connections, app.state.metrics)
    install_error_handlers(app)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_upload_bytes,
        timeout_s=settings.body_timeout_s,
        path_limits={videos.UPLOAD_PATH: settings.video_max_bytes},
    )
    app.add_middleware(RequestContextMiddleware, metrics=app.state.metrics)  # outermost: sees every response
    app.include_router(stylize.router)
    app.include_router(batch.router)
    app.include_router(styles.router)
    app.include_router(videos.router)
    app.include_router(health.router)
    app.include_router(presets.router)
    app.include_router(live.router)
    app.include_router(web.router)
    app.mount(web.STATIC_PREFIX, web.static_files(), name="web")
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema plus the Problem schema the error responses refer to, fit for generated clients."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, summary=app.summary, description=app.description, routes=app.routes
        )
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        app.openapi_schema = for_generated_clients(schema)
    return app.openapi_schema
