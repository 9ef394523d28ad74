"""All service settings, in one pydantic-settings class read from ``ATELIER_*`` environment variables.

Every field's default is the embedded local run: the default models from ``make models``, CPU or
CUDA chosen automatically, no API keys. docs/configuration.md lists the same fields (a test checks).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.runtime import cuda_device_present

REPO_ROOT = Path(__file__).resolve().parents[1]
GPU_BATCH_PIXELS = 4 * 1024 * 1024  # four 1024x1024 images
CPU_BATCH_PIXELS = 2 * 256 * 256
GPU_PROCESSES = 4  # at most, one per GPU_CORES_PER_PROCESS cores (see `process_count`)
GPU_CORES_PER_PROCESS = 4
CPU_BATCH_SIZE = 8


class Settings(BaseSettings):
    """Service configuration; each field is read from ``ATELIER_<FIELD>`` (case-insensitive)."""

    # populate_by_name: Settings(codec_threads=...) in code, whatever a field's environment names are.
    model_config = SettingsConfigDict(env_prefix="ATELIER_", extra="ignore", frozen=True, populate_by_name=True)

    model_dir: Path = Field(REPO_ROOT / "models", description="model repository: <name>/<version>/manifest.json")
    default_model: str = Field("magenta-mobile", description="arbitrary model used when a request names none")
    presets_model: str = Field("presets-26", description="N-style model whose rows are the presets")
    providers: Literal["auto", "cuda", "cpu"] = Field(
        "auto",
        description="execution provider: auto (CUDA when ONNX Runtime offers it, else CPU), cuda "
        "(readiness fails unless CUDA is really active) or cpu",
    )
    intra_op_threads: int = Field(
        0, ge=0, description="ONNX Runtime intra-op threads per session; 0 = the usable cores divided by `processes`"
    )
    codec_threads: int = Field(
        0,
        ge=0,
        # ATELIER_WORKERS is the setting's first name, still read (uvicorn's "workers" are processes).
        validation_alias=AliasChoices("ATELIER_CODEC_THREADS", "ATELIER_WORKERS"),
        description="threads running decode, resize and encode (`atelier-codec`); 0 = the usable cores, >= 2; "
        "ATELIER_WORKERS is an older name for it",
    )
    processes: int | None = Field(
        None,
        ge=1,
        description="uvicorn worker processes of `python -m service`, each with its models; unset: 1, or on a "
        "GPU host up to 4, one per 4 cores (see `process_count`)",
    )
    max_pending: int = Field(32, ge=1, description="images queued or running before new requests get 429")
    max_batch_size: int | None = Field(
        None,
        ge=1,
        description="most items in one ONNX Runtime run; 1 turns micro-batching off; unset: 8 on a CPU, "
        "1 when CUDA runs the models (see `batch_size`)",
    )
    max_batch_pixels: int | None = Field(
        None,
        ge=1,
        description="most padded pixels in one ONNX Runtime run; unset: 4194304 when CUDA runs the models, "
        "131072 on a CPU (see `batch_pixels`)",
    )
    max_batch_wait_ms: float = Field(
        0.0, ge=0, le=1000, description="longest wait for a batch to fill while the inference threads are idle"
    )
    inference_threads: int = Field(
        1, ge=1, description="threads running ONNX Runtime batches (each run uses the intra-op threads)"
    )
    heap_reuse_mib: int = Field(
        32,
        ge=0,
        le=32,
        description="allocations up to this many MiB are served from the heap and kept there when freed "
        "(glibc mallopt: no page faults per request for image buffers), until 5 s idle; 0 = glibc's defaults",
    )
    decode_pixels: int = Field(
        36_000_000,
        ge=0,
        description="most pixels decoding at once in one process (about 7 bytes each while decoding); a decode "
        "waits until its image fits, one larger than this decodes alone; 0 = no bound",
    )
    arena_max_pixels: int = Field(
        1024 * 1024,
        ge=0,
        description="on a CPU, transformer runs over this many pixels (batch x height x width) use a session "
        "without ONNX Runtime's memory arena, so their memory goes back when they end; 0 = always the arena",
    )
    request_timeout_s: float = Field(
        60.0, gt=0, description="deadline of one image, from admission to its answer (504 after)"
    )
    max_batch_items: int = Field(32, ge=1, description="most content images in one POST /v1/stylize/batch")
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1024, description="largest request body, in bytes")
    max_field_bytes: int = Field(64 * 1024, ge=256, description="largest non-file form field, in bytes")
    max_pixels: int = Field(
        36_000_000, ge=1, le=89_000_000, description="largest decoded image, width x height (checked before decoding)"
    )
    max_output_side: int = Field(
        8192, ge=16, description="cap on the longest side of a stylised image, and of the network's input"
    )
    tile_side: int = Field(
        2048,
        ge=64,
        description="network inputs longer than this on a side run in tiles of at most this side; on a CPU "
        "also at most sqrt(`arena_max_pixels`) (so tiles run on the arena session), but not under 8 overlaps",
    )
    tile_overlap: int = Field(64, ge=16, description="least overlap of neighbouring tiles, in network pixels")
    statistics_side: int = Field(
        2048, ge=64, description="long side of the thumbnail whose instance-norm statistics the tiles share"
    )
    brush_side: int = Field(
        360, ge=64, description="default stroke_scale: output long side / this, at least 1 (docs/brush.md)"
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="a request's headers must arrive within this many seconds of the "
        "connection opening or of the previous response (408 and closed after)",
    )
    body_timeout_s: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="a request's whole body must arrive within this many seconds of its headers (408 and closed after)",
    )
    max_header_bytes: int = Field(
        64 * 1024, ge=1024, description="largest request line plus headers, in bytes (431 and closed after)"
    )
    max_connections: int = Field(
        1000, ge=1, description="open connections per process; one more is answered 503 with Retry-After and closed"
    )
    min_image_side: int = Field(8, ge=1, description="images with a shorter side than this are refused (422)")
    cache_entries: int = Field(1024, ge=0, description="style embeddings kept in the in-process LRU; 0 disables it")
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="comma-separated bearer keys; when set, every /v1 route needs one and registered styles "
        "are private to the key that registered them",
    )
    style_dir: Path = Field(REPO_ROOT / ".cache" / "styles", description="where registered styles are stored")
    redis_url: str | None = Field(
        None,
        description="redis://host:port/db shared by replicas for embeddings and registered styles; "
        "unset: in-process LRU and local disk only",
    )
    redis_timeout_s: float = Field(0.25, gt=0, le=10, description="Redis connect and read timeout, in seconds")
    redis_retry_s: float = Field(
        2.0, gt=0, le=300, description="after a Redis failure, serve from local state this long before trying again"
    )
    redis_cache_ttl_s: int = Field(
        7 * 24 * 3600, ge=1, description="TTL of embeddings in Redis (volatile-lru evicts these, never styles)"
    )
    # Video jobs (POST /v1/videos; docs/video.md)
    video_dir: Path = Field(
        REPO_ROOT / ".cache" / "videos", description="video jobs' uploads and results (shared by replicas and workers)"
    )
    video_max_bytes: int = Field(200 * 1024 * 1024, ge=1024, description="largest video upload, in bytes")
    video_max_duration_s: float = Field(600.0, gt=0, description="longest video clip, in seconds")
    video_max_frames: int = Field(18_000, ge=1, description="most frames in one video clip")
    video_max_pixels: int = Field(1920 * 1080, ge=1, description="largest video frame, width x height")
    video_max_jobs: int = Field(
        4, ge=1, description="video jobs queued or running at once (across replicas with Redis); more get 429"
    )
    video_workers: int = Field(2, ge=1, description="threads running video jobs in the embedded default (no Redis)")
    video_consistency: float = Field(
        0.9, ge=0, le=0.95, description="default `consistency` of a video job: 0 = frame by frame"
    )
    video_result_ttl_s: int = Field(3600, ge=1, description="how long a finished video job and its result are kept")
    video_lease_s: float = Field(
        30.0,
        gt=0,
        description="a running job with no progress for this long (its worker died) is queued again or failed",
    )
    video_retries: int = Field(
        1, ge=0, le=5, description="times a job whose RQ worker died mid-job is queued again before it fails"
    )
    video_job_timeout_s: int = Field(6 * 3600, ge=1, description="RQ's limit on one video job's run time")
    video_encoder_threads: int = Field(2, ge=1, description="decoder and H.264 encoder threads per video job")
    video_metrics_port: int | None = Field(
        None, ge=1, le=65535, description="`python -m service.video_worker` serves its metrics on this port"
    )
    live_max_connections: int = Field(
        16, ge=1, description="open /v1/live WebSockets per process; more are closed with 1013"
    )
    live_max_frame_bytes: int = Field(
        2 * 1024 * 1024, ge=1024, description="largest encoded frame on /v1/live, in bytes (bigger: an error message)"
    )
    live_max_fps: float = Field(
        60.0, gt=0, le=1000, description="frames per second one /v1/live connection may send; faster ones are dropped"
    )
    live_max_side: int = Field(1280, ge=16, description="longest side of a /v1/live frame, as sent and as painted")
    live_idle_timeout_s: float = Field(
        30.0, gt=0, description="a /v1/live connection that sends nothing this long is closed (1001)"
    )
    host: str = Field("127.0.0.1", description="bind address for `python -m service` (HOST overrides)")
    port: int = Field(8000, ge=0, le=65535, description="port for `python -m service` (PORT overrides)")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="log level of the JSON logs")

    @model_validator(mode="after")
    def _tiles_overlap_less_than_half(self) -> Settings:
        if 2 * self.tile_overlap >= self.tile_side:
            raise ValueError(f"tile_overlap {self.tile_overlap} must be under half of tile_side {self.tile_side}")
        return self

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_keys)

    @property
    def process_count(self) -> int:
        """uvicorn processes: the configured number, else 1, or on a GPU host up to four.

        On a GPU one process's CPU side (HTTP, codecs, one interpreter lock) caps it below its session,
        and several processes overlap their runs on the GPU, each with a few cores for its codec work
        and its own copy of the models. On a CPU one run already uses every core (docs/performance.md).
        """
        if self.processes is not None:
            return self.processes
        if not cuda_device_present(self.providers):
            return 1
        return max(1, min(GPU_PROCESSES, usable_cores() // GPU_CORES_PER_PROCESS))

    @property
    def ort_intra_op_threads(self) -> int:
        """Intra-op threads per session: the configured number, else this process's share of the cores."""
        return self.intra_op_threads or max(1, usable_cores() // self.process_count)

    def batch_size(self, on_gpu: bool) -> int:
        """Most items in one run: the configured number, else 8 on a CPU and 1 (no batching) on a GPU.

        On a CPU small images share runs where that pays (``batch_pixels``). On a GPU batching raised
        throughput in no configuration measured, since independent runs already overlap there
        (docs/performance.md).
        """
        if self.max_batch_size is not None:
            return self.max_batch_size
        return 1 if on_gpu else CPU_BATCH_SIZE

    def batch_pixels(self, on_gpu: bool) -> int:
        """Most padded pixels in one run: the configured bound, else one that suits the device.

        On a GPU a batch shares the kernel launches and fills the device: up to four 1024x1024
        images. On a CPU one run already uses every core, and a batch of bigger images costs more per
        image once its activations fall out of cache, so only up to two 256x256 images share a run
        (docs/performance.md).
        """
        if self.max_batch_pixels is not None:
            return self.max_batch_pixels
        return GPU_BATCH_PIXELS if on_gpu else CPU_BATCH_PIXELS

    @property
    def codec_thread_count(self) -> int:
        """Codec threads per process: the configured number, else the usable cores (at least 2)."""
        return self.codec_threads or max(2, usable_cores())


def usable_cores() -> int:
    """Cores this process may use: those it may run on (the affinity mask: taskset, cpusets), capped by
    its CPU quota (Docker's --cpus, Kubernetes' CPU limit), which leaves the affinity mask alone."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    quota = cpu_quota_cores()
    return min(cores, quota) if quota is not None else cores


def cpu_quota_cores(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """This process's CPU quota in whole cores, rounded up; None where it has none.

    cgroup v2 keeps it in ``cpu.max`` ("<quota> <period>" or "max <period>"), v1 in
    ``cpu/cpu.cfs_quota_us`` (-1 for none) and ``cpu/cpu.cfs_period_us``.
    """
    try:
        quota, period = (cgroup_root / "cpu.max").read_text().split()
    except (OSError, ValueError):
        try:
            quota = (cgroup_root / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (cgroup_root / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    if quota in ("max", "-1"):
        return None
    return max(1, math.ceil(int(quota) / int(period)))
