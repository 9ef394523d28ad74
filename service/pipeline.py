"""A stylize request, from validated fields to encoded image bytes.

``resolve_style`` turns the style fields (``style`` file, ``style_id``, ``preset`` or a ``styles``
blend) into a model and a ``StyleSpec``; it is cheap and runs on the event loop. ``Stylist.run``
does the heavy part: decode and resize on a worker thread, the predictor (on a cache miss) and the
transformer through the micro-batcher, colour and encode on a worker thread again.

Rules:
- exactly one of ``style``, ``style_id``, ``preset``, ``styles`` (400 otherwise);
- ``style`` and ``style_id`` need an arbitrary model; a ``style_id`` defaults to the model it was
  registered with, and naming another model is a 400;
- presets are rows of an N-style model: ``model`` defaults to the presets model for them, and
  naming an arbitrary model is a 400;
- ``styles`` blends registered ids, or presets written ``preset:<index|name>``, never both.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np

from service import imaging, limits
from service.batching import BatchKey, MicroBatcher
from service.config import Settings
from service.embeddings import Embedder, PendingEmbedding, blend, interpolate, one_hot, parse_weights, preset_index
from service.errors import BadRequest, CorruptStyle, InvalidField, UnknownStyle
from service.metrics import Metrics
from service.registry import LoadedModel, ModelRegistry
from service.styles import StyleRecord, StyleStore
from service.workers import WorkerPool

PRESET_PREFIX = "preset:"


@dataclass(frozen=True)
class StyleSpec:
    """What to stylise with: a known embedding, or style image bytes for the predictor."""

    reference: str  # for the X-Style-Id header
    embedding: np.ndarray | None = None
    image: bytes | None = None


@dataclass(frozen=True)
class StylizeJob:
    model: LoadedModel
    content: bytes
    style: StyleSpec
    strength: float
    preserve_color: bool
    max_side: int | None
    format: imaging.OutputFormat
    quality: int


@dataclass(frozen=True)
class StylizeResult:
    image: bytes
    media_type: str
    width: int
    height: int
    style_reference: str


@dataclass(frozen=True)
class StyleFields:
    style: bytes | None
    style_id: str | None
    preset: str | None
    styles: str | None
    weights: str | None
    model: str | None


def require_kind(model: LoadedModel, kind: str, why: str) -> LoadedModel:
    if model.kind != kind:
        raise BadRequest(f"{why} needs a model of kind {kind!r}; {model.label} is {model.kind!r}")
    return model


def resolve_style(
    fields: StyleFields, registry: ModelRegistry, store: StyleStore, owner: str
) -> tuple[LoadedModel, StyleSpec]:
    limits.check_style_fields(vars(fields))
    given = [name for name in ("style", "style_id", "preset", "styles") if getattr(fields, name) is not None]
    if len(given) != 1:
        raise BadRequest(
            "give exactly one of `style` (image file), `style_id`, `preset` or `styles` (a blend); got "
            + (", ".join(given) or "none")
        )
    if fields.weights is not None and fields.styles is None:
        raise BadRequest("`weights` goes with `styles`")
    if fields.style is not None:
        model = require_kind(registry.get(fields.model), "arbitrary", "a style image")
        return model, StyleSpec(reference="", image=fields.style)
    if fields.style_id is not None:
        record = lookup_style(store, owner, fields.style_id.strip())
        model = _model_for_styles(registry, fields.model, [record.model])
        return model, StyleSpec(reference=record.id, embedding=_stored_embedding(record, model))
    if fields.preset is not None:
        model = _presets_model(registry, fields.model)
        index = preset_index(model, fields.preset)
        return model, StyleSpec(
            reference=f"{PRESET_PREFIX}{_preset_name(model, index)}", embedding=one_hot(index, _size(model))
        )
    assert fields.styles is not None
    return _resolve_blend(fields.styles, fields.weights, fields.model, registry, store, owner)


def _resolve_blend(
    styles: str, weights_text: str | None, model_ref: str | None, registry: ModelRegistry, store: StyleStore, owner: str
) -> tuple[LoadedModel, StyleSpec]:
    items = [item.strip() for item in styles.split(",")]
    if not all(items) or not 1 <= len(items) <= 16:
        raise InvalidField("`styles` must be 1 to 16 comma-separated style ids or preset:<index|name> items")
    presets = [item.startswith(PRESET_PREFIX) for item in items]
    if any(presets) and not all(presets):
        raise BadRequest("a blend mixes registered styles and presets; they live in different models")
    weights = parse_weights(weights_text, len(items))
    if all(presets):
        model = _presets_model(registry, model_ref)
        indices = [preset_index(model, item[len(PRESET_PREFIX) :]) for item in items]
        rows = [one_hot(i, _size(model)) for i in indices]
        names = [f"{PRESET_PREFIX}{_preset_name(model, i)}" for i in indices]
        return model, StyleSpec(reference=",".join(names), embedding=blend(rows, weights))
    records = [lookup_style(store, owner, item) for item in items]
    model = _model_for_styles(registry, model_ref, [r.model for r in records])
    vectors = [_stored_embedding(r, model) for r in records]
    return model, StyleSpec(reference=",".join(r.id for r in records), embedding=blend(vectors, weights))


def lookup_style(store: StyleStore, owner: str, style_id: str) -> StyleRecord:
    """A registered style visible to ``owner``; ``UnknownStyle`` (404) when there is none."""
    record = store.get(owner, style_id)
    if record is None:
        raise UnknownStyle(f"no registered style {style_id[:80]!r}; register one with POST /v1/styles")
    return record


def _stored_embedding(record: StyleRecord, model: LoadedModel) -> np.ndarray:
    """A stored record's embedding, refused when it does not fit the model (it would fail in ONNX Runtime)."""
    if len(record.embedding) != _size(model):
        raise CorruptStyle(
            f"the stored style {record.id[:80]!r} has {len(record.embedding)} values; {model.label} takes "
            f"{_size(model)}; register its image again"
        )
    return np.asarray(record.embedding, np.float32)


