"""ATELIER_PROCESSES > 1: several uvicorn processes on one port, each loading the models and logging JSON."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.service.conftest import start_server, stop_server


@pytest.mark.slow
def test_two_processes_serve_and_both_log_json_lines(model_repository: Path, tmp_path: Path,
                                                     content_path: Path) -> None:
    server = start_server(model_repository, tmp_path, {"ATELIER_PROCESSES": "2", "ATELIER_WORKERS": "1"})
    try:
        with server.client() as client:
            for _ in range(4):
                reply = client.post("/v1/stylize", files={"content": content_path.read_bytes()},
                                    data={"preset": "3", "max_side": "64"})
                assert reply.status_code == 200, reply.text
    finally:
        stop_server(server)
    lines = server.log_lines()
    # each child logs "ready" once its models are loaded, as a JSON line like every other
    assert sum(line.get("msg") == "ready" for line in lines) == 2, lines[-10:]
    assert sum(line.get("route") == "/v1/stylize" and line.get("status") == 200 for line in lines) == 4
