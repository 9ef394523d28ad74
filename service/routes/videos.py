"""Video jobs: POST /v1/videos, GET /v1/videos/{id}, GET /v1/videos/{id}/result, DELETE /v1/videos/{id}."""

from __future__ import annotations

import shutil
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, File, Form, Path, UploadFile
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field

from service.auth import Owner
from service.deps import ServicesDep
from service.errors import InvalidField
from service.routes import problem_responses
from service.routes.forms import StylizeOptionsDep
from service.services import Services
from service.video_errors import JobNotDone, UnknownJob
from service.video_io import VideoInfo
from service.video_jobs import JobRecord, new_job_id
from service.video_render import VideoSpec, probe_clip

router = APIRouter(prefix="/v1", tags=["videos"])
UPLOAD_PATH = "/v1/videos"

DESCRIPTION = """
Stylise a whole clip as a job. `video` is an MP4 (H.264), WebM (VP9), MOV or animated GIF within the
server's limits on bytes, duration, frames and frame size (`ATELIER_VIDEO_MAX_*`). The style fields
and options are those of `POST /v1/stylize` (`format` and `quality` apply to images only); the
style embedding is computed once for the job. `consistency` (0..0.95; the server's default when
omitted) is the weight of the previous stylised frame's coarse band, warped by the optical flow,
where the flow is reliable: 0 is frame by frame. `stroke_scale` is the brush size, as on
`/v1/stylize`: each frame is stylised at its output size / `stroke_scale` and brought back up guided
by the frame; by default output long side / `ATELIER_BRUSH_SIDE`, at least 1. The scale the job runs
at is the job's `stroke_scale` and the result's `X-Stroke-Scale`.

The answer is `202` with `Location` naming the job; poll it with `GET /v1/videos/{id}`, fetch the
result from `GET /v1/videos/{id}/result` once its status is `done`, cancel with `DELETE`. The result is
H.264 in MP4 (Matroska when the audio codec cannot go into MP4), with the frame timestamps, the
display rotation and the audio track (copied) of the upload. Jobs are private to the API key, and
expire `ATELIER_VIDEO_RESULT_TTL_S` after they end. More than `ATELIER_VIDEO_MAX_JOBS` jobs queued or
running get 429. A replica installed without PyAV (the slim image, whose video workers carry it)
stores the upload unchecked and its worker probes it: a bad clip then ends as a `failed` job whose
`error` says why, instead of a 413, 415 or 422 here.
"""

_VIDEO_DESCRIPTIONS = {
    404: "No such job for this API key (or it has expired); for POST, an unknown model, style or preset",
    413: "Upload bytes, duration, frame count or frame size over the configured limit",
    415: "Not a video this server decodes: no video track, audio only, truncated or corrupt",
    422: "A field out of range, or frames smaller than the smallest side",
    429: "ATELIER_VIDEO_MAX_JOBS jobs are queued or running: retry after Retry-After seconds",
    501: "This install has no video support (the `video` extra: pip install 'atelier[video]')",
}


