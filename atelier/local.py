"""``Local``: the service's pipeline in this process, with the same methods as ``atelier.Client``.

The models load once per ``Local`` (``ModelRegistry.load``, as the server does at start-up) and the
work runs on the service's own objects, built by its composition root (``service.services``): style
resolution, the embedding cache, the codec threads, the micro-batcher and the stylist. So a
stylised image is the same bytes as ``POST /v1/stylize`` answers. The event loop runs on a thread
of its own, so that plain (non-async) callers can hand it many images at once and they share its
batches.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from concurrent.futures import Future
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image

from atelier.errors import AtelierClientError, InputError, ProblemError
from atelier.inputs import (
    ImageSource,
    Options,
    ProgressCallback,
    StyleChoice,
    Stylized,
    StylizedVideo,
    VideoSource,
    image_bytes,
    video_path,
)
from onnx_export.manifest import ManifestError
from service.config import Settings
from service.errors import PROBLEM_BASE, AtelierError, InvalidField
from service.routes.styles import list_models as models_route
from service.routes.styles import list_styles as styles_route
from service.services import Services, running_services
from service.style_resolution import StyleSpec, lookup_style, require_kind
from service.styles import PUBLIC_OWNER
from service.stylist import StylizeOptions

T = TypeVar("T")
OWNER = PUBLIC_OWNER  # in process there are no API keys: the styles a keyless server shares
# Images of a folder in flight at once: enough to fill the micro-batcher's runs and keep the codec
# threads busy, few enough that decoded photos do not pile up in memory.
DEFAULT_CONCURRENCY = 16


def problem(exc: AtelierError) -> ProblemError:
    """The service's exception as the problem a server would have answered."""
    return ProblemError(exc.status, exc.title, exc.detail, PROBLEM_BASE + exc.slug)


def service_options(choice: StyleChoice, opts: Options) -> StylizeOptions:
    """The stylize routes' own options object, so a job is built the way POST /v1/stylize builds it."""
    return StylizeOptions(
        styles=choice.styles,
        weights=choice.weights,
        strength=opts.strength,
        preserve_color=opts.preserve_color,
        max_side=opts.max_side,
        format=opts.format,
        quality=opts.quality,
        model=choice.model,
        stroke_scale=opts.stroke_scale,
    )


