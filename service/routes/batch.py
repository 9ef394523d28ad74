"""POST /v1/stylize/batch: many content images, one style or one style per image, many images out.

The answer is ``multipart/mixed`` by default: one part per item, in request order, each with its own
``Content-Type`` (the image, or ``application/problem+json`` for an item that failed) and the headers
``X-Item-Index``, ``X-Status`` and, on success, ``X-Style-Id``. Images travel as raw bytes, with no
base64 inflation, and every HTTP stack has a MIME multipart parser. ``Accept: application/json`` gets
the same items as JSON with base64 images instead, for clients that want one JSON document.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Request, Response, UploadFile

from service.auth import Owner
from service.deps import Services, ServicesDep
from service.errors import PROBLEM_MEDIA_TYPE, AtelierError, BadRequest, ContentTooLarge, error_body
from service.pipeline import StyleFields, StyleSpec, StylizeJob, StylizeResult
from service.registry import LoadedModel
from service.routes import problem_responses
from service.routes.forms import BlendStyles, BlendWeights, Format, ModelName, PreserveColor, Quality, Strength
from service.workers import until_disconnect, within_deadline

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
and the headers `X-Item-Index`, `X-Status` and `X-Style-Id`. An item that fails (an image that
does not decode, an unknown style in a pair) is a part with `Content-Type: application/problem+json`
and its own status; the other items are unaffected and the response is 200. Send
`response_format=json` (or `Accept: application/json`) for a `BatchResult` JSON document,
`{"items": [...]}` with base64 images, instead: generated clients parse only that one. A problem shared by
all items (no content, an unknown shared style, too many items, a full queue) fails the request.
"""

MULTIPART_SCHEMA = {"schema": {"type": "string", "format": "binary"}}
JSON_SCHEMA = {"schema": {"$ref": "#/components/schemas/BatchResult"}}  # service/openapi_schema.py


@dataclass(frozen=True)
class Planned:
    """One item before it runs: its job, or the error that already stopped it."""

    job: StylizeJob | None
    error: AtelierError | None = None


