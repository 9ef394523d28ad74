"""What the OpenAPI document says beyond FastAPI's defaults, so that generated clients work.

- Operation ids are the route functions' names (``stylize``, ``get_style``), not FastAPI's
  ``get_style_v1_styles_style_id_get``; generators name their methods after them.
- Form bodies are named ``<Operation>Form`` (``StylizeForm``) instead of ``Body_<operation id>``.
- File fields carry ``format: binary`` beside FastAPI's ``contentMediaType``: OpenAPI 3.1 generators
  such as openapi-python-client read a string without it as text, so uploads became ``str`` fields
  the server refused (422 "Expected UploadFile").
- The JSON answer of ``POST /v1/stylize/batch`` has named schemas (``BatchResult``, ``BatchItem``).
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi.routing import APIRoute

BODY_PREFIX = "Body_"
SCHEMA_REF = "#/components/schemas/"


# The batch's JSON answer, as service/routes/batch.py writes it: a failed item has no image fields and
# a successful one no problem, so the optional fields are absent rather than null.
BATCH_SCHEMAS: dict[str, dict[str, Any]] = {
    "BatchItem": {
        "title": "BatchItem",
        "description": "One item of a batch answered as JSON: the image (base64) on success, else its problem.",
        "type": "object",
        "properties": {
            "index": {"type": "integer", "description": "position of the content image in the request"},
            "status": {"type": "integer", "description": "200, or the item's own error status"},
            "media_type": {"type": "string", "description": "the image's media type"},
            "style_id": {"type": "string", "description": "the style, as in X-Style-Id"},
            "width": {"type": "integer", "description": "output width in pixels"},
            "height": {"type": "integer", "description": "output height in pixels"},
            "stroke_scale": {"type": "number", "description": "the brush size that ran, as in X-Stroke-Scale"},
            "data": {"type": "string", "format": "byte", "description": "the image, base64"},
            "problem": {"$ref": SCHEMA_REF + "Problem", "description": "why the item failed"},
        },
        "required": ["index", "status"],
    },
    "BatchResult": {
        "title": "BatchResult",
        "description": "A batch answered as JSON: one item per content image, in request order.",
        "type": "object",
        "properties": {"items": {"type": "array", "items": {"$ref": SCHEMA_REF + "BatchItem"}}},
        "required": ["items"],
    },
}


def operation_id(route: APIRoute) -> str:
    """The route function's name: short, stable, and unique because every route function has its own."""
    return route.name


def for_generated_clients(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the named batch schemas, mark file fields binary and give form bodies their names, in place."""
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(copy.deepcopy(BATCH_SCHEMAS))
    for body in schemas.values():
        _mark_binary(body)
    renames = {name: _form_name(name) for name in schemas if name.startswith(BODY_PREFIX)}
    for old, new in renames.items():
        schemas[new] = schemas.pop(old)
        schemas[new]["title"] = new
    _rewrite_refs(schema, {SCHEMA_REF + old: SCHEMA_REF + new for old, new in renames.items()})
    return schema


def _form_name(body_name: str) -> str:
    words = body_name.removeprefix(BODY_PREFIX).split("_")
    return "".join(word.capitalize() for word in words) + "Form"


def _mark_binary(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("type") == "string" and "contentMediaType" in node:
            node.setdefault("format", "binary")
        for value in node.values():
            _mark_binary(value)
    elif isinstance(node, list):
        for value in node:
            _mark_binary(value)


def _rewrite_refs(node: Any, refs: dict[str, str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref in refs:
            node["$ref"] = refs[ref]
        for value in node.values():
            _rewrite_refs(value, refs)
    elif isinstance(node, list):
        for value in node:
            _rewrite_refs(value, refs)
