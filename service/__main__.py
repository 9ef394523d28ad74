"""`python -m service`: serve the app with uvicorn; HOST and PORT override the ATELIER_ settings."""

from __future__ import annotations

import os
import tempfile

import uvicorn
from fastapi import FastAPI

from service.config import Settings
from service.logging import configure_logging
from service.main import create_app
from service.metrics import MULTIPROCESS_DIR
from service.protocol import ConnectionLimits, GuardedHttpToolsProtocol

PROTOCOL = "service.protocol:GuardedHttpToolsProtocol"
# WebSockets (only /v1/live) carry JPEG and WebP frames, which deflate cannot shrink: permessage-deflate
# would cost both ends a compression per message for ~1% of the bytes (docs/live.md). HTTP is untouched.
WS_PER_MESSAGE_DEFLATE = False
# uvicorn's sans-I/O binding of `websockets`: no reader task and queue of its own per connection, less
# work for every frame a camera sends, most of which /v1/live drops (docs/live.md).
WS_PROTOCOL = "websockets-sansio"


def process_app() -> FastAPI:
    """The app of one of several uvicorn processes: a child starts fresh, so it sets up its own JSON logs."""
    settings = Settings()
    configure_logging(settings.log_level)
    return create_app(settings)


def server_options(host: str, port: int) -> dict[str, object]:
    """The uvicorn options of one process and of several: the address, our JSON logs in place of
    uvicorn's (service.middleware writes the access lines) and the WebSocket binding above."""
    return {
        "host": host,
        "port": port,
        "log_config": None,
        "access_log": False,
        "ws": WS_PROTOCOL,
        "ws_per_message_deflate": WS_PER_MESSAGE_DEFLATE,
    }


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level)
    host = os.environ.get("HOST", settings.host)
    port = int(os.environ.get("PORT", settings.port))
    processes = settings.process_count
    if processes > 1:
        # The processes share their metrics through files in a folder of their own (service.metrics),
        # fresh for each start as prometheus_client requires; they inherit its path.
        with tempfile.TemporaryDirectory(prefix="atelier-metrics-") as metrics_dir:
            os.environ[MULTIPROCESS_DIR] = metrics_dir
            # Several processes need an import string; each builds its app (and models) from the same environment.
            uvicorn.run(
                "service.__main__:process_app",
                factory=True,
                workers=processes,
                http=PROTOCOL,  # each process reads its connection limits from the same environment
                **server_options(host, port),
            )
    else:
        GuardedHttpToolsProtocol.limits = ConnectionLimits(
            settings.header_timeout_s, settings.max_header_bytes, settings.max_connections
        )
        uvicorn.run(create_app(settings), http=GuardedHttpToolsProtocol, **server_options(host, port))


if __name__ == "__main__":
    main()
