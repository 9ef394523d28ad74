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

from service import brush, imaging, upsampling
from service.config import Settings
from service.consistency import TemporalBlender
from service.embeddings import interpolate
from service.errors import InvalidField
from service.registry import LoadedModel
from service.video_io import VideoInfo, VideoLimits, probe, transcode


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
    stroke_scale: float | None = None  # as asked; None: brush.default_stroke_scale at the output size

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class FrameStyler:
    """Stylises the frames of one clip: the embedding fixed for the clip, the blender's state across frames.

    At ``stroke_scale`` s the network runs on the frame at its output size / s and the result comes
    back to the output size as /v1/stylize's does (the guided upsampling of service/upsampling.py, or
    a plain downsample below 1); the temporal blend runs at the output size, on the content frames.
    """

    model: LoadedModel
    spec: VideoSpec
    stroke_scale: float = 1.0
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
        height, width = frame.shape[:2]
        net_w, net_h = brush.network_size(width, height, self.stroke_scale)
        small = frame if (net_w, net_h) == (width, height) else imaging.resize(frame, (net_w, net_h))
        padded = imaging.pad_for_network(imaging.to_tensor(small), m.size_multiple, m.min_side)
        result = imaging.crop(self.model.transform(padded, self.embedding), net_h, net_w)[0].transpose(1, 2, 0)
        if (net_w, net_h) != (width, height):
            result = self._to_output_size(np.clip(result, 0.0, 1.0).astype(np.float32), small, frame)
        if self.model.kind == "nstyle" and self.spec.strength < 1.0:
            result = (1.0 - self.spec.strength) * (frame.astype(np.float32) / 255.0) + self.spec.strength * result
        if self.spec.preserve_color:
            result = imaging.preserve_color(result, frame.astype(np.float32) / 255.0)
        result = self.blender(frame, np.clip(result, 0.0, 1.0).astype(np.float32))
        return imaging.to_uint8(result)

    @staticmethod
    def _to_output_size(low: np.ndarray, small: np.ndarray, frame: np.ndarray) -> np.ndarray:
        height, width = frame.shape[:2]
        if low.shape[0] > height or low.shape[1] > width:  # a finer brush (stroke_scale < 1)
            return imaging.resize(imaging.to_uint8(low), (width, height)).astype(np.float32) / np.float32(255.0)
        return upsampling.guided_upsample(low, small, frame)


def output_size(info: VideoInfo, max_side: int | None, cap: int) -> tuple[int, int]:
    return imaging.output_size(info.width, info.height, max_side, cap)


def resolve_stroke_scale(spec: VideoSpec, info: VideoInfo, cap: int, brush_side: int, whole_side: int) -> float:
    """The brush size a job runs at: the one asked for, else /v1/stylize's default for the output size.

    Raises InvalidField (422) where the network would run over the output cap, as /v1/stylize does, or
    over ``whole_side`` (ATELIER_TILE_SIDE): video frames are stylised whole, never in tiles.
    """
    long_side = max(output_size(info, spec.max_side, cap))
    scale = spec.stroke_scale if spec.stroke_scale is not None else brush.default_stroke_scale(long_side, brush_side)
    network = brush.network_long_side(long_side, scale)
    if network > cap:
        raise InvalidField(
            f"stroke_scale {scale:g} at a {long_side}-pixel output stylises at {network} pixels; "
            f"the cap is {cap} (raise stroke_scale or lower max_side)"
        )
    if network > whole_side:
        raise InvalidField(
            f"stroke_scale {scale:g} at a {long_side}-pixel output stylises video frames at {network} pixels; "
            f"frames run whole, at most {whole_side} (raise stroke_scale or lower max_side)"
        )
    return scale


def probe_clip(path: Path, spec: VideoSpec, settings: Settings) -> tuple[VideoInfo, float]:
    """A clip against the server's video limits (video_io.probe's 413, 415 and 422), and the brush size
    its frames run at (resolve_stroke_scale's 422)."""
    s = settings
    info = probe(path, VideoLimits(s.video_max_duration_s, s.video_max_frames, s.video_max_pixels, s.min_image_side))
    return info, resolve_stroke_scale(spec, info, s.max_output_side, s.brush_side, s.tile_side)


def render(
    model: LoadedModel,
    spec: VideoSpec,
    source: Path,
    target: Path,
    info: VideoInfo,
    cap: int,
    on_frame: Callable[[int, float], None],
    threads: int = 2,
    stroke_scale: float = 1.0,
) -> int:
    """Render the whole clip; ``on_frame(frames_done, seconds_for_that_frame)`` after each frame."""
    styler = FrameStyler(model, spec, stroke_scale)
    last = time.perf_counter()

    def after(done: int) -> None:
        nonlocal last
        now = time.perf_counter()
        on_frame(done, now - last)
        last = now

    return transcode(source, target, info, output_size(info, spec.max_side, cap), styler, after, threads)
