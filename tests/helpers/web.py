"""What the web page tests share: the API key of the keyed server, headless Chromium, where screenshots go."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts" / "web"
CHROMIUM = Path("/usr/bin/chromium")
API_KEY = "web-test-key"
# This machine's network is closed: without the background-networking flags Chromium stalls on its own
# update, sync and QUIC probes. No sandbox: the tests run as root in containers.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
