"""The deployment's other programs on loopback: redis-server with deploy/redis/redis.conf and nginx with
deploy/nginx/nginx.conf as-is, and the topology of replicas between them.

Only the two per-site include files of nginx (the replicas' `server` lines and the `listen` line)
are written here, next to a link to the main config, because nginx resolves includes relative to
the directory of the config file it is given. redis-server and nginx come from Debian
(`make system-deps`); a missing one fails the tests, it does not skip them, since CI installs both.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.helpers.server import LiveServer, free_port, stop_server

REPO = Path(__file__).resolve().parents[2]
NGINX_DIR = REPO / "deploy" / "nginx"
REDIS_CONF = REPO / "deploy" / "redis" / "redis.conf"
REPLICAS = 3
# Tight enough that the tests see Redis come back within a second; the default is 2 s.
REPLICA_ENV = {"ATELIER_CODEC_THREADS": "1", "ATELIER_INTRA_OP_THREADS": "1", "ATELIER_REDIS_RETRY_S": "0.5"}


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
    port = free_port()
    config = write_site_config(prefix / "conf", port, replica_urls)
    checked = subprocess.run(nginx_command(prefix, config, "-t"), capture_output=True, text=True)
    assert checked.returncode == 0, f"nginx -t refused deploy/nginx/nginx.conf:\n{checked.stderr}"
    out = (prefix / "nginx.out").open("w")
    process = subprocess.Popen(nginx_command(prefix, config, "-g", "daemon off;"), stdout=out, stderr=subprocess.STDOUT)
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
