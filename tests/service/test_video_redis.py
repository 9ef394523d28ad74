"""Video jobs with Redis: RQ workers in their own process, two HTTP replicas sharing Redis and the video folder.

A job submitted through one replica is polled and fetched through the other, and survives a restart
of the replica it was submitted to; a worker SIGKILLed mid-job leaves a job that is queued again once
(ATELIER_VIDEO_RETRIES) and rendered by the next worker, and fails when its second worker dies too. A
replica without PyAV (the slim image) queues uploads unprobed and the worker probes them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import httpx
import pytest

from service.video_synth import frames, write_clip
from tests.helpers.deploy import RedisServer
from tests.helpers.server import REPO, LiveServer, free_port, start_server, stop_server

pytestmark = pytest.mark.slow

KEYS = ("video-key-one", "video-key-two")


@dataclass
class Stack:
    redis: RedisServer
    env: dict[str, str]
    replicas: list[LiveServer]
    workdir: Path
    model_dir: Path
    worker: subprocess.Popen | None = None

    def start_worker(self) -> subprocess.Popen:
        log = (self.workdir / "worker.log").open("a")
        env = {**os.environ, **self.env, "ATELIER_MODEL_DIR": str(self.model_dir)}
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "service.video_worker"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        return self.worker

    def worker_log(self) -> str:
        return (self.workdir / "worker.log").read_text()


def _folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def stack(model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("video-redis")
    redis = RedisServer(free_port(), workdir / "redis")
    redis.start()
    env = {
        "ATELIER_REDIS_URL": redis.url,
        "ATELIER_VIDEO_DIR": str(workdir / "videos"),
        "ATELIER_VIDEO_LEASE_S": "3",
        "ATELIER_API_KEYS": ",".join(KEYS),
        "ATELIER_INTRA_OP_THREADS": "1",
        "ATELIER_CODEC_THREADS": "1",
    }
    replicas = [start_server(model_repository, _folder(workdir / f"replica-{i}"), env) for i in range(2)]
    built = Stack(redis, env, replicas, workdir, model_repository)
    built.start_worker()
    try:
        yield built
    finally:
        for replica in built.replicas:
            stop_server(replica)
        if built.worker is not None and built.worker.poll() is None:
            built.worker.kill()
            built.worker.wait()
        redis.stop()


def client(replica: LiveServer, key: str = KEYS[0]) -> httpx.Client:
    return replica.client(headers={"Authorization": f"Bearer {key}"})


def submit(http: httpx.Client, path: Path) -> httpx.Response:
    with path.open("rb") as f:
        return http.post("/v1/videos", files={"video": (path.name, f, "video/mp4")}, data={"preset": "5"})


def wait(http: httpx.Client, job_id: str, until: tuple[str, ...], timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    job: dict = {}
    while time.monotonic() < deadline:
        job = http.get(f"/v1/videos/{job_id}").json()
        if job.get("status") in until:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {job} after {timeout_s} s")


def test_submit_on_one_replica_poll_and_fetch_on_another(stack: Stack, image_dir: Path, tmp_path: Path) -> None:
    clip = tmp_path / "pan.mp4"
    write_clip(clip, (f.rgb for f in frames(image_dir / "content" / "tubingen.jpg", "pan", 16, (128, 96))), fps=16)
    a, b = stack.replicas
    with client(a) as on_a, client(b) as on_b, client(b, KEYS[1]) as other_key:
        answer = submit(on_a, clip)
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["id"]
        assert other_key.get(f"/v1/videos/{job_id}").status_code == 404  # jobs are private to their key
        done = wait(on_b, job_id, ("done", "failed"))
        assert done["status"] == "done", (done, stack.worker_log()[-2000:])
        result = on_b.get(f"/v1/videos/{job_id}/result")
        assert result.status_code == 200
    (tmp_path / "out.mp4").write_bytes(result.content)
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 16
    # The record lives in Redis: a restarted replica still knows the job.
    stop_server(a)
    stack.replicas[0] = start_server(stack.model_dir, _folder(stack.workdir / "replica-0-again"), stack.env)
    with client(stack.replicas[0]) as restarted:
        assert restarted.get(f"/v1/videos/{job_id}").json()["status"] == "done"
        assert restarted.get(f"/v1/videos/{job_id}/result").content == result.content


def _running_past(http: httpx.Client, job_id: str, frames: int, stack: Stack) -> dict:
    deadline = time.monotonic() + 90
    job: dict = {}
    while time.monotonic() < deadline:
        job = http.get(f"/v1/videos/{job_id}").json()
        if job["status"] == "running" and job["frames_done"] > frames:
            return job
        time.sleep(0.1)
    raise AssertionError((job, stack.worker_log()[-2000:]))


def _kill_worker(stack: Stack) -> None:
    assert stack.worker is not None
    stack.worker.send_signal(signal.SIGKILL)
    stack.worker.wait()


def test_worker_killed_mid_job_gets_the_job_retried_once_then_failed(
    stack: Stack, image_dir: Path, tmp_path: Path
) -> None:
    clip = tmp_path / "long.mp4"
    source = frames(image_dir / "content" / "tubingen.jpg", "zoom", 300, (320, 192))
    write_clip(clip, (f.rgb for f in source), fps=25)
    a, b = stack.replicas
    with client(a) as on_a, client(b) as on_b:
        job_id = submit(on_a, clip).json()["id"]
        _running_past(on_b, job_id, 2, stack)
        _kill_worker(stack)
        # No heartbeat for the lease (3 s): queued again from frame 0, not failed, not left running.
        requeued = wait(on_b, job_id, ("queued", "done", "failed", "cancelled"), timeout_s=30)
        assert requeued["status"] == "queued" and requeued["attempts"] == 1 and requeued["frames_done"] == 0
        stack.start_worker()  # the next worker takes it
        _running_past(on_a, job_id, 2, stack)
        _kill_worker(stack)  # its second worker dies too: the retries are spent
        final = wait(on_b, job_id, ("done", "failed", "cancelled"), timeout_s=30)
        assert final["status"] == "failed" and "worker" in final["error"] and final["attempts"] == 1, final
        assert final["frames_done"] < final["frames_total"]
        # Its slot is free, and a new worker takes new jobs.
        stack.start_worker()
        short = tmp_path / "short.mp4"
        write_clip(short, (f.rgb for f in frames(image_dir / "content" / "tubingen.jpg", "pan", 8, (128, 96))), fps=8)
        again = submit(on_a, short)
        assert again.status_code == 202
        assert wait(on_b, again.json()["id"], ("done", "failed"))["status"] == "done"


def test_a_replica_without_pyav_queues_unprobed_and_the_worker_probes(
    stack: Stack, image_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service import video_io
    from tests.helpers.in_process import in_process_client

    clip = tmp_path / "pan.mp4"
    write_clip(clip, (f.rgb for f in frames(image_dir / "content" / "tubingen.jpg", "pan", 12, (128, 96))), fps=12)
    monkeypatch.setattr(video_io, "av", None)  # as in atelier:cpu, which carries RQ but not PyAV
    settings = {"redis_url": stack.redis.url, "video_dir": Path(stack.env["ATELIER_VIDEO_DIR"]), "api_keys": list(KEYS)}
    with in_process_client(stack.model_dir, tmp_path, **settings) as slim, client(stack.replicas[1]) as full:
        slim.headers["Authorization"] = f"Bearer {KEYS[0]}"
        answer = submit(slim, clip)  # type: ignore[arg-type]
        assert answer.status_code == 202, answer.text
        job = answer.json()
        assert job["frames_total"] == 0 and job["stroke_scale"] is None, job
        done = wait(full, job["id"], ("done", "failed", "cancelled"))
        assert done["status"] == "done" and done["frames_total"] == 12 and done["stroke_scale"] == 1.0, done
        bad = slim.post(
            "/v1/videos", files={"video": ("x.mp4", b"not a video" * 64, "video/mp4")}, data={"preset": "5"}
        )
        assert bad.status_code == 202, bad.text
        failed = wait(full, bad.json()["id"], ("done", "failed", "cancelled"))
        assert failed["status"] == "failed" and "not a video" in failed["error"], failed
