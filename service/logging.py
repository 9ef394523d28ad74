"""JSON-lines logs that carry the request id.

The request id comes from the client's ``X-Request-ID`` header when it is a sane token, otherwise
it is generated; a contextvar carries it through the request (worker threads get a copy of the
context, see ``service.workers``). ``configure_logging`` is called by the entry point only.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
import uuid

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_SANE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

# LogRecord attributes that are not user "extra" fields.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


def current_request_id() -> str:
    return _request_id.get()


def new_request_id(incoming: str | None) -> str:
    """The client's id when it is a short token, else a fresh one."""
    if incoming and _SANE_ID.match(incoming):
        return incoming
    return uuid.uuid4().hex


def bind_request_id(request_id: str) -> contextvars.Token[str]:
    return _request_id.set(request_id)


def reset_request_id(token: contextvars.Token[str]) -> None:
    _request_id.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, request_id, pid and any ``extra`` fields.

    The pid tells apart the processes of one server (``ATELIER_PROCESSES``), which share its log."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": _request_id.get(),
            "pid": record.process,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str) -> None:
    """Route every logger (ours, uvicorn's) to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.captureWarnings(True)  # e.g. Pillow's DecompressionBombWarning, as JSON too
    # We write our own access log line (with status, route and duration) from the middleware.
    logging.getLogger("uvicorn.access").disabled = True
