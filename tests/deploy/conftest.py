"""The deployment topology on loopback, without a Docker engine: Redis, service replicas and nginx.

Each part is the real program the compose file runs (tests/helpers/deploy.py and server.py).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.helpers.deploy import (
    REPLICA_ENV,
    REPLICAS,
    RedisServer,
    Topology,
    start_gateway,
    stop_if_alive,
    stop_process,
)
from tests.helpers.server import assert_no_server_errors, free_port, start_server


@pytest.fixture(scope="module")
def topology(model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    """Redis, three replicas (each with its own style dir, as containers have) and nginx on loopback."""
    root = tmp_path_factory.mktemp("topology")
    with ExitStack() as cleanup:  # whatever started is stopped, also when a later part fails to start
        redis_server = RedisServer(free_port(), root / "redis")
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
