"""`docker compose up` of the committed docker-compose.yml: the gateway, two replicas, a video worker and Redis.

The compose file runs unchanged; the environment picks the images (`make docker-images`' stand-ins
where no registry answers) and publishes the gateway on 127.0.0.1 only. Compose's default network
is a user-defined bridge. The tests share one stack, run in file order and end with `down -v`.

Every client request comes to nginx from the same address (the engine's port proxy), so one
per-client rate-limit bucket (10 requests/s, burst 20) covers them all: load loops are paced below
the rate, and the 429 test waits for the bucket to refill afterwards.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.docker.conftest import ARTIFACTS, REPO, Engine, answers, run, unique, wait_until
from tests.helpers.images import encode_image, gradient_image
from tests.helpers.server import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

RETRYABLE = {429, 502, 503, 504}
CUT_SHORT = 0  # the connection closed before the whole response arrived (README: retry it like a 502)
CONTENT = encode_image(gradient_image(96, 72, seed=1), "PNG")
SERVICES = ("gateway", "atelier", "video-worker", "redis")
RELOAD = ["nginx", "-e", "stderr", "-p", "/tmp/", "-c", "/etc/atelier/nginx/nginx.conf", "-s", "reload"]
# The pids of the gateway's nginx workers, the old ones ("... is shutting down") included.
WORKERS = ["sh", "-c", "for p in /proc/[0-9]*; do tr '\\0' ' ' <$p/cmdline 2>/dev/null"
           " | grep -q '^nginx: worker' && echo ${p#/proc/}; done; true"]  # fmt: skip


@dataclass
class Stack:
    engine: Engine
    project: str
    env: dict[str, str]
    url: str
    containers: set[str] = field(default_factory=set)  # every container id seen, removed at the end

    def compose(self, *args: str, timeout: float = 300, check: bool = True):
        command = ["docker-compose", "--compatibility", "--project-name", self.project,
                   "--file", str(REPO / "docker-compose.yml"), *args]  # fmt: skip
        return run(command, self.env, timeout=timeout, check=check, cwd=REPO)

    def ids(self, service: str) -> list[str]:
        found = self.compose("ps", "-q", service).stdout.split()
        self.containers.update(found)
        return found

    def healthy(self, service: str, count: int) -> bool:
        ids = self.ids(service)
        return len(ids) == count and all(self.engine.inspect(i, "{{.State.Health.Status}}") == "healthy" for i in ids)

    def request_ids_served(self, container: str) -> set[str]:
        """The request ids a replica logged a 2xx answer for (its JSON access lines)."""
        logs = self.engine.docker("logs", container).stdout + self.engine.docker("logs", container).stderr
        served = set()
        for line in logs.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and 200 <= int(entry.get("status", 0) or 0) < 300:
                served.add(entry.get("request_id"))
        return served

    def gateway_workers(self) -> set[str]:
        return set(self.compose("exec", "-T", "gateway", *WORKERS).stdout.split())

    def reload_gateway(self) -> None:
        """`nginx -s reload`, then waits for the old workers to exit. Until they do, each closes a
        keep-alive connection after its response, which a pooled client's next request sees as a disconnect."""
        old = self.gateway_workers()
        assert old, "no nginx worker found in the gateway container"
        self.compose("exec", "-T", "gateway", *RELOAD)
        wait_until(lambda: (now := self.gateway_workers()) and not now & old, 60, "the old nginx workers exiting")


