"""`atelier video`: a tiny clip made here from a shared photo, stylised in process and as a job on a
real server; the results are read back with PyAV."""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from pathlib import Path

import av
import pytest

import atelier
from service.video_synth import frames, write_clip
from tests.helpers.cli import run_cli
from tests.helpers.server import LiveServer, assert_no_server_errors, start_server, stop_server

SIZE = (64, 48)  # width, height
FRAMES = 6


@pytest.fixture(scope="module")
def clip(image_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "pan.mp4"
    write_clip(path, (f.rgb for f in frames(image_dir / "content" / "tubingen.jpg", "pan", FRAMES, SIZE)), fps=12)
    return path


@pytest.fixture(scope="module")
def video_server(model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    workdir = tmp_path_factory.mktemp("cli-video-server")
    live = start_server(model_repository, workdir, {"ATELIER_VIDEO_DIR": str(workdir / "videos")})
    yield live
    stop_server(live)
    assert_no_server_errors(live)


def decoded(path: Path) -> tuple[int, tuple[int, int]]:
    with av.open(str(path)) as container:
        got = list(container.decode(container.streams.video[0]))
    return len(got), (got[0].width, got[0].height)


def test_in_process_keeps_frames_and_size(clip: Path, tmp_path: Path, cli_env: dict[str, str]) -> None:
    out = tmp_path / "out.mp4"
    run = run_cli(["video", str(clip), "--preset", "3", "-o", str(out), "--json"], cwd=tmp_path, env=cli_env)
    assert run.code == 0, run.stderr
    payload = json.loads(run.text)
    assert payload["output"] == str(out) and payload["frames"] == FRAMES
    assert payload["media_type"] == "video/mp4" and "job_id" not in payload
    assert payload["stroke_scale"] == 1.0  # the default at 64 pixels: /v1/stylize's rule
    assert decoded(out) == (FRAMES, SIZE)


@pytest.mark.parametrize("where", ["in process", "server"])
def test_stroke_scale_reaches_the_render(
    clip: Path, tmp_path: Path, video_server: LiveServer, cli_env: dict[str, str], where: str
) -> None:
    out = tmp_path / "big.mp4"
    args = ["video", str(clip), "--preset", "3", "--stroke-scale", "2", "-o", str(out), "--json"]
    run = run_cli([*args, *(["--server", video_server.url] if where == "server" else [])], cwd=tmp_path, env=cli_env)
    assert run.code == 0, run.stderr
    assert json.loads(run.text)["stroke_scale"] == 2.0
    assert decoded(out) == (FRAMES, SIZE)
    refused = run_cli(["video", str(clip), "--preset", "3", "--stroke-scale", "9"], cwd=tmp_path, env=cli_env)
    assert refused.code == 2 and "--stroke-scale" in refused.stderr


def test_on_a_server_as_a_job(clip: Path, tmp_path: Path, video_server: LiveServer, cli_env: dict[str, str]) -> None:
    out = tmp_path / "remote.mp4"
    args = ["video", str(clip), "--preset", "3:0.5,12:0.5", "--consistency", "0", "-o", str(out), "--json"]
    run = run_cli([*args, "--server", video_server.url], cwd=tmp_path, env=cli_env)
    assert run.code == 0, run.stderr
    payload = json.loads(run.text)
    assert payload["frames"] == FRAMES and len(payload["job_id"]) == 32
    assert decoded(out) == (FRAMES, SIZE)
    with video_server.client() as http:  # the job the CLI polled is the server's, and done
        assert http.get(f"/v1/videos/{payload['job_id']}").json()["status"] == "done"


def test_local_and_client_video_signatures_match() -> None:
    local, remote = atelier.Local.stylize_video, atelier.Client.stylize_video
    assert list(inspect.signature(local).parameters) == list(inspect.signature(remote).parameters)


def test_python_api_same_method_on_local_and_client(
    clip: Path, tmp_path: Path, video_server: LiveServer, model_repository: Path
) -> None:
    seen: list[tuple[int, int]] = []
    with atelier.Client(video_server.url) as client:
        remote = client.stylize_video(
            clip, tmp_path / "c.mp4", preset="3", max_side=32, on_progress=lambda *a: seen.append(a)
        )
    assert remote.frames == FRAMES and seen[-1] == (FRAMES, FRAMES)
    with atelier.Local(model_repository) as local:
        done: list[int] = []
        result = local.stylize_video(
            clip, tmp_path / "l.mp4", preset="3", max_side=32, on_progress=lambda d, t: done.append(d)
        )
    assert done == list(range(1, FRAMES + 1))
    assert decoded(result.output) == decoded(remote.output) == (FRAMES, (32, 24))


@pytest.mark.parametrize("where", ["local", "server"])
def test_not_a_video_is_exit_2_with_one_line(
    where: str, tmp_path: Path, video_server: LiveServer, cli_env: dict[str, str]
) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_text("these are notes, not a video\n" * 100)
    server = ["--server", video_server.url] if where == "server" else []
    run = run_cli(
        ["video", str(fake), "--preset", "3", "-o", str(tmp_path / "x.mp4"), *server], cwd=tmp_path, env=cli_env
    )
    assert run.code == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert (
        len(lines) == 1 and lines[0].startswith("atelier: error: ") and "Unsupported or undecodable video" in lines[0]
    ), run.stderr
    assert not (tmp_path / "x.mp4").exists()


def test_missing_clip_and_bad_option_are_exit_2(tmp_path: Path, cli_env: dict[str, str]) -> None:
    missing = run_cli(["video", str(tmp_path / "nope.mp4"), "--preset", "3"], cwd=tmp_path, env=cli_env)
    assert missing.code == 2 and missing.stderr.count("\n") == 1 and "does not exist" in missing.stderr
    bad = run_cli(["video", str(tmp_path / "nope.mp4"), "--consistency", "2"], cwd=tmp_path, env=cli_env)
    assert bad.code == 2 and bad.stderr.count("\n") == 1 and "consistency" in bad.stderr


def test_help_lists_video(tmp_path: Path, cli_env: dict[str, str]) -> None:
    run = run_cli(["--help"], cwd=tmp_path, env=cli_env)
    assert run.code == 0 and "atelier video clip.mp4" in run.text and "not here yet" not in run.text
