"""Registered styles (POST/GET /v1/styles) and the models they belong to (GET /v1/models)."""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, File, Form, Path, Query, Request, Response, UploadFile
from pydantic import BaseModel, Field

from service.auth import Owner
from service.deps import ServicesDep
from service.routes import problem_responses
from service.style_resolution import lookup_style, require_kind
from service.styles import StyleRecord

router = APIRouter(prefix="/v1", tags=["styles"])

# OpenAPI links: a registered style's id leads to GET /v1/styles/{style_id} (clients and stateful fuzzers follow them).
STYLE_LINKS = {
    "GetStyle": {
        "operationId": "get_style",
        "parameters": {"style_id": "$response.body#/id"},
        "description": "the registered style and its embedding",
    }
}


class StyleSummary(BaseModel):
    id: str
    model: str
    created: str


class PresetInfo(BaseModel):
    model: str = Field(description="the N-style model, name/version")
    index: int
    name: str


class StyleList(BaseModel):
    items: list[StyleSummary] = Field(description="registered styles visible to the caller, oldest first")
    total: int
    offset: int
    limit: int
    presets: list[PresetInfo] = Field(description="presets of every loaded N-style model")


class ModelInfo(BaseModel):
    name: str
    version: int
    kind: str
    embedding_size: int
    style_size: int | None
    providers: list[str]
    presets: int
    default: bool


@router.post(
    "/styles",
    status_code=201,
    response_model=StyleRecord,
    summary="Register a style image",
    description="Predicts the style embedding of `style` and stores it. The id is content-addressed "
    "(sha256 of the model, the preprocessing and the image bytes): posting the same image again gives "
    "the same id and answers 200 instead of 201.",
    responses={
        200: {"description": "Already registered", "model": StyleRecord, "links": STYLE_LINKS},
        201: {"description": "Registered", "links": STYLE_LINKS},
        **problem_responses(400, 401, 404, 413, 415, 422, 429, 503, 504),
    },
)
async def register_style(
    request: Request,
    services: ServicesDep,
    owner: Owner,
    response: Response,
    style: Annotated[UploadFile, File(description="the style image")],
    model: Annotated[str | None, Form(max_length=128, description="an arbitrary model; default: the server's")] = None,
) -> StyleRecord:
    chosen = require_kind(services.registry.get(model), "arbitrary", "registering a style")
    data = await style.read()
    # A prediction is an image's worth of work: the same queue, deadline and batched predictor as a
    # stylize request with a style image.
    style_id, embedding = await services.run_admitted(request, lambda: services.stylist.style_embedding(chosen, data))
    vector = [float(x) for x in embedding]
    record, created = await services.codec.run(services.store.put, owner, style_id, vector, chosen.label)
    response.status_code = 201 if created else 200
    response.headers["Location"] = f"/v1/styles/{record.id}"
    return record


@router.get(
    "/styles",
    response_model=StyleList,
    summary="List registered styles and presets",
    responses=problem_responses(401, 422),
)
async def list_styles(
    services: ServicesDep,
    owner: Owner,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> StyleList:
    # Store reads run off the event loop: with Redis configured they are network I/O.
    records, total = await anyio.to_thread.run_sync(services.store.page, owner, offset, limit)
    presets = [
        PresetInfo(model=m.label, index=p.index, name=p.name)
        for m in services.registry.all()
        if m.kind == "nstyle"
        for p in m.manifest.presets
    ]
    items = [StyleSummary(id=r.id, model=r.model, created=r.created.isoformat()) for r in records]
    return StyleList(items=items, total=total, offset=offset, limit=limit, presets=presets)


@router.get(
    "/styles/{style_id}",
    response_model=StyleRecord,
    summary="A registered style and its embedding",
    responses=problem_responses(401, 404, 422, 500, 503),
)
async def get_style(services: ServicesDep, owner: Owner, style_id: Annotated[str, Path(max_length=128)]) -> StyleRecord:
    return await anyio.to_thread.run_sync(lookup_style, services.store, owner, style_id)


@router.get("/models", response_model=list[ModelInfo], summary="Loaded models", responses=problem_responses(401, 422))
async def list_models(services: ServicesDep, owner: Owner) -> list[ModelInfo]:
    default = services.registry.get(None).label
    return [
        ModelInfo(
            name=m.manifest.name,
            version=m.manifest.version,
            kind=m.kind,
            embedding_size=m.manifest.embedding_size,
            style_size=m.manifest.style_size,
            providers=m.providers,
            presets=len(m.manifest.presets),
            default=m.label == default,
        )
        for m in services.registry.all()
    ]
