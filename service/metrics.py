"""Every Prometheus metric the service exports, with its labels, in one registry per app instance.

In the spirit of Triton's metrics: requests and latency per route, time spent queued for a worker,
in the predictor, in the transformer and in image codecs, embedding-cache hits and misses, and an
info gauge naming each model, its version and its active execution provider.

A server of several processes (``ATELIER_PROCESSES``) runs prometheus_client's multiprocess mode:
``python -m service`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder before it starts them,
each process's metrics live in files there, and ``/metrics`` from any process adds them up, so a
scrape sees the whole server whichever process answers. Gauges say how: jobs in flight and cache
entries are summed over the live processes, Redis is up only if every process sees it, a model is
loaded if any process has it. A process that dies without its exit hook (SIGKILL, the OOM killer)
is restarted by uvicorn; its live gauges are dropped at the next scrape, its counters kept.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own setting; read when it is imported

# prometheus_client names a process's live-gauge files gauge_<mode>_<pid>.db
_LIVE_GAUGE_FILE = re.compile(r"gauge_live\w*?_(\d+)\.db")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self) -> None:
        self.multiprocess_dir = os.environ.get(MULTIPROCESS_DIR)
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "atelier_http_requests_total",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "atelier_http_request_duration_seconds",
            "HTTP request latency, end to end in the server",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_seconds = Histogram(
            "atelier_queue_duration_seconds",
            "time an item waited in the micro-batcher before its ONNX Runtime run",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inference_seconds = Histogram(
            "atelier_inference_duration_seconds",
            "ONNX Runtime time by model and stage (predictor, transformer)",
            ["model", "stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.codec_seconds = Histogram(
            "atelier_codec_duration_seconds",
            "image decode, resize and encode time",
            ["op"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.cache_hits = Counter(
            "atelier_embedding_cache_hits_total", "style embeddings served from the cache", ["model"], registry=r
        )
        self.cache_misses = Counter(
            "atelier_embedding_cache_misses_total", "style embeddings computed by the predictor", ["model"], registry=r
        )
        self.cache_entries = Gauge(
            "atelier_embedding_cache_entries", "embeddings held in the cache", multiprocess_mode="livesum", registry=r
        )
        self.backend_up = Gauge(
            "atelier_cache_backend_up",
            "1 while the shared backend (Redis) answers; 0 while the replica serves from local state",
            ["backend"],
            multiprocess_mode="livemin",
            registry=r,
        )
        self.backend_errors = Counter(
            "atelier_cache_backend_errors_total", "failed calls to the shared backend", ["backend", "op"], registry=r
        )
        self.in_flight = Gauge(
            "atelier_jobs_in_flight",
            "images admitted to the bounded queue, queued or running",
            multiprocess_mode="livesum",
            registry=r,
        )
        self.batch_size = Histogram(
            "atelier_batch_size",
            "items per ONNX Runtime run formed by the micro-batcher, by model and stage",
            ["model", "stage"],
            buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32),
            registry=r,
        )
        self.rejected = Counter(
            "atelier_rejected_total", "requests refused or ended early, by reason", ["reason"], registry=r
        )
        self.model_info = Gauge(
            "atelier_model_info",
            "1 for each loaded model version, with its kind and active execution provider",
            ["model", "version", "kind", "provider"],
            multiprocess_mode="livemax",
            registry=r,
        )

        self.video_jobs = Counter("atelier_video_jobs_total", "video jobs entering each status", ["status"], registry=r)
        self.video_frames = Counter("atelier_video_frames_total", "video frames stylised and encoded", registry=r)
        self.video_frame_seconds = Histogram(
            "atelier_video_frame_seconds",
            "time per video frame: decode, stylise, blend and encode (1 / frames per second)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.video_queue_depth = Gauge(
            "atelier_video_queue_depth",
            "video jobs waiting for a worker",
            multiprocess_mode="livemax",
            registry=r,
        )
        self.live_connections = Gauge(
            "atelier_live_connections", "open /v1/live WebSockets", multiprocess_mode="livesum", registry=r
        )
        self.live_refused = Counter(
            "atelier_live_refused_total", "/v1/live WebSockets closed at the start, by reason", ["reason"], registry=r
        )
        self.live_frames_in = Counter("atelier_live_frames_received_total", "frames received on /v1/live", registry=r)
        self.live_frames_out = Counter(
            "atelier_live_frames_painted_total", "painted frames sent on /v1/live", registry=r
        )
        self.live_frames_dropped = Counter(
            "atelier_live_frames_dropped_total",
            "/v1/live frames not painted: stale (a newer one came), rate, too-large, bad-frame, no-style, "
            "overloaded, disconnected, error",
            ["reason"],
            registry=r,
        )
        self.live_frames_held = Gauge(
            "atelier_live_frames_held",
            "/v1/live frames held by the server, painting or waiting (at most two per connection)",
            multiprocess_mode="livesum",
            registry=r,
        )

    def render(self) -> bytes:
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        forget_dead_processes(self.multiprocess_dir)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=self.multiprocess_dir)
        return generate_latest(merged)

    def process_exited(self) -> None:
        """Drop this process's live gauges from the server's sums (multiprocess mode; its counters stay)."""
        if self.multiprocess_dir is not None:
            mark_process_dead(os.getpid(), self.multiprocess_dir)


def forget_dead_processes(multiprocess_dir: str) -> None:
    """Drop the live gauges of processes that are gone without saying so. The folder belongs to one
    server start, so every pid in it was one of its processes; a killed one would otherwise keep its
    jobs in flight and cache entries in the sums until the server restarts."""
    for path in Path(multiprocess_dir).glob("gauge_live*_*.db"):
        match = _LIVE_GAUGE_FILE.fullmatch(path.name)
        if match and not _running(int(match.group(1))):
            mark_process_dead(int(match.group(1)), multiprocess_dir)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, under another user
        return True
    return True
