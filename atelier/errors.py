"""The exceptions of the command line and the Python API.

``ProblemError`` is an RFC 9457 problem, raised the same way in process (from the service's own
``AtelierError``) and over HTTP (from an ``application/problem+json`` answer), with its ``status``
and ``title``. ``InputError`` is a bad input found before any model runs (a missing file).
"""

from __future__ import annotations

from typing import Any


class AtelierClientError(Exception):
    """Base of the errors the command line and the Python API raise."""


class InputError(AtelierClientError):
    """A missing or unreadable input, or options that do not go together: the caller's to fix."""


class ProblemError(AtelierClientError):
    """An RFC 9457 problem: from the service in process, or from a server's problem+json answer."""

    def __init__(
        self, status: int, title: str, detail: str = "", type: str = "about:blank", body: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{status} {title}: {detail}" if detail else f"{status} {title}")
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type
        self.body = body or {}

    @property
    def is_client_error(self) -> bool:
        """The request's fault (4xx): a wrong input, an unknown style or preset."""
        return 400 <= self.status < 500

    @classmethod
    def from_body(cls, status: int, body: dict[str, Any]) -> ProblemError:
        return cls(
            int(body.get("status", status)),
            str(body.get("title", "")),
            str(body.get("detail", "")),
            str(body.get("type", "about:blank")),
            body,
        )


class ServerUnreachable(AtelierClientError):
    """The server at the URL given did not answer."""
