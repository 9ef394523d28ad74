"""`python -m service`: serve the app with uvicorn; HOST and PORT override the ATELIER_ settings."""

from __future__ import annotations

import os

import uvicorn
from fastapi import FastAPI

from service.config import Settings
from service.logging import configure_logging
from service.main import create_app


def process_app() -> FastAPI:
    """The app of one of several uvicorn processes: a child starts fresh, so it sets up its own JSON logs."""
    settings = Settings()
    configure_logging(settings.log_level)
    return create_app(settings)


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level)
    host = os.environ.get("HOST", settings.host)
    port = int(os.environ.get("PORT", settings.port))
    if settings.processes > 1:
        # Several processes need an import string; each builds its app (and models) from the same environment.
        uvicorn.run(
            "service.__main__:process_app",
            factory=True,
            workers=settings.processes,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
        )
    else:
        uvicorn.run(create_app(settings), host=host, port=port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
