"""The page's video section in headless Chromium: upload a clip, watch the progress bar, play and download."""

from __future__ import annotations

from pathlib import Path

import av
import pytest
from playwright.sync_api import Page, expect

from service.video_synth import frames, write_clip
from tests.helpers.server import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_upload_a_clip_follow_progress_play_and_download(
    page: Page, web_server: LiveServer, image_dir: Path, tmp_path: Path
) -> None:
    clip = tmp_path / "clip.mp4"
    write_clip(clip, (f.rgb for f in frames(image_dir / "content" / "tubingen.jpg", "pan", 12, (160, 96))), fps=12)
    page.goto(web_server.url + "/")
    expect(page.locator("#video-preset option")).not_to_have_count(0)
    page.locator("#video-file").set_input_files(clip)
    page.locator("#video-max-side").select_option("")
    page.get_by_role("button", name="Paint the clip").click()
    expect(page.locator("#video-result")).to_be_visible(timeout=120_000)
    assert page.locator("#video-progress").evaluate("p => p.value") == 1
    expect(page.locator("#video-status")).to_have_text("done")
    # The browser can play it: the element has the clip's size and duration once its metadata loads.
    page.wait_for_function("document.querySelector('#video-result').readyState >= 1", timeout=30_000)
    assert page.locator("#video-result").evaluate("v => [v.videoWidth, v.videoHeight]") == [160, 96]
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download the clip").click()
    saved = tmp_path / "result.mp4"
    download_info.value.save_as(saved)
    with av.open(str(saved)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 12
