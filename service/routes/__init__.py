"""Thin HTTP routes: parse fields, call the modules that do the work, shape the response."""

from __future__ import annotations

from typing import Any

from service.errors import PROBLEM_MEDIA_TYPE

_DESCRIPTIONS = {
    400: "Fields that do not go together (RFC 9457 problem details)",
    401: "API keys are configured and the bearer key is missing or wrong",
    404: "Unknown model, style or preset",
    413: "Request body, form field or image pixel count over the configured limit, or a batch with more "
    "images than the server admits at once (batch-too-large: split it; retrying it as is cannot succeed)",
    415: "Not a JPEG, PNG, WebP, GIF, BMP or TIFF image, or bytes that do not decode",
    422: "A field out of range or of the wrong type",
    429: "The bounded queue is full: retry after Retry-After seconds",
    500: "A stored style that does not fit its model (corrupt-style: register its image again)",
    501: "Not implemented by this install or this server",
    503: "Not ready (models loading, the requested execution provider inactive), a style this replica "
    "has not seen while the shared style registry is unreachable, or style storage that cannot be "
    "written (storage-unavailable): retry after Retry-After seconds",
    504: "The request's deadline passed before its answer was ready",
}


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for error responses, all ``application/problem+json`` bodies."""
    return {
        code: {
            "description": _DESCRIPTIONS[code],
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for code in codes
    }
