"""A thin wrapper over one ONNX Runtime session: provider choice, thread settings, the active-provider check.

``OnnxModel.run`` is synchronous; the service calls it from worker threads, never on the event loop.
ONNX Runtime sessions are safe to run from several threads at once.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import numpy as np
import onnxruntime as ort

from service.allocator import heap_threads_idle, release_free_memory

log = logging.getLogger(__name__)

ProviderPreference = Literal["auto", "cuda", "cpu"]
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def requested_providers(preference: ProviderPreference) -> list[str | tuple[str, dict[str, str]]]:
    """The provider list handed to ONNX Runtime for a preference."""
    if preference == "cpu" or (preference == "auto" and CUDA not in ort.get_available_providers()):
        return [CPU]
    cuda_options = {
        # Dynamic H/W: an EXHAUSTIVE search would re-benchmark every new shape.
        "cudnn_conv_algo_search": "HEURISTIC",
        # Keep GPU memory to what is asked instead of the largest shape ever seen.
        "arena_extend_strategy": "kSameAsRequested",
    }
    return [(CUDA, cuda_options), CPU]


def wants_cuda(preference: ProviderPreference) -> bool:
    return preference == "cuda" or (preference == "auto" and CUDA in ort.get_available_providers())


def cuda_device_present(preference: ProviderPreference) -> bool:
    """Whether CUDA will run the models, as far as can be told before any session exists: the
    preference allows it and the machine has an NVIDIA device. ONNX Runtime lists the CUDA provider
    wherever onnxruntime-gpu is installed, GPU or not; the sessions themselves say what is active."""
    return wants_cuda(preference) and any(Path("/dev").glob("nvidia[0-9]*"))


# ONNX Runtime's native log writes coloured text lines to stderr, outside our JSON logs; there is no
# hook to route them through Python's logging. Its failures surface as Python exceptions (logged as
# JSON by their callers), so the native log is kept to errors, and to fatal ones while a session is
# created: that is when a CPU host running onnxruntime-gpu prints why the CUDA provider did not load,
# a fallback the registry reports once as a JSON line instead.
NATIVE_SEVERITY = 3  # ERROR
NATIVE_SEVERITY_CREATING = 4  # FATAL
ort.set_default_logger_severity(NATIVE_SEVERITY)


@contextmanager
def quiet_native_log() -> Iterator[None]:
    ort.set_default_logger_severity(NATIVE_SEVERITY_CREATING)
    try:
        yield
    finally:
        ort.set_default_logger_severity(NATIVE_SEVERITY)


# Runs over this many pixels (batch x height x width) leave a session's CPU arena marked for a trim once
# it is idle. A 512x512 run (a 1024-2048 output at the default brush) grows presets-26's by 300 MB.
GROWN_PIXELS = 256 * 256
# Requests closer together than this keep their memory paged in (the arena, the heaps' reused buffers:
# docs/performance.md); after it the process gives it back, well within the 10 s docs/hardening.md targets.
TRIM_IDLE_S = 5.0
TRIM_CHECK_S = 1.0
_SHRINK = ort.RunOptions()
_SHRINK.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")


class OnnxModel:
    """One ONNX file loaded into an inference session, with the CPU memory it holds bounded.

    ONNX Runtime's CPU arena keeps the largest run it has seen, and more: its chunks grow in powers
    of two and are not reused across sizes, so one large run holds several times what it needs, for
    good, per session (figures in docs/hardening.md). So:

    - a run over ``large_pixels`` goes to a second session of the same file without the arena (and
      without memory patterns, which plan for one shape): its buffers come from malloc and go back
      when it ends. Slower per pixel (page faults), which is why smaller runs keep the arena;
    - once idle for ``TRIM_IDLE_S`` after a run over ``GROWN_PIXELS``, the arena session runs its
      smallest input once more with arena shrinkage on, which hands its free chunks back.

    On CUDA the device arena is ONNX Runtime's own business (``kSameAsRequested``) and none of this applies.
    """

    def __init__(
        self, path: Path, preference: ProviderPreference, intra_op_threads: int, large_pixels: int = 0
    ) -> None:
        self.path = path
        self._preference = preference
        self._intra_op_threads = intra_op_threads
        self.session = self._open(arena=True)
        self.output_name = self.session.get_outputs()[0].name
        self.large_pixels = large_pixels if self.active_provider == CPU else 0
        # Opened now, so the warm process already holds it and the first large request does not wait for it.
        self._large = self._open(arena=False) if self.large_pixels else None
        self._lock = threading.Lock()
        self._in_flight = 0
        self._last_end = 0.0
        self._grown = False
        self._smallest: tuple[int, dict[str, np.ndarray]] | None = None
        if self.large_pixels:
            _TRIMMER.watch(self)

    def _open(self, arena: bool) -> ort.InferenceSession:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Idle intra-op threads spin by default. Each session has its own pool, and the predictor's
        # spinning threads starve the transformer run right after it, and the codec threads between
        # runs (docs/performance.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if self._intra_op_threads:
            options.intra_op_num_threads = self._intra_op_threads
        options.log_severity_level = NATIVE_SEVERITY
        if not arena:
            options.enable_cpu_mem_arena = False
            options.enable_mem_pattern = False
        providers = requested_providers(self._preference) if arena else [CPU]
        with quiet_native_log():
            return ort.InferenceSession(str(self.path), options, providers=providers)

    @property
    def active_provider(self) -> str:
        """The first provider ONNX Runtime actually uses (it falls back to CPU silently)."""
        return self.session.get_providers()[0]

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """Run the graph and return its first output."""
        pixels = max((a.shape[0] * math.prod(a.shape[2:]) for a in feeds.values() if a.ndim == 4), default=0)
        large = bool(self.large_pixels) and pixels > self.large_pixels
        session = self._large if large and self._large is not None else self.session
        with self._lock:
            self._in_flight += 1
            if not large and (self._smallest is None or pixels < self._smallest[0]):
                self._smallest = (pixels, feeds)
        try:
            return session.run([self.output_name], feeds)[0]
        finally:
            with self._lock:
                self._in_flight -= 1
                self._last_end = time.monotonic()
                self._grown = self._grown or pixels > GROWN_PIXELS

    def trim_if_idle(self, idle_s: float = TRIM_IDLE_S) -> bool:
        """After a large run, once it and the codec threads are idle (the request's encode is done): hand
        the arena's free chunks back, and the C heaps' free memory (see service.allocator)."""
        with self._lock:
            idle = self._in_flight == 0 and time.monotonic() - self._last_end >= idle_s
            if not (self._grown and idle and self._smallest is not None and heap_threads_idle(idle_s)):
                return False
            self._grown = False
            feeds = self._smallest[1]
        self.session.run([self.output_name], feeds, _SHRINK)
        release_free_memory()
        return True


class _ArenaTrimmer:
    """One daemon thread that trims the watched sessions' arenas once they are idle."""

    def __init__(self) -> None:
        self._models: weakref.WeakSet[OnnxModel] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, model: OnnxModel) -> None:
        with self._lock:
            self._models.add(model)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="atelier-arena-trim", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while True:
            time.sleep(TRIM_CHECK_S)
            for model in list(self._models):
                try:
                    model.trim_if_idle()
                except Exception:  # a failed trim costs memory, never a request
                    log.exception("arena trim failed for %s", model.path)


_TRIMMER = _ArenaTrimmer()
