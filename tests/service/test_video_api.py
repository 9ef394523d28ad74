"""POST /v1/videos end to end on a real server (the embedded default: no Redis, a local pool of 2 workers).

Clips are made here from the shared photos with known motion (service/video_synth.py) and encoded
with PyAV; the results are read back with PyAV and compared with the uploads.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import httpx
import numpy as np
import pytest

from service.video_synth import frames, write_clip, write_tone
from tests.helpers.metrics import metric
from tests.helpers.server import LiveServer, assert_no_server_errors, cpu_seconds, start_server, stop_server

pytestmark = pytest.mark.slow

SIZE = (160, 96)
LIMITS = {
    "ATELIER_VIDEO_MAX_BYTES": str(8 * 1024 * 1024),
    "ATELIER_VIDEO_MAX_DURATION_S": "20",
    "ATELIER_VIDEO_MAX_PIXELS": str(640 * 480),
    "ATELIER_VIDEO_MAX_JOBS": "2",
    "ATELIER_VIDEO_WORKERS": "2",
}


@pytest.fixture(scope="module")
def video_server(model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    workdir = tmp_path_factory.mktemp("video-server")
    live = start_server(model_repository, workdir, {**LIMITS, "ATELIER_VIDEO_DIR": str(workdir / "videos")})
    yield live
    stop_server(live)
    assert_no_server_errors(live)


@pytest.fixture(scope="module")
def http(video_server: LiveServer) -> Iterator[httpx.Client]:
    with video_server.client() as c:
        yield c


@pytest.fixture(scope="module")
def clips(image_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    photo, cutout = image_dir / "content" / "tubingen.jpg", image_dir / "content" / "eiffel_tower.jpg"
    made = {}
    made["pan"] = folder / "pan.mp4"
    write_clip(made["pan"], (f.rgb for f in frames(photo, "pan", 24, SIZE)), fps=24, audio_s=1.0, rotation=90)
    made["cutout"] = folder / "cutout.webm"
    write_clip(
        made["cutout"],
        (f.rgb for f in frames(photo, "cutout", 12, SIZE, cutout)),
        fps=12,
        codec="libvpx-vp9",
        container="webm",
        audio_s=1.0,
    )
    made["long"] = folder / "long.mp4"
    write_clip(made["long"], (f.rgb for f in frames(photo, "zoom", 200, (320, 192))), fps=10)
    return made


def submit(http: httpx.Client, path: Path, **data: str) -> httpx.Response:
    with path.open("rb") as f:
        return http.post("/v1/videos", files={"video": (path.name, f, "video/mp4")}, data={"preset": "3", **data})


def wait(http: httpx.Client, job_id: str, until: tuple[str, ...], timeout_s: float = 120) -> list[dict]:
    seen = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = http.get(f"/v1/videos/{job_id}").json()
        seen.append(job)
        if job["status"] in until:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {seen[-1]} after {timeout_s} s")


def streams(path: Path) -> dict[str, object]:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        rate = v.average_rate
        vframes = list(c.decode(v))
    with av.open(str(path)) as c:  # a second pass: a seek back lands on a different packet in WebM
        audio = [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size] if c.streams.audio else []
        return {
            "frames": len(vframes),
            "size": (vframes[0].width, vframes[0].height),
            "rotation": vframes[0].rotation,
            "times": [float(f.time) for f in vframes],
            "rate": rate,
            "audio": audio,
            "audio_codec": c.streams.audio[0].codec_context.name if c.streams.audio else None,
        }


def test_clip_in_clip_out_keeps_frames_rate_size_rotation_audio(http: httpx.Client, clips: dict[str, Path]) -> None:
    answer = submit(http, clips["pan"])
    assert answer.status_code == 202, answer.text
    job = answer.json()
    assert answer.headers["location"] == f"/v1/videos/{job['id']}"
    assert job["status"] == "queued" and job["frames_total"] == 24
    seen = wait(http, job["id"], ("done", "failed"))
    assert seen[-1]["status"] == "done", seen[-1]
    progress = [j["progress"] for j in seen]
    assert progress == sorted(progress) and progress[-1] == 1.0
    result = http.get(f"/v1/videos/{job['id']}/result")
    assert result.status_code == 200 and result.headers["content-type"] == "video/mp4"
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"atelier-test-{job['id']}.mp4"
    out.write_bytes(result.content)
    try:
        got, want = streams(out), streams(clips["pan"])
    finally:
        out.unlink()
    assert got["frames"] == want["frames"] == 24
    assert got["size"] == want["size"] == SIZE
    assert got["rotation"] == want["rotation"] == 90
    assert got["rate"] == want["rate"] == Fraction(24)
    assert np.allclose(got["times"], want["times"], atol=1e-3)
    assert got["audio"] == want["audio"] and len(got["audio"]) > 10  # the same packets: copied, not re-encoded


def test_webm_with_opus_and_max_side(http: httpx.Client, clips: dict[str, Path], tmp_path: Path) -> None:
    answer = submit(http, clips["cutout"], max_side="80", consistency="0")
    assert answer.status_code == 202, answer.text
    assert wait(http, answer.json()["id"], ("done", "failed"))[-1]["status"] == "done"
    result = http.get(f"/v1/videos/{answer.json()['id']}/result")
    assert result.status_code == 200
    (tmp_path / "out.mp4").write_bytes(result.content)
    got, want = streams(tmp_path / "out.mp4"), streams(clips["cutout"])
    assert got["frames"] == want["frames"] == 12
    assert got["size"] == (80, 48)
    assert got["audio_codec"] == "opus" and got["audio"] == want["audio"]


def test_result_409_while_running_then_cancel_stops_cpu(
    http: httpx.Client, clips: dict[str, Path], video_server: LiveServer
) -> None:
    job = submit(http, clips["long"]).json()
    wait(http, job["id"], ("running",))
    early = http.get(f"/v1/videos/{job['id']}/result")
    assert early.status_code == 409 and early.headers["content-type"] == "application/problem+json"
    cancelled = http.delete(f"/v1/videos/{job['id']}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    time.sleep(1.0)
    before = cpu_seconds(video_server.process.pid)
    time.sleep(1.5)
    used = cpu_seconds(video_server.process.pid) - before
    assert used < 0.3, f"the server used {used:.2f} CPU seconds in the 1.5 s after a cancel took effect"
    after = http.get(f"/v1/videos/{job['id']}").json()
    assert after["status"] == "cancelled" and after["frames_done"] < after["frames_total"]
    assert http.get(f"/v1/videos/{job['id']}/result").status_code == 409


def test_two_jobs_run_at_once_and_a_third_gets_429(http: httpx.Client, clips: dict[str, Path]) -> None:
    jobs = [submit(http, clips["long"]) for _ in range(2)]
    assert [j.status_code for j in jobs] == [202, 202]
    ids = [j.json()["id"] for j in jobs]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        states = [http.get(f"/v1/videos/{i}").json() for i in ids]
        if all(s["status"] == "running" and s["frames_done"] > 0 for s in states):
            break
        time.sleep(0.1)
    assert all(s["status"] == "running" and s["frames_done"] > 0 for s in states), states
    third = submit(http, clips["long"])
    assert third.status_code == 429 and third.headers["content-type"] == "application/problem+json"
    assert int(third.headers["retry-after"]) >= 1
    for i in ids:
        assert http.delete(f"/v1/videos/{i}").json()["status"] == "cancelled"
    assert submit(http, clips["pan"]).status_code == 202  # the slots are free again


def test_metrics_count_jobs_and_frames(video_server: LiveServer, http: httpx.Client, clips: dict[str, Path]) -> None:
    frames_before = metric(video_server, "atelier_video_frames_total")
    job = submit(http, clips["pan"]).json()
    assert wait(http, job["id"], ("done", "failed"))[-1]["status"] == "done"
    assert metric(video_server, "atelier_video_frames_total") >= frames_before + 24
    assert metric(video_server, "atelier_video_jobs_total", status="done") >= 1
    assert "atelier_video_queue_depth" in httpx.get(video_server.url + "/metrics").text


def test_unknown_job_is_404(http: httpx.Client) -> None:
    answer = http.get("/v1/videos/" + "0" * 32)
    assert answer.status_code == 404 and answer.headers["content-type"] == "application/problem+json"


# Bad inputs: each one a problem+json at submit time, or a job that ends failed; never a 5xx or a stuck job.


def _bad_inputs(folder: Path, image_dir: Path) -> dict[str, tuple[Path, int]]:
    photo = image_dir / "content" / "tubingen.jpg"
    made: dict[str, tuple[Path, int]] = {}
    text = folder / "notes.mp4"
    text.write_bytes(b"this is not a video at all\n" * 100)
    made["non-video"] = (text, 415)
    whole = folder / "whole.mp4"
    write_clip(whole, (f.rgb for f in frames(photo, "pan", 24, SIZE)), fps=24)
    truncated = folder / "truncated.mp4"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])  # the moov atom is at the end
    made["truncated-mp4"] = (truncated, 415)
    audio_only = folder / "audio.m4a"
    with av.open(str(audio_only), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=48000)
        stream.layout = "mono"
        write_tone(out, stream, 1.0)
    made["no-video-track-mp4"] = (audio_only, 415)
    wav = folder / "tone.wav"
    with av.open(str(wav), "w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=16000)
        stream.layout = "mono"
        write_tone(out, stream, 0.5)
    made["audio-only-wav"] = (wav, 415)
    slow = folder / "long.mp4"
    write_clip(slow, (f.rgb for f in frames(photo, "pan", 25, SIZE)), fps=1)  # 25 s over the 20 s limit
    made["over-duration"] = (slow, 413)
    big = folder / "big.mp4"
    write_clip(big, (f.rgb for f in frames(photo, "pan", 3, (800, 608))), fps=24)  # over 640x480 pixels
    made["over-pixels"] = (big, 413)
    tiny = folder / "tiny.gif"
    with av.open(str(tiny), "w", format="gif") as out:
        stream = out.add_stream("gif", rate=10)
        stream.width, stream.height, stream.pix_fmt = 1, 1, "rgb8"
        for i in range(3):
            for p in stream.encode(av.VideoFrame.from_ndarray(np.full((1, 1, 3), 80 * i, np.uint8), format="rgb24")):
                out.mux(p)
        for p in stream.encode():
            out.mux(p)
    made["1x1-frames"] = (tiny, 422)
    return made


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory: pytest.TempPathFactory, image_dir: Path) -> dict[str, tuple[Path, int]]:
    return _bad_inputs(tmp_path_factory.mktemp("bad"), image_dir)


@pytest.mark.parametrize(
    "name",
    [
        "non-video",
        "truncated-mp4",
        "no-video-track-mp4",
        "audio-only-wav",
        "over-duration",
        "over-pixels",
        "1x1-frames",
    ],
)
def test_bad_input_is_a_problem(http: httpx.Client, bad_inputs: dict[str, tuple[Path, int]], name: str) -> None:
    path, status = bad_inputs[name]
    answer = submit(http, path)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["status"] == status and answer.json()["detail"]


def test_truncated_faststart_mp4_fails_the_job_or_is_refused(
    http: httpx.Client, image_dir: Path, tmp_path: Path
) -> None:
    """moov first, then half the frames' data: the index promises frames that are not there."""
    whole = tmp_path / "fast.mp4"
    with av.open(str(whole), "w", format="mp4", options={"movflags": "faststart"}) as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        for f in frames(image_dir / "content" / "tubingen.jpg", "pan", 24, SIZE):
            for p in stream.encode(av.VideoFrame.from_ndarray(f.rgb, format="rgb24")):
                out.mux(p)
        for p in stream.encode():
            out.mux(p)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.6)])
    answer = submit(http, cut)
    if answer.status_code == 202:
        final = wait(http, answer.json()["id"], ("done", "failed"))[-1]
        # Either the job reports the damage, or FFmpeg decoded what is there and the job says how much.
        assert final["status"] == "failed" and final["error"] or final["frames_done"] <= final["frames_total"]
    else:
        assert answer.status_code == 415 and answer.headers["content-type"] == "application/problem+json"


