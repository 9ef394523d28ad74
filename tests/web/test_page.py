"""The web page in headless Chromium against a live server: stylise with a preset, a blend and an own
painting, show the API's errors, work on a phone-sized screen, ask for the API key when keys are on.

Screenshots go to artifacts/web/.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect

from service.imaging import output_size
from service.thumbnails import THUMBNAIL_SIDE
from tests.helpers.server import TEST_UPLOAD_LIMIT, LiveServer
from tests.helpers.web import API_KEY

pytestmark = pytest.mark.browser

PRESETS = 26
GALLERY_LOADED = """() => {
  const images = [...document.querySelectorAll('#gallery img')];
  return images.length > 0 && images.every((image) => image.complete && image.naturalWidth > 0);
}"""
RESULT_LOADED = """() => {
  const result = document.getElementById('result');
  return !result.hidden && result.complete && result.naturalWidth > 0;
}"""
# Records whether the progress indication was shown, however short the request.
WATCH_PROGRESS = """() => {
  window.sawProgress = false;
  const progress = document.getElementById('progress');
  new MutationObserver(() => { if (!progress.hidden) window.sawProgress = true; })
    .observe(progress, { attributes: true });
}"""


def open_page(page: Page, server: LiveServer) -> None:
    page.goto(server.url + "/")
    page.wait_for_function(GALLERY_LOADED)


def stylise(page: Page) -> None:
    page.evaluate(WATCH_PROGRESS)
    page.get_by_role("button", name="Stylize").click()
    page.wait_for_function(RESULT_LOADED)
    expect(page.locator("#progress")).to_be_hidden()
    assert page.evaluate("window.sawProgress"), "no progress indication while waiting"
    expect(page.locator("#error")).to_be_hidden()


def result_size(page: Page) -> tuple[int, int]:
    width, height = page.locator("#result").evaluate("(image) => [image.naturalWidth, image.naturalHeight]")
    return width, height


def rgb(path: Path | bytes, size: tuple[int, int] | None = None) -> np.ndarray:
    with Image.open(io.BytesIO(path) if isinstance(path, bytes) else path) as image:
        image = image.convert("RGB")
        if size is not None and image.size != size:
            image = image.resize(size, Image.Resampling.LANCZOS)
        return np.asarray(image, dtype=np.float32) / 255.0


def test_stylise_a_photo_with_a_preset(
    page: Page, web_server: LiveServer, image_dir: Path, artifacts: Path, tmp_path: Path
) -> None:
    content = image_dir / "content" / "eiffel_tower.jpg"
    open_page(page, web_server)
    thumbnails = page.locator("#gallery img")
    expect(thumbnails).to_have_count(PRESETS)
    assert page.evaluate("document.querySelector('#gallery img').naturalWidth") == THUMBNAIL_SIDE

    page.get_by_label("Choose a photo, or drop one here").set_input_files(content)
    expect(page.locator("#input-preview")).to_be_visible()
    page.get_by_role("radio", name="style-03", exact=True).check()
    page.get_by_label("Output size (longest side)").select_option("256")
    stylise(page)

    with Image.open(content) as image:
        expected = output_size(*image.size, 256, 2048)
    assert result_size(page) == expected
    expect(page.locator("#result-caption")).to_contain_text("presets-26/1")
    expect(page.locator("#result-caption")).to_contain_text("preset:style-03")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download").click()
    download = download_info.value
    assert download.suggested_filename == "eiffel_tower-stylised.png"
    saved = tmp_path / "result.png"
    download.save_as(saved)
    result = rgb(saved)
    assert (result.shape[1], result.shape[0]) == expected
    assert np.abs(result - rgb(content, expected)).mean() > 0.05, "the result is the content image"
    page.screenshot(path=artifacts / "stylised-preset.png", full_page=True)


def test_api_errors_are_shown(page: Page, web_server: LiveServer, tmp_path: Path, artifacts: Path) -> None:
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("these are notes, not pixels\n")
    too_large = tmp_path / "huge.jpg"
    too_large.write_bytes(b"\xff\xd8" + bytes(TEST_UPLOAD_LIMIT + 1024))
    open_page(page, web_server)
    error = page.get_by_role("alert")

    page.get_by_label("Choose a photo, or drop one here").set_input_files(not_an_image)
    page.get_by_role("button", name="Stylize").click()
    expect(error).to_contain_text("Unsupported or undecodable image (415)")
    expect(error).to_contain_text("is not a JPEG, PNG, WebP, GIF, BMP or TIFF file")
    expect(page.locator("#result")).to_be_hidden()
    page.screenshot(path=artifacts / "error-415.png", full_page=True)

    page.get_by_label("Choose a photo, or drop one here").set_input_files(too_large)
    page.get_by_role("button", name="Stylize").click()
    expect(error).to_contain_text("Content too large (413)")
    expect(page.get_by_role("button", name="Stylize")).to_be_enabled()


def test_blend_of_two_presets_on_a_phone(
    browser: Browser, web_server: LiveServer, image_dir: Path, artifacts: Path
) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    try:
        open_page(page, web_server)
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"the page is {overflow}px wider than a phone screen"
        page.get_by_label("Choose a photo, or drop one here").set_input_files(image_dir / "content" / "tubingen.jpg")
        page.get_by_role("radio", name="style-03", exact=True).check()
        page.get_by_label("Blend with a second style").check()
        page.get_by_label("Second preset").select_option("style-07")
        page.get_by_label("Mix (first ↔ second)").fill("30")
        expect(page.locator("#mix-value")).to_have_text("30% second")
        stylise(page)
        assert result_size(page) == (512, 384)
        expect(page.locator("#result-caption")).to_contain_text("preset:style-03,preset:style-07")
        page.screenshot(path=artifacts / "phone-blend.png", full_page=True)
    finally:
        context.close()


def drop_file(page: Page, selector: str, path: Path) -> None:
    """Drag and drop ``path`` onto ``selector``, as a user dropping a file from their desktop."""
    transfer = page.evaluate_handle(
        """([name, bytes]) => {
          const transfer = new DataTransfer();
          transfer.items.add(new File([new Uint8Array(bytes)], name, { type: "image/jpeg" }));
          return transfer;
        }""",
        [path.name, list(path.read_bytes())],
    )
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


def test_own_paintings_dropped_photo_half_strength_and_a_blend(
    page: Page, web_server: LiveServer, image_dir: Path, artifacts: Path
) -> None:
    open_page(page, web_server)
    drop_file(page, "#drop-zone", image_dir / "content" / "golden_gate_sq.jpg")
    expect(page.locator("#content-name")).to_contain_text("golden_gate_sq.jpg")
    page.get_by_label("My own painting").check()
    expect(page.locator("#gallery")).to_be_hidden()
    page.get_by_label("Your painting", exact=True).set_input_files(image_dir / "style" / "starry_night.jpg")
    page.get_by_label("Strength").fill("0.5")
    expect(page.locator("#strength-value")).to_have_text("0.50")
    page.get_by_label("Keep the photo's colours").check()
    page.get_by_label("Output size (longest side)").select_option("")
    stylise(page)
    assert result_size(page) == (256, 256)
    expect(page.locator("#result-caption")).to_contain_text("magenta-mobile/1")
    page.screenshot(path=artifacts / "own-painting.png", full_page=True)

    # A blend of two own paintings: the page registers both (POST /v1/styles) and blends their ids.
    first = page.locator("#result").get_attribute("src")
    page.get_by_label("Blend with a second style").check()
    page.get_by_label("Your second painting").set_input_files(image_dir / "style" / "the_scream.jpg")
    stylise(page)
    assert page.locator("#result").get_attribute("src") != first
    caption = page.locator("#result-caption").inner_text()
    assert re.search(r"[0-9a-f]{16,},[0-9a-f]{16,}", caption), caption


def test_the_page_asks_for_the_api_key(page: Page, keyed_server: LiveServer) -> None:
    page.goto(keyed_server.url + "/")
    expect(page.get_by_role("alert")).to_contain_text("Missing or invalid API key (401)")
    expect(page.locator("#key-panel")).to_have_attribute("open", "")
    page.get_by_label("API key (kept in this browser only)").fill(API_KEY)
    page.get_by_role("button", name="Save key").click()
    page.wait_for_function(GALLERY_LOADED)
    expect(page.get_by_role("alert")).to_be_hidden()
    page.reload()  # the key stays in localStorage
    page.wait_for_function(GALLERY_LOADED)
    expect(page.get_by_role("alert")).to_be_hidden()
