"""Video jobs: the job record, its two stores (in-process; Redis), the two dispatchers and the job runner.

- With ``ATELIER_REDIS_URL`` set, records live in Redis hashes (``atelier:video:job:<id>``) and jobs
  go on an RQ queue (``atelier-video``) that ``python -m service.video_worker`` processes consume, so
  workers scale apart from the HTTP replicas and a record survives a replica restart. Uploads and
  results live in ``ATELIER_VIDEO_DIR``, which replicas and workers share (a volume).
- Without it (the embedded default), records live in this process and a bounded thread pool of
  ``ATELIER_VIDEO_WORKERS`` threads runs the jobs: the same API, lost on restart.

Status moves queued -> running -> done | failed | cancelled, and only forward: every transition is
conditional on the current status (a Lua script in Redis), so a cancel and a finishing worker cannot
both win. A running job's worker writes a heartbeat with each frame; a job whose heartbeat is older
than ``ATELIER_VIDEO_LEASE_S`` (its worker was killed or lost) is, when next read, queued again on RQ
from its first frame (at most ``ATELIER_VIDEO_RETRIES`` times, while its upload is there), else
marked failed: never left "running". Finished jobs and their files expire after
``ATELIER_VIDEO_RESULT_TTL_S``.

A replica without PyAV (the slim atelier:cpu image, which carries RQ only) cannot probe an upload:
it stores the upload and queues the job with no ``info``, and the worker probes it first (a bad clip
then ends as a failed job whose ``error`` says why, rather than a 4xx at upload).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields, replace
from fractions import Fraction
from pathlib import Path
from typing import Literal, Protocol

import redis

from service.config import Settings
from service.errors import AtelierError, Overloaded
from service.metrics import Metrics
from service.registry import ModelRegistry
from service.video_errors import JobCancelled, VideoSupportMissing
from service.video_io import VideoInfo, require_video_support, video_support
from service.video_render import VideoSpec, probe_clip, render

log = logging.getLogger(__name__)

Status = Literal["queued", "running", "done", "failed", "cancelled"]
ACTIVE: tuple[Status, ...] = ("queued", "running")
TERMINAL: tuple[Status, ...] = ("done", "failed", "cancelled")
QUEUE_NAME = "atelier-video"
_PREFIX = "atelier:video:"
_ACTIVE_SET = _PREFIX + "active"


@dataclass
class JobRecord:
    id: str
    owner: str
    status: Status
    spec: VideoSpec
    info: VideoInfo | None  # None until a worker probes an upload that the replica could not
    frames_done: int = 0
    error: str | None = None
    created: float = field(default_factory=time.time)
    heartbeat: float = field(default_factory=time.time)
    expires: float | None = None  # set when the job ends
    stroke_scale: float | None = None  # the brush size it runs at, once the clip's size is known
    attempts: int = 0  # times a worker was given the job again after its first worker died

    @property
    def frames_total(self) -> int:
        return self.info.frames if self.info is not None else 0

    @property
    def container(self) -> str:
        return self.info.container if self.info is not None else "mp4"

    @property
    def progress(self) -> float:
        if self.status == "done":
            return 1.0
        return min(1.0, self.frames_done / self.frames_total) if self.frames_total else 0.0

    def public(self) -> dict[str, object]:
        return {
            "id": self.id,
            "status": self.status,
            "progress": round(self.progress, 4),
            "frames_done": self.frames_done,
            "frames_total": self.frames_total,
            "error": self.error,
            "stroke_scale": self.stroke_scale,
            "attempts": self.attempts,
        }

    def to_fields(self) -> dict[str, str]:
        return {
            "id": self.id,
            "owner": self.owner,
            "status": self.status,
            "spec": json.dumps(self.spec.to_dict()),
            "info": info_json(self.info),
            "frames_done": str(self.frames_done),
            "error": self.error or "",
            "created": repr(self.created),
            "heartbeat": repr(self.heartbeat),
            "expires": repr(self.expires) if self.expires is not None else "",
            "stroke_scale": repr(self.stroke_scale) if self.stroke_scale is not None else "",
            "attempts": str(self.attempts),
        }

    @classmethod
    def from_fields(cls, data: dict[str, str]) -> JobRecord:
        return cls(
            id=data["id"],
            owner=data["owner"],
            status=data["status"],  # type: ignore[arg-type]
            spec=VideoSpec(**json.loads(data["spec"])),
            info=info_from_json(data.get("info") or ""),
            frames_done=int(data.get("frames_done") or 0),
            error=data.get("error") or None,
            created=float(data["created"]),
            heartbeat=float(data.get("heartbeat") or data["created"]),
            expires=float(data["expires"]) if data.get("expires") else None,
            stroke_scale=float(data["stroke_scale"]) if data.get("stroke_scale") else None,
            attempts=int(data.get("attempts") or 0),
        )


def info_json(info: VideoInfo | None) -> str:
    return json.dumps({**asdict(info), "rate": str(info.rate)}) if info is not None else ""


def info_from_json(text: str) -> VideoInfo | None:
    if not text:
        return None
    info = json.loads(text)
    info["rate"] = Fraction(info["rate"])
    return VideoInfo(**{f.name: info[f.name] for f in fields(VideoInfo)})


class JobStore(Protocol):
    def create(self, record: JobRecord, limit: int) -> None: ...
    def get(self, job_id: str) -> JobRecord | None: ...
    def transition(self, job_id: str, to: Status, allowed: tuple[Status, ...], error: str | None = None) -> bool: ...
    def progress(self, job_id: str, frames_done: int) -> Status | None: ...
    def describe(self, job_id: str, info: VideoInfo, stroke_scale: float) -> None: ...
    def requeue(self, job_id: str) -> bool: ...
    def active_ids(self) -> list[str]: ...
    def delete(self, job_id: str) -> None: ...


class LocalStore:
    """Records in this process, behind one lock."""

    def __init__(self, result_ttl_s: float) -> None:
        self.result_ttl_s = result_ttl_s
        self._lock = threading.Lock()
        self._jobs: dict[str, JobRecord] = {}

    def create(self, record: JobRecord, limit: int) -> None:
        with self._lock:
            active = sum(r.status in ACTIVE for r in self._jobs.values())
            if active >= limit:
                raise Overloaded(f"{active} video jobs are queued or running, the limit; retry later", 5)
            self._jobs[record.id] = replace(record)  # the caller keeps its copy as submitted

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            record = self._jobs.get(job_id)
            return replace(record) if record is not None else None

    def transition(self, job_id: str, to: Status, allowed: tuple[Status, ...], error: str | None = None) -> bool:
        with self._lock:
            record = self._jobs.get(job_id)
            if record is None or record.status not in allowed:
                return False
            record.status, record.heartbeat = to, time.time()
            if error is not None:
                record.error = error
            if to in TERMINAL:
                record.expires = time.time() + self.result_ttl_s
            return True

    def progress(self, job_id: str, frames_done: int) -> Status | None:
        with self._lock:
            record = self._jobs.get(job_id)
            if record is None:
                return None
            if record.status == "running":
                record.frames_done, record.heartbeat = frames_done, time.time()
            return record.status

    def describe(self, job_id: str, info: VideoInfo, stroke_scale: float) -> None:
        with self._lock:
            record = self._jobs.get(job_id)
            if record is not None:
                record.info, record.stroke_scale = info, stroke_scale

    def requeue(self, job_id: str) -> bool:
        with self._lock:
            record = self._jobs.get(job_id)
            if record is None or record.status != "running":
                return False
            record.status, record.frames_done, record.heartbeat = "queued", 0, time.time()
            record.attempts += 1
            return True

    def active_ids(self) -> list[str]:
        with self._lock:
            return [r.id for r in self._jobs.values() if r.status in ACTIVE]

    def delete(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)


# KEYS[1] the job hash, KEYS[2] the active set; ARGV: to, now, ttl, error, id, allowed...
_TRANSITION = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 0 end
local ok = false
for i = 6, #ARGV do if ARGV[i] == status then ok = true end end
if not ok then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'heartbeat', ARGV[2])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[4]) end
if ARGV[1] == 'done' or ARGV[1] == 'failed' or ARGV[1] == 'cancelled' then
  redis.call('HSET', KEYS[1], 'expires', tostring(tonumber(ARGV[2]) + tonumber(ARGV[3])))
  redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3])))
  redis.call('SREM', KEYS[2], ARGV[5])
end
return 1
"""