def test_variable_frame_rate_keeps_each_frames_time(http: httpx.Client, image_dir: Path, tmp_path: Path) -> None:
    """Frames 40, 40, 80, 120, ... ms apart: the output keeps every timestamp."""
    path = tmp_path / "vfr.mkv"
    gaps = [40, 40, 80, 120, 40, 200, 40, 80, 40, 40]
    with av.open(str(path), "w", format="matroska") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        pts = 0
        for gap, f in zip(gaps, frames(image_dir / "content" / "tubingen.jpg", "pan", len(gaps), SIZE), strict=True):
            frame = av.VideoFrame.from_ndarray(f.rgb, format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            pts += gap
            for p in stream.encode(frame):
                out.mux(p)
        for p in stream.encode():
            out.mux(p)
    answer = submit(http, path)
    assert answer.status_code == 202, answer.text
    assert wait(http, answer.json()["id"], ("done", "failed"))[-1]["status"] == "done"
    (tmp_path / "out.mp4").write_bytes(http.get(f"/v1/videos/{answer.json()['id']}/result").content)
    got, want = streams(tmp_path / "out.mp4"), streams(path)
    assert got["frames"] == want["frames"] == len(gaps)
    assert np.allclose(np.diff(got["times"]), np.diff(want["times"]), atol=2e-3), (got["times"], want["times"])


@pytest.mark.parametrize("container", ["gif", "mov"])
def test_animated_gif_and_mov(http: httpx.Client, image_dir: Path, tmp_path: Path, container: str) -> None:
    path = tmp_path / f"clip.{container}"
    source = (f.rgb for f in frames(image_dir / "content" / "tubingen.jpg", "pan", 8, SIZE))
    if container == "gif":
        with av.open(str(path), "w", format="gif") as out:
            stream = out.add_stream("gif", rate=10)
            stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], "rgb8"
            for rgb in source:
                for p in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                    out.mux(p)
            for p in stream.encode():
                out.mux(p)
    else:
        write_clip(path, source, fps=10, container="mov")
    answer = submit(http, path)
    assert answer.status_code == 202, answer.text
    assert wait(http, answer.json()["id"], ("done", "failed"))[-1]["status"] == "done"
    (tmp_path / "out.mp4").write_bytes(http.get(f"/v1/videos/{answer.json()['id']}/result").content)
    got, want = streams(tmp_path / "out.mp4"), streams(path)
    assert got["frames"] == want["frames"] == 8 and got["size"] == SIZE
    assert np.allclose(got["times"], want["times"], atol=2e-3)


