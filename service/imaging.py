"""Image decoding, validation, geometry, colour and encoding: bytes in, numpy arrays out, and back.

Everything here is synchronous and CPU-bound; callers run it off the event loop. Arrays are
``uint8`` HxWx3 RGB between steps and ``float32`` NCHW in [0, 1] for the networks.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable
from typing import Literal, NamedTuple

import numpy as np
from PIL import ExifTags, Image, ImageOps, JpegImagePlugin, UnidentifiedImageError

from service.errors import ContentTooLarge, InvalidField, UnsupportedImage
from service.limits import DECODE_BUDGET

log = logging.getLogger(__name__)

ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
OutputFormat = Literal["png", "jpeg", "webp"]
MEDIA_TYPES: dict[str, str] = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}

# How style images (and content images for identity interpolation) are squared for the predictor.
# The tag is part of every embedding's cache key and style id: change it when the recipe changes.
STYLE_RESAMPLE = Image.Resampling.BILINEAR
CONTENT_RESAMPLE = Image.Resampling.LANCZOS
# Images that are shrunk anyway (style images; content for a smaller output) are decoded at no less
# than this many times the size they are shrunk to: a JPEG at a reduced DCT scale (``decode_for_shrinking``),
# then the usual antialiased resize, as Pillow's ``thumbnail`` does (its reducing_gap). Most of a big
# JPEG's decode is skipped, and the margin keeps the result close to a full decode (docs/performance.md).
DECODE_MARGIN = 2


def style_preprocessing_tag(style_size: int) -> str:
    return f"dct-{DECODE_MARGIN * style_size}/center-square/bilinear-aa/{style_size}"


def identity_preprocessing_tag(style_size: int) -> str:
    return f"dct-{DECODE_MARGIN * style_size}/resize/bilinear-aa/{style_size}"


def decode(data: bytes, *, max_pixels: int, min_side: int, what: str) -> np.ndarray:
    """Decode an upload to RGB uint8 HxWx3, refusing oversized images before their pixels are decoded.

    Accepts JPEG, PNG, WebP, GIF (first frame), BMP and TIFF; applies the EXIF orientation; turns
    grayscale, palette, alpha (composited on white), CMYK and 16-bit images into 8-bit RGB.
    """
    return decode_for_shrinking(data, max_pixels=max_pixels, min_side=min_side, what=what, short_side=None).pixels


class Decoded(NamedTuple):
    pixels: np.ndarray  # RGB uint8 HxWx3, possibly reduced
    full_size: tuple[int, int]  # the image's upright (width, height) before any reduction


def decode_for_shrinking(
    data: bytes,
    *,
    max_pixels: int,
    min_side: int,
    what: str,
    short_side: Callable[[int, int], int] | None,
    admit: Callable[[int, int], None] | None = None,
) -> Decoded:
    """``decode`` for callers that shrink the image anyway: the pixels, maybe reduced, and the full size.

    ``short_side(width, height)``, given that full size, is the shorter side the caller needs; a JPEG
    is then decoded at the smallest of its DCT scales (1/2, 1/4, 1/8) that keeps it, in a fraction
    of a full decode's time. Other formats decode in full. The limits apply to the full size;
    ``admit(width, height)``, called with the stored size from the header before any pixel is decoded,
    may raise to refuse work that size would need.
    """
    if not data:
        raise UnsupportedImage(f"the {what} image is empty (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)  # reads the header only
    except Image.DecompressionBombError as exc:
        raise ContentTooLarge(f"the {what} image is too large: {exc}") from None
    except UnidentifiedImageError:
        raise UnsupportedImage(
            f"the {what} image is not a JPEG, PNG, WebP, GIF, BMP or TIFF file that can be read"
        ) from None
    except Exception as exc:  # Pillow raises many types on malformed headers
        raise UnsupportedImage(f"the {what} image cannot be read: {type(exc).__name__}") from None
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise ContentTooLarge(
                f"the {what} image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}"
            )
        if min(width, height) < min_side:
            raise InvalidField(f"the {what} image is {width}x{height}; each side must be at least {min_side} pixels")
        if admit is not None:
            admit(width, height)
        try:
            if short_side is not None:
                _reduce_jpeg(image, short_side)
            with DECODE_BUDGET.hold(image.size[0] * image.size[1]):  # after a JPEG's reduction
                image.load()
                turns = _orientation_turns(image)  # before turning: exif_transpose clears the tag
                turned = _apply_exif_orientation(image) and turns
                return Decoded(_to_rgb(image), (height, width) if turned else (width, height))
        except Image.DecompressionBombError as exc:
            raise ContentTooLarge(f"the {what} image is too large: {exc}") from None
        except Exception as exc:  # truncated or corrupt pixel data
            raise UnsupportedImage(f"the {what} image cannot be decoded: {type(exc).__name__}: {exc}") from None


def _reduce_jpeg(image: Image.Image, short_side: Callable[[int, int], int]) -> None:
    """Before loading: a JPEG's decoder set to its smallest DCT scale that keeps ``short_side`` of the
    full upright size. Other formats have no such scales (and some read EXIF only by loading)."""
    if not isinstance(image, JpegImagePlugin.JpegImageFile):
        return
    width, height = image.size
    upright = (height, width) if _orientation_turns(image) else (width, height)  # a JPEG's EXIF is in its header
    # Both sides shrink alike, so which one is upright does not matter here.
    scale = min(width, height) / max(short_side(*upright), 1)
    image.draft(None, (max(1, math.ceil(width / scale)), max(1, math.ceil(height / scale))))


def _orientation_turns(image: Image.Image) -> bool:
    """Whether the EXIF orientation swaps width and height (a quarter turn, with or without a flip)."""
    try:
        return image.getexif().get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8)
    except Exception:  # unreadable EXIF: _apply_exif_orientation leaves such an image as it is
        return False


def _apply_exif_orientation(image: Image.Image) -> bool:
    """Turn the image upright, in place; False where its EXIF block could not be applied."""
    try:
        # In place: with nothing to rotate, the copying form returns a full copy of the image.
        ImageOps.exif_transpose(image, in_place=True)
        return True
    except Exception as exc:  # a malformed EXIF block must not lose an otherwise good image
        log.debug("ignoring unreadable EXIF orientation: %s", exc)
        return False


def _to_rgb(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode in ("I", "F") or mode.startswith("I;16"):
        values = np.nan_to_num(np.asarray(image, dtype=np.float64))
        if mode == "F" and values.max(initial=0.0) <= 1.0:
            values = values * 255.0
        elif mode.startswith("I;16") or values.max(initial=0.0) > 255:
            values = values * (255.0 / 65535.0)
        gray = np.clip(values + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode == "1":
        image = image.convert("L")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8).copy()


def output_size(width: int, height: int, max_side: int | None, cap: int) -> tuple[int, int]:
    """Output (width, height): longest side ``max_side`` if given, else the input's capped at ``cap``."""
    longest = max(width, height)
    target = min(max_side, cap) if max_side is not None else min(longest, cap)
    if target == longest:
        return width, height
    scale = target / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize(image: np.ndarray, size: tuple[int, int], resample: Image.Resampling = CONTENT_RESAMPLE) -> np.ndarray:
    """Resize uint8 HxWx3 to (width, height); Pillow's filters are antialiased when shrinking."""
    if (image.shape[1], image.shape[0]) == size:
        return image
    return np.asarray(Image.fromarray(image).resize(size, resample), dtype=np.uint8)


