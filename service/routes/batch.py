"""POST /v1/stylize/batch: many content images, one style or one style per image, many images out.

The answer is ``multipart/mixed`` by default: one part per item, in request order, each with its own
``Content-Type`` (the image, or ``application/problem+json`` for an item that failed) and the headers
``X-Item-Index``, ``X-Status`` and, on success, ``X-Style-Id``. Images travel as raw bytes, with no
base64 inflation, and every HTTP stack has a MIME multipart parser. ``Accept: application/json`` gets
the same items as JSON with base64 images instead, for clients that want one JSON document.
"""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Request, Response, UploadFile

from service import batch_plan
from service.auth import Owner
from service.batch_plan import Outcome
from service.deps import ServicesDep
from service.errors import PROBLEM_MEDIA_TYPE, AtelierError, ContentTooLarge, error_body
from service.multipart_mixed import Part, encode_multipart_mixed
from service.routes import problem_responses
from service.routes.forms import StylizeOptionsDep
from service.workers import until_disconnect

router = APIRouter(prefix="/v1", tags=["stylize"])

# Static form limits, generous enough for any ATELIER_MAX_BATCH_ITEMS up to 128; the item count
# itself is checked against the setting.
FORM_LIMITS = {"max_files": 2 * 128, "max_fields": 2 * 128 + 16}

DESCRIPTION = """
Stylise many `content` images (repeat the field) in one request.

Styles: give one style source, once for all images (`style` file, `style_id`, `preset`, or a
`styles` blend), or repeat `style`, `style_id` or `preset` once per content image for pairs
(`content[i]` with `style[i]`). The other fields are those of `POST /v1/stylize` and apply to
every image. At most `ATELIER_MAX_BATCH_ITEMS` images per request.

The answer is `multipart/mixed`: one part per item, in order, each with its own `Content-Type`
and the headers `X-Item-Index`, `X-Status`, `X-Style-Id` and `X-Stroke-Scale` (the brush size that
ran; `stroke_scale` applies to every item). An item that fails (an image that does not decode, an
unknown style in a pair) is a part with `Content-Type: application/problem+json` and its own status;
the other items are unaffected and the response is 200. Send `response_format=json` (or
`Accept: application/json`) for a `BatchResult` JSON document, `{"items": [...]}` with base64 images,
instead: generated clients parse only that one. A problem shared by all items (no content, an unknown
shared style, too many items, a full queue) fails the request.
"""

MULTIPART_SCHEMA = {"schema": {"type": "string", "format": "binary"}}
JSON_SCHEMA = {"schema": {"$ref": "#/components/schemas/BatchResult"}}  # service/openapi_schema.py


@router.post(
    "/stylize/batch",
    summary="Stylise many images",
    description=DESCRIPTION,
    response_class=Response,
    form_limits=FORM_LIMITS,
    responses={
        200: {
            "description": "One part (or JSON item) per content image, in request order",
            "content": {"multipart/mixed": MULTIPART_SCHEMA, "application/json": JSON_SCHEMA},
        },
        **problem_responses(400, 401, 404, 413, 415, 422, 429, 500, 503),
    },
)
async def stylize_batch(
    request: Request,
    services: ServicesDep,
    owner: Owner,
    options: StylizeOptionsDep,
    content: Annotated[list[UploadFile], File(description="the photos to stylise (repeat the field)")],
    style: Annotated[list[UploadFile] | None, File(description="one style image, or one per content")] = None,
    style_id: Annotated[list[str] | None, Form(description="one registered style id, or one per content")] = None,
    preset: Annotated[list[str] | None, Form(description="one preset index or name, or one per content")] = None,
    response_format: Annotated[
        Literal["multipart", "json"] | None,
        Form(description="multipart/mixed parts or one JSON document; unset: by the Accept header"),
    ] = None,
) -> Response:
    limit = services.settings.max_batch_items
    if len(content) > limit:
        raise ContentTooLarge(f"{len(content)} content images in one batch; the limit is {limit}")
    with services.admission.admit(len(content)):
        contents = [await upload.read() for upload in content]
        style_bytes = [await upload.read() for upload in style] if style is not None else None
        sources = batch_plan.style_sources(len(contents), style_bytes, style_id, preset, options)
        work = batch_plan.plan_and_run(services, owner, options, contents, sources)
        outcomes = await until_disconnect(work, request.receive, services.metrics)
    wants_json = "application/json" in request.headers.get("accept", "")
    if response_format == "json" or (response_format is None and wants_json):
        return _json_response(request.url.path, outcomes)
    return _multipart_response(request.url.path, outcomes)


def _multipart_response(path: str, outcomes: list[Outcome]) -> Response:
    parts: list[Part] = []
    for index, outcome in enumerate(outcomes):
        headers = {"X-Item-Index": str(index)}
        if isinstance(outcome, AtelierError):
            body = json.dumps(error_body(f"{path}#{index}", outcome)).encode()
            headers |= {"Content-Type": PROBLEM_MEDIA_TYPE, "X-Status": str(outcome.status)}
        else:
            body = outcome.image
            headers |= {
                "Content-Type": outcome.media_type,
                "X-Status": "200",
                "X-Style-Id": outcome.style_reference,
                "X-Stroke-Scale": f"{outcome.stroke_scale:g}",
            }
        parts.append((headers, body))
    body, media_type = encode_multipart_mixed(parts)
    return Response(body, media_type=media_type, headers=_summary_headers(outcomes))


def _json_response(path: str, outcomes: list[Outcome]) -> Response:
    items: list[dict[str, Any]] = []
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, AtelierError):
            items.append({"index": index, "status": outcome.status, "problem": error_body(f"{path}#{index}", outcome)})
        else:
            items.append(
                {
                    "index": index,
                    "status": 200,
                    "media_type": outcome.media_type,
                    "style_id": outcome.style_reference,
                    "width": outcome.width,
                    "height": outcome.height,
                    "stroke_scale": outcome.stroke_scale,
                    "data": base64.b64encode(outcome.image).decode(),
                }
            )
    body = json.dumps({"items": items}).encode()
    return Response(body, media_type="application/json", headers=_summary_headers(outcomes))


def _summary_headers(outcomes: list[Outcome]) -> dict[str, str]:
    failed = sum(isinstance(outcome, AtelierError) for outcome in outcomes)
    return {"X-Items": str(len(outcomes)), "X-Items-Failed": str(failed)}