class Local:
    """The service's pipeline in process. Models load on first use; ``close()`` (or ``with``) ends it."""

    def __init__(self, model_dir: str | Path | None = None, settings: Settings | None = None) -> None:
        if settings is None:
            settings = Settings(model_dir=Path(model_dir)) if model_dir is not None else Settings()
        self.settings = settings
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stack: AsyncExitStack | None = None
        self._services: Services | None = None

    # -- life cycle ---------------------------------------------------------------------------------

    def __enter__(self) -> Local:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def services(self) -> Services:
        """The running service objects, starting them (loading the models) on the first call."""
        with self._lock:
            if self._services is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="atelier-local", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
                try:
                    self._services = self._submit(self._start()).result()
                except ManifestError as exc:  # no models, or none that verify: the repository is the caller's
                    self._stop_loop()
                    raise InputError(str(exc)) from None
                except AtelierError as exc:  # the default model is not in the repository
                    self._stop_loop()
                    raise problem(exc) from None
                except BaseException:
                    self._stop_loop()
                    raise
            return self._services

    async def _start(self) -> Services:
        stack = AsyncExitStack()
        services = await stack.enter_async_context(running_services(self.settings))
        self._stack = stack
        return services

    def close(self) -> None:
        with self._lock:
            if self._loop is None:
                return
            if self._stack is not None:
                self._submit(self._stack.aclose()).result()
            self._stack, self._services = None, None
            self._stop_loop()

    def _stop_loop(self) -> None:
        assert self._loop is not None and self._thread is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        self._loop, self._thread = None, None

    def _submit(self, work: Coroutine[Any, Any, T]) -> Future[T]:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(work, self._loop)

    def _call(self, make: Callable[[Services], Coroutine[Any, Any, T]]) -> T:
        services = self.services()
        try:
            return self._submit(make(services)).result()
        except AtelierError as exc:
            raise problem(exc) from None

    # -- the API ------------------------------------------------------------------------------------

    def stylize(self, content: ImageSource, style: ImageSource | None = None, **options: Any) -> Image.Image:
        """Stylise ``content``; the same keywords as ``stylize_bytes``. Returns a PIL image (RGB)."""
        return self.stylize_bytes(content, style, **options).image()

    def stylize_bytes(
        self,
        content: ImageSource,
        style: ImageSource | None = None,
        *,
        style_id: str | None = None,
        preset: str | int | None = None,
        styles: str | Sequence[str] | None = None,
        weights: str | Sequence[float] | None = None,
        model: str | None = None,
        strength: float = 1.0,
        preserve_color: bool = False,
        max_side: int | None = None,
        format: str = "png",
        quality: int = 90,
        stroke_scale: float | None = None,
    ) -> Stylized:
        """Stylise ``content`` with exactly one style source; the encoded image and its metadata."""
        choice = StyleChoice.of(style, style_id, preset, styles, weights, model)
        opts = Options(strength, preserve_color, max_side, format, quality, stroke_scale)  # type: ignore[arg-type]
        data = image_bytes(content, "content image")
        return self._call(lambda services: self._one(services, choice, opts, data))

    def stylize_many(
        self,
        contents: Sequence[ImageSource],
        style: ImageSource | None = None,
        *,
        concurrency: int | None = None,
        **fields: Any,
    ) -> Iterator[tuple[int, Stylized | AtelierClientError]]:
        """Stylise many images with one style, resolved (and embedded) once; yields ``(index, result)``
        as each finishes, a failed image as its error. ``concurrency`` images are in flight at once
        (default 16, at most the queue bound ATELIER_MAX_PENDING), so they share the micro-batcher's runs."""
        opts = Options(**{k: fields.pop(k) for k in list(fields) if k in Options.__dataclass_fields__})
        choice = StyleChoice.of(style, **fields)
        services = self.services()
        limit = max(1, min(concurrency or DEFAULT_CONCURRENCY, services.settings.max_pending))
        done: queue.Queue[tuple[int, Stylized | AtelierClientError] | None] = queue.Queue()
        future = self._submit(self._many(services, choice, opts, contents, limit, done))
        while (item := done.get()) is not None:
            yield item
        future.result()  # a failure shared by every image (an unknown style) raises here

    def stylize_batch(self, contents: Sequence[ImageSource], style: ImageSource | None = None, **fields: Any) -> list:
        """Like ``stylize_many``, all at once: a list in input order of ``Stylized`` or ``ProblemError``."""
        results: list[Any] = [None] * len(contents)
        for index, result in self.stylize_many(contents, style, **fields):
            results[index] = result
        return results

    def stylize_video(
        self,
        video: VideoSource,
        output: str | Path,
        style: ImageSource | None = None,
        *,
        style_id: str | None = None,
        preset: str | int | None = None,
        styles: str | Sequence[str] | None = None,
        weights: str | Sequence[float] | None = None,
        model: str | None = None,
        strength: float = 1.0,
        preserve_color: bool = False,
        max_side: int | None = None,
        consistency: float | None = None,
        on_progress: ProgressCallback | None = None,
        stroke_scale: float | None = None,
    ) -> StylizedVideo:
        """Stylise a clip into ``output`` as a video job of POST /v1/videos renders it: the style
        resolved and embedded once, the clip probed against the ATELIER_VIDEO_MAX_* limits, then
        ``service.video_render.render`` frame by frame, in this thread. ``on_progress(done, total)``
        runs after each frame."""
        choice = StyleChoice.of(style, style_id, preset, styles, weights, model)
        opts = Options(strength, preserve_color, max_side, stroke_scale=stroke_scale)
        source, target = video_path(video), Path(output)
        services = self.services()
        s = services.settings
        try:
            if max_side is not None and max_side > s.max_output_side:
                raise InvalidField(f"max_side {max_side} is above this server's cap of {s.max_output_side}")
            if consistency is not None and not 0.0 <= consistency <= 0.95:
                raise InvalidField(f"consistency {consistency} is not between 0 and 0.95")
            chosen, spec = self._submit(self._resolve(services, choice, embed=True)).result()
            return self._render_video(services, chosen, spec, opts, consistency, source, target, on_progress)
        except AtelierError as exc:
            raise problem(exc) from None

    def _render_video(
        self,
        services: Services,
        chosen: Any,
        spec: StyleSpec,
        opts: Options,
        consistency: float | None,
        source: Path,
        target: Path,
        on_progress: ProgressCallback | None,
    ) -> StylizedVideo:
        # The service's own video modules (the `video` extra), imported only when a clip is asked for.
        from service.video_render import VideoSpec, probe_clip, render

        s = services.settings
        started = time.perf_counter()
        assert spec.embedding is not None  # _resolve(embed=True) embeds a style image
        video_spec = VideoSpec(
            model=chosen.label,
            embedding=[float(x) for x in spec.embedding.reshape(-1)],
            style_reference=spec.reference,
            strength=opts.strength,
            preserve_color=opts.preserve_color,
            max_side=opts.max_side,
            consistency=s.video_consistency if consistency is None else consistency,
            stroke_scale=opts.stroke_scale,
        )
        info, scale = probe_clip(source, video_spec, s)

        def on_frame(done: int, _seconds: float) -> None:
            if on_progress is not None:
                on_progress(done, info.frames)

        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            frames = render(
                chosen, video_spec, source, target, info, s.max_output_side, on_frame, s.video_encoder_threads, scale
            )
        except BaseException:
            target.unlink(missing_ok=True)  # no half-written clip left behind
            raise
        seconds = time.perf_counter() - started
        return StylizedVideo(target, frames, info.media_type, chosen.label, seconds, None, scale)

    def register_style(self, style: ImageSource, model: str | None = None) -> dict[str, Any]:
        """Predict and store a style's embedding (as POST /v1/styles); the style record."""
        data = image_bytes(style, "style image")

        async def register(services: Services) -> dict[str, Any]:
            chosen = require_kind(services.registry.get(model), "arbitrary", "registering a style")
            style_id, embedding = await services.stylist.style_embedding(chosen, data)
            vector = [float(x) for x in embedding]
            record, _ = await services.codec.run(services.store.put, OWNER, style_id, vector, chosen.label)
            return record.model_dump(mode="json")

        return self._call(register)

    def get_style(self, style_id: str) -> dict[str, Any]:
        async def get(services: Services) -> dict[str, Any]:
            return lookup_style(services.store, OWNER, style_id).model_dump(mode="json")

        return self._call(get)

    def list_styles(self, offset: int = 0, limit: int = 50) -> dict[str, Any]:
        async def listing(services: Services) -> dict[str, Any]:
            return (await styles_route(services, OWNER, offset, limit)).model_dump(mode="json")

        return self._call(listing)

    def list_models(self) -> list[dict[str, Any]]:
        async def listing(services: Services) -> list[dict[str, Any]]:
            return [m.model_dump(mode="json") for m in await models_route(services, OWNER)]

        return self._call(listing)

    # -- on the loop --------------------------------------------------------------------------------

    async def _resolve(self, services: Services, choice: StyleChoice, embed: bool) -> tuple[Any, StyleSpec]:
        fields = service_options(choice, Options()).style_fields(choice.style, choice.style_id, choice.preset)
        chosen, spec = await services.resolve(fields, OWNER)
        if embed and spec.image is not None:  # one prediction for every image of a folder
            reference, embedding = await services.stylist.style_embedding(chosen, spec.image)
            spec = StyleSpec(reference=reference, embedding=embedding)
        return chosen, spec

    async def _one(self, services: Services, choice: StyleChoice, opts: Options, data: bytes) -> Stylized:
        # As POST /v1/stylize: resolve, then the stylist with the style image (a cache hit after the first).
        chosen, spec = await self._resolve(services, choice, embed=False)
        return await self._run(services, chosen, spec, service_options(choice, opts), data)

    async def _run(
        self, services: Services, chosen: Any, spec: StyleSpec, options: StylizeOptions, data: bytes
    ) -> Stylized:
        job = options.job(chosen, data, spec)
        with services.admission.admit():
            result = await services.stylist.run(job)
        return Stylized(
            result.image, result.media_type, result.width, result.height, chosen.label, result.style_reference
        )

    async def _many(
        self,
        services: Services,
        choice: StyleChoice,
        opts: Options,
        contents: Sequence[ImageSource],
        limit: int,
        done: queue.Queue[tuple[int, Stylized | AtelierClientError] | None],
    ) -> None:
        try:
            chosen, spec = await self._resolve(services, choice, embed=True)
            options = service_options(choice, opts)
            gate = asyncio.Semaphore(limit)

            async def one(index: int, source: ImageSource) -> None:
                async with gate:
                    try:
                        data = await services.codec.run(image_bytes, source, "content image")
                        done.put((index, await self._run(services, chosen, spec, options, data)))
                    except AtelierError as exc:
                        done.put((index, problem(exc)))
                    except AtelierClientError as exc:
                        done.put((index, exc))

            await asyncio.gather(*(one(i, source) for i, source in enumerate(contents)))
        except AtelierError as exc:
            raise problem(exc) from None
        finally:
            done.put(None)
