"""Edge-aware upsampling of a stylised image, guided by the full-resolution photo (the brush size).

A larger brush stylises the photo at ``output / stroke_scale`` and brings the result up to the output
size. Plain interpolation would blur the photo's edges along with the strokes; this module follows
the fast guided filter (He & Sun, "Fast Guided Filter", 2015, after He et al.'s guided filter, ECCV
2010 / TPAMI 2013): at the low resolution, fit in every window a local linear model
``stylised ~= a * guide + b`` (guide: the photo's luminance as the network saw it), average the
coefficients over the windows covering each pixel, and interpolate ``a`` bilinearly to full size.
The full-resolution output is then

    out = lanczos(stylised_low) + GAIN * up(a) * (guide_high - up(guide_low))

that is the Lanczos upsample of the strokes plus the photo's detail that the low resolution lost,
transferred where (and as strongly as) the stylisation follows the photo locally. Where the strokes
ignore the photo (flat sky under swirls), ``a`` is near 0 and nothing of the photo is added. Unlike the
filter's own output ``a * guide + b``, the base is the stylised image itself, not its box-smoothed
``b``, so the strokes keep their texture. The base is Lanczos, not bilinear, and the detail is
transferred at twice the fitted slope: both calibrated on the losses against the peer (docs/brush.md;
Lanczos keeps the strokes' own edges crisp, which lowers the style loss by 6-22%; the regularised,
window-averaged slope under-transfers the photo's detail, and doubling it lowers the content loss by
1-3%). The Lanczos base is made whole, one uint8 image at the output size: Pillow's resize of a band
by a fractional box, exact for the bilinear planes below, did not match the whole image's resize
with Lanczos on RGB. Chosen over joint bilateral upsampling (Kopf et al. 2007):
work per pixel independent of the scale (the box filters are sums of 2r + 1 shifted planes, r = 2),
no per-pixel window at full resolution, and the full-resolution pass is row-local, so it runs in
bands of rows in bounded memory at 8K.

Everything works on 2-D planes, one channel at a time: numpy's gathers and broadcasts over a trailing
axis of 3 run several times slower than over a plane, and this pass sits on the live path
(docs/live.md has the timings).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from PIL import Image

from service import imaging

RADIUS = 2  # box radius at the low resolution: a 5x5 window
EPS = 1e-3  # regularisation of a (guide in [0, 1]): edges weaker than ~0.03 transfer little
GAIN = 2.0  # the photo's detail is added at this multiple of the fitted slope (docs/brush.md)
BAND_ROWS = 256  # full-resolution rows per step of the upsampling pass
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def luminance(image: np.ndarray) -> np.ndarray:
    """uint8 or float HxWx3 -> float32 HxW luminance in [0, 1]."""
    scale = np.float32(1 / 255.0) if image.dtype == np.uint8 else np.float32(1.0)
    return (image.astype(np.float32) @ _LUMA) * scale


def box_mean(x: np.ndarray, radius: int) -> np.ndarray:
    """Mean over the (2r+1)^2 window around each pixel, clipped at the borders, of x [H,W,...], float32.

    Separable sums of 2r + 1 shifted slices of the zero-padded input, divided by the number of pixels
    inside the frame. For the small radius used here this is a few passes over the plane, cheaper than
    cumulative sums (which also need float64 to stay exact over long rows); a sum of 5 float32 values
    in [0, 1] is exact to ~1e-7.
    """
    out = np.asarray(x, np.float32)
    for axis in (0, 1):
        out = _window_sums(out, radius, axis)
    return out


def _window_sums(x: np.ndarray, radius: int, axis: int) -> np.ndarray:
    """Along ``axis`` (0 or 1) of float32 x: the mean of the 2r+1 values around each, clipped at the ends.
    The shifts are slices of a zero-padded copy along the axis itself, so every add runs over
    contiguous rows (a moved axis would make numpy step across memory)."""
    n = x.shape[axis]
    shape = list(x.shape)
    shape[axis] = n + 2 * radius
    padded = np.zeros(shape, np.float32)

    def part(start: int) -> tuple[slice, ...]:
        return (slice(None),) * axis + (slice(start, start + n),)

    padded[part(radius)] = x
    total = padded[part(0)] + padded[part(1)]
    for k in range(2, 2 * radius + 1):
        total += padded[part(k)]
    idx = np.arange(n)
    count = (np.minimum(idx + radius + 1, n) - np.maximum(idx - radius, 0)).astype(np.float32)
    total /= count.reshape((1,) * axis + (n,) + (1,) * (x.ndim - axis - 1))
    return total


def coefficients(guide_low: np.ndarray, stylised_low: np.ndarray, radius: int = RADIUS, eps: float = EPS) -> np.ndarray:
    """The guided filter's averaged slope ``a`` [h,w,3] of stylised_low [h,w,3] on guide_low [h,w]; one
    channel at a time, so the sums stay a few float32 planes of the low resolution."""
    mean_g = box_mean(guide_low, radius)
    var = np.maximum(box_mean(guide_low * guide_low, radius) - mean_g * mean_g, 0.0) + np.float32(eps)
    # Planes first (returned as an [h,w,3] view): each channel is a contiguous plane for the resampling.
    slope = np.empty((stylised_low.shape[2], *stylised_low.shape[:2]), np.float32)
    for c in range(stylised_low.shape[2]):
        p = stylised_low[:, :, c]
        cov = box_mean(guide_low * p, radius) - mean_g * box_mean(p, radius)
        slope[c] = box_mean(cov / var, radius)
    return slope.transpose(1, 2, 0)


def _plane_image(plane: np.ndarray) -> Image.Image:
    """A 2-D float plane as a Pillow "F" image (float32, one copy only if it is not contiguous)."""
    return Image.fromarray(np.ascontiguousarray(plane, np.float32))


def _resize_rows(image: Image.Image, out_h: int, out_w: int, rows: slice) -> np.ndarray:
    """Rows ``rows`` of a float plane resized bilinearly to (out_h, out_w), float32 [rows, out_w].

    Pillow's bilinear filter, pixel centres aligned and, when enlarging, two taps per axis with the
    weights renormalised at the border (the same as clamping to the edge pixel); about four times
    faster than the same arithmetic in numpy. A band is the box of source rows that maps onto it:
    Pillow keeps the whole image's border, so bands put together equal one full-size resize.
    """
    scale = image.height / out_h
    box = (0.0, rows.start * scale, float(image.width), rows.stop * scale)
    return np.asarray(image.resize((out_w, rows.stop - rows.start), Image.Resampling.BILINEAR, box=box))


def bilinear_rows(image: np.ndarray, out_h: int, out_w: int, rows: slice) -> np.ndarray:
    """Rows ``rows`` of image [h,w,...] resized bilinearly to (out_h, out_w), float32; a plane at a time."""
    if image.ndim == 2:
        return _resize_rows(_plane_image(image), out_h, out_w, rows)
    out = np.empty((rows.stop - rows.start, out_w, *image.shape[2:]), np.float32)
    for c in np.ndindex(*image.shape[2:]):
        plane = _plane_image(image[(slice(None), slice(None), *c)])
        out[(slice(None), slice(None), *c)] = _resize_rows(plane, out_h, out_w, rows)
    return out


def guided_upsample_bands(
    stylised_low: np.ndarray, guide_low: np.ndarray, photo: np.ndarray, band_rows: int = BAND_ROWS
) -> Iterator[tuple[slice, np.ndarray]]:
    """The upsampled stylisation in bands of rows: (rows, float32 [rows,W,3] in [0, 1]).

    stylised_low: [h,w,3], float32 in [0, 1] or uint8; guide_low: uint8 [h,w,3], the photo the network
    saw; photo: uint8 [H,W,3], the full-resolution photo. Memory beyond the inputs is one band and the
    uint8 Lanczos base at the output size.
    """
    out_h, out_w = photo.shape[:2]
    if stylised_low.dtype == np.uint8:
        low_u8, low_f = stylised_low, stylised_low.astype(np.float32) * np.float32(1 / 255.0)
    else:
        low_f, low_u8 = stylised_low, imaging.to_uint8(stylised_low)
    base = np.asarray(Image.fromarray(low_u8).resize((out_w, out_h), Image.Resampling.LANCZOS))
    guide = luminance(guide_low)
    slope = coefficients(guide, low_f)
    del low_f
    guide_image = _plane_image(guide)
    slopes = [_plane_image(np.float32(GAIN) * slope[:, :, c]) for c in range(3)]
    for start in range(0, out_h, band_rows):
        rows = slice(start, min(start + band_rows, out_h))
        detail = luminance(photo[rows]) - _resize_rows(guide_image, out_h, out_w, rows)
        band = np.empty((rows.stop - rows.start, out_w, 3), np.float32)
        for c in range(3):
            plane = base[rows, :, c] * np.float32(1 / 255.0)
            plane += _resize_rows(slopes[c], out_h, out_w, rows) * detail
            np.clip(plane, 0.0, 1.0, out=plane)
            band[:, :, c] = plane
        yield rows, band


def guided_upsample(stylised_low: np.ndarray, guide_low: np.ndarray, photo: np.ndarray) -> np.ndarray:
    """``guided_upsample_bands`` assembled into one float32 [H,W,3] image."""
    out = np.empty((*photo.shape[:2], 3), np.float32)
    for rows, band in guided_upsample_bands(stylised_low, guide_low, photo):
        out[rows] = band
    return out
