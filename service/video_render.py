"""One video job's work: decode, stylise each frame with the job's one embedding, blend, encode.

Synchronous on purpose: it runs on a video worker (its own process with RQ, a bounded thread pool in
the embedded default), calls the transformer session directly (one frame per run: a clip's frames
are sequential once consistency feeds each output into the next) and checks for cancellation after
every frame.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from service import imaging
from service.consistency import TemporalBlender
from service.embeddings import interpolate
from service.registry import LoadedModel
from service.video_io import VideoInfo, transcode


@dataclass(frozen=True)
class VideoSpec:
    """What a job renders with, resolved at submit time (the embedding is computed once, there)."""

    model: str  # name/version
    embedding: list[float]
    style_reference: str
    strength: float = 1.0
    preserve_color: bool = False
    max_side: int | None = None
    consistency: float = 0.9

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class FrameStyler:
    """Stylises the frames of one clip: the embedding fixed for the clip, the blender's state across frames."""

    model: LoadedModel
    spec: VideoSpec
    embedding: np.ndarray = field(init=False)
    blender: TemporalBlender = field(init=False)
    identity_done: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.embedding = np.asarray(self.spec.embedding, np.float32).reshape(1, -1)
        self.blender = TemporalBlender(self.spec.consistency)
        # Identity interpolation needs P(content): the clip's first frame stands for the clip, once.
        self.identity_done = not (self.model.kind == "arbitrary" and self.spec.strength < 1.0)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        m = self.model.manifest
        if not self.identity_done:
            identity = self.model.predict(imaging.to_tensor(imaging.resize(frame, (m.style_size, m.style_size))))
            self.embedding = interpolate(identity[0:1].astype(np.float32), self.embedding, self.spec.strength)
            self.identity_done = True
        tensor = imaging.to_tensor(frame)
        padded = imaging.pad_for_network(tensor, m.size_multiple, m.min_side)
        out = imaging.crop(self.model.transform(padded, self.embedding), *frame.shape[:2])
        if self.model.kind == "nstyle" and self.spec.strength < 1.0:
            out = (1.0 - self.spec.strength) * tensor + self.spec.strength * out
        result = out[0].transpose(1, 2, 0)
        if self.spec.preserve_color:
            result = imaging.preserve_color(result, frame.astype(np.float32) / 255.0)
        result = self.blender(frame, np.clip(result, 0.0, 1.0).astype(np.float32))
        return imaging.to_uint8(result)


def output_size(info: VideoInfo, max_side: int | None, cap: int) -> tuple[int, int]:
    return imaging.output_size(info.width, info.height, max_side, cap)


def render(
    model: LoadedModel,
    spec: VideoSpec,
    source: Path,
    target: Path,
    info: VideoInfo,
    cap: int,
    on_frame: Callable[[int, float], None],
    threads: int = 2,
) -> int:
    """Render the whole clip; ``on_frame(frames_done, seconds_for_that_frame)`` after each frame."""
    styler = FrameStyler(model, spec)
    last = time.perf_counter()

    def after(done: int) -> None:
        nonlocal last
        now = time.perf_counter()
        on_frame(done, now - last)
        last = now

    return transcode(source, target, info, output_size(info, spec.max_side, cap), styler, after, threads)