# KEYS[1] the job hash; ARGV: frames_done, now. Progress only while running; returns the status.
_PROGRESS = """
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'running' then redis.call('HSET', KEYS[1], 'frames_done', ARGV[1], 'heartbeat', ARGV[2]) end
return status
"""

# KEYS[1] the job hash; ARGV: info, stroke_scale. Only on a record that is there.
_DESCRIBE = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'info', ARGV[1], 'stroke_scale', ARGV[2]) end
return 1
"""

# KEYS[1] the job hash; ARGV: now. A running job (its worker dead) back to queued, from frame 0.
_REQUEUE = """
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'queued', 'frames_done', '0', 'heartbeat', ARGV[1])
return redis.call('HINCRBY', KEYS[1], 'attempts', 1)
"""

# KEYS[1] the job hash, KEYS[2] the active set; ARGV: limit, id, field/value pairs...
_CREATE = """
if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[1]) then return 0 end
redis.call('SADD', KEYS[2], ARGV[2])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""


class RedisStore:
    """Records in Redis hashes; the active set bounds the jobs queued or running across all replicas."""

    def __init__(self, client: redis.Redis, result_ttl_s: float) -> None:
        self.client = client
        self.result_ttl_s = result_ttl_s
        self._transition = client.register_script(_TRANSITION)
        self._progress = client.register_script(_PROGRESS)
        self._create = client.register_script(_CREATE)
        self._describe = client.register_script(_DESCRIBE)
        self._requeue = client.register_script(_REQUEUE)

    @staticmethod
    def key(job_id: str) -> str:
        return f"{_PREFIX}job:{job_id}"

    def create(self, record: JobRecord, limit: int) -> None:
        pairs = [item for kv in record.to_fields().items() for item in kv]
        if not self._create(keys=[self.key(record.id), _ACTIVE_SET], args=[limit, record.id, *pairs]):
            raise Overloaded(f"{limit} video jobs are queued or running, the limit; retry later", 5)

    def get(self, job_id: str) -> JobRecord | None:
        data = self.client.hgetall(self.key(job_id))
        if not data:
            return None
        return JobRecord.from_fields({k.decode(): v.decode() for k, v in data.items()})

    def transition(self, job_id: str, to: Status, allowed: tuple[Status, ...], error: str | None = None) -> bool:
        args = [to, repr(time.time()), self.result_ttl_s, error or "", job_id, *allowed]
        return bool(self._transition(keys=[self.key(job_id), _ACTIVE_SET], args=args))

    def progress(self, job_id: str, frames_done: int) -> Status | None:
        status = self._progress(keys=[self.key(job_id)], args=[frames_done, repr(time.time())])
        return status.decode() if status else None  # type: ignore[return-value]

    def describe(self, job_id: str, info: VideoInfo, stroke_scale: float) -> None:
        self._describe(keys=[self.key(job_id)], args=[info_json(info), repr(stroke_scale)])

    def requeue(self, job_id: str) -> bool:
        return bool(self._requeue(keys=[self.key(job_id)], args=[repr(time.time())]))

    def active_ids(self) -> list[str]:
        ids = [m.decode() for m in self.client.smembers(_ACTIVE_SET)]
        for job_id in ids:  # a record that is gone (never finished: flushed, say) frees its slot
            if not self.client.exists(self.key(job_id)):
                self.client.srem(_ACTIVE_SET, job_id)
        return [i for i in ids if self.client.exists(self.key(i))]

    def delete(self, job_id: str) -> None:
        self.client.delete(self.key(job_id))
        self.client.srem(_ACTIVE_SET, job_id)


