"""The real images in a real Docker engine: one build per session, containers stopped by their ids.

The session's engine is the one DOCKER_HOST points to, or a dockerd that scripts/docker-engine.sh
starts for the session (Debian's docker.io, installed by `make system-deps`) and stops by its pid
afterwards. The images are built once by scripts/docker-images.sh, the script behind
`make docker-images`, with local stand-ins for the upstream base images where no registry answers.
A missing engine or a failed build fails every test here; nothing skips.

Docker CLI: Debian's /usr/bin/docker (20.10, BuildKit built in; a newer CLI without the buildx
plugin refuses BuildKit). Compose: Debian's docker-compose 1.29 with `--compatibility`, so the
`deploy` keys (replicas, resource limits) apply as Compose v2 applies them.
Every port is published on 127.0.0.1 only, and tests talk to nothing else.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKER = os.environ.get("DOCKER", "/usr/bin/docker")
ARTIFACTS = REPO / "artifacts" / "docker"
IMAGE = "atelier:cpu"
# A cold build (debootstrap, stand-ins, torch, the models) takes minutes; the tests after it are quick.
BUILD_TIMEOUT_S = 1500


def run(args: list[str], env: dict[str, str], timeout: float = 120, check: bool = True,
        **kwargs: object) -> subprocess.CompletedProcess[str]:  # fmt: skip
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check:
        assert result.returncode == 0, f"{' '.join(args)} exited {result.returncode}:\n{result.stderr[-3000:]}"
    return result


@dataclass
class Engine:
    host: str
    env: dict[str, str]  # os.environ + DOCKER_HOST, and the chosen base images once built
    images: dict[str, str] = field(default_factory=dict)

    def docker(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([DOCKER, *args], self.env, timeout=timeout, check=check)

    def inspect(self, container: str, template: str) -> str:
        return self.docker("inspect", "-f", template, container).stdout.strip()

    def published_port(self, container: str, port: int) -> str:
        """The container port's address on the host: always 127.0.0.1 here."""
        bindings = json.loads(self.inspect(container, "{{json .NetworkSettings.Ports}}"))[f"{port}/tcp"]
        assert bindings and all(b["HostIp"] == "127.0.0.1" for b in bindings), bindings
        return f"http://127.0.0.1:{bindings[0]['HostPort']}"


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    started = run([str(REPO / "scripts" / "docker-engine.sh"), "start"], dict(os.environ), timeout=180)
    values = dict(line.split("=", 1) for line in started.stdout.split())
    pid = values["ATELIER_DOCKERD_PID"]
    try:
        yield Engine(values["DOCKER_HOST"], {**os.environ, "DOCKER_HOST": values["DOCKER_HOST"]})
    finally:
        run([str(REPO / "scripts" / "docker-engine.sh"), "stop", pid], dict(os.environ), timeout=60)


@pytest.fixture(scope="session")
def images(engine: Engine) -> Engine:
    """atelier:cpu built by `make docker-images`'s script; the base images it chose in engine.images."""
    env_file = ARTIFACTS / "images.env"
    began = time.monotonic()
    run([str(REPO / "scripts" / "docker-images.sh")], {**engine.env, "ATELIER_DOCKER_ENV_FILE": str(env_file)},
        timeout=BUILD_TIMEOUT_S)  # fmt: skip
    print(f"docker-images: {time.monotonic() - began:.0f} s")
    engine.images = dict(line.split("=", 1) for line in env_file.read_text().split())
    engine.env = {**engine.env, **engine.images}
    return engine


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def wait_until(predicate, timeout: float, what: str, interval: float = 0.5):  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} within {timeout:.0f} s"
        time.sleep(interval)


def answers(url: str, status: int = 200) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == status
    except httpx.TransportError:
        return False
