"""The objects a request needs, built once in the lifespan and injected into routes as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import Depends, Request

from service.cache import EmbeddingCache
from service.cache_redis import RedisBackend
from service.config import Settings
from service.embeddings import Embedder
from service.errors import NotReady
from service.metrics import Metrics
from service.registry import LoadedModel, ModelRegistry
from service.style_resolution import StyleFields, StyleSpec, resolve_style
from service.styles import StyleStore
from service.stylist import Stylist
from service.workers import Admission, WorkerPool, until_disconnect, within_deadline

T = TypeVar("T")


@dataclass
class Services:
    settings: Settings
    metrics: Metrics
    registry: ModelRegistry
    cache: EmbeddingCache
    store: StyleStore
    pool: WorkerPool
    embedder: Embedder
    stylist: Stylist
    admission: Admission
    redis: RedisBackend | None = None  # the shared backend, when ATELIER_REDIS_URL is set

    async def resolve(self, fields: StyleFields, owner: str) -> tuple[LoadedModel, StyleSpec]:
        """``resolve_style`` off the event loop: with a Redis-backed style store, a style_id lookup is network I/O."""
        return await anyio.to_thread.run_sync(resolve_style, fields, self.registry, self.store, owner)

    async def one_image(self, request: Request, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """One image's worth of work under the bounded queue (429), the deadline (504) and the client's
        connection (499). ``work`` makes the coroutine only once admitted."""
        with self.admission.admit():
            timed = within_deadline(work(), self.settings.request_timeout_s, self.metrics)
            return await until_disconnect(timed, request.receive, self.metrics)


def get_services(request: Request) -> Services:
    services = getattr(request.app.state, "services", None)
    if services is None:
        raise NotReady("the service is starting: models are not loaded yet")
    return services


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


ServicesDep = Annotated[Services, Depends(get_services)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
