"""Preset thumbnails: a fixed sample photo painted by every row of an N-style model.

Presets are rows of the N-style network and have no source painting to show, so the gallery shows
what each row does to one small landscape. The landscape is drawn here from a fixed recipe (the
service ships no image files and must not read the shared corpus), so every replica renders the
same bytes and the same ETag. All rows of a model are rendered in one batch, once, then kept in
memory: one small PNG per row of each loaded N-style model, so the cache is bounded by the models.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass

import numpy as np

from service import imaging
from service.registry import LoadedModel

THUMBNAIL_SIDE = 128


@dataclass(frozen=True)
class Thumbnail:
    png: bytes
    etag: str  # a strong validator: quoted sha256 prefix of the PNG bytes


def sample_photo(side: int) -> np.ndarray:
    """A deterministic landscape, uint8 side x side x 3: sky, sun, two mountain ridges, a lake, texture.

    Varied edges, flat areas and colours make the differences between styles visible at thumbnail size.
    """
    y, x = np.mgrid[0:side, 0:side].astype(np.float32) / side
    sky = np.stack([0.45 + 0.4 * y, 0.65 + 0.25 * y, 0.95 - 0.1 * y], axis=2)
    image = sky
    sun = (x - 0.72) ** 2 + (y - 0.22) ** 2 < 0.011
    image[sun] = (1.0, 0.85, 0.35)
    far_ridge = y > 0.42 + 0.08 * np.sin(x * 9.0) + 0.05 * np.sin(x * 23.0 + 1.0)
    image[far_ridge] = np.stack([0.35 + 0.1 * x, 0.4 + 0.05 * x, 0.55 + 0.0 * x], axis=2)[far_ridge]
    near_ridge = y > 0.58 + 0.1 * np.sin(x * 5.0 + 2.0)
    image[near_ridge] = np.stack([0.2 + 0.1 * y, 0.45 + 0.2 * y, 0.15 + 0.0 * y], axis=2)[near_ridge]
    lake = y > 0.82
    image[lake] = np.stack([0.15 + 0.0 * x, 0.35 + 0.08 * np.sin(y * 90.0), 0.6 + 0.1 * y], axis=2)[lake]
    texture = np.random.default_rng(20260124).normal(0.0, 0.03, size=image.shape).astype(np.float32)
    return (np.clip(image + texture, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def render_rows(model: LoadedModel, photo: np.ndarray) -> list[Thumbnail]:
    """Every row of ``model`` applied to ``photo`` in one batch -> one PNG per row, in row order."""
    rows = model.manifest.embedding_size
    height, width = photo.shape[:2]
    tensor = imaging.pad_for_network(imaging.to_tensor(photo), model.manifest.size_multiple, model.manifest.min_side)
    stylized = model.transform(np.repeat(tensor, rows, axis=0), np.eye(rows, dtype=np.float32))
    stylized = imaging.crop(stylized, height, width)
    thumbnails = []
    for row in stylized:
        png = imaging.encode(imaging.to_uint8(row.transpose(1, 2, 0)), "png", 90)
        thumbnails.append(Thumbnail(png, '"' + hashlib.sha256(png).hexdigest()[:32] + '"'))
    return thumbnails


class PresetThumbnails:
    """Rendered thumbnails per N-style model label; ``get`` runs on a worker thread."""

    def __init__(self, side: int = THUMBNAIL_SIDE) -> None:
        self.side = side
        self._rendered: dict[str, list[Thumbnail]] = {}
        self._lock = threading.Lock()

    def cached(self, model: LoadedModel, index: int) -> Thumbnail | None:
        """The thumbnail if already rendered: lets the route answer without a trip to the workers."""
        rows = self._rendered.get(model.label)
        return rows[index] if rows is not None else None

    def get(self, model: LoadedModel, index: int) -> Thumbnail:
        # The gallery asks for every row at once: the lock makes that one batched render, not 26.
        with self._lock:
            if model.label not in self._rendered:
                self._rendered[model.label] = render_rows(model, sample_photo(self.side))
        return self._rendered[model.label][index]
