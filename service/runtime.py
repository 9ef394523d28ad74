"""A thin wrapper over one ONNX Runtime session: provider choice, thread settings, the active-provider check.

``OnnxModel.run`` is synchronous; the service calls it from worker threads, never on the event loop.
ONNX Runtime sessions are safe to run from several threads at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnxruntime as ort

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


@dataclass(frozen=True)
class TensorNames:
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


class OnnxModel:
    """One ONNX file loaded into an inference session."""

    def __init__(
        self, path: Path, preference: ProviderPreference, intra_op_threads: int, memory_arena: bool = True
    ) -> None:
        options = ort.SessionOptions()
        # Without its arena a session gives its activations back after each run: the tiling forms'
        # two sessions then do not each keep their largest run's memory (service/tiling.py).
        options.enable_cpu_mem_arena = memory_arena
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Idle intra-op threads spin by default. Each session has its own pool, and the predictor's
        # spinning threads starve the transformer run right after it, and the codec threads between
        # runs (docs/performance.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if intra_op_threads:
            options.intra_op_num_threads = intra_op_threads
        self.path = path
        self.session = ort.InferenceSession(str(path), options, providers=requested_providers(preference))
        self.names = TensorNames(
            inputs=tuple(i.name for i in self.session.get_inputs()),
            outputs=tuple(o.name for o in self.session.get_outputs()),
        )

    @property
    def active_provider(self) -> str:
        """The first provider ONNX Runtime actually uses (it falls back to CPU silently)."""
        return self.session.get_providers()[0]

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """Run the graph and return its first output."""
        return self.session.run([self.names.outputs[0]], feeds)[0]
