"""Style embeddings: computing them (through the cache) and the arithmetic on them.

- strength (identity interpolation, arbitrary models): ``e = (1 - w) * P(content) + w * P(style)``,
  the content resized to the model's style size;
- blends: a convex combination of embeddings (or of N-style preset rows) with non-negative
  weights, normalised to sum to 1;
- presets: one-hot rows of an N-style model's weight vector.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from service import imaging, limits
from service.cache import EmbeddingCache, embedding_key
from service.errors import InvalidField, UnknownPreset
from service.metrics import Metrics
from service.registry import LoadedModel

MAX_BLEND = 16  # most styles in one `styles` blend


def interpolate(identity: np.ndarray, style: np.ndarray, strength: float) -> np.ndarray:
    """Identity interpolation: strength 0 is the content's own embedding, 1 the style's."""
    return ((1.0 - strength) * identity + strength * style).astype(np.float32)


def parse_weights(text: str | None, count: int) -> np.ndarray:
    """Comma-separated non-negative weights (equal when absent), normalised to sum to 1."""
    if text is None or not text.strip():
        return np.full(count, 1.0 / count, dtype=np.float64)
    try:
        weights = [float(part) for part in text.split(",")]
    except ValueError:
        raise InvalidField(f"weights must be comma-separated numbers, got {text[:80]!r}") from None
    return normalise_weights(weights, count)


def normalise_weights(weights: Sequence[float], count: int) -> np.ndarray:
    if len(weights) != count:
        raise InvalidField(f"{len(weights)} weights for {count} styles; give one weight per style")
    return np.asarray(limits.normalised(weights), dtype=np.float64)


def blend(embeddings: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """Convex combination of embeddings with already-normalised weights."""
    stacked = np.stack([np.asarray(e, dtype=np.float64) for e in embeddings])
    return (weights[:, None] * stacked).sum(axis=0).astype(np.float32)


def preset_index(model: LoadedModel, reference: str) -> int:
    """A preset by index ("3") or by name ("style-03") in an N-style model."""
    presets = model.manifest.presets
    reference = reference.strip()
    index = limits.small_index(reference)
    if index is not None and index < model.manifest.embedding_size:
        return index
    for preset in presets:
        if preset.name == reference:
            return preset.index
    names = ", ".join(p.name for p in presets[:4])
    raise UnknownPreset(
        f"model {model.label} has no preset {reference[:80]!r}; use an index 0-{model.manifest.embedding_size - 1}"
        + (f" or a name such as {names}" if names else "")
    )


def one_hot(index: int, size: int) -> np.ndarray:
    row = np.zeros(size, dtype=np.float32)
    row[index] = 1.0
    return row


@dataclass(frozen=True)
class PendingEmbedding:
    """An embedding found in the cache, or the predictor input that computes it (the caller runs it)."""

    key: str
    embedding: np.ndarray | None = None
    predictor_input: np.ndarray | None = None


class Embedder:
    """Style and identity embeddings through the cache. Synchronous; it never runs the predictor.

    ``pending_style``/``pending_identity`` give the cached embedding or the predictor's input; the
    caller (``stylist.Stylist``) runs the predictor through the micro-batcher and hands the result
    back to ``remember``.
    """

    def __init__(self, cache: EmbeddingCache, metrics: Metrics, max_pixels: int, min_side: int) -> None:
        self.cache = cache
        self.metrics = metrics
        self.max_pixels = max_pixels
        self.min_side = min_side

    @staticmethod
    def style_id(model: LoadedModel, data: bytes) -> str:
        """The content address of a style image for a model: its registered id and its cache key."""
        return embedding_key(data, model.label, imaging.style_preprocessing_tag(_style_size(model)))

    def pending_style(self, model: LoadedModel, data: bytes) -> PendingEmbedding:
        key = self.style_id(model, data)
        return self._pending(model, key, lambda: self._decode(imaging.style_tensor, model, data))

    def pending_identity(self, model: LoadedModel, data: bytes) -> PendingEmbedding:
        key = self._identity_key(model, data)
        return self._pending(model, key, lambda: self._decode(imaging.identity_tensor, model, data))

    def remember(self, key: str, embedding: np.ndarray) -> None:
        self.cache.put(key, embedding)
        self.metrics.cache_entries.set(len(self.cache))

    @staticmethod
    def _identity_key(model: LoadedModel, data: bytes) -> str:
        return embedding_key(data, model.label, imaging.identity_preprocessing_tag(_style_size(model)))

    def _pending(self, model: LoadedModel, key: str, make_input: Callable[[], np.ndarray]) -> PendingEmbedding:
        embedding = self._lookup(model, key)
        if embedding is not None:
            return PendingEmbedding(key, embedding=embedding)
        return PendingEmbedding(key, predictor_input=make_input())

    def _lookup(self, model: LoadedModel, key: str) -> np.ndarray | None:
        embedding = self.cache.get(key)
        if embedding is not None:
            self.metrics.cache_hits.labels(model.label).inc()
        else:
            self.metrics.cache_misses.labels(model.label).inc()
        return embedding

    def _decode(self, recipe: Callable[..., np.ndarray], model: LoadedModel, data: bytes) -> np.ndarray:
        """The predictor's input for ``data`` by ``recipe`` (``imaging.style_tensor`` or ``identity_tensor``)."""
        started = time.perf_counter()
        tensor = recipe(data, _style_size(model), max_pixels=self.max_pixels, min_side=self.min_side)
        self.metrics.codec_seconds.labels("decode").observe(time.perf_counter() - started)
        return tensor


def _style_size(model: LoadedModel) -> int:
    size = model.manifest.style_size
    assert size, f"arbitrary model {model.label} has no style_size in its manifest"
    return size
