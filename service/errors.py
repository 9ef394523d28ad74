"""The service's exceptions and the one place that turns them into RFC 9457 problem details.

Hierarchy (status code in brackets)::

    AtelierError                    base; never raised itself
    ├── BadRequest [400]            a field combination that makes no sense (two style sources, a
    │                               preset sent to an arbitrary model, a malformed blend)
    ├── Unauthorized [401]          API keys are configured and the request has none or a wrong one
    ├── NotFound [404]
    │   ├── UnknownModel            ``model`` names nothing in the repository
    │   ├── UnknownStyle            a ``style_id`` that is not registered (or not visible to this key)
    │   └── UnknownPreset           a preset index or name the N-style model does not have
    ├── RequestTimeout [408]        the request's headers or body did not arrive within their timeout
    ├── ContentTooLarge [413]       request body, a form field, or an image's pixel count over its limit
    │   └── BatchTooLarge           a batch with more images than the server ever admits at once
    ├── UnsupportedImage [415]      not one of the accepted formats, or bytes that do not decode
    ├── InvalidField [422]          a field that parses but is out of range (image too small, max_side
    │                               above the cap, weights that sum to zero)
    ├── Overloaded [429]            the bounded queue is full; carries Retry-After
    ├── ClientClosedRequest [499]   the client went away before its answer; its queued work was dropped
    ├── CorruptStyle [500]          a stored style record that does not fit its model; re-register it
    ├── NotImplementedCoding [501]  a Transfer-Encoding other than chunked (RFC 9112 section 6.1)
    ├── NotReady [503]              models still loading, or the requested execution provider is not active
    ├── StylesUnavailable [503]     a style this replica has not seen, while the shared registry (Redis) is
    │                               unreachable: it may exist; carries Retry-After
    ├── StorageUnavailable [503]    the server's own style folder cannot be written (permissions, disk
    │                               full); carries Retry-After
    ├── TooManyConnections [503]    the process holds ATELIER_MAX_CONNECTIONS connections; carries Retry-After
    └── DeadlineExceeded [504]      the request's deadline (ATELIER_REQUEST_TIMEOUT_S) passed before its answer

Routes and library code raise these; ``problem_response`` renders every error, including FastAPI's
validation errors and Starlette's HTTP errors, as ``application/problem+json`` with ``type``,
``title``, ``status``, ``detail``, ``instance`` and the ``request_id``. Anything else is a bug: it is
logged and answered with a 500 problem, and no client input is supposed to get there.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException

from service.logging import current_request_id

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "urn:atelier:problem:"


class AtelierError(Exception):
    """Base of every error the service answers with a 4xx/5xx problem body."""

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}
        self.extensions = extensions


class BadRequest(AtelierError):
    status, slug, title = 400, "bad-request", "Bad request"


class Unauthorized(AtelierError):
    status, slug, title = 401, "unauthorized", "Missing or invalid API key"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="atelier"'})


class NotFound(AtelierError):
    status, slug, title = 404, "not-found", "Not found"


class UnknownModel(NotFound):
    slug, title = "unknown-model", "Unknown model"


class UnknownStyle(NotFound):
    slug, title = "unknown-style", "Unknown style"


class UnknownPreset(NotFound):
    slug, title = "unknown-preset", "Unknown preset"


class ContentTooLarge(AtelierError):
    status, slug, title = 413, "content-too-large", "Content too large"


class UnsupportedImage(AtelierError):
    status, slug, title = 415, "unsupported-image", "Unsupported or undecodable image"


class RequestTimeout(AtelierError):
    status, slug, title = 408, "request-timeout", "Request not received in time"


class BatchTooLarge(ContentTooLarge):
    # Not a 429: the server never admits this many at once, so retrying the same batch cannot succeed.
    slug, title = "batch-too-large", "Batch larger than the server admits"


class InvalidField(AtelierError):
    status, slug, title = 422, "invalid-field", "Invalid field"


class Overloaded(AtelierError):
    status, slug, title = 429, "overloaded", "Too many requests in flight"

    def __init__(self, detail: str, retry_after_s: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_s)})


class ClientClosedRequest(AtelierError):
    # nginx's 499: nobody reads this answer, but the access log and metrics show why the work stopped.
    status, slug, title = 499, "client-closed-request", "Client closed the request"


class CorruptStyle(AtelierError):
    # The server's fault and no retry helps; registering the same image again replaces the record.
    status, slug, title = 500, "corrupt-style", "Stored style is corrupt"


class NotImplementedCoding(AtelierError):
    status, slug, title = 501, "not-implemented", "Transfer coding not implemented"


class StorageUnavailable(AtelierError):
    status, slug, title = 503, "storage-unavailable", "Style storage unavailable"

    def __init__(self, detail: str, retry_after_s: int = 30) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_s)})


class TooManyConnections(AtelierError):
    status, slug, title = 503, "too-many-connections", "Too many connections"

    def __init__(self, detail: str, retry_after_s: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_s)})


class DeadlineExceeded(AtelierError):
    status, slug, title = 504, "deadline-exceeded", "Deadline exceeded"


class NotReady(AtelierError):
    status, slug, title = 503, "not-ready", "Service not ready"


class StylesUnavailable(AtelierError):
    # Not a 404: the style may well be registered, through another replica; a retry can find it.
    status, slug, title = 503, "styles-unavailable", "Shared style registry unavailable"

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_s)})


class Problem(BaseModel):
    """RFC 9457 problem details, as every error response carries them."""

    type: str = Field(description="URI naming the kind of problem, e.g. urn:atelier:problem:unknown-style")
    title: str
    status: int
    detail: str
    instance: str = Field(description="the request path")
    request_id: str = Field(description="the X-Request-ID of the request, also in the logs")
    errors: list[dict[str, Any]] | None = Field(default=None, description="per-field errors (422 only)")


def problem_response(
    request: Request,
    status: int,
    slug: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    body = problem_body(request.url.path, status, slug, title, detail, **extensions)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def problem_body(instance: str, status: int, slug: str, title: str, detail: str, **extensions: Any) -> dict[str, Any]:
    """The problem-details JSON object; also used for the failed items of a batch response."""
    return {
        "type": PROBLEM_BASE + slug if slug else "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        "request_id": current_request_id(),
        **extensions,
    }


def error_body(instance: str, exc: AtelierError) -> dict[str, Any]:
    return problem_body(instance, exc.status, exc.slug, exc.title, exc.detail, **exc.extensions)


# Starlette's multipart parser signals its limits with plain messages; these are the size ones.
_SIZE_MESSAGES = ("exceeded maximum size", "Too many fields", "Too many files")


def _unwrap_body_error(exc: StarletteHTTPException) -> AtelierError | None:
    """The real error behind the bare 400 that Starlette/FastAPI raise when a form cannot be read.

    Starlette turns its multipart parser's errors into ``HTTPException(400, message)``, and FastAPI
    turns any other failure while reading the body (our body-limit error included) into a 400 whose
    ``__cause__`` is the original exception.
    """
    cause = exc.__cause__
    if isinstance(cause, AtelierError):
        return cause
    if exc.status_code != 400:
        return None
    message = str(cause.message) if isinstance(cause, MultiPartException) else str(exc.detail)
    if any(marker in message for marker in _SIZE_MESSAGES):
        return ContentTooLarge(f"the multipart form is over its limits: {message}")
    return BadRequest(f"the request body cannot be parsed: {message}")


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Field errors without the echoed input (it may be a huge string or a file)."""
    errors = []
    for error in exc.errors():
        errors.append(
            {
                "loc": [str(part) for part in error.get("loc", ())],
                "msg": str(error.get("msg", "")),
                "type": str(error.get("type", "")),
            }
        )
    return jsonable_encoder(errors)


def install_error_handlers(app: FastAPI) -> None:
    """The one mapping from exceptions to HTTP problem responses."""

    @app.exception_handler(AtelierError)
    async def _atelier(request: Request, exc: AtelierError) -> JSONResponse:
        return problem_response(request, exc.status, exc.slug, exc.title, exc.detail, exc.headers, **exc.extensions)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        summary = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors[:5])
        return problem_response(
            request, 422, InvalidField.slug, InvalidField.title, summary or "invalid request", errors=errors
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        inner = _unwrap_body_error(exc)
        if inner is not None:
            return await _atelier(request, inner)
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, detail)
        return problem_response(request, exc.status_code, "", title, detail, dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem_response(request, 500, AtelierError.slug, AtelierError.title, "internal error; see the logs")
