"""uvicorn's httptools protocol with the guards it lacks: a header-read timeout, a header-size cap, a
per-process connection cap, and problem+json (with a request id) for the errors it answers itself.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but nothing closes a connection
whose request never completes: a client sending one header byte a second keeps its socket, and its
slot, for ever. Here every request's headers must arrive within ``ATELIER_HEADER_TIMEOUT_S`` of the
connection opening (or of the previous response), in at most ``ATELIER_MAX_HEADER_BYTES``, or the
connection is answered 408/431 and closed. The body's own deadline is checked in the ASGI layer
(``service.middleware.BodyLimitMiddleware``), where its 408 can carry the request's id.

A connection over ``ATELIER_MAX_CONNECTIONS`` (this process's open connections) is answered 503 with
``Retry-After`` at once and closed, before it costs a request task.

These errors happen before any ASGI request exists, so the app's middleware never sees them: their
bodies are written here, with a fresh request id that the JSON log line carries too.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from service.errors import (
    PROBLEM_MEDIA_TYPE,
    AtelierError,
    BadRequest,
    ContentTooLarge,
    RequestTimeout,
    TooManyConnections,
    problem_body,
)
from service.logging import bind_request_id, new_request_id, reset_request_id

log = logging.getLogger("service.protocol")
LINGER_S = 1.0


class HeadersTooLarge(ContentTooLarge):
    status, slug, title = 431, "headers-too-large", "Request header fields too large"


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout_s: float
    max_header_bytes: int
    max_connections: int

    @classmethod
    def from_settings(cls) -> ConnectionLimits:
        from service.config import Settings  # each process reads its own environment, as its app does

        settings = Settings()
        return cls(settings.header_timeout_s, settings.max_header_bytes, settings.max_connections)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` plus the header timeout, header cap, connection cap and problem bodies."""

    limits: ClassVar[ConnectionLimits | None] = None  # set by the entry point, else read from the environment

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if type(self).limits is None:
            type(self).limits = ConnectionLimits.from_settings()
        self._limits: ConnectionLimits = type(self).limits  # type: ignore[assignment]
        self._header_timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0  # fed while the headers are incomplete
        self._header_size = 0  # request line and headers, as parsed
        self._reading_headers = True
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self._limits.max_connections:
            self._refuse(
                TooManyConnections(
                    f"this process holds {self._limits.max_connections} connections (ATELIER_MAX_CONNECTIONS); "
                    "retry shortly"
                )
            )
            return
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if not self._reading_headers:
            super().data_received(data)
            return
        # Headers that never end: what was fed while they stay incomplete is all header bytes. Headers that
        # end within a read are measured by the parser callbacks below (the read may also hold a body).
        self._header_bytes += len(data)
        super().data_received(data)
        if self._reading_headers and self._header_bytes > self._limits.max_header_bytes:
            self._refuse(HeadersTooLarge(f"the request headers are over {self._limits.max_header_bytes} bytes"))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers = True
        self._header_bytes = self._header_size = 0
        if self._header_timer is None:  # a pipelined request: its headers get their own deadline
            self._arm_header_timer()

    def on_url(self, url: bytes) -> None:
        self._header_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_size += len(name) + len(value) + 4
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._disarm_header_timer()
        if self._header_size > self._limits.max_header_bytes:
            self._refuse(HeadersTooLarge(f"the request headers are over {self._limits.max_header_bytes} bytes"))
            return  # no request cycle: the app never sees it
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self._header_timer is None:
            self._reading_headers = True
            self._header_bytes = 0
            self._arm_header_timer()

    def send_400_response(self, msg: str) -> None:
        # uvicorn's own answer to bytes its parser rejects is text/plain; the same answer as a problem.
        self._refuse(BadRequest(f"the request is not valid HTTP/1.1: {msg}"))

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self._limits.header_timeout_s, self._header_timeout)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # a response is under way on this connection: no room for a 408
            return
        self._refuse(
            RequestTimeout(
                f"the request headers did not arrive within {self._limits.header_timeout_s:g} s "
                "(ATELIER_HEADER_TIMEOUT_S)"
            )
        )

    def _refuse(self, error: AtelierError) -> None:
        """Answer ``error`` as problem+json on the raw transport and close the connection."""
        self._refused = True
        self._disarm_header_timer()
        if self.transport.is_closing():
            return
        request_id = new_request_id(None)
        token = bind_request_id(request_id)
        try:
            body = json.dumps(problem_body("", error.status, error.slug, error.title, error.detail)).encode()
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "-"
            extra = {"status": error.status, "client": client, "problem": error.slug}
            log.warning("%s %s", error.status, error.slug, extra=extra)
        finally:
            reset_request_id(token)
        head = [STATUS_LINE[error.status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        headers = {
            "content-type": PROBLEM_MEDIA_TYPE,
            "content-length": str(len(body)),
            "x-request-id": request_id,
            "connection": "close",
            **{name.lower(): value for name, value in error.headers.items()},
        }
        head += [f"{name}: {value}\r\n".encode("latin-1") for name, value in headers.items()]
        self.transport.write(b"".join([*head, b"\r\n", body]))
        # A lingering close, as nginx does: closing with unread request bytes makes the kernel reset the
        # connection, and a reset can drop the answer before the client reads it. So the write side is
        # shut, what still arrives is read and dropped (``_refused``), and the socket closes a moment later.
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER_S, self.transport.close)
        else:
            self.transport.close()