def center_square(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return image[top : top + side, left : left + side]


def style_input(image: np.ndarray, style_size: int) -> np.ndarray:
    """The predictor's input for a style image: centre square, resized to the manifest's style size."""
    square = resize(center_square(image), (style_size, style_size), STYLE_RESAMPLE)
    return to_tensor(square)


def style_tensor(data: bytes, style_size: int, *, max_pixels: int, min_side: int) -> np.ndarray:
    """A style image's bytes -> the predictor's input, by the recipe ``style_preprocessing_tag`` names."""
    return style_input(_decode_for_predictor(data, style_size, max_pixels, min_side, "style"), style_size)


def identity_tensor(data: bytes, style_size: int, *, max_pixels: int, min_side: int) -> np.ndarray:
    """A content image's bytes -> the predictor's input for identity interpolation: resized whole, not
    cropped, by the recipe ``identity_preprocessing_tag`` names. Its own decode, independent of the
    output size, since the embedding is cached under the image's bytes alone."""
    image = _decode_for_predictor(data, style_size, max_pixels, min_side, "content")
    return to_tensor(resize(image, (style_size, style_size), STYLE_RESAMPLE))


def _decode_for_predictor(data: bytes, style_size: int, max_pixels: int, min_side: int, what: str) -> np.ndarray:
    return decode_for_shrinking(
        data, max_pixels=max_pixels, min_side=min_side, what=what, short_side=lambda w, h: DECODE_MARGIN * style_size
    ).pixels


def to_tensor(image: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 -> float32 1x3xHxW in [0, 1]."""
    return np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32) / np.float32(255.0)


def to_uint8(tensor: np.ndarray) -> np.ndarray:
    """float32 1x3xHxW (or HxWx3) in [0, 1] -> uint8 HxWx3, rounded; NaN is 0, out of range clipped."""
    planes = tensor[0] if tensor.ndim == 4 else tensor.transpose(2, 0, 1)
    # One new float array, then in place, and the channels interleaved one plane at a time: cheaper
    # than numpy's general transpose-copy and nan_to_num (docs/performance.md).
    scaled = np.multiply(planes, np.float32(255.0), dtype=np.float32)
    np.add(scaled, np.float32(0.5), out=scaled)
    np.clip(scaled, 0.0, 255.0, out=scaled)
    if np.isnan(scaled).any():  # clip keeps NaN, and NaN has no uint8 value
        np.nan_to_num(scaled, copy=False)
    out = np.empty((*scaled.shape[1:], 3), np.uint8)
    for channel, plane in enumerate(scaled):
        out[:, :, channel] = plane  # truncates: the 0.5 above rounds
    return out


def pad_for_network(tensor: np.ndarray, multiple: int, min_side: int) -> np.ndarray:
    """Reflect-pad NCHW bottom/right so H and W are multiples of ``multiple`` and at least ``min_side``."""
    height, width = tensor.shape[2:]

    def target(side: int) -> int:
        side = max(side, min_side)
        return -(-side // multiple) * multiple

    pad_h, pad_w = target(height) - height, target(width) - width
    if pad_h == 0 and pad_w == 0:
        return tensor
    # numpy reflects repeatedly when the pad is wider than the image; a 1-pixel side is repeated.
    mode = "reflect" if min(height, width) > 1 else "edge"
    return np.pad(tensor, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)), mode=mode)


def crop(tensor: np.ndarray, height: int, width: int) -> np.ndarray:
    return tensor[:, :, :height, :width]


# BT.601 full-range RGB <-> YCbCr, as JPEG uses it.
_TO_YCBCR = np.array(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], dtype=np.float32
)
_FROM_YCBCR = np.linalg.inv(_TO_YCBCR).astype(np.float32)


def rgb_to_ycbcr(image: np.ndarray) -> np.ndarray:
    """float HxWx3 RGB in [0, 1] -> Y in [0, 1], Cb/Cr in [-0.5, 0.5]."""
    return image.astype(np.float32) @ _TO_YCBCR.T


def ycbcr_to_rgb(image: np.ndarray) -> np.ndarray:
    return image @ _FROM_YCBCR.T


def preserve_color(stylized: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Luminance transfer: the stylised image's Y with the content's Cb and Cr (HxWx3 floats in [0, 1])."""
    styl = rgb_to_ycbcr(stylized)
    cont = rgb_to_ycbcr(content)
    merged = np.concatenate([styl[:, :, :1], cont[:, :, 1:]], axis=2)
    return np.clip(ycbcr_to_rgb(merged), 0.0, 1.0)


def encode(image: np.ndarray, fmt: OutputFormat, quality: int) -> bytes:
    """uint8 HxWx3 -> PNG, JPEG or WebP bytes (``quality`` applies to JPEG and WebP)."""
    buffer = io.BytesIO()
    pil = Image.fromarray(image if image.dtype == np.uint8 else to_uint8(image))
    if fmt == "png":
        pil.save(buffer, format="PNG", compress_level=3)
    elif fmt == "jpeg":
        pil.save(buffer, format="JPEG", quality=quality)
    else:
        pil.save(buffer, format="WEBP", quality=quality, method=4)
    return buffer.getvalue()
