"""Tiled inference in bounded memory: overlapping tiles, one set of instance-norm statistics, no seams.

Following URST (Chen et al., AAAI 2022, thumbnail instance normalisation): the statistics form of the
transformer runs once on a thumbnail of the whole image (at most ``statistics_side`` on its long side)
and every tile is stylised with those statistics (the given-statistics form), so all tiles share
one normalisation and agree in colour and contrast. Tiles overlap by at least ``overlap`` pixels;
across the middle half of each overlap a raised-cosine ramp hands one tile over to the next (the outer
quarter on each side, where the tile's own border padding shows, gets no weight). The ramps of two
neighbours sum to 1, so the blend is a partition of unity and needs no normalisation.

The output is assembled one row of tiles at a time: a float band of one tile's height at most is
live, finished rows go to the uint8 output at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Span:
    start: int
    stop: int


def spans(length: int, tile: int, overlap: int, multiple: int) -> list[Span]:
    """Tiles covering [0, length): as few as fit with at least ``overlap`` shared between neighbours, each
    about the same side (at most ``tile``), spread evenly. Every start is a multiple of ``multiple``: the
    network downsamples by that much, so a tile on the same grid as the whole image computes the same
    pixels; off the grid it would not. The last tile ends at ``length`` (and is padded like the image)."""
    if length <= tile:
        return [Span(0, length)]
    shared = overlap + multiple  # room for rounding the starts down to the grid
    count = math.ceil((length - shared) / (tile - multiple - shared))
    side = -(-math.ceil((length + (count - 1) * shared) / count) // multiple) * multiple
    starts = [round(i * (length - side) / (count - 1)) // multiple * multiple for i in range(count)]
    return [Span(s, length if i == count - 1 else s + side) for i, s in enumerate(starts)]


def ramp(width: int) -> np.ndarray:
    """Raised cosine from 0 to 1 over ``width`` pixels (sampled at pixel centres); ramp + reversed = 1."""
    t = (np.arange(width, dtype=np.float64) + 0.5) / width
    return (0.5 - 0.5 * np.cos(np.pi * t)).astype(np.float32)


def weights(tiles: list[Span], index: int) -> np.ndarray:
    """Blend weights along one axis for tile ``index`` (length of the tile)."""
    span = tiles[index]
    w = np.ones(span.stop - span.start, np.float32)
    for neighbour, rising in ((index - 1, True), (index + 1, False)):
        if not 0 <= neighbour < len(tiles):
            continue
        other = tiles[neighbour]
        lo, hi = max(span.start, other.start), min(span.stop, other.stop)  # the shared region
        quarter = (hi - lo) // 4
        fade = slice(lo + quarter - span.start, hi - quarter - span.start)
        r = ramp(fade.stop - fade.start)
        if rising:
            w[: fade.start] = 0.0
            w[fade] *= r
        else:
            w[fade.stop :] = 0.0
            w[fade] *= r[::-1]
    return w


@dataclass(frozen=True)
class TilePlan:
    rows: list[Span]
    columns: list[Span]

    @classmethod
    def for_size(cls, height: int, width: int, tile: int, overlap: int, multiple: int) -> TilePlan:
        return cls(spans(height, tile, overlap, multiple), spans(width, tile, overlap, multiple))

    @property
    def count(self) -> int:
        return len(self.rows) * len(self.columns)


class TileAssembler:
    """Blends stylised tiles into a uint8 HxWx3 image, one row of tiles at a time, top to bottom."""

    def __init__(self, plan: TilePlan, height: int, width: int) -> None:
        self.plan = plan
        self.out = np.empty((height, width, 3), np.uint8)
        self._carry: np.ndarray | None = None  # blended rows shared with the next row of tiles
        self._column_weights = [weights(plan.columns, j) for j in range(len(plan.columns))]

    def add_row(self, i: int, tiles: list[np.ndarray]) -> None:
        """Row ``i`` of stylised tiles, float32 [1,3,h,w] each (cropped to their spans), left to right."""
        span = self.plan.rows[i]
        band = np.zeros((span.stop - span.start, self.out.shape[1], 3), np.float32)
        wy = weights(self.plan.rows, i)
        inner_rows = _ones(wy)
        for column, wx, tile in zip(self.plan.columns, self._column_weights, tiles, strict=True):
            _blend(band[:, column.start : column.stop], tile[0].transpose(1, 2, 0), wy, wx, inner_rows, _ones(wx))
        if self._carry is not None:
            band[: len(self._carry)] += self._carry
        done = self.plan.rows[i + 1].start - span.start if i + 1 < len(self.plan.rows) else len(band)
        _to_uint8(band[:done], self.out[span.start : span.start + done])
        self._carry = band[done:] if done < len(band) else None


def _ones(w: np.ndarray) -> slice:
    """The run of weight 1 in the middle of a tile's weights (empty if none)."""
    one = np.flatnonzero(w == 1.0)
    return slice(int(one[0]), int(one[-1]) + 1) if one.size else slice(0, 0)


def _blend(out: np.ndarray, tile: np.ndarray, wy: np.ndarray, wx: np.ndarray, rows: slice, columns: slice) -> None:
    """out += tile * wy x wx, [h,w,3]. Where both weights are 1 no neighbour has weight (partition of
    unity), so the tile is copied there; only the frame where tiles hand over is multiplied."""
    out[rows, columns] = tile[rows, columns]
    h, w = len(wy), len(wx)
    frame = [
        (slice(0, rows.start), slice(0, w)),
        (slice(rows.stop, h), slice(0, w)),
        (rows, slice(0, columns.start)),
        (rows, slice(columns.stop, w)),
    ]
    for r, c in frame:
        if r.start < r.stop and c.start < c.stop:
            out[r, c] += tile[r, c] * (wy[r, None] * wx[None, c])[:, :, None]


def _to_uint8(band: np.ndarray, out: np.ndarray) -> None:
    """out = round(band * 255), clipped; in place in ``band`` (finished rows, no longer needed)."""
    np.multiply(band, np.float32(255.0), out=band)
    band += np.float32(0.5)
    np.clip(band, 0.0, 255.0, out=band)
    out[...] = band
