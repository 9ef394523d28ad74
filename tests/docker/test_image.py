"""The CPU image alone, as `docker run` starts it: on a user-defined bridge network, a read-only root
filesystem (a volume for the registered styles, a tmpfs for /tmp), its port published on 127.0.0.1.

The tests share one container and run in file order; the last one stops it with a request in flight.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.docker.conftest import DOCKER, IMAGE, Engine, answers, run, unique, wait_until
from tests.helpers.images import decode_rgb, encode_image, gradient_image
from tests.helpers.server import LiveServer, start_server, stop_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

WORKER_IMAGE = "atelier:video-worker"
GRACE_S = 30  # --stop-timeout: what compose's stop_grace_period gives a replica


@dataclass
class Container:
    id: str
    url: str


@pytest.fixture(scope="module")
def network(images: Engine) -> Iterator[str]:
    network_id = images.docker("network", "create", "--driver", "bridge", unique("atelier-test")).stdout.strip()
    yield network_id
    images.docker("network", "rm", network_id)


@pytest.fixture(scope="module")
def container(images: Engine, network: str) -> Iterator[Container]:
    container_id = images.docker(
        "run", "--detach", "--network", network, "--read-only", "--tmpfs", "/tmp",
        "--mount", "type=volume,destination=/var/lib/atelier", "--publish", "127.0.0.1::8000",
        "--stop-timeout", str(GRACE_S), "--env", "ATELIER_CODEC_THREADS=1", IMAGE,
    ).stdout.strip()  # fmt: skip
    try:
        url = images.published_port(container_id, 8000)
        yield Container(container_id, url)
    finally:
        print(images.docker("logs", "--tail", "20", container_id, check=False).stderr[-3000:])
        images.docker("rm", "--force", "--volumes", container_id)


@pytest.fixture(scope="module")
def loopback(model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The same service from the repository on loopback, on the models `make setup` built."""
    server = start_server(model_repository, tmp_path_factory.mktemp("loopback"), {"ATELIER_CODEC_THREADS": "1"})
    yield server
    stop_server(server)


def test_readyz_turns_ready(images: Engine, container: Container):
    began = time.monotonic()
    wait_until(lambda: answers(container.url + "/readyz"), 180, "the container's /readyz did not turn 200")
    print(f"container ready {time.monotonic() - began:.1f} s after `docker run` returned")
    ready = httpx.get(container.url + "/readyz", timeout=5).json()
    assert ready["status"] in ("ready", "degraded"), ready  # degraded: no Redis configured is not an error


def test_healthcheck_turns_healthy(images: Engine, container: Container):
    wait_until(lambda: images.inspect(container.id, "{{.State.Health.Status}}") == "healthy", 90,
               "the HEALTHCHECK did not report healthy")  # fmt: skip
    log = images.inspect(container.id, "{{json .State.Health.Log}}")
    assert '"ExitCode":0' in log


def test_runs_as_a_non_root_user(images: Engine, container: Container):
    status = images.docker("exec", container.id, "cat", "/proc/1/status").stdout
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    assert uids == ["10001"] * 4, status  # real, effective, saved and filesystem uid of the service
    assert images.inspect(container.id, "{{.Config.User}}") == "10001"


def test_holds_no_torch_and_no_training_code_and_stays_small(images: Engine, container: Container):
    probe = ("import importlib.util as u, pathlib; "
             "print([m for m in ('torch', 'training', 'onnxruntime') if u.find_spec(m)], "
             "sorted(p.name for p in pathlib.Path('/opt/atelier').iterdir()))")  # fmt: skip
    found = images.docker("exec", container.id, "python", "-c", probe).stdout.strip()
    assert found == "['onnxruntime'] ['onnx_export', 'service']", found
    providers = images.docker("exec", container.id, "python", "-c",
                              "import onnxruntime as o; print(o.get_available_providers())").stdout  # fmt: skip
    assert "CUDAExecutionProvider" not in providers  # the CPU build: no CUDA provider libraries
    # Target: the layers the image adds on top of its base weigh at most 300 MB.
    size = int(images.docker("image", "inspect", "-f", "{{.Size}}", IMAGE).stdout)
    base_image = images.images["ATELIER_PYTHON_IMAGE"]
    base = int(images.docker("image", "inspect", "-f", "{{.Size}}", base_image).stdout)
    print(f"{IMAGE}: {size / 1e6:.0f} MB, {(size - base) / 1e6:.0f} MB on top of {base_image}")
    assert size - base <= 300e6


