"""CLI test fixtures: the environment of an in-process CLI run and a live `python -m service`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.cli import REPO
from tests.helpers.server import LiveServer, assert_no_server_errors, start_server, stop_server


@pytest.fixture(scope="session")
def cli_env(model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of an in-process CLI run: the real models, a style folder of its own."""
    return {
        "ATELIER_MODEL_DIR": str(model_repository),
        "ATELIER_STYLE_DIR": str(tmp_path_factory.mktemp("cli-styles")),
        "PYTHONPATH": str(REPO),
    }


@pytest.fixture(scope="session")
def live(model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """`python -m service` on the real models; its log must hold no 5xx at the end."""
    server = start_server(model_repository, tmp_path_factory.mktemp("cli-server"))
    yield server
    stop_server(server)
    assert_no_server_errors(server)
