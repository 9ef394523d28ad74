"""The objects a request needs, built once in the lifespan and injected into routes as ``Annotated`` aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from service.cache import EmbeddingCache
from service.cache_redis import RedisBackend
from service.config import Settings
from service.embeddings import Embedder
from service.errors import NotReady
from service.metrics import Metrics
from service.pipeline import Stylist
from service.registry import ModelRegistry
from service.styles import StyleStore
from service.workers import Admission, WorkerPool


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