def new_job_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class JobFiles:
    root: Path

    def source(self, job_id: str) -> Path:
        return self.root / f"{job_id}.in"

    def result(self, job_id: str, container: str) -> Path:
        return self.root / f"{job_id}.out.{'mp4' if container == 'mp4' else 'mkv'}"

    def partial(self, job_id: str, attempt: int, container: str) -> Path:
        """Where an attempt writes; renamed onto ``result`` once whole, so a late worker of an earlier
        attempt never writes into the file a later one is writing."""
        return self.root / f"{job_id}.part{attempt}.{'mp4' if container == 'mp4' else 'mkv'}"

    def remove(self, job_id: str) -> None:
        for path in self.root.glob(f"{job_id}.*"):
            path.unlink(missing_ok=True)

    def sweep(self, older_than_s: float) -> None:
        """Delete files left past their expiry (the Redis record expires by itself; files do not)."""
        cutoff = time.time() - older_than_s
        for path in self.root.glob("*.*"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink(missing_ok=True)
            except OSError:
                pass


class JobRunner:
    """Runs one job to its end: whatever happens, the record leaves ``running``."""

    def __init__(self, settings: Settings, store: JobStore, registry: ModelRegistry, metrics: Metrics) -> None:
        self.settings = settings
        self.store = store
        self.registry = registry
        self.metrics = metrics
        self.files = JobFiles(settings.video_dir)

    def run(self, job_id: str) -> None:
        record = self.store.get(job_id)
        if record is None or not self.store.transition(job_id, "running", ("queued",)):
            return  # cancelled (or expired) before a worker took it
        self.metrics.video_jobs.labels("running").inc()
        source = self.files.source(job_id)
        partial: Path | None = None
        try:
            info, scale = self._describe(record)
            model = self.registry.get(record.spec.model)

            def on_frame(done: int, seconds: float) -> None:
                self.metrics.video_frames.inc()
                self.metrics.video_frame_seconds.observe(seconds)
                if self.store.progress(job_id, done) != "running":
                    raise JobCancelled(job_id)

            partial = self.files.partial(job_id, record.attempts, info.container)
            cap = self.settings.max_output_side
            threads = self.settings.video_encoder_threads
            render(model, record.spec, source, partial, info, cap, on_frame, threads, scale)
            partial.replace(self.files.result(job_id, info.container))
        except JobCancelled:
            if partial is not None:
                partial.unlink(missing_ok=True)
            if self._status(job_id) != "queued":  # queued again: the next attempt needs the upload
                source.unlink(missing_ok=True)
            log.info("video job stopped (cancelled, or queued again)", extra={"job": job_id})
            return
        except AtelierError as exc:
            self._fail(job_id, exc.detail, source, partial)
            return
        except Exception:
            log.exception("video job failed", extra={"job": job_id})
            self._fail(job_id, "internal error while rendering; see the worker's logs", source, partial)
            return
        source.unlink(missing_ok=True)
        self._end(job_id, "done")
        log.info("video job done", extra={"job": job_id, "frames": info.frames, "stroke_scale": scale})

    def _describe(self, record: JobRecord) -> tuple[VideoInfo, float]:
        """The clip's info and the brush size it runs at: probed here when the replica had no PyAV."""
        if record.info is not None and record.stroke_scale is not None:
            return record.info, record.stroke_scale
        info, scale = probe_clip(self.files.source(record.id), record.spec, self.settings)
        self.store.describe(record.id, info, scale)
        return info, scale

    def _status(self, job_id: str) -> Status | None:
        record = self.store.get(job_id)
        return record.status if record is not None else None

    def _fail(self, job_id: str, error: str, source: Path, partial: Path | None) -> None:
        self._end(job_id, "failed", error)
        source.unlink(missing_ok=True)
        if partial is not None:
            partial.unlink(missing_ok=True)

    def _end(self, job_id: str, status: Status, error: str | None = None) -> None:
        if self.store.transition(job_id, status, ("running",), error):
            self.metrics.video_jobs.labels(status).inc()


class Dispatcher(Protocol):
    retries_dead_workers: bool  # a job whose worker died can be given to another worker

    def submit(self, job_id: str, attempt: int = 0) -> None: ...
    def depth(self) -> int: ...
    def close(self) -> None: ...


class LocalDispatcher:
    """The embedded default: a bounded pool of threads in this process (the active limit bounds its queue)."""

    retries_dead_workers = False  # a thread without heartbeats is stuck, not dead: its job fails

    def __init__(self, runner: JobRunner, workers: int) -> None:
        self.runner = runner
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="video")
        self._queued = 0
        self._lock = threading.Lock()

    def submit(self, job_id: str, attempt: int = 0) -> None:
        with self._lock:
            self._queued += 1
        self._pool.submit(self._run, job_id)

    def _run(self, job_id: str) -> None:
        with self._lock:
            self._queued -= 1
        self.runner.run(job_id)

    def depth(self) -> int:
        with self._lock:
            return self._queued

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class RQDispatcher:
    """Jobs on RQ: ``service.video_worker.run_job(id)`` runs in a ``python -m service.video_worker`` process."""

    retries_dead_workers = True

    def __init__(self, client: redis.Redis, job_timeout_s: int) -> None:
        try:
            from rq import Queue
        except ImportError:  # the `video` extra is absent (the slim image): the replica serves images only
            self.queue = None
        else:
            self.queue = Queue(QUEUE_NAME, connection=client)
        self.job_timeout_s = job_timeout_s

    @property
    def can_queue(self) -> bool:
        return self.queue is not None

    def submit(self, job_id: str, attempt: int = 0) -> None:
        if self.queue is None:
            require_video_support()
            raise VideoSupportMissing("this server was installed without RQ: pip install 'atelier[video]'")
        self.queue.enqueue(
            "service.video_worker.run_job",
            job_id,
            job_id=job_id if attempt == 0 else f"{job_id}-{attempt}",  # RQ keeps the dead attempt's job
            job_timeout=self.job_timeout_s,
            result_ttl=0,
            failure_ttl=24 * 3600,
        )

    def depth(self) -> int:
        return len(self.queue) if self.queue is not None else 0

    def close(self) -> None:
        pass