def _model_for_styles(registry: ModelRegistry, model_ref: str | None, labels: list[str]) -> LoadedModel:
    if len(set(labels)) > 1:
        raise BadRequest(f"the styles belong to different models ({', '.join(sorted(set(labels)))})")
    model = registry.get(model_ref or labels[0])
    if model.label != labels[0]:
        raise BadRequest(f"the style was registered with model {labels[0]}, not {model.label}")
    return require_kind(model, "arbitrary", "a registered style")


def _presets_model(registry: ModelRegistry, model_ref: str | None) -> LoadedModel:
    return require_kind(registry.get(model_ref or registry.presets_model), "nstyle", "a preset")


def _preset_name(model: LoadedModel, index: int) -> str:
    names = {p.index: p.name for p in model.manifest.presets}
    return names.get(index, str(index))


def _size(model: LoadedModel) -> int:
    return model.manifest.embedding_size


@dataclass(frozen=True)
class _Prepared:
    """A decoded job, ready for the networks."""

    resized: np.ndarray  # uint8 HxWx3 at the output size
    tensor: np.ndarray  # float32 1x3xHxW of ``resized``
    padded: np.ndarray  # ``tensor`` reflect-padded to the network's multiple: the batch bucket
    style: PendingEmbedding | None  # None when the job carries its embedding
    identity: PendingEmbedding | None  # P(content), for strength < 1 on arbitrary models