def test_the_video_worker_image_adds_the_video_extra_and_the_slim_image_only_rq(images: Engine, container: Container):
    """atelier:cpu can queue video jobs (RQ) but not decode them; atelier:video-worker can do both."""
    probe = "import importlib.util as u; print([m for m in ('rq', 'av', 'cv2', 'torch') if u.find_spec(m)])"
    assert images.docker("exec", container.id, "python", "-c", probe).stdout.strip() == "['rq']"
    worker = images.docker("run", "--rm", "--read-only", WORKER_IMAGE, "python", "-c",
                           probe + "; import service.video_worker, os; print(os.getuid())").stdout.split()  # fmt: skip
    assert worker == ["['rq',", "'av',", "'cv2']", "10001"], worker
    size = int(images.docker("image", "inspect", "-f", "{{.Size}}", IMAGE).stdout)
    added = int(images.docker("image", "inspect", "-f", "{{.Size}}", WORKER_IMAGE).stdout) - size
    print(f"{WORKER_IMAGE}: {added / 1e6:.0f} MB on top of {IMAGE}")
    assert added <= 350e6  # PyAV with its FFmpeg and OpenCV: about 265 MB


def test_read_only_root_filesystem(images: Engine, container: Container):
    assert images.inspect(container.id, "{{.HostConfig.ReadonlyRootfs}}") == "true"
    written = images.docker("exec", container.id, "touch", "/opt/atelier/probe", check=False)
    assert written.returncode != 0 and "Read-only file system" in written.stderr
    # What it must write goes to the volume (registered styles) and /tmp: registering works.
    style = encode_image(gradient_image(80, 80, seed=4), "PNG")
    response = httpx.post(container.url + "/v1/styles", files={"style": style}, timeout=60)
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("style", ["preset", "image"])
def test_stylised_image_equals_the_loopback_service(container: Container, loopback: LiveServer, image_dir: Path,
                                                    style: str):  # fmt: skip
    content = (image_dir / "content" / "eiffel_tower.jpg").read_bytes()
    data = {"max_side": "256", **({"preset": "7"} if style == "preset" else {})}
    files = {"content": content, **({"style": (image_dir / "style" / "black_zigzag.jpg").read_bytes()}
                                    if style == "image" else {})}  # fmt: skip
    outputs = []
    for url in (container.url, loopback.url):
        response = httpx.post(url + "/v1/stylize", data=data, files=files, timeout=120)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/png"
        outputs.append(decode_rgb(response.content))
    from_image, from_loopback = outputs
    assert from_image.shape == from_loopback.shape and from_image.shape[2] == 3
    assert float(np.abs(from_image - from_loopback).max()) <= 1 / 255 + 1e-6
    assert float(from_image.std()) > 0.05  # a real picture, not a blank one equal by accident


def test_docker_stop_lets_an_in_flight_request_finish(images: Engine, container: Container):
    content = encode_image(gradient_image(1024, 768, seed=2), "PNG")
    outcome: dict[str, object] = {}

    def long_request() -> None:
        try:  # a large network run (stroke_scale 1): seconds of work on 2 cores, well inside the grace period
            form = {"preset": "3", "max_side": "1024", "stroke_scale": "1"}
            response = httpx.post(container.url + "/v1/stylize", data=form, files={"content": content}, timeout=120)
            outcome["status"] = response.status_code
        except httpx.HTTPError as exc:
            outcome["error"] = repr(exc)
        outcome["finished"] = time.monotonic()

    client = threading.Thread(target=long_request)
    client.start()
    time.sleep(0.5)  # the upload is in and the work has begun
    assert "finished" not in outcome, "the request was over before the stop; make it larger"
    stop_began = time.monotonic()
    images.docker("stop", container.id, timeout=GRACE_S + 30)
    stopped_after = time.monotonic() - stop_began
    client.join(timeout=60)
    assert outcome.get("status") == 200, outcome
    assert outcome["finished"] > stop_began  # it was in flight when SIGTERM came
    assert stopped_after < GRACE_S, f"docker stop took {stopped_after:.1f} s: the grace period ran out"
    assert images.inspect(container.id, "{{.State.ExitCode}}") == "0"  # not 137: it exited, was not killed
    print(f"docker stop with a request in flight: {stopped_after:.1f} s")


def test_a_build_naming_a_docker_hub_image_fails_fast_and_loudly(images: Engine, tmp_path: Path):
    """Nothing pulls quietly or hangs: where no registry answers (the engine scripts/docker-engine.sh
    starts sends registry traffic to a closed port), a FROM of a Docker Hub name fails in seconds."""
    (tmp_path / "Dockerfile").write_text("FROM busybox:1.36.1\n")
    began = time.monotonic()
    built = run([DOCKER, "build", "--quiet", str(tmp_path)], {**images.env, "DOCKER_BUILDKIT": "1"}, timeout=90,
                check=False)  # fmt: skip
    elapsed = time.monotonic() - began
    if images.images["ATELIER_OFFLINE"] == "1":
        assert built.returncode != 0 and "docker.io/library/busybox:1.36.1" in built.stderr, built.stderr
    assert elapsed < 60, f"the build took {elapsed:.0f} s"
    print(f"FROM busybox: exit {built.returncode} after {elapsed:.1f} s: {built.stderr.strip()[-200:]}")
