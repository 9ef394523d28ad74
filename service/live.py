"""Live painting over a WebSocket (``/v1/live``): one connection's settings, frames and backpressure.

The framing is the contract (docs/live.md): a binary message is one encoded frame (JPEG or WebP), a
text message is JSON. The client's JSON messages are settings; the server's are ``hello``,
``settings`` (applied), ``error`` and ``frame`` (the timing of the painted frame that follows it as
the next binary message).

Backpressure drops stale frames and never queues them. A connection holds at most two frames: the one
being painted (and sent) and the latest one waiting. A frame that arrives while another waits
replaces it, and the replaced one is counted as dropped. The reader never waits for painting or for
the client to read, so uvicorn's own message queue stays empty; the painter sends the painted frame
and only then takes the next, so a client that reads slowly slows its own stream, nobody else's.

Frames are painted by the same ``Stylist`` as HTTP requests: the same admission queue (a full queue
drops the frame as ``overloaded``), the same deadline, the same micro-batcher, so several streams of
one size share ONNX Runtime runs where the batch bounds allow it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import io
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from service.brush import MAX_STROKE_SCALE, MIN_STROKE_SCALE
from service.errors import AtelierError, BadRequest, ContentTooLarge, InvalidField, Overloaded, UnsupportedImage
from service.imaging import OutputFormat
from service.metrics import Metrics
from service.registry import LoadedModel
from service.services import Services
from service.style_resolution import StyleFields, StyleSpec
from service.stylist import StylizeJob
from service.workers import within_deadline

log = logging.getLogger(__name__)

SUBPROTOCOL = "atelier.live.v1"
# Browsers cannot set headers on a WebSocket: they offer the key as a second subprotocol, as the
# Kubernetes API server takes tokens (base64url.bearer.authorization.k8s.io.<token>).
KEY_SUBPROTOCOL_PREFIX = "base64url.bearer."

# Close codes (RFC 6455 section 7.4.1), documented in docs/live.md.
CLOSE_NORMAL = 1000
CLOSE_IDLE = 1001  # "going away": the connection sent nothing for ATELIER_LIVE_IDLE_TIMEOUT_S
CLOSE_POLICY = 1008  # no API key, or a wrong one, while keys are configured
CLOSE_INTERNAL = 1011
CLOSE_TRY_AGAIN = 1013  # too many live connections, or the models are still loading

STYLE_FIELDS = ("style_id", "preset", "styles", "weights", "model")
FRAME_FORMATS = {"JPEG": "jpeg", "WEBP": "webp"}
ERRORS_PER_SECOND = 1.0  # repeated errors of one kind (rate, stale settings) are reported at most this often
OUTBOX_SIZE = 16  # control messages waiting to be sent; more are dropped while the client does not read


class SettingsMessage(BaseModel):
    """A client's settings. Every field is optional; given fields replace the current ones. Naming any
    style field (``style_id``, ``preset``, ``styles``/``weights``, ``model``) replaces the whole style."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["settings"] = "settings"
    style_id: str | None = Field(None, max_length=128)
    preset: str | None = Field(None, max_length=128)
    styles: str | None = Field(None, max_length=4096)
    weights: str | None = Field(None, max_length=1024)
    model: str | None = Field(None, max_length=128)
    strength: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False)
    preserve_color: bool | None = None
    max_side: int | None = Field(None, ge=16)
    format: Literal["jpeg", "webp"] | None = None
    quality: int | None = Field(None, ge=1, le=100)
    stroke_scale: float | None = Field(None, ge=MIN_STROKE_SCALE, le=MAX_STROKE_SCALE, allow_inf_nan=False)


@dataclass(frozen=True)
class Choice:
    """The settings frames are painted with: resolved style, model and rendering."""

    model: LoadedModel
    style: StyleSpec
    style_fields: dict[str, str]
    strength: float = 1.0
    preserve_color: bool = False
    max_side: int | None = None
    format: OutputFormat = "jpeg"
    quality: int = 85
    stroke_scale: float | None = None  # None: the default for the frame's size (service/brush.py)

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.model.label,
            "style": self.style.reference,
            **self.style_fields,
            "strength": self.strength,
            "preserve_color": self.preserve_color,
            "max_side": self.max_side,
            "format": self.format,
            "quality": self.quality,
            "stroke_scale": self.stroke_scale,
        }