@pytest.fixture(scope="module")
def stack(images: Engine) -> Iterator[Stack]:
    port = free_port()
    # A short lease: a killed video worker's job is queued again 4 s after its last frame (30 s by default).
    env = {**images.env, "ATELIER_GATEWAY_PORT": f"127.0.0.1:{port}", "ATELIER_CODEC_THREADS": "1",
           "ATELIER_VIDEO_LEASE_S": "4"}  # fmt: skip
    stack = Stack(images, unique("atelier-test"), env, f"http://127.0.0.1:{port}")
    try:
        began = time.monotonic()
        stack.compose("up", "--detach", "--no-build", timeout=600)  # waits for the replicas' healthchecks
        wait_until(lambda: answers(stack.url + "/readyz"), 120, "the gateway did not answer /readyz")
        print(f"compose up: {time.monotonic() - began:.0f} s to a ready gateway")
        for service in SERVICES:
            stack.ids(service)
        yield stack
    finally:
        for service in SERVICES:
            stack.compose("logs", "--no-color", "--tail", "15", service, check=False)
        stack.compose("down", "--volumes", "--timeout", "30", check=False)
        for container in stack.containers:  # anything `down` missed, by its id
            images.docker("rm", "--force", "--volumes", container, check=False)


def paced_load(url: str, count: int, clients: int, per_second: float, disrupt_after: int,
               disrupt, style_id: str) -> list[tuple[int, str]]:  # noqa: ANN001  # fmt: skip
    """``count`` stylise requests, ``per_second`` in all; ``disrupt()`` once ``disrupt_after`` are done."""
    outcomes: list[tuple[int, str]] = []
    lock = threading.Lock()
    interval = clients / per_second

    def client_loop(index: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            for n in range(index, count, clients):
                began = time.monotonic()
                data = {"preset": str(n % 26)} if n % 2 else {"style_id": style_id}
                try:
                    response = client.post("/v1/stylize", data={**data, "max_side": "96"}, files={"content": CONTENT})
                    outcome = (response.status_code, response.headers.get("retry-after", ""))
                    if response.status_code != 200:
                        assert response.headers["content-type"].startswith("application/problem+json"), response.text
                except (httpx.RemoteProtocolError, httpx.ReadError):
                    outcome = (CUT_SHORT, "")
                with lock:
                    outcomes.append(outcome)
                time.sleep(max(0.0, interval - (time.monotonic() - began)))

    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(client_loop, i) for i in range(clients)]
        wait_until(lambda: len(outcomes) >= disrupt_after or all(f.done() for f in futures), 120, "load started")
        disrupt()
        done_before = len(outcomes)
        for future in futures:
            future.result(timeout=180)
    assert len(outcomes) == count
    assert done_before < count - clients, "the disruption came after the load, not during it"
    return outcomes


@pytest.fixture(scope="module")
def registered(stack: Stack) -> dict:
    style = encode_image(gradient_image(128, 128, seed=11), "PNG")
    response = httpx.post(stack.url + "/v1/styles", files={"style": style}, timeout=60)
    assert response.status_code == 201, response.text
    return response.json()


def test_stack_is_up_with_two_healthy_replicas(stack: Stack):
    assert stack.healthy("atelier", 2) and stack.healthy("redis", 1) and len(stack.ids("video-worker")) == 1
    wait_until(lambda: stack.healthy("gateway", 1), 60, "the gateway's healthcheck did not pass")
    bindings = json.loads(stack.engine.inspect(stack.ids("gateway")[0], "{{json .NetworkSettings.Ports}}"))
    assert [b["HostIp"] for b in bindings["8080/tcp"]] == ["127.0.0.1"]
    network = stack.engine.docker("network", "inspect", f"{stack.project}_default").stdout
    assert json.loads(network)[0]["Driver"] == "bridge"


def test_a_style_registered_once_is_used_through_every_replica(stack: Stack, registered: dict):
    replicas = stack.ids("atelier")
    sent = []
    for n in range(8):  # least_conn over idle replicas takes turns
        request_id = f"style-{n}-{secrets.token_hex(4)}"
        response = httpx.post(stack.url + "/v1/stylize", data={"style_id": registered["id"]},
                              files={"content": CONTENT}, headers={"X-Request-ID": request_id}, timeout=60)  # fmt: skip
        assert response.status_code == 200, response.text
        assert response.headers["x-style-id"] == registered["id"]
        sent.append(request_id)
    for replica in replicas:
        assert stack.request_ids_served(replica) & set(sent), f"replica {replica[:12]} never used the style"


