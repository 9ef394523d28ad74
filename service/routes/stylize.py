"""POST /v1/stylize: a content image and a style in, the stylised image out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, Response, UploadFile

from service.auth import Owner
from service.deps import ServicesDep
from service.imaging import MEDIA_TYPES
from service.routes import problem_responses
from service.routes.forms import StylizeOptionsDep

router = APIRouter(prefix="/v1", tags=["stylize"])

DESCRIPTION = """
Stylise the `content` image with exactly one style source:

- `style`: a style image file (the arbitrary model predicts its embedding; cached by content);
- `style_id`: a style registered with `POST /v1/styles`;
- `preset`: a preset of the N-style model, by index (`3`) or name (`style-03`);
- `styles` + `weights`: a blend. `styles` is a comma-separated list of registered style ids, or of
  presets written `preset:<index|name>` (not both kinds in one blend); `weights` is a
  comma-separated list of non-negative numbers, one per style (equal when omitted), normalised to
  sum to 1. Example: `styles=preset:3,preset:style-07` and `weights=0.25,0.75`.

`strength` (0..1) interpolates between the content's own embedding (0) and the style's (1) for
arbitrary models; N-style models have no predictor, so for presets it blends the output pixels
with the content instead. `preserve_color` keeps the content's chroma (YCbCr) and stylises the
luminance only. The output keeps the aspect ratio; its longest side is `max_side` when given,
otherwise the input's, capped by the server (`ATELIER_MAX_OUTPUT_SIDE`, 8192 by default).
`stroke_scale` (0.5..8) is the brush size: the network stylises the photo at the output size over
it, and the result is brought to the output size by guided upsampling on the full-resolution photo,
so strokes grow while the photo's edges stay sharp. Its default grows with the output (the scale
that ran is in `X-Stroke-Scale`). Large outputs run in tiles sharing one set of instance-norm
statistics, in bounded memory.

`model` names a model (`name` or `name/version`); it defaults to the server's default arbitrary
model, to the model a `style_id` was registered with, and to the presets model for presets.

Concurrent requests share ONNX Runtime runs (micro-batching). When the server's bounded queue is
full the answer is 429 with `Retry-After`; an image not ready within the server's deadline is a 504.
"""

_IMAGE_SCHEMA = {"schema": {"type": "string", "format": "binary"}}
_HEADERS = {
    "X-Request-ID": {
        "description": "the request id (from the request header, or generated)",
        "schema": {"type": "string"},
    },
    "X-Model": {"description": "the model that ran, as name/version", "schema": {"type": "string"}},
    "X-Style-Id": {
        "description": "the style: its content-addressed id, preset:<name>, or a comma list for blends",
        "schema": {"type": "string"},
    },
    "X-Stroke-Scale": {
        "description": "the stroke scale (brush size) that ran: the requested one, or the default for the size",
        "schema": {"type": "string"},
    },
}


@router.post(
    "/stylize",
    summary="Stylise an image",
    description=DESCRIPTION,
    response_class=Response,
    responses={
        200: {
            "description": "The stylised image, in the requested format",
            "content": {media: _IMAGE_SCHEMA for media in MEDIA_TYPES.values()},
            "headers": _HEADERS,
        },
        **problem_responses(400, 401, 404, 413, 415, 422, 429, 500, 503, 504),
    },
)
async def stylize(
    request: Request,
    services: ServicesDep,
    owner: Owner,
    options: StylizeOptionsDep,
    content: Annotated[UploadFile, File(description="the photo to stylise")],
    style: Annotated[UploadFile | None, File(description="a style image")] = None,
    style_id: Annotated[str | None, Form(max_length=128, description="a registered style id")] = None,
    preset: Annotated[str | None, Form(max_length=128, description="a preset index or name")] = None,
) -> Response:
    fields = options.style_fields(await style.read() if style is not None else None, style_id, preset)
    chosen, spec = await services.resolve(fields, owner)
    job = options.job(chosen, await content.read(), spec)
    result = await services.run_admitted(request, lambda: services.stylist.run(job))
    return Response(
        result.image,
        media_type=result.media_type,
        headers={
            "X-Model": chosen.label,
            "X-Style-Id": result.style_reference,
            "X-Stroke-Scale": f"{result.stroke_scale:g}",
        },
    )