def _frames_of(http: httpx.Client, job_id: str, tmp_path: Path) -> tuple[list[np.ndarray], str | None]:
    result = http.get(f"/v1/videos/{job_id}/result")
    assert result.status_code == 200, result.text
    path = tmp_path / f"{job_id}.mp4"
    path.write_bytes(result.content)
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)], result.headers.get("x-stroke-scale")


def test_stroke_scale_makes_the_strokes_bigger_and_is_reported(
    http: httpx.Client, image_dir: Path, tmp_path: Path
) -> None:
    from tests.service.test_brush import stroke_width

    clip = tmp_path / "square.mp4"
    write_clip(clip, (f.rgb for f in frames(image_dir / "content" / "golden_gate_sq.jpg", "pan", 6, (256, 256))), fps=6)
    widths, outputs = {}, {}
    for asked in (None, "2"):
        answer = submit(http, clip, consistency="0", **({"stroke_scale": asked} if asked else {}))
        assert answer.status_code == 202, answer.text
        assert answer.json()["stroke_scale"] == (2.0 if asked else 1.0)  # the default: 256 px < brush side
        done = wait(http, answer.json()["id"], ("done", "failed"))[-1]
        assert done["status"] == "done" and done["stroke_scale"] == (2.0 if asked else 1.0), done
        got, header = _frames_of(http, done["id"], tmp_path)
        assert len(got) == 6 and got[0].shape == (256, 256, 3) and header == (asked or "1")
        outputs[asked] = got
        widths[asked] = float(np.mean([stroke_width(f) for f in got]))
    diff = np.abs(outputs[None][-1].astype(float) - outputs["2"][-1].astype(float)).mean()
    assert diff > 5, diff  # not the same picture
    assert widths["2"] >= 1.3 * widths[None], widths