def test_request_id_is_kept(stack: Stack):
    response = httpx.get(stack.url + "/v1/models", headers={"X-Request-ID": "trace-docker-42"}, timeout=10)
    assert response.status_code == 200 and response.headers["x-request-id"] == "trace-docker-42"
    assert any("trace-docker-42" in stack.request_ids_served(r) for r in stack.ids("atelier"))
    generated = httpx.get(stack.url + "/v1/models", timeout=10).headers["x-request-id"]
    assert len(generated) == 32 and int(generated, 16) >= 0  # nginx's $request_id, kept by the replica


def test_gateway_answers_413_as_problem_json(stack: Stack):
    response = httpx.post(stack.url + "/v1/stylize", content=b"\0" * (22 * 1024 * 1024), timeout=60,
                          headers={"Content-Type": "application/octet-stream"})  # fmt: skip
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:atelier:problem:content-too-large"


def logs(stack: Stack, container: str) -> str:
    result = stack.engine.docker("logs", container)
    return result.stdout + result.stderr


def worker_ready(stack: Stack) -> bool:
    """The one video worker runs and has loaded its models since its last (re)start: `docker logs` keeps
    every run's lines, one "video worker ready" each."""
    ids = stack.ids("video-worker")
    if len(ids) != 1 or stack.engine.inspect(ids[0], "{{.State.Running}}") != "true":
        return False
    starts = int(stack.engine.inspect(ids[0], "{{.RestartCount}}")) + 1
    return logs(stack, ids[0]).count("video worker ready") >= starts


def make_clip(image_dir: Path, path: Path, count: int, size: tuple[int, int]) -> Path:
    from service.video_synth import frames, write_clip

    write_clip(path, (f.rgb for f in frames(image_dir / "content" / "tubingen.jpg", "pan", count, size)), fps=12)
    return path


def submit_video(stack: Stack, clip: Path, **data: str) -> httpx.Response:
    with clip.open("rb") as f:
        return httpx.post(stack.url + "/v1/videos", files={"video": (clip.name, f, "video/mp4")},
                          data={"preset": "5", "consistency": "0", **data}, timeout=60)  # fmt: skip


def poll_video(stack: Stack, job_id: str, until: tuple[str, ...], timeout: float, seen: list | None = None) -> dict:
    def current() -> dict | None:
        job = httpx.get(f"{stack.url}/v1/videos/{job_id}", timeout=10).json()
        if seen is not None:
            seen.append(job)
        return job if job["status"] in until else None

    return wait_until(current, timeout, f"video job {job_id} reaching {until}", interval=0.25)


def decoded_frames(content: bytes, tmp_path: Path) -> list:
    import av

    path = tmp_path / f"result-{secrets.token_hex(4)}.mp4"
    path.write_bytes(content)
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_a_clip_through_the_gateway_is_rendered_by_the_video_worker(stack: Stack, image_dir: Path, tmp_path: Path):
    wait_until(lambda: worker_ready(stack), 120, "the video worker did not load its models")
    clip = make_clip(image_dir, tmp_path / "pan.mp4", 16, (160, 96))
    answer = submit_video(stack, clip, stroke_scale="2")
    assert answer.status_code == 202, answer.text
    job = answer.json()
    # The slim replica has RQ but no PyAV: it queues the upload unprobed, and the worker probes it.
    assert job["status"] == "queued" and job["frames_total"] == 0 and job["stroke_scale"] is None, job
    done = poll_video(stack, job["id"], ("done", "failed", "cancelled"), 120)
    assert done["status"] == "done", done
    assert done["frames_total"] == done["frames_done"] == 16 and done["stroke_scale"] == 2.0, done
    result = httpx.get(f"{stack.url}/v1/videos/{job['id']}/result", timeout=60)
    assert result.status_code == 200 and result.headers["content-type"] == "video/mp4"
    assert result.headers["x-stroke-scale"] == "2"
    got = decoded_frames(result.content, tmp_path)
    assert len(got) == 16 and got[0].shape == (96, 160, 3)
    assert job["id"] in logs(stack, stack.ids("video-worker")[0])  # rendered there, not on a replica
    assert all("video job done" not in logs(stack, r) for r in stack.ids("atelier"))
    # A bad upload: accepted unprobed, then failed by the worker with the reason, never stuck.
    bad = httpx.post(stack.url + "/v1/videos", files={"video": ("x.mp4", b"not a video" * 100, "video/mp4")},
                     data={"preset": "5"}, timeout=60)  # fmt: skip
    assert bad.status_code == 202, bad.text
    failed = poll_video(stack, bad.json()["id"], ("done", "failed", "cancelled"), 60)
    assert failed["status"] == "failed" and "not a video" in failed["error"], failed


