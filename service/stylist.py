"""The stylize executor: a resolved job, from content bytes to encoded image bytes.

``Stylist.run`` does the heavy part: decode and resize on a worker thread, the predictor (on a cache
miss) and the transformer through the micro-batcher, colour and encode on a worker thread again.
The network runs at the output size over the stroke scale (service/brush.py), in tiles sharing one
set of instance-norm statistics when that is larger than a tile (service/tiling.py), and its result
is brought to the output size guided by the photo (service/upsampling.py), in bands of rows.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from service import brush, imaging, tiling, upsampling
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
    stroke_scale: float | None = None  # None: brush.default_stroke_scale


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
    stroke_scale: float | None = None

    def style_fields(self, style: bytes | None, style_id: str | None, preset: str | None) -> StyleFields:
        return StyleFields(style, style_id, preset, self.styles, self.weights, self.model)

    def job(self, model: LoadedModel, content: bytes, style: StyleSpec) -> StylizeJob:
        return StylizeJob(
            model,
            content,
            style,
            self.strength,
            self.preserve_color,
            self.max_side,
            self.format,
            self.quality,
            self.stroke_scale,
        )


@dataclass(frozen=True)
class StylizeResult:
    image: bytes
    media_type: str
    width: int
    height: int
    style_reference: str
    stroke_scale: float = 1.0


@dataclass(frozen=True)
class _Prepared:
    """A decoded job, ready for the networks."""

    resized: np.ndarray  # uint8 HxWx3 at the output size
    network: np.ndarray  # uint8 hxwx3 at the network's size (output / stroke scale; ``resized`` at 1)
    padded: np.ndarray | None  # ``network`` as float32 1x3xhxw reflect-padded: the batch bucket; None when tiled
    plan: tiling.TilePlan | None  # the tiles, when the network's size is over a tile
    thumbnail: np.ndarray | None  # padded float32 input of the statistics pass, when tiled
    stroke_scale: float
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
        if prepared.plan is None:
            assert prepared.padded is not None
            stylized: np.ndarray = await self.transform(model, prepared.padded, embedding)
        else:
            stylized = await self._tiled(model, prepared, embedding)
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

    async def _tiled(self, model: LoadedModel, prepared: _Prepared, embedding: np.ndarray) -> np.ndarray:
        """The network's output as uint8 hxwx3, tile by tile, every tile normalised with the thumbnail's
        instance-norm statistics."""
        assert prepared.plan is not None and prepared.thumbnail is not None
        vector = np.asarray(embedding, np.float32).reshape(1, -1)
        thumb = prepared.thumbnail
        key = BatchKey(model.label, "statistics", (thumb.shape[1:], vector.shape[1:]))
        statistics = await self.batcher.run(key, model.statistics, thumb, vector)
        height, width = prepared.network.shape[:2]
        assembler = tiling.TileAssembler(prepared.plan, height, width)

        async def tile(rows: tiling.Span, columns: tiling.Span) -> np.ndarray:
            crop = prepared.network[rows.start : rows.stop, columns.start : columns.stop]
            padded = await self.codec.run(self._network_input, model, crop)
            key = BatchKey(model.label, "given_statistics", (padded.shape[1:], vector.shape[1:]))
            out = await self.batcher.run(key, model.transform_given, padded, vector, statistics)
            return imaging.crop(out, rows.stop - rows.start, columns.stop - columns.start)

        # Row i is blended on a codec thread while row i + 1 runs, so the network never waits for the blend.
        blending: asyncio.Future[None] | None = None
        try:
            for i, rows in enumerate(prepared.plan.rows):
                tiles = await asyncio.gather(*(tile(rows, columns) for columns in prepared.plan.columns))
                if blending is not None:
                    await blending
                blending = asyncio.ensure_future(self.codec.run(assembler.add_row, i, tiles))
            assert blending is not None
            await blending
        finally:
            if blending is not None and not blending.done():
                blending.cancel()
        return assembler.out

    def _tile(self, model: LoadedModel) -> int:
        """Largest tile side: ``tile_side``, and on a CPU small enough that a tile runs on the session with
        ONNX Runtime's arena (runtime.OnnxModel: runs over ``arena_max_pixels`` go to one without, slower
        per pixel), whose buffers the 1024-pixel runs already hold. Never under 8 overlaps, though."""
        s = self.settings
        form = model.given_statistics_form
        if form is None or not form.large_pixels:
            return s.tile_side
        multiple = model.manifest.size_multiple
        arena_side = math.isqrt(form.large_pixels) // multiple * multiple
        return min(s.tile_side, max(arena_side, 8 * s.tile_overlap))

    @staticmethod
    def _network_input(model: LoadedModel, image: np.ndarray) -> np.ndarray:
        return imaging.pad_for_network(imaging.to_tensor(image), model.manifest.size_multiple, model.manifest.min_side)

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

    def _stroke_scale(self, job: StylizeJob, long_side: int) -> float:
        if job.stroke_scale is not None:
            return job.stroke_scale
        return brush.default_stroke_scale(long_side, self.settings.brush_side)

    def _admit(self, job: StylizeJob, width: int, height: int) -> None:
        """Refuse, from the image's header alone, work the network could not run: a network size over the
        output cap (a stroke scale under 1 at a large output), or over a tile for a model without tiling."""
        s = self.settings
        long_side = max(imaging.output_size(width, height, job.max_side, s.max_output_side))
        scale = self._stroke_scale(job, long_side)
        network = brush.network_long_side(long_side, scale)
        if network > s.max_output_side:
            raise InvalidField(
                f"stroke_scale {scale:g} at a {long_side}-pixel output stylises at {network} pixels; "
                f"the cap is {s.max_output_side} (raise stroke_scale or lower max_side)"
            )
        if network > s.tile_side and not job.model.can_tile:
            raise InvalidField(
                f"model {job.model.label} has no statistics forms for tiling and cannot stylise {network} pixels "
                f"on a side (at most {s.tile_side}; re-export it with onnx_export)"
            )

    def _prepare(self, job: StylizeJob) -> _Prepared:
        s = self.settings
        model = job.model
        if job.max_side is not None and job.max_side > s.max_output_side:
            raise InvalidField(f"max_side {job.max_side} is above this server's cap of {s.max_output_side}")

        def short_side(width: int, height: int) -> int:
            return imaging.DECODE_MARGIN * min(imaging.output_size(width, height, job.max_side, s.max_output_side))

        started = time.perf_counter()
        decoded = imaging.decode_for_shrinking(
            job.content,
            max_pixels=s.max_pixels,
            min_side=s.min_image_side,
            what="content",
            short_side=short_side,
            admit=lambda w, h: self._admit(job, w, h),
        )
        content, (width, height) = decoded.pixels, decoded.full_size
        self._timed("decode", started)
        style = self.embedder.pending_style(model, job.style.image) if job.style.image is not None else None
        identity = None
        if model.kind == "arbitrary" and job.strength < 1.0:
            identity = self.embedder.pending_identity(model, job.content)

        started = time.perf_counter()
        out_w, out_h = imaging.output_size(width, height, job.max_side, s.max_output_side)
        scale = self._stroke_scale(job, max(out_w, out_h))
        net_w, net_h = brush.network_size(out_w, out_h, scale)
        resized = imaging.resize(content, (out_w, out_h))
        network = resized if (net_w, net_h) == (out_w, out_h) else imaging.resize(content, (net_w, net_h))
        padded = plan = thumbnail = None
        if max(net_w, net_h) > s.tile_side:
            multiple = model.manifest.size_multiple
            plan = tiling.TilePlan.for_size(net_h, net_w, self._tile(model), s.tile_overlap, multiple)
            ratio = min(1.0, s.statistics_side / max(net_w, net_h))
            # A thumbnail smaller than the network's input comes from the decoded photo: one resampling, not two.
            small = network if ratio == 1.0 else imaging.resize(content, brush.network_size(net_w, net_h, 1 / ratio))
            thumbnail = self._network_input(model, small)
        else:
            padded = self._network_input(model, network)
        del content
        self._timed("resize", started)
        return _Prepared(resized, network, padded, plan, thumbnail, scale, style, identity)

    def _finish(self, job: StylizeJob, prepared: _Prepared, stylized: np.ndarray, reference: str) -> StylizeResult:
        started = time.perf_counter()
        photo = prepared.resized
        out_h, out_w = photo.shape[:2]
        net_h, net_w = prepared.network.shape[:2]
        # The network's output as hxwx3: float32 (whole) or uint8 (tiled).
        low = imaging.crop(stylized, net_h, net_w)[0].transpose(1, 2, 0) if stylized.ndim == 4 else stylized
        plain = not job.preserve_color and not (job.model.kind == "nstyle" and job.strength < 1.0)
        if plain and low.dtype == np.uint8 and low.shape[:2] == (out_h, out_w):
            out = low  # tiled at stroke_scale 1: the assembled tiles are the output, no second copy
        else:
            out = self._render(job, prepared, low)
        data = imaging.encode(out, job.format, job.quality)
        self._timed("encode", started)
        return StylizeResult(data, imaging.MEDIA_TYPES[job.format], out_w, out_h, reference, prepared.stroke_scale)

    def _render(self, job: StylizeJob, prepared: _Prepared, low: np.ndarray) -> np.ndarray:
        """The output image, uint8, from the network's output ``low``: upsampled, blended, coloured by bands."""
        photo = prepared.resized
        out = np.empty((*photo.shape[:2], 3), np.uint8)
        for rows, band in self._output_bands(low, prepared):
            if job.model.kind == "nstyle" and job.strength < 1.0:
                # No predictor, so no identity embedding: blend the pixels with the content instead.
                band = (1.0 - job.strength) * (photo[rows].astype(np.float32) / 255.0) + job.strength * band
            if job.preserve_color:
                band = imaging.preserve_color(band, photo[rows].astype(np.float32) / 255.0)
            out[rows] = imaging.to_uint8(band)
        return out

    @staticmethod
    def _output_bands(low: np.ndarray, prepared: _Prepared) -> Iterator[tuple[slice, np.ndarray]]:
        """The stylised image at the output size, float32 in [0, 1], in bands of rows."""
        photo = prepared.resized
        out_h, out_w = photo.shape[:2]
        if low.shape[0] <= out_h and low.shape[1] <= out_w and low.shape[:2] != (out_h, out_w):  # a larger brush
            yield from upsampling.guided_upsample_bands(low, prepared.network, photo)
            return
        if low.shape[:2] != (out_h, out_w):  # a finer brush (stroke_scale < 1): downsample
            low = imaging.resize(low if low.dtype == np.uint8 else imaging.to_uint8(low), (out_w, out_h))
        for start in range(0, out_h, upsampling.BAND_ROWS):
            rows = slice(start, min(start + upsampling.BAND_ROWS, out_h))
            band = low[rows]
            yield rows, band.astype(np.float32) / np.float32(255.0) if band.dtype == np.uint8 else band