class Stylist:
    """Runs stylize jobs: codec work on the worker threads, every model run through the micro-batcher."""

    def __init__(
        self, settings: Settings, embedder: Embedder, metrics: Metrics, pool: WorkerPool, batcher: MicroBatcher
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.metrics = metrics
        self.pool = pool
        self.batcher = batcher

    async def run(self, job: StylizeJob) -> StylizeResult:
        model = job.model
        prepared = await self.pool.run(self._prepare, job)
        # The style and identity predictions of one job can share a predictor batch.
        pending = [p for p in (prepared.style, prepared.identity) if p is not None]
        predicted = await asyncio.gather(*(self._embedding(model, p) for p in pending))
        embedding = predicted[0] if prepared.style is not None else job.style.embedding
        assert embedding is not None
        if prepared.identity is not None:
            embedding = interpolate(predicted[-1], embedding, job.strength)
        stylized = await self.transform(model, prepared.padded, embedding)
        reference = prepared.style.key if prepared.style is not None else job.style.reference
        return await self.pool.run(self._finish, job, prepared, stylized, reference)

    async def style_embedding(self, model: LoadedModel, data: bytes) -> tuple[str, np.ndarray]:
        """A style image's id and embedding: from the cache, else from the batched predictor."""
        pending = await self.pool.run(self.embedder.pending_style, model, data)
        return pending.key, await self._embedding(model, pending)

    async def transform(self, model: LoadedModel, padded: np.ndarray, embedding: np.ndarray) -> np.ndarray:
        """The transformer on one padded [1,3,H,W] input, batched with other inputs of the same padded shape."""
        vector = np.asarray(embedding, np.float32).reshape(1, -1)
        key = BatchKey(model.label, "transformer", (padded.shape[1:], vector.shape[1:]))
        return await self.batcher.run(key, model.transform, padded, vector)

    async def _embedding(self, model: LoadedModel, pending: PendingEmbedding) -> np.ndarray:
        if pending.embedding is not None:
            return pending.embedding
        assert pending.predictor_input is not None
        key = BatchKey(model.label, "predictor", (pending.predictor_input.shape[1:],))
        row = await self.batcher.run(key, model.predict, pending.predictor_input)
        embedding = row[0].astype(np.float32)
        await self.pool.run(self.embedder.remember, pending.key, embedding)
        return embedding

    def _timed(self, op: str, started: float) -> None:
        self.metrics.codec_seconds.labels(op).observe(time.perf_counter() - started)

    def _prepare(self, job: StylizeJob) -> _Prepared:
        s = self.settings
        model = job.model
        if job.max_side is not None and job.max_side > s.max_output_side:
            raise InvalidField(f"max_side {job.max_side} is above this server's cap of {s.max_output_side}")

        def short_side(width: int, height: int) -> int:
            return imaging.DECODE_MARGIN * min(imaging.output_size(width, height, job.max_side, s.max_output_side))

        started = time.perf_counter()
        content, (width, height) = imaging.decode_reduced(
            job.content, max_pixels=s.max_pixels, min_side=s.min_image_side, what="content", short_side=short_side
        )
        self._timed("decode", started)
        style = self.embedder.pending_style(model, job.style.image) if job.style.image is not None else None
        identity = None
        if model.kind == "arbitrary" and job.strength < 1.0:
            identity = self.embedder.pending_identity(model, job.content)

        started = time.perf_counter()
        out_w, out_h = imaging.output_size(width, height, job.max_side, s.max_output_side)
        resized = imaging.resize(content, (out_w, out_h))
        tensor = imaging.to_tensor(resized)
        padded = imaging.pad_for_network(tensor, model.manifest.size_multiple, model.manifest.min_side)
        self._timed("resize", started)
        return _Prepared(resized, tensor, padded, style, identity)

    def _finish(self, job: StylizeJob, prepared: _Prepared, stylized: np.ndarray, reference: str) -> StylizeResult:
        started = time.perf_counter()
        out_h, out_w = prepared.resized.shape[:2]
        stylized = imaging.crop(stylized, out_h, out_w)
        if job.model.kind == "nstyle" and job.strength < 1.0:
            # No predictor, so no identity embedding: blend the pixels with the content instead.
            stylized = (1.0 - job.strength) * prepared.tensor + job.strength * stylized
        result = stylized[0].transpose(1, 2, 0)
        if job.preserve_color:
            result = imaging.preserve_color(result, prepared.resized.astype(np.float32) / 255.0)
        data = imaging.encode(imaging.to_uint8(result), job.format, job.quality)
        self._timed("encode", started)
        return StylizeResult(data, imaging.MEDIA_TYPES[job.format], out_w, out_h, reference)
