"""The stylize executor: a resolved job, from content bytes to encoded image bytes.

``Stylist.run`` does the heavy part: decode and resize on a worker thread, the predictor (on a cache
miss) and the transformer through the micro-batcher, colour and encode on a worker thread again.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np

from service import imaging
from service.batching import BatchKey, MicroBatcher
from service.config import Settings
from service.embeddings import Embedder, PendingEmbedding, interpolate
from service.errors import InvalidField
from service.metrics import Metrics
from service.registry import LoadedModel
from service.style_resolution import StyleFields, StyleSpec
from service.workers import CodecPool


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
class StylizeOptions:
    """What a stylize request asks for beside its content and its style source: a blend, the model and
    how to render. Both stylize routes read these form fields through one dependency (routes/forms.py)."""

    styles: str | None = None
    weights: str | None = None
    strength: float = 1.0
    preserve_color: bool = False
    max_side: int | None = None
    format: imaging.OutputFormat = "png"
    quality: int = 90
    model: str | None = None

    def style_fields(self, style: bytes | None, style_id: str | None, preset: str | None) -> StyleFields:
        return StyleFields(style, style_id, preset, self.styles, self.weights, self.model)

    def job(self, model: LoadedModel, content: bytes, style: StyleSpec) -> StylizeJob:
        return StylizeJob(
            model, content, style, self.strength, self.preserve_color, self.max_side, self.format, self.quality
        )


@dataclass(frozen=True)
class StylizeResult:
    image: bytes
    media_type: str
    width: int
    height: int
    style_reference: str


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
        self, settings: Settings, embedder: Embedder, metrics: Metrics, codec: CodecPool, batcher: MicroBatcher
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.metrics = metrics
        self.codec = codec
        self.batcher = batcher

    async def run(self, job: StylizeJob) -> StylizeResult:
        model = job.model
        prepared = await self.codec.run(self._prepare, job)
        # The style and identity predictions of one job can share a predictor batch.
        pending = [p for p in (prepared.style, prepared.identity) if p is not None]
        predicted = await asyncio.gather(*(self._embedding(model, p) for p in pending))
        embedding = predicted[0] if prepared.style is not None else job.style.embedding
        assert embedding is not None
        if prepared.identity is not None:
            embedding = interpolate(predicted[-1], embedding, job.strength)
        stylized = await self.transform(model, prepared.padded, embedding)
        reference = prepared.style.key if prepared.style is not None else job.style.reference
        return await self.codec.run(self._finish, job, prepared, stylized, reference)

    async def style_embedding(self, model: LoadedModel, data: bytes) -> tuple[str, np.ndarray]:
        """A style image's id and embedding: from the cache, else from the batched predictor."""
        pending = await self.codec.run(self.embedder.pending_style, model, data)
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
        await self.codec.run(self.embedder.remember, pending.key, embedding)
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
        decoded = imaging.decode_for_shrinking(
            job.content, max_pixels=s.max_pixels, min_side=s.min_image_side, what="content", short_side=short_side
        )
        content, (width, height) = decoded.pixels, decoded.full_size
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
