"""WebSocket /v1/live through a real uvicorn server: backpressure, bad frames, style switches, limits,
disconnects and API keys (docs/live.md)."""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.helpers.images import encode_image
from tests.helpers.metrics import metric
from tests.helpers.server import LiveServer, assert_no_server_errors, start_server, stop_server

KEY = "live-test-key"
SUBPROTOCOL = "atelier.live.v1"
LIMITED = {
    "ATELIER_API_KEYS": KEY,
    "ATELIER_LIVE_MAX_CONNECTIONS": "2",
    "ATELIER_LIVE_MAX_FPS": "5",
    "ATELIER_LIVE_MAX_FRAME_BYTES": "200000",
    "ATELIER_LIVE_MAX_SIDE": "640",
    "ATELIER_LIVE_IDLE_TIMEOUT_S": "3",
}


@pytest.fixture(scope="module")
def limited_server(model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """API keys on, and small live limits, so each limit is reached with a few frames."""
    live = start_server(model_repository, tmp_path_factory.mktemp("live-limited"), LIMITED)
    yield live
    stop_server(live)
    assert_no_server_errors(live)


@pytest.fixture(scope="module")
def frames(image_dir: Path) -> list[bytes]:
    """320x240 JPEG frames: a pan across a photo."""
    with Image.open(image_dir / "content" / "tubingen.jpg") as image:
        photo = image.convert("RGB").resize((480, 240))
    return [encode_image(photo.crop((x, 0, x + 320, 240)), "JPEG", quality=85) for x in range(0, 160, 4)]


def ws_url(server: LiveServer) -> str:
    return server.url.replace("http://", "ws://") + "/v1/live"


@contextmanager
def open_live(server: LiveServer, key: str | None = None) -> Iterator[ClientConnection]:
    headers = {"Authorization": f"Bearer {key}"} if key else None
    with connect(ws_url(server), subprotocols=[SUBPROTOCOL], additional_headers=headers) as ws:  # type: ignore[list-item]
        hello = json.loads(ws.recv(timeout=10))
        assert hello["type"] == "hello" and hello["protocol"] == SUBPROTOCOL, hello
        yield ws


def next_json(ws: ClientConnection, kind: str, timeout: float = 60) -> dict:
    """The next JSON message of ``kind``; painted frames and other messages on the way are skipped."""
    deadline = time.monotonic() + timeout
    while True:
        message = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
        if isinstance(message, str) and json.loads(message)["type"] == kind:
            return json.loads(message)


def set_style(ws: ClientConnection, **settings: object) -> dict:
    ws.send(json.dumps({"type": "settings", **settings}))
    applied = next_json(ws, "settings")
    return applied


def painted(ws: ClientConnection, timeout: float = 60) -> tuple[dict, bytes]:
    """The next painted frame: its timing message and the image right after it."""
    timing = next_json(ws, "frame", timeout)
    image = ws.recv(timeout=timeout)
    assert isinstance(image, bytes), "a timing message is followed by its painted frame"
    return timing, image


def close_code(ws: ClientConnection, timeout: float = 10) -> tuple[int, list[dict]]:
    """Read until the server closes; its close code and the JSON messages it sent before."""
    messages = []
    try:
        while True:
            message = ws.recv(timeout=timeout)
            if isinstance(message, str):
                messages.append(json.loads(message))
    except ConnectionClosed as closed:
        assert closed.rcvd is not None, "the server closed without a close frame"
        return closed.rcvd.code, messages


def rgb(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"), np.float32) / 255


def test_a_fast_client_gets_only_recent_frames_and_the_buffer_stays_bounded(
    server: LiveServer, frames: list[bytes]
) -> None:
    stale_before = metric(server, "atelier_live_frames_dropped_total", reason="stale")
    received_before = metric(server, "atelier_live_frames_received_total")
    with open_live(server) as ws:
        applied = set_style(ws, preset="style-03")
        assert applied["style"] == "preset:style-03" and applied["model"].startswith("presets-26")
        for frame in frames:  # 40 frames in a few ms: far faster than they are painted
            ws.send(frame)
        # Everything sent has been read by the server, and it holds no more than two frames.
        deadline = time.monotonic() + 10
        while metric(server, "atelier_live_frames_received_total") < received_before + len(frames):
            assert time.monotonic() < deadline, "the server did not read the frames"
            time.sleep(0.02)
        assert metric(server, "atelier_live_frames_held") <= 2
        timings = []
        while not timings or timings[-1]["seq"] != len(frames) - 1:  # the newest frame is never dropped
            timing, image = painted(ws)
            timings.append(timing)
            assert Image.open(io.BytesIO(image)).size == (320, 240)
    seqs = [t["seq"] for t in timings]
    assert seqs == sorted(set(seqs)), f"painted frames out of order: {seqs}"
    assert len(seqs) <= 6, f"stale frames were painted instead of dropped: {seqs}"
    assert all(t["held"] <= 2 for t in timings), timings
    last = timings[-1]
    assert last["received"] == len(frames)
    assert last["painted"] + last["dropped"] == len(frames), last
    assert all(t["server_ms"] >= t["paint_ms"] > 0 for t in timings)
    stale = metric(server, "atelier_live_frames_dropped_total", reason="stale") - stale_before
    assert stale == last["dropped"] >= len(frames) - 6


def test_bad_frames_get_an_error_and_the_stream_goes_on(server: LiveServer, frames: list[bytes]) -> None:
    with open_live(server) as ws:
        ws.send(frames[0])  # before any style
        error = next_json(ws, "error")
        assert (error["seq"], error["status"], error["code"]) == (0, 400, "bad-request"), error

        set_style(ws, preset="3")
        ws.send(b"these are not pixels")
        error = next_json(ws, "error")
        assert (error["seq"], error["status"], error["code"]) == (1, 415, "unsupported-image"), error
        ws.send(frames[0][: len(frames[0]) // 3])  # a JPEG cut short: its header reads, its pixels do not
        error = next_json(ws, "error")
        assert (error["seq"], error["status"]) == (2, 415), error

        ws.send("{not json")
        assert next_json(ws, "error")["status"] == 400
        ws.send(json.dumps({"preset": "style-99"}))
        assert next_json(ws, "error")["status"] == 404
        ws.send(json.dumps({"strength": 7}))
        assert "strength" in next_json(ws, "error")["detail"]

        ws.send(frames[1])  # the previous style is still in force
        timing, image = painted(ws)
        assert (timing["seq"], timing["style"]) == (3, "preset:style-03")
        assert rgb(image).shape == (240, 320, 3)


def test_the_style_switches_mid_stream(server: LiveServer, frames: list[bytes]) -> None:
    with open_live(server) as ws:
        set_style(ws, preset="style-03")
        ws.send(frames[0])
        first_timing, first = painted(ws)
        applied = set_style(ws, preset="style-07", strength=0.5, max_side=160)
        assert applied["next_seq"] == 1 and applied["strength"] == 0.5
        ws.send(frames[0])
        timing, image = painted(ws)
        assert (first_timing["style"], timing["style"]) == ("preset:style-03", "preset:style-07")
        assert (timing["width"], timing["height"]) == (160, 120)
        set_style(ws, max_side=None, strength=1.0, format="webp")  # the style stays, the rest changes
        ws.send(frames[0])
        timing, second = painted(ws)
        assert timing["style"] == "preset:style-07" and timing["media_type"] == "image/webp"
        difference = np.abs(rgb(first) - rgb(second)).mean()
        assert difference > 0.05, f"the two presets painted nearly the same frame ({difference:.3f})"


def test_the_brush_size_is_a_live_setting(server: LiveServer, frames: list[bytes]) -> None:
    with open_live(server) as ws:
        set_style(ws, preset="style-03")
        ws.send(frames[0])
        _, native = painted(ws)
        applied = set_style(ws, stroke_scale=3)
        assert applied["stroke_scale"] == 3.0 and applied["style"] == "preset:style-03"
        ws.send(frames[0])
        _, broad = painted(ws)
        ws.send(json.dumps({"stroke_scale": 50}))
        assert "stroke_scale" in next_json(ws, "error")["detail"]
        difference = np.abs(rgb(native) - rgb(broad)).mean()
        assert difference > 0.02, f"stroke_scale 3 painted nearly the frame of scale 1 ({difference:.3f})"


def test_the_server_declines_per_message_deflate(server: LiveServer, frames: list[bytes]) -> None:
    # The websockets client offers permessage-deflate by default, as browsers do; JPEG frames do not
    # shrink, so the server turns it down rather than compress every message (docs/live.md).
    with connect(ws_url(server), subprotocols=[SUBPROTOCOL]) as ws:  # type: ignore[list-item]
        offered = ws.request.headers.get("Sec-WebSocket-Extensions") if ws.request else None
        assert offered and "permessage-deflate" in offered
        assert ws.response is not None and ws.response.headers.get("Sec-WebSocket-Extensions") is None
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"
        set_style(ws, preset="style-03")
        ws.send(frames[0])
        timing, image = painted(ws)  # frames still come and go without it
        assert timing["seq"] == 0 and Image.open(io.BytesIO(image)).size == (320, 240)


def test_a_client_that_leaves_mid_frame_leaves_no_work_queued(server: LiveServer, image_dir: Path) -> None:
    with Image.open(image_dir / "content" / "eiffel_tower.jpg") as image:
        big = encode_image(image.convert("RGB").resize((640, 480)), "JPEG", quality=90)
    left_before = metric(server, "atelier_live_frames_dropped_total", reason="disconnected")
    painted_before = metric(server, "atelier_live_frames_painted_total")
    with open_live(server) as ws:
        set_style(ws, preset="style-05")
        for _ in range(3):
            ws.send(big)
        ws.close()  # at once: one frame is being painted, one waits
    deadline = time.monotonic() + 20
    while metric(server, "atelier_live_connections") > 0:
        assert time.monotonic() < deadline, "the server kept the connection"
        time.sleep(0.05)
    assert metric(server, "atelier_live_frames_held") == 0
    assert metric(server, "atelier_jobs_in_flight") == 0
    assert metric(server, "atelier_live_frames_dropped_total", reason="disconnected") - left_before >= 1
    assert metric(server, "atelier_live_frames_painted_total") == painted_before


def test_without_a_key_the_socket_is_closed_with_1008(limited_server: LiveServer) -> None:
    with connect(ws_url(limited_server), subprotocols=[SUBPROTOCOL]) as ws:  # type: ignore[list-item]
        code, messages = close_code(ws)
    assert code == 1008
    assert messages[-1]["status"] == 401 and messages[-1]["code"] == "unauthorized"
    with connect(ws_url(limited_server), additional_headers={"Authorization": "Bearer wrong"}) as ws:
        assert close_code(ws)[0] == 1008
    assert metric(limited_server, "atelier_live_refused_total", reason="unauthorized") >= 2

    # Browsers cannot send headers: the key travels as a second subprotocol, base64url without padding.
    offered = "base64url.bearer." + base64.urlsafe_b64encode(KEY.encode()).decode().rstrip("=")
    with connect(ws_url(limited_server), subprotocols=[SUBPROTOCOL, offered]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == SUBPROTOCOL
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"


def test_limits_on_frame_size_rate_connections_and_idle_time(
    limited_server: LiveServer, frames: list[bytes], image_dir: Path
) -> None:
    with open_live(limited_server, KEY) as ws, open_live(limited_server, KEY):
        # A third connection is over ATELIER_LIVE_MAX_CONNECTIONS=2.
        with connect(ws_url(limited_server), additional_headers={"Authorization": f"Bearer {KEY}"}) as third:
            code, messages = close_code(third)
        assert code == 1013 and messages[-1]["status"] == 429

        set_style(ws, preset="style-01")
        ws.send(bytes(200_001))  # over ATELIER_LIVE_MAX_FRAME_BYTES
        assert next_json(ws, "error")["status"] == 413
        with Image.open(image_dir / "content" / "tubingen.jpg") as image:
            wide = encode_image(image.convert("RGB").resize((800, 400)), "JPEG", quality=50)
        ws.send(wide)  # over ATELIER_LIVE_MAX_SIDE=640
        assert "longest side" in next_json(ws, "error")["detail"]

        time.sleep(1.2)  # the rate bucket refills to its burst of 5
        for frame in frames[:15]:
            ws.send(frame)
        last_sent = time.monotonic()
        error = next_json(ws, "error")
        assert (error["status"], error["code"]) == (429, "rate-limited"), error
        deadline = time.monotonic() + 10
        while metric(limited_server, "atelier_live_frames_dropped_total", reason="rate") < 8:
            assert time.monotonic() < deadline, "frames over the rate were not dropped"
            time.sleep(0.05)

        # Sent nothing for ATELIER_LIVE_IDLE_TIMEOUT_S=3: closed with 1001; painted frames come first.
        code, _ = close_code(ws, timeout=20)
        assert code == 1001 and 2.5 < time.monotonic() - last_sent < 15
