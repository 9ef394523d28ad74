"""``Client``: a running Atelier server over HTTP (httpx), with the same methods as ``atelier.Local``.

Problem answers (``application/problem+json``) raise ``ProblemError`` with the server's status,
title and detail; a server that does not answer raises ``ServerUnreachable``.
"""

from __future__ import annotations

import base64
import io
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, NoReturn

import httpx
from PIL import Image

from atelier.errors import AtelierClientError, ProblemError, ServerUnreachable
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

API_KEY_ENV = "ATELIER_API_KEY"
DEFAULT_TIMEOUT_S = 120.0
DEFAULT_CONCURRENCY = 4  # requests in flight for stylize_many: the server batches them
POLL_INTERVAL_S = 0.25  # GET /v1/videos/{id}: cheap (a record read), often enough for a smooth bar


class Client:
    """An Atelier server at ``url``; ``api_key`` defaults to $ATELIER_API_KEY."""

    poll_interval = POLL_INTERVAL_S  # between GET /v1/videos/{id} while a video job runs

    def __init__(self, url: str, api_key: str | None = None, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        api_key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServerUnreachable(f"no answer from {self.url}: {exc}") from None
        if response.is_success:
            return response
        self._raise_problem(response)

    @staticmethod
    def _raise_problem(response: httpx.Response) -> NoReturn:
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict) or "title" not in body:
            body = {"title": response.reason_phrase, "detail": response.text[:200]}
        raise ProblemError.from_body(response.status_code, body)

    # -- the API, as atelier.Local ------------------------------------------------------------------

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
        """POST /v1/stylize with exactly one style source; the encoded image and its metadata."""
        choice = StyleChoice.of(style, style_id, preset, styles, weights, model)
        opts = Options(strength, preserve_color, max_side, format, quality, stroke_scale)  # type: ignore[arg-type]
        return self._stylize(image_bytes(content, "content image"), choice, opts)

    def _stylize(self, data: bytes, choice: StyleChoice, opts: Options) -> Stylized:
        files = [("content", ("content", data, "application/octet-stream"))]
        if choice.style is not None:
            files.append(("style", ("style", choice.style, "application/octet-stream")))
        response = self._request("POST", "/v1/stylize", data={**choice.form(), **opts.form()}, files=files)
        return stylized_from(response)

    def stylize_many(
        self,
        contents: Sequence[ImageSource],
        style: ImageSource | None = None,
        *,
        concurrency: int | None = None,
        **fields: Any,
    ) -> Iterator[tuple[int, Stylized | AtelierClientError]]:
        """One POST /v1/stylize per image, ``concurrency`` at a time (default 4); yields ``(index, result)``
        as each finishes, a failed image as its error. The server caches a style image's embedding."""
        opts = Options(**{k: fields.pop(k) for k in list(fields) if k in Options.__dataclass_fields__})
        choice = StyleChoice.of(style, **fields)

        def one(source: ImageSource) -> Stylized:
            return self._stylize(image_bytes(source, "content image"), choice, opts)

        with ThreadPoolExecutor(max_workers=max(1, concurrency or DEFAULT_CONCURRENCY)) as pool:
            futures = {pool.submit(one, source): index for index, source in enumerate(contents)}
            for future in as_completed(futures):
                try:
                    yield futures[future], future.result()
                except ServerUnreachable:
                    raise
                except AtelierClientError as exc:
                    yield futures[future], exc

    def stylize_batch(self, contents: Sequence[ImageSource], style: ImageSource | None = None, **fields: Any) -> list:
        """POST /v1/stylize/batch (JSON answer): a list in input order of ``Stylized`` or ``ProblemError``."""
        opts = Options(**{k: fields.pop(k) for k in list(fields) if k in Options.__dataclass_fields__})
        choice = StyleChoice.of(style, **fields)
        files = [("content", (f"content-{i}", image_bytes(c, "content image"))) for i, c in enumerate(contents)]
        if choice.style is not None:
            files.append(("style", ("style", choice.style)))
        form = {**choice.form(), **opts.form(), "response_format": "json"}
        items = self._request("POST", "/v1/stylize/batch", data=form, files=files).json()["items"]
        model = choice.model or ""
        return [batch_item(item, model) for item in items]

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
        """A job on the server: POST /v1/videos, poll GET /v1/videos/{id} (``on_progress(done, total)``
        after each poll), then GET .../result into ``output``. An interrupt (Ctrl-C) cancels the job."""
        choice = StyleChoice.of(style, style_id, preset, styles, weights, model)
        opts = Options(strength, preserve_color, max_side, stroke_scale=stroke_scale)
        source, target = video_path(video), Path(output)
        started = time.perf_counter()
        form = {**choice.form(), **{k: v for k, v in opts.form().items() if k not in ("format", "quality")}}
        if consistency is not None:
            form["consistency"] = repr(float(consistency))
        with source.open("rb") as clip:
            files: list[tuple[str, Any]] = [("video", (source.name, clip, "application/octet-stream"))]
            if choice.style is not None:
                files.append(("style", ("style", choice.style, "application/octet-stream")))
            job = self._request("POST", "/v1/videos", data=form, files=files).json()
        try:
            job = self._wait_video(job, on_progress, self.poll_interval)
        except KeyboardInterrupt:
            self._http.delete(f"/v1/videos/{job['id']}")  # the server stops rendering it
            raise
        if job["status"] != "done":
            raise ProblemError(500, f"Video job {job['status']}", job.get("error") or "", body=job)
        target.parent.mkdir(parents=True, exist_ok=True)
        media_type = self._download(f"/v1/videos/{job['id']}/result", target)
        seconds = time.perf_counter() - started
        return StylizedVideo(
            target, job["frames_total"], media_type, choice.model or "", seconds, job["id"], job.get("stroke_scale")
        )

    def _wait_video(self, job: dict[str, Any], on_progress: ProgressCallback | None, interval: float) -> dict[str, Any]:
        while True:
            if on_progress is not None:
                on_progress(job["frames_done"], job["frames_total"])
            if job["status"] not in ("queued", "running"):
                return job
            time.sleep(interval)
            job = self._request("GET", f"/v1/videos/{job['id']}").json()

    def _download(self, path: str, target: Path) -> str:
        try:
            with self._http.stream("GET", path) as response:
                if not response.is_success:
                    response.read()
                    self._raise_problem(response)
                with target.open("wb") as out:
                    for chunk in response.iter_bytes(1024 * 1024):
                        out.write(chunk)
                return response.headers.get("content-type", "")
        except httpx.TransportError as exc:
            target.unlink(missing_ok=True)
            raise ServerUnreachable(f"no answer from {self.url}: {exc}") from None

    def register_style(self, style: ImageSource, model: str | None = None) -> dict[str, Any]:
        files = {"style": ("style", image_bytes(style, "style image"), "application/octet-stream")}
        return self._request("POST", "/v1/styles", files=files, data={"model": model} if model else {}).json()

    def get_style(self, style_id: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/styles/{style_id}").json()

    def list_styles(self, offset: int = 0, limit: int = 50) -> dict[str, Any]:
        return self._request("GET", "/v1/styles", params={"offset": offset, "limit": limit}).json()

    def list_models(self) -> list[dict[str, Any]]:
        return self._request("GET", "/v1/models").json()

    def ready(self) -> dict[str, Any]:
        """GET /readyz: models, versions and the active execution providers."""
        return self._request("GET", "/readyz").json()


def stylized_from(response: httpx.Response) -> Stylized:
    with Image.open(io.BytesIO(response.content)) as image:  # the server sends no size header
        width, height = image.size
    return Stylized(
        response.content,
        response.headers.get("content-type", ""),
        width,
        height,
        response.headers.get("x-model", ""),
        response.headers.get("x-style-id", ""),
    )


def batch_item(item: dict[str, Any], model: str) -> Stylized | ProblemError:
    if item["status"] != 200:
        return ProblemError.from_body(item["status"], item.get("problem") or {})
    return Stylized(
        base64.b64decode(item["data"]), item["media_type"], item["width"], item["height"], model, item["style_id"]
    )