def _problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The shared problem responses, with what each status means for video jobs."""
    responses = problem_responses(*codes)
    for code, text in _VIDEO_DESCRIPTIONS.items():
        if code in responses:
            responses[code] = {**responses[code], "description": text}
    return responses


JobId = Annotated[str, Path(pattern="^[0-9a-f]{32}$", description="the job id")]


class VideoJob(BaseModel):
    id: str = Field(description="the job id")
    status: str = Field(description="queued, running, done, failed or cancelled")
    progress: float = Field(ge=0, le=1, description="frames done / frames total")
    frames_done: int
    frames_total: int
    error: str | None = Field(description="why the job failed, when it did")
    stroke_scale: float | None = Field(
        description="the brush size the job runs at (as X-Stroke-Scale on /v1/stylize); null until the clip's "
        "size is known (a replica without PyAV leaves the probe to the worker)"
    )
    attempts: int = Field(ge=0, description="times the job was queued again after its video worker died")


def _job_response(record: JobRecord, status_code: int = 200) -> JSONResponse:
    headers = {"Location": f"{UPLOAD_PATH}/{record.id}"} if status_code == 202 else None
    return JSONResponse(record.public(), status_code=status_code, headers=headers)


def _save_and_probe(
    services: Services, upload: UploadFile, job_id: str, spec: VideoSpec
) -> tuple[VideoInfo | None, float | None]:
    """Store the upload; probe it and fix the brush size, unless the worker will (no PyAV here)."""
    path = services.videos.files.source(job_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    upload.file.seek(0)
    with path.open("wb") as out:
        shutil.copyfileobj(upload.file, out, 1024 * 1024)
    if services.videos.probes_on_worker:
        return None, None
    try:
        return probe_clip(path, spec, services.settings)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


@router.post(
    UPLOAD_PATH.removeprefix("/v1"),
    summary="Stylise a video (a job)",
    description=DESCRIPTION,
    status_code=202,
    response_model=VideoJob,
    responses={
        202: {"description": "The job, queued", "headers": {"Location": {"schema": {"type": "string"}}}},
        **_problems(400, 401, 404, 413, 415, 422, 429, 501, 503),
    },
)
async def submit_video(
    services: ServicesDep,
    owner: Owner,
    options: StylizeOptionsDep,
    video: Annotated[UploadFile, File(description="the clip: MP4, WebM, MOV or animated GIF")],
    style: Annotated[UploadFile | None, File(description="a style image")] = None,
    style_id: Annotated[str | None, Form(max_length=128, description="a registered style id")] = None,
    preset: Annotated[str | None, Form(max_length=128, description="a preset index or name")] = None,
    consistency: Annotated[
        float | None,
        Form(ge=0.0, le=0.95, allow_inf_nan=False, description="temporal consistency, 0 = frame by frame"),
    ] = None,
) -> JSONResponse:
    s = services.settings
    if options.max_side is not None and options.max_side > s.max_output_side:
        raise InvalidField(f"max_side {options.max_side} is above this server's cap of {s.max_output_side}")
    fields = options.style_fields(await style.read() if style is not None else None, style_id, preset)
    model, spec = await services.resolve(fields, owner)
    embedding, reference = spec.embedding, spec.reference
    if embedding is None:  # a style image: its embedding, once for the whole clip
        assert spec.image is not None
        reference, embedding = await services.stylist.style_embedding(model, spec.image)
    job_id = new_job_id()
    video_spec = VideoSpec(
        model=model.label,
        embedding=[float(x) for x in embedding.reshape(-1)],
        style_reference=reference,
        strength=options.strength,
        preserve_color=options.preserve_color,
        max_side=options.max_side,
        consistency=s.video_consistency if consistency is None else consistency,
        stroke_scale=options.stroke_scale,
    )
    info, stroke_scale = await anyio.to_thread.run_sync(_save_and_probe, services, video, job_id, video_spec)
    record = JobRecord(id=job_id, owner=owner, status="queued", spec=video_spec, info=info, stroke_scale=stroke_scale)
    try:
        await anyio.to_thread.run_sync(services.videos.submit, record)
    except BaseException:
        services.videos.files.remove(job_id)
        raise
    return _job_response(record, 202)


async def _record(services: Services, job_id: str, owner: str) -> JobRecord:
    record = await anyio.to_thread.run_sync(services.videos.get, job_id, owner)
    if record is None:
        raise UnknownJob(f"no video job {job_id} for this API key (or it has expired)")
    return record


@router.get(
    "/videos/{job_id}",
    summary="A video job's status and progress",
    response_model=VideoJob,
    responses=_problems(401, 404, 422),
)
async def get_video(services: ServicesDep, owner: Owner, job_id: JobId) -> JSONResponse:
    return _job_response(await _record(services, job_id, owner))


@router.get(
    "/videos/{job_id}/result",
    summary="A finished video job's result",
    response_class=FileResponse,
    responses={
        200: {
            "description": "The stylised clip",
            "content": {"video/mp4": {}, "video/x-matroska": {}},
            "headers": {
                "X-Stroke-Scale": {"schema": {"type": "string"}, "description": "the brush size the clip ran at"}
            },
        },
        **_problems(401, 404, 422),
        409: {
            "description": "The job is not done (queued, running, failed or cancelled)",
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
        },
    },
)
async def get_video_result(services: ServicesDep, owner: Owner, job_id: JobId) -> FileResponse:
    record = await _record(services, job_id, owner)
    path = services.videos.result_path(record)
    if record.status != "done" or not path.is_file():
        raise JobNotDone(f"the job is {record.status}; its result is there once it is done", job_status=record.status)
    suffix = path.suffix
    media_type = record.info.media_type if record.info is not None else "video/mp4"
    headers = {"X-Stroke-Scale": f"{record.stroke_scale:g}"} if record.stroke_scale is not None else None
    return FileResponse(path, media_type=media_type, filename=f"atelier-{job_id}{suffix}", headers=headers)


@router.delete(
    "/videos/{job_id}",
    summary="Cancel a video job",
    response_model=VideoJob,
    responses=_problems(401, 404, 422),
)
async def cancel_video(services: ServicesDep, owner: Owner, job_id: JobId) -> JSONResponse:
    await _record(services, job_id, owner)
    await anyio.to_thread.run_sync(services.videos.cancel, job_id)
    return _job_response(await _record(services, job_id, owner))
