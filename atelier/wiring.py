"""The service's objects, running in this process: models, caches, style store, micro-batcher, stylist.

Until the service has a composition root of its own, the app's own lifespan builds them: the same
code that ``make run`` starts, entered here without a server, so nothing of its wiring is copied.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from service.config import Settings
from service.deps import Services
from service.main import create_app


@asynccontextmanager
async def running_services(settings: Settings) -> AsyncIterator[Services]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        services = app.state.services
        assert services is not None, "the lifespan sets app.state.services"
        yield services
