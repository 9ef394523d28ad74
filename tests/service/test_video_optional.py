"""Without the `video` extra (PyAV, OpenCV), as in the slim CPU image: the service starts, and the video
routes answer a 501 problem that names the install line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import redis

from service import video_io, video_jobs
from service.video_errors import VideoSupportMissing
from tests.helpers.images import encode_image, gradient_image
from tests.helpers.in_process import in_process_client


def test_a_video_upload_without_the_extra_is_a_501_problem(
    model_repository: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(video_io, "av", None)
    with in_process_client(model_repository, tmp_path) as client:
        answer = client.post(
            "/v1/videos",
            files={"video": ("clip.mp4", b"\x00\x00\x00\x18ftypmp42" + bytes(64), "video/mp4")},
            data={"preset": "1"},
        )
        assert answer.status_code == 501, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        body = answer.json()
        assert body["type"].endswith("video-unavailable") and "atelier[video]" in body["detail"]
        assert answer.headers["x-request-id"] == body["request_id"]
        # Images are untouched by the missing extra.
        image = client.post(
            "/v1/stylize", files={"content": encode_image(gradient_image(32, 24), "PNG")}, data={"preset": "1"}
        )
        assert image.status_code == 200


def test_a_replica_with_redis_but_without_rq_starts_and_refuses_videos(monkeypatch: pytest.MonkeyPatch) -> None:
    """The slim image with ATELIER_REDIS_URL set (the compose stack): building the dispatcher must not fail."""
    monkeypatch.setitem(sys.modules, "rq", None)  # import rq now raises ImportError
    dispatcher = video_jobs.RQDispatcher(redis.Redis(host="127.0.0.1", port=1), job_timeout_s=60)
    with pytest.raises(VideoSupportMissing) as refused:
        dispatcher.submit("0" * 32)
    assert refused.value.status == 501 and "atelier[video]" in refused.value.detail
