"""A clip for Chromium's fake camera (``--use-file-for-fake-video-capture``), made from the shared photos.

Chromium reads 4:2:0 YUV4MPEG2 (.y4m) and loops it. The clip pans slowly across a photo, so that
consecutive frames differ as a camera's do; the live client example reads the same format.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def y4m_clip(photo: Path, path: Path, size: tuple[int, int] = (640, 480), frames: int = 24, fps: int = 15) -> Path:
    width, height = size
    with Image.open(photo) as image:
        source = image.convert("RGB")
    # Scaled so the frame fits with room to pan sideways.
    scale = max(width * 1.25 / source.width, height / source.height)
    source = source.resize((round(source.width * scale), round(source.height * scale)), Image.Resampling.BILINEAR)
    travel = source.width - width
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for index in range(frames):
            left = round(travel * index / max(1, frames - 1))
            top = (source.height - height) // 2
            frame = source.crop((left, top, left + width, top + height)).convert("YCbCr")
            y, cb, cr = (np.asarray(plane) for plane in frame.split())
            out.write(b"FRAME\n")
            out.write(y.tobytes())
            for chroma in (cb, cr):  # 2x2 means: 4:2:0
                sub = chroma.reshape(height // 2, 2, width // 2, 2).astype(np.uint16).mean(axis=(1, 3))
                out.write(np.round(sub).astype(np.uint8).tobytes())
    return path
