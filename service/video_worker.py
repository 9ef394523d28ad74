"""A video worker process: ``python -m service.video_worker`` runs RQ jobs from the ``atelier-video`` queue.

It needs ``ATELIER_REDIS_URL`` and the same ``ATELIER_MODEL_DIR`` and ``ATELIER_VIDEO_DIR`` as the
HTTP replicas. It loads the models once and runs jobs in its own process (RQ's SimpleWorker: no fork
per job, since ONNX Runtime's thread pools do not survive a fork), one at a time; run more workers
to run more jobs at once. With ``ATELIER_VIDEO_METRICS_PORT`` set it serves its Prometheus metrics
(frames, frame time, jobs by status) on that port.
"""

from __future__ import annotations

import logging
import sys

from service.config import Settings
from service.logging import configure_logging
from service.metrics import Metrics
from service.registry import ModelRegistry
from service.video_jobs import QUEUE_NAME, JobRunner, RedisStore, video_redis

log = logging.getLogger("service.video_worker")
_runner: JobRunner | None = None


def run_job(job_id: str) -> None:
    """The RQ job function; the worker sets ``_runner`` before it takes jobs."""
    if _runner is None:
        raise RuntimeError("run_job runs inside `python -m service.video_worker`")
    _runner.run(job_id)


def main() -> int:
    settings = Settings()
    configure_logging(settings.log_level)
    if settings.redis_url is None:
        log.error("ATELIER_REDIS_URL is not set: without Redis the HTTP server runs video jobs itself")
        return 2
    from prometheus_client import start_http_server
    from rq import Queue, SimpleWorker

    metrics = Metrics()
    registry = ModelRegistry.load(settings)
    # Opened once the models are loaded: an answering port (compose's healthcheck) means ready.
    if settings.video_metrics_port:
        start_http_server(settings.video_metrics_port, addr=settings.host, registry=metrics.registry)
    client = video_redis(settings)
    runner = JobRunner(settings, RedisStore(client, settings.video_result_ttl_s), registry, metrics)
    # RQ imports the job function as service.video_worker, not as this __main__ module: set it there.
    import service.video_worker as job_module

    job_module._runner = runner
    settings.video_dir.mkdir(parents=True, exist_ok=True)
    log.info("video worker ready", extra={"models": [m.label for m in registry.all()], "queue": QUEUE_NAME})
    worker = SimpleWorker([Queue(QUEUE_NAME, connection=client)], connection=client)
    worker.work(with_scheduler=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
