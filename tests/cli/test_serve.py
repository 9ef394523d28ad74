"""`make run` runs `atelier serve`, and that serves what `python -m service` serves."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from service.openapi_dump import SPEC_PATH
from tests.helpers.cli import REPO
from tests.helpers.server import LiveServer, free_port


def make_run_command(port: int) -> str:
    """The recipe `make run` would execute (its last command; the set-up steps come before it)."""
    # --no-print-directory: under `make test` this make is nested and would print "Entering directory" lines.
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", "run", f"PORT={port}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_make_run_is_atelier_serve_and_serves_the_same(
    live: LiveServer, model_repository: Path, image_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    command = make_run_command(port)
    assert command == f"HOST=127.0.0.1 PORT={port} .venv/bin/atelier serve"
    env = {**os.environ, "ATELIER_MODEL_DIR": str(model_repository), "ATELIER_STYLE_DIR": str(tmp_path / "styles")}
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        ["bash", "-c", command], cwd=REPO, env=env, stdout=log, stderr=log, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        assert httpx.get(url + "/openapi.json").json() == json.loads(SPEC_PATH.read_text())

        def models(base: str) -> list[dict]:
            listed = httpx.get(base + "/readyz").json()["models"]
            return [{k: v for k, v in m.items() if k != "warmup_s"} for m in listed]

        assert models(url) == models(live.url)
        files = {"content": (image_dir / "content" / "tubingen.jpg").read_bytes()}
        form = {"preset": "5", "max_side": "128"}
        ours = httpx.post(url + "/v1/stylize", data=form, files=files, timeout=60)
        theirs = httpx.post(live.url + "/v1/stylize", data=form, files=files, timeout=60)
        assert ours.status_code == theirs.status_code == 200
        assert ours.content == theirs.content
        # It logs as the server does: JSON lines, the ready line and the access log included.
        logged = [json.loads(line) for line in (tmp_path / "serve.log").read_text().splitlines() if line[:1] == "{"]
        assert any(line["msg"] == "ready" for line in logged)
        assert any(line.get("route") == "/v1/stylize" and line.get("status") == 200 for line in logged)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)  # its own session: bash and the server in it
            process.wait(timeout=30)
