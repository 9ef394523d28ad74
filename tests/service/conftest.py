"""Service test fixtures: a real uvicorn process (`python -m service`) on loopback, and images."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.server import LiveServer, assert_no_server_errors, start_server, stop_server


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
