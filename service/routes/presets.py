"""GET /v1/presets/{preset}/thumbnail: what a preset looks like, for galleries such as the web page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response

from service.auth import require_owner
from service.deps import ServicesDep, SettingsDep
from service.embeddings import preset_index
from service.routes import problem_responses
from service.style_resolution import require_kind
from service.thumbnails import THUMBNAIL_SIDE, PresetThumbnails

router = APIRouter(prefix="/v1", tags=["styles"], dependencies=[Depends(require_owner)])

MAX_AGE_S = 3600


def get_thumbnails(request: Request) -> PresetThumbnails:
    return request.app.state.thumbnails


ThumbnailsDep = Annotated[PresetThumbnails, Depends(get_thumbnails)]


def matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison of an If-None-Match list against our ETag."""
    if if_none_match is None:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags


@router.get(
    "/presets/{preset}/thumbnail",
    summary="A preset's thumbnail",
    description=f"A fixed sample landscape painted with the preset, {THUMBNAIL_SIDE}x{THUMBNAIL_SIDE} PNG. "
    "Presets are rows of an N-style model and have no source painting: this shows what the row does. "
    "Rendered once per model and kept in memory; answers carry an `ETag` (send `If-None-Match` for a 304) "
    "and `Cache-Control`.",
    response_class=Response,
    responses={
        200: {
            "description": "The thumbnail",
            "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
            "headers": {
                "ETag": {"description": "strong validator of the PNG bytes", "schema": {"type": "string"}},
                "Cache-Control": {"description": "how long clients may reuse it", "schema": {"type": "string"}},
            },
        },
        304: {"description": "Not modified: the If-None-Match ETag is current"},
        **problem_responses(400, 401, 404, 422, 503),
    },
)
async def preset_thumbnail(
    services: ServicesDep,
    settings: SettingsDep,
    thumbnails: ThumbnailsDep,
    preset: Annotated[str, Path(max_length=128, description="a preset index (`3`) or name (`style-03`)")],
    model: Annotated[str | None, Query(max_length=128, description="N-style model; default: the presets one")] = None,
    if_none_match: Annotated[str | None, Header(max_length=4096)] = None,
) -> Response:
    chosen = require_kind(services.registry.get(model or services.registry.presets_model), "nstyle", "a preset")
    index = preset_index(chosen, preset)
    thumbnail = thumbnails.cached(chosen, index) or await services.codec.run(thumbnails.get, chosen, index)
    # The same image for every caller, but behind API keys shared caches must not hand it out.
    scope = "private" if settings.auth_enabled else "public"
    headers = {"ETag": thumbnail.etag, "Cache-Control": f"{scope}, max-age={MAX_AGE_S}"}
    if matches(if_none_match, thumbnail.etag):
        return Response(status_code=304, headers=headers)
    return Response(thumbnail.png, media_type="image/png", headers=headers)
