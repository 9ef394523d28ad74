"""Web page fixtures: live servers (with and without API keys) and headless Debian Chromium via Playwright."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from tests.helpers.server import LiveServer, assert_no_server_errors, start_server, stop_server
from tests.helpers.web import API_KEY, ARTIFACTS, CHROMIUM, CHROMIUM_ARGS


@pytest.fixture(scope="session")
def web_server(model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(model_repository, tmp_path_factory.mktemp("web-server"))
    yield live
    stop_server(live)
    assert_no_server_errors(live)


@pytest.fixture(scope="session")
def keyed_server(model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(model_repository, tmp_path_factory.mktemp("web-keyed"), {"ATELIER_API_KEYS": API_KEY})
    yield live
    stop_server(live)
    assert_no_server_errors(live)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # A missing browser is a failed test, not a skip: `make test` installs it (scripts/system-deps.sh).
    # One per module: sync Playwright runs an event loop in this thread until it stops, so with a
    # longer scope any later test that calls asyncio.run() fails (package scope lasts the session here).
    assert CHROMIUM.is_file(), f"{CHROMIUM} is missing: run scripts/system-deps.sh chromium:chromium"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh desktop-sized page; script errors and console errors (a CSP violation, say) fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    def on_console(message: ConsoleMessage) -> None:
        # Chromium logs every 4xx answer as "Failed to load resource"; the error tests cause those on purpose.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            errors.append(message.text)

    page.on("console", on_console)
    yield page
    context.close()
    assert not errors, f"errors in the browser console: {errors}"


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