@pytest.mark.parametrize("value", ["0.25", "9", "nan"])
def test_stroke_scale_out_of_range_is_a_422_problem(http: httpx.Client, clips: dict[str, Path], value: str) -> None:
    answer = submit(http, clips["pan"], stroke_scale=value)
    assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"
    assert "stroke_scale" in answer.text


def test_the_default_stroke_scale_is_stylize_s_rule() -> None:
    from service.brush import default_stroke_scale
    from service.errors import InvalidField
    from service.video_io import VideoInfo
    from service.video_render import VideoSpec, resolve_stroke_scale

    hd = VideoInfo(1280, 720, 10, 1.0, Fraction(10), 0, None)
    spec = VideoSpec("m/1", [0.0], "ref")
    assert resolve_stroke_scale(spec, hd, 8192, 512, 2048) == default_stroke_scale(1280, 512) == 2.5
    assert resolve_stroke_scale(VideoSpec("m/1", [0.0], "ref", max_side=640), hd, 8192, 512, 2048) == 1.25
    assert resolve_stroke_scale(VideoSpec("m/1", [0.0], "ref", stroke_scale=0.75), hd, 8192, 512, 2048) == 0.75
    with pytest.raises(InvalidField, match="frames run whole"):  # videos never tile: 1280 / 0.5 > 2048
        resolve_stroke_scale(VideoSpec("m/1", [0.0], "ref", stroke_scale=0.5), hd, 8192, 512, 2048)
