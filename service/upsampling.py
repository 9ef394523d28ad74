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
1-3%). Chosen over joint bilateral upsampling (Kopf et al. 2007):
O(1) work per pixel whatever the scale and radius (box filters by cumulative sums), no per-pixel
window at full resolution, and the full-resolution pass is row-local, so it runs in bands of rows in
bounded memory at 8K (beside one uint8 image at the output size, the Lanczos base).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from PIL import Image

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
    """Mean over the (2r+1)^2 window around each pixel, clipped at the borders, of x [H,W,...]:
    cumulative sums along both axes, so its cost does not depend on the radius."""
    out = x.astype(np.float64, copy=True)
    for axis in (0, 1):
        n = out.shape[axis]
        c = np.cumsum(out, axis=axis)
        c = np.concatenate([np.zeros_like(np.take(c, [0], axis=axis)), c], axis=axis)
        idx = np.arange(n)
        hi, lo = np.minimum(idx + radius + 1, n), np.maximum(idx - radius, 0)
        shape = [1] * out.ndim
        shape[axis] = n
        count = (hi - lo).reshape(shape)
        out = (np.take(c, hi, axis=axis) - np.take(c, lo, axis=axis)) / count
    return out.astype(np.float32)


def coefficients(guide_low: np.ndarray, stylised_low: np.ndarray, radius: int = RADIUS, eps: float = EPS) -> np.ndarray:
    """The guided filter's averaged slope ``a`` [h,w,3] of stylised_low [h,w,3] on guide_low [h,w]; one
    channel at a time, so the float64 sums stay a few planes of the low resolution."""
    mean_g = box_mean(guide_low, radius)
    var = np.maximum(box_mean(guide_low * guide_low, radius) - mean_g * mean_g, 0.0) + np.float32(eps)
    slope = np.empty(stylised_low.shape, np.float32)
    for c in range(stylised_low.shape[2]):
        p = stylised_low[:, :, c]
        cov = box_mean(guide_low * p, radius) - mean_g * box_mean(p, radius)
        slope[:, :, c] = box_mean(cov / var, radius)
    return slope


def _axis(out_n: int, in_n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear sampling along one axis with pixel centres aligned (align_corners=False), edge-clamped."""
    pos = np.clip((np.arange(out_n, dtype=np.float64) + 0.5) * (in_n / out_n) - 0.5, 0, in_n - 1)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, in_n - 1)
    return lo, hi, (pos - lo).astype(np.float32)


def bilinear_rows(image: np.ndarray, out_h: int, out_w: int, rows: slice) -> np.ndarray:
    """Rows ``rows`` of image [h,w,...] resized bilinearly to (out_h, out_w), float32."""
    y0, y1, fy = (a[rows] for a in _axis(out_h, image.shape[0]))
    x0, x1, fx = _axis(out_w, image.shape[1])
    extra = (None,) * (image.ndim - 2)
    top, bottom = image[y0].astype(np.float32), image[y1].astype(np.float32)
    column = top + (bottom - top) * fy[(slice(None), None, *extra)]
    left, right = column[:, x0], column[:, x1]
    return left + (right - left) * fx[(None, slice(None), *extra)]


def guided_upsample_bands(
    stylised_low: np.ndarray, guide_low: np.ndarray, photo: np.ndarray, band_rows: int = BAND_ROWS
) -> Iterator[tuple[slice, np.ndarray]]:
    """The upsampled stylisation in bands of rows: (rows, float32 [rows,W,3] in [0, 1]).

    stylised_low: [h,w,3], float32 in [0, 1] or uint8; guide_low: uint8 [h,w,3], the photo the network
    saw; photo: uint8 [H,W,3], the full-resolution photo. Memory beyond the inputs is one band.
    """
    out_h, out_w = photo.shape[:2]
    if stylised_low.dtype == np.uint8:
        low_u8, low_f = stylised_low, stylised_low.astype(np.float32) * np.float32(1 / 255.0)
    else:
        low_f = stylised_low
        low_u8 = np.clip(stylised_low * np.float32(255.0) + np.float32(0.5), 0.0, 255.0).astype(np.uint8)
    # One uint8 image at the output size (a quarter of a float one). Pillow's resize of a band by its
    # fractional ``box`` does not match the whole image's resize, so the base is not made in bands.
    base = np.asarray(Image.fromarray(low_u8).resize((out_w, out_h), Image.Resampling.LANCZOS))
    guide = luminance(guide_low)
    slope = coefficients(guide, low_f)
    slope *= np.float32(GAIN)
    del low_f
    for start in range(0, out_h, band_rows):
        rows = slice(start, min(start + band_rows, out_h))
        detail = luminance(photo[rows]) - bilinear_rows(guide, out_h, out_w, rows)
        band = base[rows].astype(np.float32) * np.float32(1 / 255.0)
        band += bilinear_rows(slope, out_h, out_w, rows) * detail[:, :, None]
        np.clip(band, 0.0, 1.0, out=band)
        yield rows, band


def guided_upsample(stylised_low: np.ndarray, guide_low: np.ndarray, photo: np.ndarray) -> np.ndarray:
    """``guided_upsample_bands`` assembled into one float32 [H,W,3] image."""
    out = np.empty((*photo.shape[:2], 3), np.float32)
    for rows, band in guided_upsample_bands(stylised_low, guide_low, photo):
        out[rows] = band
    return out