def test_a_video_worker_killed_mid_job_leaves_the_job_retried(stack: Stack, image_dir: Path, tmp_path: Path):
    wait_until(lambda: worker_ready(stack), 120, "the video worker did not load its models")
    clip = make_clip(image_dir, tmp_path / "long.mp4", 96, (256, 160))
    answer = submit_video(stack, clip)
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["id"]
    running = poll_video(stack, job_id, ("running", "done", "failed"), 120)
    wait_until(lambda: httpx.get(f"{stack.url}/v1/videos/{job_id}", timeout=10).json()["frames_done"] > 2, 60,
               "the job's first frames")  # fmt: skip
    worker = stack.ids("video-worker")[0]
    stack.engine.docker("kill", worker)  # SIGKILL: no chance to finish or report
    killed_at = time.monotonic()
    seen: list[dict] = []
    try:  # compose's restart policy starts it again; else start it by its id
        wait_until(lambda: stack.engine.inspect(worker, "{{.State.Running}}") == "true", 15, "restart policy")
    except AssertionError:
        stack.engine.docker("start", worker)
    final = poll_video(stack, job_id, ("done", "failed", "cancelled"), 240, seen)
    statuses = [j["status"] for j in seen]
    report = {"statuses_after_kill": sorted(set(statuses)), "seconds_to_end": round(time.monotonic() - killed_at, 1),
              "attempts": final["attempts"], "first": running["status"]}  # fmt: skip
    print(f"video worker killed mid-job: {report}")
    assert final["status"] == "done" and final["attempts"] == 1, (final, report)
    assert "queued" in statuses, report  # queued again after the lease, then rendered from frame 0
    result = httpx.get(f"{stack.url}/v1/videos/{job_id}/result", timeout=60)
    assert result.status_code == 200 and len(decoded_frames(result.content, tmp_path)) == 96


def test_redis_stopped_and_restarted_gives_no_5xx(stack: Stack, registered: dict):
    redis_id = stack.ids("redis")[0]
    outcomes = paced_load(stack.url, count=40, clients=2, per_second=8, disrupt_after=8, style_id=registered["id"],
                          disrupt=lambda: stack.engine.docker("stop", redis_id))  # fmt: skip
    stack.engine.docker("start", redis_id)
    wait_until(lambda: stack.engine.inspect(redis_id, "{{.State.Health.Status}}") == "healthy", 60, "Redis back")
    after = paced_load(stack.url, count=16, clients=2, per_second=8, disrupt_after=0, style_id=registered["id"],
                       disrupt=lambda: None)  # fmt: skip
    statuses = Counter(status for status, _ in outcomes + after)
    print(f"Redis stopped and restarted under load: {dict(statuses)}")
    assert all(status < 500 and status != CUT_SHORT for status in statuses), statuses
    assert statuses[200] >= len(outcomes + after) - 4, statuses  # paced under the gateway's rate limit
    # The registration survived the restart (the AOF on the named volume), through either replica.
    for _ in range(2):
        assert httpx.get(f"{stack.url}/v1/styles/{registered['id']}", timeout=10).json() == registered


