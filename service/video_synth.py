"""Synthetic clips with known motion, made from still photos: for the video tests and bench/video.py.

No video data set can be fetched here, so clips are camera paths over a photo (pan, zoom, rotation
with zoom) and a cut-out moving over a background that moves differently. Because the motion is
made, the true backward flow of every frame (frame t -> frame t-1) and its valid pixels (inside the
frame, not disoccluded) are exact, which is what the warping error needs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image

Kind = str  # "pan", "zoom", "rotate_zoom", "cutout"
KINDS = ("pan", "zoom", "rotate_zoom", "cutout")


@dataclass(frozen=True)
class SynthFrame:
    rgb: np.ndarray  # uint8 HxWx3
    flow: np.ndarray | None  # true backward flow to the previous frame, float32 HxWx2
    valid: np.ndarray | None  # bool HxW: where that flow is defined


def _load(path: Path, min_side: int) -> np.ndarray:
    image = Image.open(path).convert("RGB")
    scale = max(1.0, min_side / min(image.size))
    if scale > 1.0:
        image = image.resize((math.ceil(image.width * scale), math.ceil(image.height * scale)), Image.BICUBIC)
    return np.asarray(image, np.uint8)


def _camera(kind: Kind, t: int, frames: int, size: tuple[int, int], photo: tuple[int, int]) -> np.ndarray:
    """3x3 matrix from frame pixel (x, y, 1) to photo pixel, for frame t."""
    width, height = size
    pw, ph = photo
    u = t / max(frames - 1, 1)
    cx, cy = pw / 2, ph / 2
    if kind in ("pan", "cutout"):
        travel = min(0.8 * (pw - width - 2), 4.0 * frames)  # about 4 px per frame
        x0 = 1 + (pw - width - 2 - travel) / 2 + travel * u
        y0 = (ph - height) / 2 + min(0.1 * (ph - height), 1.5 * frames / 6) * math.sin(2 * math.pi * u)
        return np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1]], np.float64)
    zoom = 1.0 + 0.35 * u  # the view shrinks: the photo grows on screen
    angle = math.radians(12 * math.sin(math.pi * u)) if kind == "rotate_zoom" else 0.0
    base = 0.9 * min(pw / width, ph / height) / 1.25  # the rotated, zoomed view stays inside the photo
    s = base / zoom
    c, si = math.cos(angle) * s, math.sin(angle) * s
    # photo = centre + R S (pixel - frame centre)
    return np.array(
        [[c, -si, cx - c * width / 2 + si * height / 2], [si, c, cy - si * width / 2 - c * height / 2], [0, 0, 1]]
    )


def frames(
    photo_path: Path, kind: Kind, count: int, size: tuple[int, int], cutout_path: Path | None = None
) -> Iterator[SynthFrame]:
    """``count`` frames of ``size`` (width, height) with their true backward flows."""
    width, height = size
    photo = _load(photo_path, 2 * max(width, height))
    if kind in ("zoom", "rotate_zoom"):  # about one photo pixel per frame pixel: no aliasing as it zooms
        fit = 1.4 / min(photo.shape[1] / width, photo.shape[0] / height)
        photo = cv2.resize(photo, None, fx=fit, fy=fit, interpolation=cv2.INTER_AREA)
    ph, pw = photo.shape[:2]
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    ones = np.ones_like(xs)
    pixels = np.stack([xs, ys, ones], -1)
    object_rgb = object_mask = None
    if kind == "cutout":
        side = min(width, height) // 3
        source = _load(cutout_path or photo_path, side)
        object_rgb = cv2.resize(source, (side, side), interpolation=cv2.INTER_AREA)
        yy, xx = np.mgrid[0:side, 0:side]
        object_mask = ((xx - side / 2 + 0.5) ** 2 + (yy - side / 2 + 0.5) ** 2) <= (side / 2 - 1) ** 2

    def object_at(t: int) -> tuple[int, int]:  # integer positions: the object's own flow is exact
        u = t / max(count - 1, 1)
        assert object_rgb is not None
        side = object_rgb.shape[0]
        x = round((width - side) * (0.9 - 0.8 * u))
        y = round((height - side) * (0.5 + 0.4 * math.sin(2 * math.pi * u)))
        return x, y

    previous: np.ndarray | None = None
    previous_cover: np.ndarray | None = None
    for t in range(count):
        camera = _camera(kind, t, count, size, (pw, ph))
        rgb = cv2.warpAffine(photo, camera[:2], (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        flow = valid = None
        if previous is not None:
            back = pixels @ (np.linalg.inv(previous) @ camera).T  # frame t pixel -> frame t-1 pixel
            flow = (back[..., :2] - pixels[..., :2]).astype(np.float32)
            valid = (
                (back[..., 0] >= 0) & (back[..., 0] <= width - 1) & (back[..., 1] >= 0) & (back[..., 1] <= height - 1)
            )
        cover = np.zeros((height, width), bool)
        if object_rgb is not None and object_mask is not None:
            x, y = object_at(t)
            side = object_rgb.shape[0]
            region = rgb[y : y + side, x : x + side]
            region[object_mask] = object_rgb[object_mask]
            cover[y : y + side, x : x + side] = object_mask
            if flow is not None and valid is not None and previous_cover is not None:
                px, py = object_at(t - 1)
                flow[cover] = (px - x, py - y)
                # Background that the object covered in the previous frame has no match there.
                bx = np.clip(np.rint(xs + flow[..., 0]), 0, width - 1).astype(int)
                by = np.clip(np.rint(ys + flow[..., 1]), 0, height - 1).astype(int)
                valid &= cover | ~previous_cover[by, bx]
                valid &= ~(cv2.dilate(cover.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & ~cover)
        previous, previous_cover = camera, cover
        yield SynthFrame(rgb, flow, valid)


def write_clip(
    path: Path,
    rgb_frames: Iterator[np.ndarray],
    fps: int = 24,
    codec: str = "libx264",
    audio_s: float | None = None,
    rotation: int = 0,
    container: str | None = None,
    crf: int = 14,
) -> int:
    """Encode frames (all the same size) to ``path``; with ``audio_s`` a 440 Hz AAC (or Opus for WebM) tone."""
    count = 0
    with av.open(str(path), "w", format=container) as out:
        video = None
        audio = None
        for rgb in rgb_frames:
            if video is None:
                options = {"crf": str(crf), "preset": "veryfast"} if codec == "libx264" else {}
                video = out.add_stream(codec, rate=fps, options=options)
                video.width, video.height = rgb.shape[1], rgb.shape[0]
                video.pix_fmt = "yuv420p" if codec != "gif" else "pal8"
                if rotation:
                    video.set_display_rotation(rotation)
                if audio_s:
                    audio = out.add_stream("libopus" if container == "webm" else "aac", rate=48000)
                    audio.layout = "mono"
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            for packet in video.encode(frame):
                out.mux(packet)
            count += 1
        assert video is not None
        for packet in video.encode():
            out.mux(packet)
        if audio is not None and audio_s:
            write_tone(out, audio, audio_s)
    return count


def write_tone(out: av.container.OutputContainer, audio: av.AudioStream, seconds: float) -> None:
    rate = audio.codec_context.sample_rate
    n = audio.codec_context.frame_size or 1024
    total = int(seconds * rate)
    for start in range(0, total, n):
        t = (np.arange(start, start + n) / rate).astype(np.float32)
        samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
        for packet in audio.encode(frame):
            out.mux(packet)
    for packet in audio.encode():
        out.mux(packet)