Outcome = StylizeResult | AtelierError


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
        **problem_responses(400, 401, 404, 413, 415, 422, 429, 503),
    },
)
async def stylize_batch(
    request: Request,
    services: ServicesDep,
    owner: Owner,
    content: Annotated[list[UploadFile], File(description="the photos to stylise (repeat the field)")],
    style: Annotated[list[UploadFile] | None, File(description="one style image, or one per content")] = None,
    style_id: Annotated[list[str] | None, Form(description="one registered style id, or one per content")] = None,
    preset: Annotated[list[str] | None, Form(description="one preset index or name, or one per content")] = None,
    styles: BlendStyles = None,
    weights: BlendWeights = None,
    strength: Strength = 1.0,
    preserve_color: PreserveColor = False,
    max_side: Annotated[int | None, Form(ge=1, description="longest side of each output, in pixels")] = None,
    format: Format = "png",
    quality: Quality = 90,
    model: ModelName = None,
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
        template = StylizeJob(
            model=services.registry.get(None),  # each item's own model replaces it
            content=b"",
            style=StyleSpec(reference=""),
            strength=strength,
            preserve_color=preserve_color,
            max_side=max_side,
            format=format,
            quality=quality,
        )
        sources = _style_sources(len(contents), style_bytes, style_id, preset, styles, weights, model)
        work = _plan_and_run(services, owner, template, contents, sources)
        outcomes = await until_disconnect(work, request.receive, services.metrics)
    wants_json = "application/json" in request.headers.get("accept", "")
    if response_format == "json" or (response_format is None and wants_json):
        return _json_response(request.url.path, outcomes)
    return _multipart_response(request.url.path, outcomes)


def _style_sources(
    count: int,
    style: list[bytes] | None,
    style_id: list[str] | None,
    preset: list[str] | None,
    styles: str | None,
    weights: str | None,
    model: str | None,
) -> list[StyleFields]:
    """The style fields of each item: one source for all items, or one per item (pairs)."""
    given = {name: values for name, values in (("style", style), ("style_id", style_id), ("preset", preset)) if values}
    for name, values in given.items():
        if len(values) not in (1, count):
            raise BadRequest(f"{len(values)} `{name}` values for {count} content images; give one, or one per image")
    if len(given) + (styles is not None) != 1:
        named = [*given, *(["styles"] if styles is not None else [])]
        raise BadRequest(
            "give exactly one style source, `style`, `style_id`, `preset` or `styles`, once or once per image; "
            f"got {', '.join(named) or 'none'}"
        )

    def pick(values: list[Any] | None, index: int) -> Any:
        if not values:
            return None
        return values[0] if len(values) == 1 else values[index]

    return [
        StyleFields(pick(style, i), pick(style_id, i), pick(preset, i), styles, weights, model) for i in range(count)
    ]


async def _plan_and_run(
    services: Services, owner: str, template: StylizeJob, contents: list[bytes], sources: list[StyleFields]
) -> list[Outcome]:
    plans = await _plan(services, owner, template, contents, sources)
    return await _run_all(services, plans)


async def _plan(
    services: Services, owner: str, template: StylizeJob, contents: list[bytes], sources: list[StyleFields]
) -> list[Planned]:
    """Resolve each item's style. A style shared by every item is resolved (and embedded) once, and its
    errors fail the request; a per-item style's errors fail only its item."""
    shared = all(source == sources[0] for source in sources)
    if shared:
        chosen, spec = await _resolve(services, owner, sources[0])
        return [Planned(replace(template, model=chosen, content=data, style=spec)) for data in contents]
    plans = []
    for data, source in zip(contents, sources, strict=True):
        try:
            chosen, spec = await services.resolve(source, owner)
        except AtelierError as exc:
            plans.append(Planned(None, exc))
            continue
        plans.append(Planned(replace(template, model=chosen, content=data, style=spec)))
    return plans


async def _resolve(services: Services, owner: str, source: StyleFields) -> tuple[LoadedModel, StyleSpec]:
    chosen, spec = await services.resolve(source, owner)
    if spec.image is None:
        return chosen, spec
    reference, embedding = await services.stylist.style_embedding(chosen, spec.image)
    return chosen, StyleSpec(reference=reference, embedding=embedding)


async def _run_all(services: Services, plans: list[Planned]) -> list[Outcome]:
    async def one(plan: Planned) -> Outcome:
        if plan.job is None:
            assert plan.error is not None
            return plan.error
        try:
            work = services.stylist.run(plan.job)
            return await within_deadline(work, services.settings.request_timeout_s, services.metrics)
        except AtelierError as exc:
            return exc

    return list(await asyncio.gather(*(one(plan) for plan in plans)))


def _multipart_response(path: str, outcomes: list[Outcome]) -> Response:
    parts: list[tuple[dict[str, str], bytes]] = []
    for index, outcome in enumerate(outcomes):
        headers = {"X-Item-Index": str(index)}
        if isinstance(outcome, AtelierError):
            body = json.dumps(error_body(f"{path}#{index}", outcome)).encode()
            headers |= {"Content-Type": PROBLEM_MEDIA_TYPE, "X-Status": str(outcome.status)}
        else:
            body = outcome.image
            headers |= {"Content-Type": outcome.media_type, "X-Status": "200", "X-Style-Id": outcome.style_reference}
        parts.append((headers, body))
    boundary = secrets.token_hex(16)
    while any(boundary.encode() in body for _, body in parts):  # practically never; the boundary must not occur
        boundary = secrets.token_hex(16)
    chunks = []
    for headers, body in parts:
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        chunks += [f"--{boundary}\r\n{head}\r\n".encode(), body, b"\r\n"]
    chunks.append(f"--{boundary}--\r\n".encode())
    return Response(
        b"".join(chunks), media_type=f"multipart/mixed; boundary={boundary}", headers=_summary_headers(outcomes)
    )


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
                    "data": base64.b64encode(outcome.image).decode(),
                }
            )
    body = json.dumps({"items": items}).encode()
    return Response(body, media_type="application/json", headers=_summary_headers(outcomes))


def _summary_headers(outcomes: list[Outcome]) -> dict[str, str]:
    failed = sum(isinstance(outcome, AtelierError) for outcome in outcomes)
    return {"X-Items": str(len(outcomes)), "X-Items-Failed": str(failed)}
