"""Liveness, readiness and Prometheus metrics; open even when API keys are configured."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from service.deps import MetricsDep, SettingsDep
from service.errors import NotReady
from service.routes import problem_responses

router = APIRouter(tags=["health"])


@router.get("/livez", summary="The process is up")
async def livez() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Models loaded, warmed up, on the requested execution provider",
    responses={
        200: {"description": "Ready: provider, models and versions; `status` is `degraded` while Redis is unreachable"},
        **problem_responses(503),
    },
)
async def readyz(request: Request, settings: SettingsDep) -> JSONResponse:
    services = getattr(request.app.state, "services", None)
    if services is None:
        raise NotReady("models are loading")
    registry = services.registry
    body: dict[str, Any] = {
        "status": "ready",
        "requested_provider": settings.providers,
        "providers": sorted({p for m in registry.all() for p in m.providers}),
        "default_model": registry.get(None).label,
        "presets_model": registry.presets_model,
        "models": [
            {
                "name": m.manifest.name,
                "version": m.manifest.version,
                "kind": m.kind,
                "providers": m.providers,
                "warmup_s": round(m.warmup_s, 4),
            }
            for m in registry.all()
        ],
        "refused": registry.failures,
    }
    if services.redis is not None:
        # Redis down is "degraded", still 200: replicas serve from local state and requests keep succeeding.
        body["shared_backend"] = await anyio.to_thread.run_sync(services.redis.check)
        if not body["shared_backend"]["up"]:
            body["status"] = "degraded"
    problem = registry.provider_problem()
    if problem is not None:
        raise NotReady(problem, **{k: v for k, v in body.items() if k != "status"})
    return JSONResponse(body)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}}
    },
)
async def metrics(metrics: MetricsDep) -> Response:
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)
