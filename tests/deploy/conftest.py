"""The deployment topology on loopback, without a Docker engine: Redis, service replicas and nginx.

Each part is the real program the compose file runs: `redis-server` with deploy/redis/redis.conf,
`python -m service` replicas (tests/service/conftest.py's start_server), and nginx with
deploy/nginx/nginx.conf as-is. Only the two per-site include files (the replicas' `server` lines and
the `listen` line) are written here, next to a link to the main config, because nginx resolves
includes relative to the directory of the config file it is given.

redis-server and nginx come from Debian (`make system-deps`); a missing one fails the tests, it does
not skip them, since CI installs both.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.service.conftest import LiveServer, _free_port, assert_no_server_errors, start_server, stop_server

REPO = Path(__file__).resolve().parents[2]
NGINX_DIR = REPO / "deploy" / "nginx"
REDIS_CONF = REPO / "deploy" / "redis" / "redis.conf"
REPLICAS = 3
# Tight enough that the tests see Redis come back within a second; the default is 2 s.
REPLICA_ENV = {"ATELIER_WORKERS": "1", "ATELIER_INTRA_OP_THREADS": "1", "ATELIER_REDIS_RETRY_S": "0.5"}


def require_binary(name: str) -> str:
    """The path of a Debian-packaged program the tests drive; missing means the set-up is broken."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
    assert path, f"{name} is not installed: run `make system-deps` (scripts/system-deps.sh)"
    return path


@dataclass
class RedisServer:
    port: int
    workdir: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """redis-server with the compose file's redis.conf, on loopback, persisting under workdir."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = (self.workdir / "redis.log").open("a")
        self.process = subprocess.Popen(
            [require_binary("redis-server"), str(REDIS_CONF), "--bind", "127.0.0.1", "--port", str(self.port),
             "--dir", str(self.workdir)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.workdir / "redis.log").read_text()[-2000:]
            if self.ping():
                return
            time.sleep(0.05)
        raise AssertionError("redis-server did not answer PING in 20 s")

    def ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        """SIGKILL: the outage a replica sees when Redis crashes, not a clean shutdown."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()


@dataclass
class Gateway:
    url: str
    process: subprocess.Popen
    prefix: Path

    def access_log(self) -> str:
        return (self.prefix / "nginx.out").read_text()


def write_site_config(conf_dir: Path, listen_port: int, replica_urls: list[str]) -> Path:
    """A config dir holding a link to the repository's nginx.conf and this site's two include files."""
    conf_dir.mkdir(parents=True, exist_ok=True)
    main = conf_dir / "nginx.conf"
    main.symlink_to(NGINX_DIR / "nginx.conf")
    (conf_dir / "listen.conf").write_text(f"listen 127.0.0.1:{listen_port};\n")
    servers = [url.removeprefix("http://") for url in replica_urls]
    (conf_dir / "upstream-servers.conf").write_text(
        "".join(f"server {address} max_fails=1 fail_timeout=5s;\n" for address in servers)
    )
    return main


def nginx_command(prefix: Path, config: Path, *extra: str) -> list[str]:
    return [require_binary("nginx"), "-e", "stderr", "-p", f"{prefix}/", "-c", str(config), *extra]


def start_gateway(prefix: Path, replica_urls: list[str]) -> Gateway:
    port = _free_port()
    config = write_site_config(prefix / "conf", port, replica_urls)
    checked = subprocess.run(nginx_command(prefix, config, "-t"), capture_output=True, text=True)
    assert checked.returncode == 0, f"nginx -t refused deploy/nginx/nginx.conf:\n{checked.stderr}"
    out = (prefix / "nginx.out").open("w")
    process = subprocess.Popen(
        nginx_command(prefix, config, "-g", "daemon off;"), stdout=out, stderr=subprocess.STDOUT
    )
    gateway = Gateway(f"http://127.0.0.1:{port}", process, prefix)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert process.poll() is None, gateway.access_log()[-2000:]
        try:
            if httpx.get(gateway.url + "/gateway/healthz", timeout=1).status_code == 200:
                return gateway
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError("nginx did not answer in 20 s")


@dataclass
class Topology:
    redis: RedisServer
    replicas: list[LiveServer]
    gateway: Gateway
    killed: list[LiveServer] = field(default_factory=list)
    # (status, route) 5xx answers a test provokes on purpose; any other 5xx fails the module.
    expected_errors: list[tuple[int, str]] = field(default_factory=list)

    def live_replicas(self) -> list[LiveServer]:
        return [r for r in self.replicas if r not in self.killed]


@pytest.fixture(scope="module")
def topology(model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    """Redis, three replicas (each with its own style dir, as containers have) and nginx on loopback."""
    root = tmp_path_factory.mktemp("topology")
    with ExitStack() as cleanup:  # whatever started is stopped, also when a later part fails to start
        redis_server = RedisServer(_free_port(), root / "redis")
        cleanup.callback(redis_server.stop)
        redis_server.start()
        env = {**REPLICA_ENV, "ATELIER_REDIS_URL": redis_server.url}
        workdirs = [root / f"replica-{i}" for i in range(REPLICAS)]
        for workdir in workdirs:
            workdir.mkdir()
        with ThreadPoolExecutor(REPLICAS) as pool:  # started together: loading models overlaps
            futures = [pool.submit(start_server, model_repository, workdir, env) for workdir in workdirs]
        for future in futures:
            if future.exception() is None:
                cleanup.callback(stop_if_alive, future.result())
        replicas = [future.result() for future in futures]
        # Not under pytest's 0700 tmp dir: nginx started by root (CI) runs its workers as `nobody`,
        # who must reach the prefix to write buffered request bodies there.
        prefix = Path(tempfile.mkdtemp(prefix="atelier-nginx-"))
        prefix.chmod(0o755)
        cleanup.callback(shutil.rmtree, prefix)
        gateway = start_gateway(prefix, [r.url for r in replicas])
        cleanup.callback(shutil.copy, prefix / "nginx.out", root / "nginx.out")  # kept with the other logs
        cleanup.callback(stop_process, gateway.process)
        topology = Topology(redis_server, replicas, gateway)
        yield topology
    for replica in replicas:
        assert_no_server_errors(replica, topology.expected_errors)


def stop_if_alive(server: LiveServer) -> None:
    if server.process.poll() is None:
        stop_server(server)


def stop_process(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
