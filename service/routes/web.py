"""The web page at ``/``: plain HTML, CSS and JS from ``service/web/`` that call only the public /v1 API."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

WEB_DIR = Path(__file__).resolve().parents[1] / "web"
STATIC_PREFIX = "/web"

# Everything the page needs comes from this origin; results and thumbnails are shown from blob: URLs.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index() -> FileResponse:
    # no-cache: revalidate on every visit, so a deployment's new page and script are picked up together.
    headers = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-cache"}
    return FileResponse(WEB_DIR / "index.html", media_type="text/html; charset=utf-8", headers=headers)


def static_files() -> StaticFiles:
    """The page's CSS and JS, mounted at ``STATIC_PREFIX``."""
    return StaticFiles(directory=WEB_DIR)
