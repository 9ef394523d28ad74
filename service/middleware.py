"""Pure ASGI middleware: the request context (id, access log, metrics) and the request body limit."""

from __future__ import annotations

import logging
import time

import anyio
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import AtelierError, ContentTooLarge, NotImplementedCoding, RequestTimeout, problem_response
from service.logging import bind_request_id, new_request_id, reset_request_id
from service.metrics import Metrics

log = logging.getLogger("service.access")


def route_template(scope: Scope) -> str:
    """The matched route's path template (bounded label cardinality), or 'unmatched'."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    return "unmatched"


class RequestContextMiddleware:
    """Binds the request id, echoes it as X-Request-ID, counts and times the request, logs one line."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id(Headers(scope=scope).get("x-request-id"))
        token = bind_request_id(request_id)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            # Answered here, inside the request's context, so the 500 carries the id in its header
            # and body; Starlette's own last-resort handler runs outside every middleware.
            log.error("unhandled error on %s %s", scope["method"], scope["path"], exc_info=exc)
            if response_started:
                raise
            response = problem_response(
                Request(scope), 500, AtelierError.slug, AtelierError.title, "internal error; see the logs"
            )
            await response(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route, method = route_template(scope), scope["method"]
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.request_seconds.labels(route, method).observe(elapsed)
            log.info(
                "%s %s %s",
                method,
                scope["path"],
                status,
                extra={
                    "method": method,
                    "path": scope["path"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
            reset_request_id(token)


def unsupported_codings(headers: Headers) -> list[str]:
    """Transfer codings other than chunked, the only one the server decodes (uvicorn's httptools
    parser reads ``gzip, chunked`` as plain chunked and would hand on the still-gzipped bytes)."""
    codings = [c.strip().lower() for value in headers.getlist("transfer-encoding") for c in value.split(",")]
    return [c for c in codings if c and c != "chunked"]


class BodyLimitMiddleware:
    """Refuses request bodies over ``max_bytes`` (at once from Content-Length, or while streaming), bodies
    not received within ``timeout_s`` of the headers (408), and transfer codings it cannot decode (501).
    ``path_limits`` gives exact paths (the video uploads) a limit of their own instead of ``max_bytes``."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, timeout_s: float = 60.0, path_limits: dict[str, int] | None = None
    ) -> None:
        self.app = app
        self.default_bytes = max_bytes
        self.timeout_s = timeout_s
        self.path_limits = path_limits or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.path_limits.get(scope["path"], self.default_bytes)
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        error: AtelierError | None = None
        if codings := unsupported_codings(headers):
            error = NotImplementedCoding(
                f"Transfer-Encoding {', '.join(codings)} is not implemented; send the body plain or chunked"
            )
        elif declared is not None and declared.isdigit() and (len(declared) > 18 or int(declared) > max_bytes):
            error = ContentTooLarge(f"the request body is {declared[:40]} bytes; the limit is {max_bytes}")
        if error is not None:
            response = problem_response(
                Request(scope), error.status, error.slug, error.title, error.detail, {"Connection": "close"}
            )
            await response(scope, receive, send)
            return
        received = 0
        body_done = False
        deadline = time.monotonic() + self.timeout_s

        async def counting_receive() -> Message:
            nonlocal received, body_done
            if body_done:  # later receives wait for the client's disconnect, for as long as the work runs
                return await receive()
            try:
                with anyio.fail_after(max(0.0, deadline - time.monotonic())):
                    message = await receive()
            except TimeoutError:
                # Raised inside the app's body reading like the limit below; the 408 closes the connection.
                raise RequestTimeout(
                    f"the request body did not arrive within {self.timeout_s:g} s (ATELIER_BODY_TIMEOUT_S)",
                    headers={"Connection": "close"},
                ) from None
            if message["type"] == "http.request":
                body_done = not message.get("more_body", False)
                received += len(message.get("body", b""))
                if received > max_bytes:
                    # Raised inside the app's form parsing; FastAPI wraps it and errors.py unwraps it.
                    raise ContentTooLarge(f"the request body is over the limit of {max_bytes} bytes")
            return message

        await self.app(scope, counting_receive, send)
