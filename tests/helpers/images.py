"""Test images: deterministic synthetic ones, encoding, decoding, and crops of the shared corpus."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def encode_image(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def decode_rgb(data: bytes) -> np.ndarray:
    """Response bytes -> float RGB HxWx3 in [0, 1]."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float32) / 255.0


def gradient_image(width: int, height: int, seed: int = 0) -> Image.Image:
    """A smooth, colourful test image with some texture, deterministic per seed."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 127 + 120 * np.sin(x / max(width, 1) * 3.1 + seed)
    g = 127 + 120 * np.cos(y / max(height, 1) * 2.3)
    b = 127 + 60 * np.sin((x + y) / 9.0) + rng.normal(0, 8, size=x.shape)
    return Image.fromarray(np.clip(np.stack([r, g, b], axis=2), 0, 255).astype(np.uint8))


def square_jpeg(path: Path, side: int, quality: int = 90) -> bytes:
    """The centre square of an image, resized to ``side`` (Lanczos), as JPEG bytes."""
    image = Image.open(path).convert("RGB")
    short = min(image.size)
    left, top = (image.width - short) // 2, (image.height - short) // 2
    square = image.crop((left, top, left + short, top + short)).resize((side, side), Image.Resampling.LANCZOS)
    return encode_image(square, "JPEG", quality=quality)


def ycbcr(image: np.ndarray) -> np.ndarray:
    matrix = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
    return image @ matrix.T