@dataclass(frozen=True)
class Frame:
    seq: int  # the index of the binary message on this connection, from 0
    data: bytes
    received: float  # perf_counter at arrival


class FrameRateExceeded(Overloaded):
    """A connection sends more frames a second than ``ATELIER_LIVE_MAX_FPS``; the extra ones are dropped."""

    slug, title = "rate-limited", "Frame rate over the limit"


def key_from(websocket: WebSocket) -> str | None:
    """The API key a client offers: ``Authorization: Bearer <key>``, else the key subprotocol."""
    header = websocket.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    for protocol in websocket.scope.get("subprotocols", []):
        if protocol.startswith(KEY_SUBPROTOCOL_PREFIX):
            encoded = protocol[len(KEY_SUBPROTOCOL_PREFIX) :]
            try:
                return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None
    return None


def frame_size(data: bytes) -> tuple[str, int, int]:
    """A frame's format and size from its header alone (Pillow reads no pixels here)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt, (width, height) = image.format or "", image.size
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UnsupportedImage("the frame is not a JPEG or WebP image") from exc
    if fmt not in FRAME_FORMATS:
        raise UnsupportedImage(f"the frame is {fmt or 'an unknown format'}; send JPEG or WebP frames")
    return FRAME_FORMATS[fmt], width, height


class LiveGate:
    """A process's live connections: counted against ``ATELIER_LIVE_MAX_CONNECTIONS``, with the
    frames they hold summed for the ``atelier_live_frames_held`` gauge. One per app."""

    def __init__(self, limit: int, metrics: Metrics) -> None:
        self.limit = limit
        self.metrics = metrics
        self.open = 0
        self.held = 0
        metrics.live_connections.set(0)
        metrics.live_frames_held.set(0)

    def try_enter(self) -> bool:
        if self.open >= self.limit:
            return False
        self.open += 1
        self.metrics.live_connections.set(self.open)
        return True

    def leave(self) -> None:
        self.open -= 1
        self.metrics.live_connections.set(self.open)

    def held_changed(self, delta: int) -> None:
        self.held += delta
        self.metrics.live_frames_held.set(self.held)


class RateLimit:
    """A token bucket: ``rate`` frames a second, with a burst of one second's worth."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.updated = time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class LiveSession:
    """One /v1/live connection after its handshake: a reader, a painter and a control-message sender."""

    def __init__(self, websocket: WebSocket, services: Services, gate: LiveGate, owner: str) -> None:
        self.ws = websocket
        self.gate = gate
        self.reported_held = 0
        self.services = services
        self.settings = services.settings
        self.metrics = services.metrics
        self.owner = owner
        self.choice: Choice | None = None
        self.pending: Frame | None = None  # the latest frame waiting to be painted
        self.painting: Frame | None = None  # the frame being painted or sent
        self.wake = asyncio.Event()
        self.send_lock = asyncio.Lock()  # a frame's timing message and its image go out back to back
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(OUTBOX_SIZE)
        self.rate = RateLimit(self.settings.live_max_fps)
        self.last_error: dict[str, float] = {}
        self.received = self.painted = self.dropped = 0

    @property
    def held(self) -> int:
        return (self.pending is not None) + (self.painting is not None)

    async def run(self) -> None:
        await self._send_json(
            {
                "type": "hello",
                "protocol": SUBPROTOCOL,
                "limits": {
                    "max_frame_bytes": self.settings.live_max_frame_bytes,
                    "max_fps": self.settings.live_max_fps,
                    "max_side": self.settings.live_max_side,
                    "idle_timeout_s": self.settings.live_idle_timeout_s,
                },
            }
        )
        reader = asyncio.create_task(self._read_loop(), name="live reader")
        tasks = [
            reader,
            asyncio.create_task(self._paint_loop(), name="live painter"),
            asyncio.create_task(self._send_loop(), name="live sender"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if reader not in done:  # the painter or the sender failed: the socket, or a bug
                ended = next(iter(done))
                failure = None if ended.cancelled() else ended.exception()
                if failure is not None and not isinstance(failure, (WebSocketDisconnect, OSError)):
                    log.error("live connection failed", exc_info=failure)
                    await self.close(CLOSE_INTERNAL, "internal error")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # Whatever was not painted when the client went away is dropped: nothing stays queued.
            for frame in (self.pending, self.painting):
                if frame is not None:
                    self._drop("disconnected")
            self.pending = self.painting = None
            self._held_changed()
            log.info(
                "live connection closed",
                extra={"received": self.received, "painted": self.painted, "dropped": self.dropped},
            )

    # ---- reading ----

    async def _read_loop(self) -> None:
        idle = self.settings.live_idle_timeout_s
        loop = asyncio.get_running_loop()
        # One deadline moved per message: wait_for would start a task for every frame a camera sends,
        # most of which are dropped. It is off while a message is handled, so only waiting counts.
        try:
            async with asyncio.timeout(None) as deadline:
                while True:
                    deadline.reschedule(loop.time() + idle)
                    message = await self.ws.receive()
                    deadline.reschedule(None)
                    if message["type"] == "websocket.disconnect":
                        return
                    if message.get("bytes") is not None:
                        self._on_frame(message["bytes"])
                    elif message.get("text") is not None:
                        await self._on_text(message["text"])
        except TimeoutError:
            if not deadline.expired():
                raise
            await self.close(CLOSE_IDLE, f"idle: nothing received for {idle:g} s")

    def _on_frame(self, data: bytes) -> None:
        seq = self.received
        self.received += 1
        self.metrics.live_frames_in.inc()
        limit = self.settings.live_max_frame_bytes
        if len(data) > limit:
            self._reject(seq, "too-large", ContentTooLarge(f"the frame is {len(data)} bytes; the limit is {limit}"))
            return
        if not self.rate.allow():
            detail = f"more than {self.settings.live_max_fps:g} frames a second; frames over the rate are dropped"
            self._reject(seq, "rate", FrameRateExceeded(detail), throttle=True)
            return
        if self.choice is None:
            self._reject(seq, "no-style", BadRequest("send a settings message with a style before frames"))
            return
        try:
            _, width, height = frame_size(data)
        except AtelierError as exc:
            self._reject(seq, "bad-frame", exc)
            return
        cap = self.settings.live_max_side
        if max(width, height) > cap:
            self._reject(
                seq, "too-large", ContentTooLarge(f"the frame is {width}x{height}; the longest side may be {cap}")
            )
            return
        if self.pending is not None:
            self._drop("stale")  # a newer frame replaces the waiting one: stale frames are never queued
        self.pending = Frame(seq, data, time.perf_counter())
        self._held_changed()
        self.wake.set()

    async def _on_text(self, text: str) -> None:
        try:
            message = SettingsMessage.model_validate(json.loads(text))
        except (json.JSONDecodeError, UnicodeDecodeError):
            self._error(None, BadRequest("a text message must be a JSON object of settings"))
            return
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'message'}: {e['msg']}" for e in exc.errors())
            self._error(None, BadRequest(f"invalid settings: {problems}"[:1000]))
            return
        try:
            choice = await self._apply(message)
        except AtelierError as exc:
            self._error(None, exc)  # the previous settings stay in force
            return
        self.choice = choice
        self._queue({"type": "settings", "next_seq": self.received, **choice.describe()})

    async def _apply(self, message: SettingsMessage) -> Choice:
        given = message.model_fields_set
        current = self.choice
        if given & set(STYLE_FIELDS) or current is None:
            style_fields = {name: getattr(message, name) for name in STYLE_FIELDS if getattr(message, name) is not None}
            fields = StyleFields(None, message.style_id, message.preset, message.styles, message.weights, message.model)
            model, spec = await self.services.resolve(fields, self.owner)
        else:
            model, spec, style_fields = current.model, current.style, current.style_fields
        base = current or Choice(model, spec, style_fields)

        def pick(name: str) -> Any:
            return (
                getattr(message, name) if name in given and getattr(message, name) is not None else getattr(base, name)
            )

        max_side = message.max_side if "max_side" in given else base.max_side
        if max_side is not None and max_side > self.settings.live_max_side:
            raise InvalidField(f"max_side {max_side} is above this server's live cap of {self.settings.live_max_side}")
        return Choice(
            model,
            spec,
            style_fields,
            strength=pick("strength"),
            preserve_color=pick("preserve_color"),
            max_side=max_side,
            format=pick("format"),
            quality=pick("quality"),
            stroke_scale=message.stroke_scale if "stroke_scale" in given else base.stroke_scale,
        )

    # ---- painting ----

    async def _paint_loop(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            frame, self.pending = self.pending, None
            if frame is None:
                continue
            self.painting = frame
            try:
                await self._paint(frame)
            finally:
                self.painting = None
                self._held_changed()

    async def _paint(self, frame: Frame) -> None:
        choice = self.choice
        assert choice is not None  # frames are only taken once a style is set
        job = StylizeJob(
            choice.model,
            frame.data,
            choice.style,
            choice.strength,
            choice.preserve_color,
            choice.max_side,
            choice.format,
            choice.quality,
            choice.stroke_scale,
        )
        started = time.perf_counter()
        try:
            with self.services.admission.admit():
                result = await within_deadline(
                    self.services.stylist.run(job), self.settings.request_timeout_s, self.metrics
                )
        except Overloaded as exc:
            self._reject(frame.seq, "overloaded", exc, throttle=True)
            return
        except AtelierError as exc:
            self._reject(frame.seq, "bad-frame" if exc.status < 500 else "error", exc)
            return
        except Exception:  # a bug: logged, reported on the socket, and the stream goes on
            log.exception("painting a live frame failed")
            self._reject(frame.seq, "error", AtelierError("the frame could not be painted"))
            return
        done = time.perf_counter()
        timing = {
            "type": "frame",
            "seq": frame.seq,
            "model": choice.model.label,
            "style": result.style_reference,
            "width": result.width,
            "height": result.height,
            "media_type": result.media_type,
            "bytes": len(result.image),
            "wait_ms": round((started - frame.received) * 1000, 2),
            "paint_ms": round((done - started) * 1000, 2),
            "server_ms": round((done - frame.received) * 1000, 2),
            "received": self.received,
            "painted": self.painted + 1,
            "dropped": self.dropped,
            "held": self.held,
        }
        async with self.send_lock:
            await self.ws.send_text(json.dumps(timing))
            await self.ws.send_bytes(result.image)
        self.painted += 1
        self.metrics.live_frames_out.inc()

    # ---- sending control messages ----

    async def _send_loop(self) -> None:
        while True:
            await self._send_json(await self.outbox.get())

    async def _send_json(self, message: dict[str, Any]) -> None:
        async with self.send_lock:
            await self.ws.send_text(json.dumps(message))

    def _queue(self, message: dict[str, Any]) -> None:
        """Send a control message without waiting: the reader must never wait for the client to read."""
        try:
            self.outbox.put_nowait(message)
        except asyncio.QueueFull:
            log.debug("live outbox full; a %s message was dropped", message.get("type"))

    def _error(self, seq: int | None, exc: AtelierError, throttle: bool = False) -> None:
        if throttle:
            now = time.monotonic()
            if now - self.last_error.get(exc.slug, -1e9) < 1 / ERRORS_PER_SECOND:
                return
            self.last_error[exc.slug] = now
        self._queue(
            {
                "type": "error",
                "seq": seq,
                "status": exc.status,
                "code": exc.slug,
                "title": exc.title,
                "detail": exc.detail,
            }
        )

    def _reject(self, seq: int, reason: str, exc: AtelierError, throttle: bool = False) -> None:
        self._drop(reason)
        self._error(seq, exc, throttle)

    def _drop(self, reason: str) -> None:
        self.dropped += 1
        self.metrics.live_frames_dropped.labels(reason).inc()

    def _held_changed(self) -> None:
        held = self.held
        if held != self.reported_held:
            self.gate.held_changed(held - self.reported_held)
            self.reported_held = held

    async def close(self, code: int, reason: str) -> None:
        await close_socket(self.ws, code, reason)


async def close_socket(websocket: WebSocket, code: int, reason: str) -> None:
    """Close with ``code`` unless the client already went away."""
    if websocket.application_state == WebSocketState.DISCONNECTED:
        return
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        await websocket.close(code, reason[:120])  # a close frame's reason must fit in 123 bytes