class VideoJobs:
    """What the routes call: submit, read (reaping dead workers' jobs), cancel, the result file."""

    def __init__(self, settings: Settings, store: JobStore, dispatcher: Dispatcher, metrics: Metrics) -> None:
        self.settings = settings
        self.store = store
        self.dispatcher = dispatcher
        self.metrics = metrics
        self.files = JobFiles(settings.video_dir)  # created at the first upload, not at start-up

    @property
    def probes_on_worker(self) -> bool:
        """No PyAV here, but RQ workers that have it: uploads are probed by the worker that takes them."""
        return isinstance(self.dispatcher, RQDispatcher) and self.dispatcher.can_queue and not video_support()

    def submit(self, record: JobRecord) -> None:
        self.files.sweep(self.settings.video_result_ttl_s + 3600)
        self.store.create(record, self.settings.video_max_jobs)
        self.metrics.video_jobs.labels("queued").inc()
        try:
            self.dispatcher.submit(record.id)
        except Exception:
            self.store.transition(record.id, "failed", ACTIVE, "the job could not be queued")
            raise
        self.refresh_depth()

    def get(self, job_id: str, owner: str) -> JobRecord | None:
        record = self.store.get(job_id)
        if record is None or record.owner != owner:
            return None
        if record.expires is not None and record.expires < time.time():
            self.store.delete(job_id)
            self.files.remove(job_id)
            return None
        if record.status == "running" and time.time() - record.heartbeat > self.settings.video_lease_s:
            self._reap(record)
            record = self.store.get(job_id) or record
        return record

    def _reap(self, record: JobRecord) -> None:
        """A running job without heartbeats for the lease: its worker died. Queue it again, else fail it."""
        lease = self.settings.video_lease_s
        retry = (
            self.dispatcher.retries_dead_workers
            and record.attempts < self.settings.video_retries
            and self.files.source(record.id).is_file()
        )
        if retry and self.store.requeue(record.id):
            try:
                self.dispatcher.submit(record.id, record.attempts + 1)
            except Exception:
                log.exception("video job %s could not be queued again", record.id)
                self.store.transition(
                    record.id, "failed", ACTIVE, "the job's worker died and it could not be queued again"
                )
                return
            self.metrics.video_jobs.labels("retried").inc()
            log.warning("video job %s queued again: no heartbeat for %.0f s (its worker died)", record.id, lease)
            return
        error = "the video worker stopped mid-job (killed or lost); submit the clip again"
        if self.store.transition(record.id, "failed", ("running",), error):
            self.metrics.video_jobs.labels("failed").inc()
            log.warning("video job %s failed: no heartbeat for %.0f s", record.id, lease)

    def cancel(self, job_id: str) -> bool:
        if self.store.transition(job_id, "cancelled", ACTIVE, "cancelled by the client"):
            self.metrics.video_jobs.labels("cancelled").inc()
            return True
        return False

    def result_path(self, record: JobRecord) -> Path:
        return self.files.result(record.id, record.container)

    def refresh_depth(self) -> None:
        for job_id in self.store.active_ids():  # reaps the active jobs of dead workers too
            record = self.store.get(job_id)
            if record is not None:
                self.get(job_id, record.owner)
        self.metrics.video_queue_depth.set(self.dispatcher.depth())

    def close(self) -> None:
        if isinstance(self.dispatcher, LocalDispatcher):  # its jobs die with this process: say so
            for job_id in self.store.active_ids():
                self.store.transition(job_id, "failed", ACTIVE, "the server stopped before the job finished")
        self.dispatcher.close()


def video_redis(settings: Settings) -> redis.Redis:
    assert settings.redis_url is not None
    return redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=2)


def build_video_jobs(settings: Settings, registry: ModelRegistry, metrics: Metrics) -> VideoJobs:
    if settings.redis_url is None:
        store: JobStore = LocalStore(settings.video_result_ttl_s)
        runner = JobRunner(settings, store, registry, metrics)
        return VideoJobs(settings, store, LocalDispatcher(runner, settings.video_workers), metrics)
    client = video_redis(settings)
    store = RedisStore(client, settings.video_result_ttl_s)
    return VideoJobs(settings, store, RQDispatcher(client, settings.video_job_timeout_s), metrics)
