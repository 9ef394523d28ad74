"""Without the `video` extra (PyAV, OpenCV), as in the slim CPU image: the service starts, and the video
routes answer a 501 problem that names the install line."""

from __future__ import annotations

from pathlib import Path

import pytest

from service import video_io
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
