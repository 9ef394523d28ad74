"""Service test fixtures: a real uvicorn process (`python -m service`) on loopback, images, helpers."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
TEST_UPLOAD_LIMIT = 4 * 1024 * 1024  # small, so the over-limit tests send little


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen
    log_path: Path
    style_dir: Path

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120, **kwargs)

    def log_lines(self) -> list[dict]:
        """The server's JSON log lines (ONNX Runtime's own stderr lines are not JSON and are skipped)."""
        lines = []
        for raw in self.log_path.read_text().splitlines():
            if raw.startswith("{"):
                lines.append(json.loads(raw))
        return lines


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    model_dir: Path, workdir: Path, extra_env: dict[str, str] | None = None, wait_ready: bool = True
) -> LiveServer:
    """Start `python -m service`; wait until /readyz is 200 (or, without ``wait_ready``, until /livez answers)."""
    port = _free_port()
    style_dir = workdir / "styles"
    log_path = workdir / "server.log"
    env = {
        **os.environ,
        "ATELIER_MODEL_DIR": str(model_dir),
        "ATELIER_STYLE_DIR": str(style_dir),
        "ATELIER_MAX_UPLOAD_BYTES": str(TEST_UPLOAD_LIMIT),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        **(extra_env or {}),
    }
    log_file = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "service"], cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT
    )
    server = LiveServer(f"http://127.0.0.1:{port}", process, log_path, style_dir)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
        try:
            if httpx.get(server.url + ("/readyz" if wait_ready else "/livez"), timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"server not ready in 90 s:\n{log_path.read_text()[-4000:]}")


def stop_server(server: LiveServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


def assert_no_server_errors(server: LiveServer, expected: Collection[tuple[int, str]] = ()) -> None:
    """No 5xx and no ERROR line in the server's log, but the (status, route) answers a test provoked."""
    lines = server.log_lines()
    assert any(line.get("route") for line in lines), "the access log is missing"
    errors = [
        line
        for line in lines
        if (int(line.get("status", 0)) >= 500 and (int(line["status"]), line.get("route")) not in expected)
        or line.get("level") == "ERROR"
    ]
    assert not errors, f"the server logged 5xx responses or errors: {errors[:3]}"


@pytest.fixture(scope="session")
def server(model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """`python -m service` on the real models/, keys off; at the end its log must hold no 5xx."""
    live = start_server(model_repository, tmp_path_factory.mktemp("server"))
    yield live
    stop_server(live)
    assert_no_server_errors(live)


@pytest.fixture(scope="session")
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


@pytest.fixture(scope="session")
def content_path(image_dir: Path) -> Path:
    return image_dir / "content" / "golden_gate_sq.jpg"


@pytest.fixture(scope="session")
def style_paths(image_dir: Path) -> list[Path]:
    return [image_dir / "style" / name for name in ("starry_night.jpg", "the_scream.jpg", "bricks_sq.jpg")]


def metric(server: LiveServer, name: str, **labels: str) -> float:
    """A sample from the server's /metrics (0 when absent)."""
    text = httpx.get(server.url + "/metrics").text
    selector = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name + ("{" + selector + "}" if labels else "")) + r" ([0-9.e+-]+)"
    match = re.search(pattern, text)
    return float(match.group(1)) if match else 0.0


def encode_image(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def decode_rgb(data: bytes) -> np.ndarray:
    """Response bytes -> float RGB HxWx3 in [0, 1]."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float32) / 255.0


def gradient_image(width: int, height: int, seed: int = 0) -> Image.Image:
    """A smooth, colourful test image with some texture, deterministic per seed."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 127 + 120 * np.sin(x / max(width, 1) * 3.1 + seed)
    g = 127 + 120 * np.cos(y / max(height, 1) * 2.3)
    b = 127 + 60 * np.sin((x + y) / 9.0) + rng.normal(0, 8, size=x.shape)
    return Image.fromarray(np.clip(np.stack([r, g, b], axis=2), 0, 255).astype(np.uint8))


def ycbcr(image: np.ndarray) -> np.ndarray:
    matrix = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
    return image @ matrix.T
