"""The page's live mode in headless Chromium with a fake camera: a clip made from the shared photos
plays as the camera, painted frames come back over /v1/live, the style switches while it runs, and a
denied camera is explained. Screenshots go to artifacts/web/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, expect

from tests.helpers.server import LiveServer
from tests.helpers.web import CHROMIUM, CHROMIUM_ARGS
from tests.web.fake_camera import y4m_clip

pytestmark = pytest.mark.browser

LIVE_STYLES_LOADED = "() => document.querySelectorAll('#live-presets option').length > 0"


def painted_count(page: Page) -> int:
    return int(page.locator("#live-frames").inner_text().split()[0])


def fps(page: Page) -> float:
    return float(page.locator("#live-fps").inner_text().split()[0])


def painted_spread(page: Page) -> float:
    """The standard deviation of the painted canvas's pixels: 0 for a blank canvas."""
    return page.evaluate(
        """() => {
          const canvas = document.getElementById('live-painted');
          const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
          let sum = 0, squares = 0, n = 0;
          for (let i = 0; i < data.length; i += 4) { sum += data[i]; squares += data[i] * data[i]; n += 1; }
          return Math.sqrt(squares / n - (sum / n) ** 2);
        }"""
    )


@pytest.fixture(scope="module")
def camera_browser(browser: Browser, image_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """A second Chromium whose camera plays a clip of a shared photo (permission is granted per
    context). Launched by the Playwright of the plain ``browser``: one thread runs one Playwright."""
    clip = y4m_clip(image_dir / "content" / "tubingen.jpg", tmp_path_factory.mktemp("camera") / "clip.y4m")
    args = [*CHROMIUM_ARGS, "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={clip}"]
    camera = browser.browser_type.launch(executable_path=str(CHROMIUM), headless=True, args=args)
    yield camera
    camera.close()


def new_page(browser: Browser, server: LiveServer, camera: bool) -> tuple[BrowserContext, Page, list[str]]:
    context = browser.new_context(
        viewport={"width": 1280, "height": 1100}, permissions=["camera"] if camera else [], base_url=server.url
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            errors.append(message.text)

    page.on("console", on_console)
    page.goto("/")
    page.wait_for_function(LIVE_STYLES_LOADED)
    return context, page, errors


def test_the_camera_is_painted_live_and_the_style_switches(
    camera_browser: Browser, web_server: LiveServer, image_dir: Path, artifacts: Path
) -> None:
    context, page, errors = new_page(camera_browser, web_server, camera=True)
    try:
        page.get_by_label("Live style", exact=True).select_option(label="style-03")
        expect(page.get_by_label("Temporal smoothing")).to_be_checked()  # on by default
        page.get_by_role("button", name="Start camera").click()
        expect(page.locator("#live-status")).to_contain_text("Painting with preset:style-03", timeout=30_000)
        page.wait_for_function(
            "() => parseInt(document.getElementById('live-frames').textContent) >= 5", timeout=60_000
        )
        expect(page.locator("#live-frame-style")).to_have_text("preset:style-03")
        assert fps(page) > 0, page.locator("#live-fps").inner_text()
        assert page.locator("#live-latency").inner_text().endswith(" ms")
        assert painted_spread(page) > 10, "the painted canvas is blank"
        assert page.evaluate("document.getElementById('live-painted').width") == 320
        page.screenshot(path=artifacts / "live-preset.png", full_page=True)

        # Switched while running: the next painted frames carry the new style.
        before = painted_count(page)
        page.get_by_label("Live style", exact=True).select_option(label="style-07")
        expect(page.locator("#live-frame-style")).to_have_text("preset:style-07", timeout=30_000)
        page.wait_for_function(
            f"() => parseInt(document.getElementById('live-frames').textContent) >= {before + 3}", timeout=60_000
        )
        assert fps(page) > 0

        # An own painting, registered through POST /v1/styles, becomes the live style.
        page.get_by_label("Live style from your own painting").set_input_files(image_dir / "style" / "starry_night.jpg")
        page.wait_for_function(
            "() => /^[0-9a-f]{64}$/.test(document.getElementById('live-frame-style').textContent)", timeout=60_000
        )
        assert page.locator("#live-style").input_value().startswith("id:")
        expect(page.locator("#live-error")).to_be_hidden()
        page.screenshot(path=artifacts / "live-own-painting.png", full_page=True)

        page.get_by_role("button", name="Stop").click()
        expect(page.locator("#live-status")).to_have_text("The camera is off.")
        expect(page.get_by_role("button", name="Start camera")).to_be_enabled()
    finally:
        context.close()
    assert not errors, f"errors in the browser console: {errors}"


def test_a_denied_camera_is_explained(camera_browser: Browser, web_server: LiveServer, artifacts: Path) -> None:
    context, page, errors = new_page(camera_browser, web_server, camera=False)
    try:
        page.get_by_role("button", name="Start camera").click()
        expect(page.get_by_role("alert")).to_contain_text("Camera access was denied", timeout=30_000)
        expect(page.get_by_role("button", name="Start camera")).to_be_enabled()
        assert painted_count(page) == 0
        page.screenshot(path=artifacts / "live-camera-denied.png", full_page=True)
    finally:
        context.close()
    assert not errors, f"errors in the browser console: {errors}"


def test_a_missing_camera_is_explained(browser: Browser, web_server: LiveServer) -> None:
    """The plain browser of tests/web/conftest.py: no fake device, and this machine has no camera."""
    context, page, errors = new_page(browser, web_server, camera=True)
    try:
        page.get_by_role("button", name="Start camera").click()
        expect(page.get_by_role("alert")).to_contain_text("No camera was found", timeout=30_000)
        expect(page.locator("#live-status")).to_have_text("The camera is off.")
    finally:
        context.close()
    assert not errors, f"errors in the browser console: {errors}"
