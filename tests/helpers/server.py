"""A real ``python -m service`` on a free loopback port: start it, wait until it is ready, stop it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from service.config import Settings

REPO = Path(__file__).resolve().parents[2]
TEST_UPLOAD_LIMIT = 4 * 1024 * 1024  # small, so the over-limit tests send little
TEST_ENV = {"ATELIER_MAX_UPLOAD_BYTES": str(TEST_UPLOAD_LIMIT)}
START_TIMEOUT_S = 90


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    style_dir: Path
    _log: IO[bytes] | None = field(default=None, repr=False)

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120, **kwargs)

    def log_lines(self) -> list[dict]:
        """The server's JSON log lines (ONNX Runtime's own stderr lines are not JSON and are skipped)."""
        return [
            json.loads(raw) for raw in self.log_path.read_text(errors="replace").splitlines() if raw.startswith("{")
        ]

    def ready_pids(self) -> set[int]:
        """The processes that have logged "ready" (their models loaded and warmed up)."""
        return {line["pid"] for line in self.log_lines() if line.get("msg") == "ready"}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux: utime and stime of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    model_dir: Path,
    workdir: Path,
    extra_env: Mapping[str, str] | None = None,
    wait_ready: bool = True,
    *,
    base_env: Mapping[str, str] = TEST_ENV,
    source: Path = REPO,
) -> LiveServer:
    """Start `python -m service` with its styles and log under ``workdir``; wait until /readyz is 200 and
    every one of its processes has logged "ready" (or, without ``wait_ready``, until /livez answers).

    ``base_env`` is what tests run with (a small upload limit); ``extra_env`` goes on top of it.
    ``source`` is the tree whose ``service`` runs (a benchmark's baseline checkout; this one by default)."""
    port = free_port()
    style_dir = workdir / "styles"
    env = {
        **os.environ,
        "ATELIER_MODEL_DIR": str(model_dir),
        "ATELIER_STYLE_DIR": str(style_dir),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        **base_env,
        **(extra_env or {}),
    }
    processes = expected_processes(env)
    if processes > 1:
        env["ATELIER_LOG_LEVEL"] = "INFO"  # each process's "ready" line (INFO) says it is up
    log_path = workdir / f"server-{port}.log"
    log = log_path.open("wb")
    process = subprocess.Popen([sys.executable, "-m", "service"], cwd=source, env=env, stdout=log, stderr=log)
    server = LiveServer(f"http://127.0.0.1:{port}", process, log_path, style_dir, log)
    try:
        _wait_until_up(server, "/readyz" if wait_ready else "/livez")
        if wait_ready and processes > 1:
            wait_for_ready_processes(server, processes)
    except BaseException:
        stop_server(server)
        raise
    return server


def expected_processes(env: Mapping[str, str]) -> int:
    """As many processes as the service will start with this environment: it decides by the same settings."""
    return Settings(
        processes=env.get("ATELIER_PROCESSES"), providers=env.get("ATELIER_PROVIDERS", "auto")
    ).process_count


def _wait_until_up(server: LiveServer, path: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with {server.process.returncode}:\n{_log_tail(server)}")
        try:
            if httpx.get(server.url + path, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server not up in {START_TIMEOUT_S} s:\n{_log_tail(server)}")


def wait_for_ready_processes(server: LiveServer, count: int) -> set[int]:
    """The pids of the processes that have logged "ready", once ``count`` of them have."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while len(ready := server.ready_pids()) < count:
        if server.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{len(ready)} of {count} processes got ready:\n{_log_tail(server)}")
        time.sleep(0.2)
    return ready


def _log_tail(server: LiveServer) -> str:
    return server.log_path.read_text(errors="replace")[-4000:]


def stop_server(server: LiveServer) -> None:
    """SIGTERM (a graceful shutdown), SIGKILL after 20 s."""
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    if server._log is not None:
        server._log.close()


@contextmanager
def running_server(
    model_dir: Path,
    workdir: Path,
    extra_env: Mapping[str, str] | None = None,
    *,
    base_env: Mapping[str, str] = TEST_ENV,
    source: Path = REPO,
) -> Iterator[LiveServer]:
    """``start_server`` for the length of a block, stopped at its end."""
    server = start_server(model_dir, workdir, extra_env, base_env=base_env, source=source)
    try:
        yield server
    finally:
        stop_server(server)


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
