"""Video decode and encode with PyAV: probe an upload against the limits, stream its frames, write the result.

Frames are streamed one at a time (decode -> stylise -> encode), so memory does not grow with the
clip. The output keeps each frame's timestamp (so the frame rate, the duration and a variable frame
rate are kept), the display rotation (the display matrix is copied, the pixels stay as coded), and
the audio track, whose packets are copied, not re-encoded.

The output is H.264 (libx264, which PyAV's wheels carry) in MP4; when the audio codec cannot go into
MP4 (Vorbis from a WebM, say) the container is Matroska instead, so the audio is still copied.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from service.errors import ContentTooLarge, InvalidField
from service.video_errors import UnsupportedVideo, VideoSupportMissing

try:
    import av
except ImportError:  # the optional `video` extra is absent (the slim CPU image): videos answer 501
    av = None

VIDEO_CODEC = "libx264"
MP4_AUDIO = {"aac", "mp3", "opus", "alac", "flac", "ac3", "eac3"}
X264_OPTIONS = {"preset": "veryfast", "crf": "20"}


@dataclass(frozen=True)
class VideoLimits:
    max_duration_s: float
    max_frames: int
    max_pixels: int
    min_side: int


@dataclass(frozen=True)
class VideoInfo:
    width: int  # coded size, before the display rotation
    height: int
    frames: int
    duration_s: float
    rate: Fraction  # average frame rate
    rotation: int  # counter-clockwise degrees of the display matrix
    audio_codec: str | None

    @property
    def container(self) -> str:
        return "mp4" if self.audio_codec is None or self.audio_codec in MP4_AUDIO else "matroska"

    @property
    def media_type(self) -> str:
        return "video/mp4" if self.container == "mp4" else "video/x-matroska"


def video_support() -> bool:
    """PyAV and OpenCV (the `video` extra) are importable: this process can probe and render clips."""
    return av is not None and find_spec("cv2") is not None


def require_video_support() -> None:
    """Raise the 501 problem unless PyAV and OpenCV (the `video` extra) are importable."""
    if not video_support():
        raise VideoSupportMissing(
            "this server was installed without video support: pip install 'atelier[video]' "
            "(or run the atelier:video-worker image)"
        )


def probe(path: Path, limits: VideoLimits) -> VideoInfo:
    """Open, check and count the video stream (a demux pass, no decode beyond the first frame).

    Raises UnsupportedVideo (415) for anything that is not a decodable video, ContentTooLarge (413) over
    the pixel, frame or duration limits and InvalidField (422) for frames under the smallest side.
    """
    require_video_support()
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise UnsupportedVideo(f"not a video file this server can read ({_reason(exc)})") from exc
    with container:
        if not container.streams.video:
            what = "an audio-only file" if container.streams.audio else "a file without a video track"
            raise UnsupportedVideo(f"{what}: there is no video track to stylise")
        video = container.streams.video[0]
        width, height = video.codec_context.width, video.codec_context.height
        if width <= 0 or height <= 0:
            raise UnsupportedVideo("the video track has no frame size")
        if width * height > limits.max_pixels:
            raise ContentTooLarge(
                f"frames are {width}x{height} = {width * height} pixels; the limit is {limits.max_pixels}"
            )
        if min(width, height) < limits.min_side:
            raise InvalidField(f"frames are {width}x{height}; the shortest side must be at least {limits.min_side}")
        audio = container.streams.audio[0] if container.streams.audio else None
        frames, first, last = 0, None, None
        rotation: int | None = None
        try:
            for packet in container.demux(video):
                if rotation is None:  # decode up to the first frame: it carries the display matrix
                    decoded = packet.decode()
                    if decoded:
                        rotation = int(decoded[0].rotation) % 360
                if packet.size == 0 or packet.pts is None:
                    continue
                frames += 1
                end = packet.pts + (packet.duration or 0)
                first = packet.pts if first is None else min(first, packet.pts)
                last = end if last is None else max(last, end)
                if frames > limits.max_frames:
                    raise ContentTooLarge(f"the clip has more than {limits.max_frames} frames, the limit")
        except av.FFmpegError as exc:
            raise UnsupportedVideo(f"the video is truncated or corrupt ({_reason(exc)})") from exc
        if frames == 0 or first is None or last is None:
            raise UnsupportedVideo("the video track holds no frames")
        if rotation is None:
            raise UnsupportedVideo("no frame of the video track decodes")
        duration = float((last - first) * video.time_base) if video.time_base else 0.0
        if duration > limits.max_duration_s:
            raise ContentTooLarge(f"the clip lasts {duration:.1f} s; the limit is {limits.max_duration_s:g} s")
        rate = video.average_rate or video.guessed_rate or Fraction(frames, max(duration, 1e-3)).limit_denominator()
        return VideoInfo(
            width, height, frames, duration, Fraction(rate), rotation, audio.codec_context.name if audio else None
        )


def _reason(exc: Exception) -> str:
    return str(exc).split(":")[0][:120] if str(exc) else type(exc).__name__


@dataclass
class Frame:
    rgb: np.ndarray  # uint8 HxWx3, as coded (before the display rotation)
    pts: int | None
    time_base: Fraction | None


def transcode(
    source: Path,
    target: Path,
    info: VideoInfo,
    out_size: tuple[int, int],
    stylise: Callable[[np.ndarray], np.ndarray],
    on_frame: Callable[[int], None],
    threads: int = 2,
) -> int:
    """Decode ``source``, pass each frame through ``stylise`` and write ``target``; returns the frames written.

    ``stylise`` gets and returns uint8 HxWx3 frames at ``out_size`` (width, height). ``on_frame(n)`` runs
    after each frame and may raise to stop the job (cancel). Audio packets are copied as they come.
    """
    require_video_support()
    out_w, out_h = out_size
    try:
        inp = av.open(str(source), metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise UnsupportedVideo(f"the video could not be reopened ({_reason(exc)})") from exc
    with inp, av.open(str(target), "w", format=info.container) as out:
        in_video = inp.streams.video[0]
        in_video.thread_type = "AUTO"
        in_audio = inp.streams.audio[0] if inp.streams.audio else None
        time_base = in_video.time_base or Fraction(1, 1000)
        video = out.add_stream(VIDEO_CODEC, rate=info.rate, options=X264_OPTIONS)
        video.width, video.height, video.pix_fmt = _even(out_w), _even(out_h), "yuv420p"
        video.time_base = time_base
        video.codec_context.time_base = time_base
        video.thread_count = threads
        if info.rotation:
            video.set_display_rotation(info.rotation)
        audio = out.add_stream_from_template(in_audio) if in_audio is not None else None
        written = 0
        streams = [in_video] + ([in_audio] if in_audio is not None else [])
        start: int | None = None
        last_pts = -1
        try:
            for packet in inp.demux(*streams):
                if packet.stream is in_audio:
                    if packet.dts is None or audio is None:
                        continue
                    packet.stream = audio
                    out.mux(packet)
                    continue
                for frame in packet.decode():
                    pts = frame.pts if frame.pts is not None else last_pts + 1
                    start = pts if start is None else start
                    pts = max(pts - start, last_pts + 1)  # strictly increasing, as the encoder requires
                    last_pts = pts
                    rgb = frame.to_ndarray(format="rgb24", width=out_w, height=out_h)
                    styled = stylise(rgb)
                    if styled.shape[:2] != (video.height, video.width):
                        styled = _pad_even(styled, video.height, video.width)
                    new = av.VideoFrame.from_ndarray(styled, format="rgb24").reformat(format="yuv420p")
                    new.pts, new.time_base = pts, time_base
                    for out_packet in video.encode(new):
                        out.mux(out_packet)
                    written += 1
                    on_frame(written)
        except av.FFmpegError as exc:
            raise UnsupportedVideo(
                f"decoding stopped at frame {written + 1}: truncated or corrupt ({_reason(exc)})"
            ) from exc
        for out_packet in video.encode():
            out.mux(out_packet)
    return written


def _even(side: int) -> int:
    """yuv420p needs even sides; an odd one gets one edge row or column repeated."""
    return side + (side % 2)


def _pad_even(image: np.ndarray, height: int, width: int) -> np.ndarray:
    return np.pad(image, ((0, height - image.shape[0]), (0, width - image.shape[1]), (0, 0)), mode="edge")


def read_frames(path: Path) -> Iterator[Frame]:
    """Every frame of the first video track, as coded: for the tests and the benchmark."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            yield Frame(frame.to_ndarray(format="rgb24"), frame.pts, frame.time_base)