def test_a_replica_killed_under_load(stack: Stack, registered: dict):
    victim = stack.ids("atelier")[1]
    killed_at: list[float] = []

    def kill() -> None:
        stack.engine.docker("kill", victim)
        killed_at.append(time.monotonic())

    outcomes = paced_load(stack.url, count=60, clients=3, per_second=8, disrupt_after=18, disrupt=kill,
                          style_id=registered["id"])  # fmt: skip
    counts = Counter(status for status, _ in outcomes)
    gateway_log = stack.compose("logs", "--no-color", "gateway").stdout
    report = {
        "requests": len(outcomes), "statuses": {str(k): v for k, v in sorted(counts.items())},
        # what nginx saw of the killed replica (connections refused or reset, retried on the other)
        "gateway_error_lines": sum("[error]" in line for line in gateway_log.splitlines()),
        "victim_restarts_by_policy": int(stack.engine.inspect(victim, "{{.RestartCount}}")),
    }  # fmt: skip
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "kill-replica.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"replica killed under load: {report}")
    for status, retry_after in outcomes:
        assert status == 200 or status == CUT_SHORT or status in RETRYABLE, status
        assert status in (200, CUT_SHORT) or retry_after, f"{status} without Retry-After"
    assert counts[200] >= 40, counts
    # Back to two replicas: the killed one starts again (compose's restart policy, or here by id).
    if stack.engine.inspect(victim, "{{.State.Running}}") != "true":
        stack.engine.docker("start", victim)
    wait_until(lambda: stack.healthy("atelier", 2), 180, "the killed replica did not come back healthy")
    stack.reload_gateway()  # its address may have changed; nginx resolves `atelier` again


def test_gateway_answers_429_as_problem_json(stack: Stack):
    # One pooled client: a new client per request spends its time on set-up, under the rate.
    with httpx.Client(base_url=stack.url, timeout=10, limits=httpx.Limits(max_connections=16)) as client, \
            ThreadPoolExecutor(16) as pool:  # fmt: skip
        responses = list(pool.map(lambda _: client.get("/v1/models"), range(60)))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 429} and statuses.count(429) >= 10, statuses
    limited = next(r for r in responses if r.status_code == 429)
    assert limited.headers["retry-after"] == "1"
    assert limited.headers["content-type"] == "application/problem+json"
    assert limited.json()["type"] == "urn:atelier:problem:rate-limited"
    time.sleep(2.5)  # the bucket refills (10/s) before the next test's traffic


def test_scale_to_three_replicas_gets_each_traffic_after_reload(stack: Stack):
    stack.compose("up", "--detach", "--no-build", "--no-recreate", "--scale", "atelier=3", timeout=600)
    wait_until(lambda: stack.healthy("atelier", 3), 180, "the third replica did not turn healthy")
    stack.reload_gateway()  # the documented step: nginx 1.22 resolves `atelier` at (re)load only
    sent = []
    for n in range(12):
        request_id = f"scale-{n}-{secrets.token_hex(4)}"
        response = httpx.post(stack.url + "/v1/stylize", data={"preset": "2", "max_side": "96"},
                              files={"content": CONTENT}, headers={"X-Request-ID": request_id}, timeout=60)  # fmt: skip
        assert response.status_code == 200, response.text
        sent.append(request_id)
        time.sleep(0.15)
    served = {replica: len(stack.request_ids_served(replica) & set(sent)) for replica in stack.ids("atelier")}
    print(f"after --scale atelier=3 and the reload: {served}")
    assert len(served) == 3 and all(served.values()), served


def test_down_leaves_nothing_behind(stack: Stack):
    stack.compose("down", "--volumes", "--timeout", "30")
    label = f"label=com.docker.compose.project={stack.project}"
    assert stack.engine.docker("ps", "--all", "--quiet", "--filter", label).stdout.split() == []
    assert stack.engine.docker("network", "ls", "--quiet", "--filter", label).stdout.split() == []
    assert stack.engine.docker("volume", "ls", "--quiet", "--filter", label).stdout.split() == []
    for container in stack.containers:
        assert stack.engine.docker("inspect", container, check=False).returncode != 0, container
