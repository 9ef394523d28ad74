"""WebSocket /v1/live: frames up, painted frames back, the style switchable mid-stream (docs/live.md).

The handshake is always accepted, so that a refusal reaches the client as a close code it can read
(browsers see no HTTP status of a refused upgrade): 1008 without a valid API key while keys are on,
1013 when the process has ATELIER_LIVE_MAX_CONNECTIONS open or is still loading its models.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, WebSocket
from fastapi.security import HTTPAuthorizationCredentials

from service.auth import authenticate
from service.errors import AtelierError, NotReady, Overloaded
from service.live import CLOSE_POLICY, CLOSE_TRY_AGAIN, SUBPROTOCOL, LiveGate, LiveSession, close_socket, key_from
from service.logging import bind_request_id, new_request_id, reset_request_id

router = APIRouter(prefix="/v1", tags=["live"])


@router.websocket("/live")
async def live(websocket: WebSocket) -> None:
    token = bind_request_id(new_request_id(websocket.headers.get("x-request-id")))
    try:
        offered = websocket.scope.get("subprotocols", [])
        await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
        await _serve(websocket)
    finally:
        reset_request_id(token)


async def _serve(websocket: WebSocket) -> None:
    app = websocket.app
    gate: LiveGate = app.state.live
    services = app.state.services
    if services is None:
        await _refuse(websocket, gate, CLOSE_TRY_AGAIN, "starting", NotReady("the models are still loading"))
        return
    key = key_from(websocket)
    credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=key) if key else None
    try:
        owner = authenticate(services.settings, credentials)
    except AtelierError as exc:
        await _refuse(websocket, gate, CLOSE_POLICY, "unauthorized", exc)
        return
    if not gate.try_enter():
        error = Overloaded(f"this server has {gate.limit} live connections open; retry later")
        await _refuse(websocket, gate, CLOSE_TRY_AGAIN, "connections", error)
        return
    try:
        await LiveSession(websocket, services, gate, owner).run()
    finally:
        gate.leave()


async def _refuse(websocket: WebSocket, gate: LiveGate, code: int, reason: str, error: AtelierError) -> None:
    """An error message the client can read, then the close code."""
    gate.metrics.live_refused.labels(reason).inc()
    body = {"type": "error", "seq": None, "status": error.status, "code": error.slug, "title": error.title}
    await websocket.send_text(json.dumps({**body, "detail": error.detail}))
    await close_socket(websocket, code, error.detail)
