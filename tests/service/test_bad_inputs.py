"""A corpus of bad requests against the live server: each gets its documented 4xx problem, never a 5xx."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.helpers.images import encode_image, gradient_image
from tests.helpers.server import TEST_UPLOAD_LIMIT


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG header claiming width x height, with a little compressed data: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = zlib.compress(b"\x00" * (width * 3 + 1) * 64, 9)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def good(content_path: Path) -> bytes:
    return content_path.read_bytes()


def corpus(good: bytes) -> dict[str, tuple[dict, dict, int, str]]:
    """name -> (files, data, expected status, expected problem slug)."""
    small = encode_image(gradient_image(64, 48), "PNG")
    return {
        "truncated jpeg": ({"content": good[: len(good) // 3]}, {"preset": "1"}, 415, "unsupported-image"),
        "zero bytes": ({"content": ("empty.png", b"", "image/png")}, {"preset": "1"}, 415, "unsupported-image"),
        "text named .png": (
            {"content": ("a.png", b"hello, world\n", "image/png")},
            {"preset": "1"},
            415,
            "unsupported-image",
        ),
        "unsupported format (ICO)": (
            {"content": encode_image(Image.new("RGB", (32, 32)), "ICO")},
            {"preset": "1"},
            415,
            "unsupported-image",
        ),
        "20000x20000 png bomb": ({"content": png_header_only(20000, 20000)}, {"preset": "1"}, 413, "content-too-large"),
        "7000x7000 png over max_pixels": (
            {"content": png_header_only(7000, 7000)},
            {"preset": "1"},
            413,
            "content-too-large",
        ),
        "1x1 image": (
            {"content": encode_image(Image.new("RGB", (1, 1)), "PNG")},
            {"preset": "1"},
            422,
            "invalid-field",
        ),
        "undecodable style": ({"content": small, "style": b"GIF89a-not-really"}, {}, 415, "unsupported-image"),
        "huge multipart field": ({"content": small}, {"style_id": "x" * 2_000_000}, 413, "content-too-large"),
        "unknown preset": ({"content": small}, {"preset": "no-such-preset"}, 404, "unknown-preset"),
        "preset index out of range": ({"content": small}, {"preset": "26"}, 404, "unknown-preset"),
        "non-ascii digit preset": ({"content": small}, {"preset": "\u00b2"}, 404, "unknown-preset"),
        "unknown style id": ({"content": small}, {"style_id": "f" * 64}, 404, "unknown-style"),
        "unknown model": ({"content": small}, {"preset": "1", "model": "nope"}, 404, "unknown-model"),
        "unknown model version": ({"content": small}, {"preset": "1", "model": "presets-26/99"}, 404, "unknown-model"),
        "strength 2.5": ({"content": small}, {"preset": "1", "strength": "2.5"}, 422, "invalid-field"),
        "strength NaN": ({"content": small}, {"preset": "1", "strength": "NaN"}, 422, "invalid-field"),
        "strength inf": ({"content": small}, {"preset": "1", "strength": "inf"}, 422, "invalid-field"),
        "strength text": ({"content": small}, {"preset": "1", "strength": "strong"}, 422, "invalid-field"),
        "max_side 0": ({"content": small}, {"preset": "1", "max_side": "0"}, 422, "invalid-field"),
        "max_side over cap": ({"content": small}, {"preset": "1", "max_side": "100000"}, 422, "invalid-field"),
        "format gif": ({"content": small}, {"preset": "1", "format": "gif"}, 422, "invalid-field"),
        "quality 0": ({"content": small}, {"preset": "1", "format": "jpeg", "quality": "0"}, 422, "invalid-field"),
        "no content": ({}, {"preset": "1"}, 422, "invalid-field"),
        "no style source": ({"content": small}, {}, 400, "bad-request"),
        "two style sources": ({"content": small}, {"preset": "1", "style_id": "a" * 64}, 400, "bad-request"),
        "weights without styles": ({"content": small}, {"preset": "1", "weights": "1"}, 400, "bad-request"),
        "blend mixing kinds": ({"content": small}, {"styles": f"preset:1,{'a' * 64}"}, 400, "bad-request"),
        "blend weights count": (
            {"content": small},
            {"styles": "preset:1,preset:2", "weights": "1"},
            422,
            "invalid-field",
        ),
        "blend negative weight": (
            {"content": small},
            {"styles": "preset:1,preset:2", "weights": "1,-1"},
            422,
            "invalid-field",
        ),
        "blend zero weights": (
            {"content": small},
            {"styles": "preset:1,preset:2", "weights": "0,0"},
            422,
            "invalid-field",
        ),
        "blend NaN weight": (
            {"content": small},
            {"styles": "preset:1,preset:2", "weights": "nan,1"},
            422,
            "invalid-field",
        ),
        "blend text weight": (
            {"content": small},
            {"styles": "preset:1,preset:2", "weights": "a,b"},
            422,
            "invalid-field",
        ),
        "blend empty item": ({"content": small}, {"styles": "preset:1,,preset:2"}, 422, "invalid-field"),
        "preset on arbitrary model": (
            {"content": small},
            {"preset": "1", "model": "magenta-mobile"},
            400,
            "bad-request",
        ),
        "style file on nstyle model": ({"content": small, "style": small}, {"model": "presets-26"}, 400, "bad-request"),
    }


CASES = list(corpus(b"x" * 30).keys())


@pytest.mark.parametrize("name", CASES)
def test_bad_stylize_request(client: httpx.Client, good: bytes, name: str) -> None:
    files, data, status, slug = corpus(good)[name]
    response = client.post("/v1/stylize", files=files or {"x": ("x.txt", b"x")}, data=data)
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["type"] == f"urn:atelier:problem:{slug}"
    assert body["title"] and body["detail"] and body["instance"] == "/v1/stylize"
    assert body["request_id"] == response.headers["x-request-id"]


def test_body_over_limit_by_content_length(client: httpx.Client) -> None:
    response = client.post("/v1/stylize", files={"content": b"\0" * (TEST_UPLOAD_LIMIT + 1)}, data={"preset": "1"})
    assert response.status_code == 413
    assert response.json()["type"].endswith("content-too-large")


def test_body_over_limit_streamed_without_length(client: httpx.Client) -> None:
    boundary = "atelierboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="content"; filename="a.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()

    def body():
        yield head
        for _ in range(TEST_UPLOAD_LIMIT // 65536 + 2):
            yield b"\0" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    response = client.post(
        "/v1/stylize", content=body(), headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"


def test_malformed_multipart(client: httpx.Client) -> None:
    response = client.post("/v1/stylize", content=b"--x\r\ngarbage", headers={"Content-Type": "multipart/form-data"})
    assert response.status_code in (400, 422)
    assert response.headers["content-type"] == "application/problem+json"


def test_json_body_instead_of_multipart(client: httpx.Client) -> None:
    response = client.post("/v1/stylize", json={"preset": 1})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


def test_register_bad_style(client: httpx.Client) -> None:
    assert client.post("/v1/styles", files={"style": b"not an image"}).status_code == 415
    assert client.post("/v1/styles", files={"style": png_header_only(20000, 20000)}).status_code == 413
    nstyle = client.post(
        "/v1/styles", files={"style": encode_image(gradient_image(32, 32), "PNG")}, data={"model": "presets-26"}
    )
    assert nstyle.status_code == 400
    assert client.post("/v1/styles", data={"model": "x"}).status_code == 422


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/nowhere", 404),
        ("DELETE", "/v1/stylize", 405),
        ("GET", "/v1/styles?limit=0", 422),
        ("GET", "/v1/styles?offset=-1", 422),
        ("GET", "/v1/styles/%E2%98%83", 404),
        ("GET", "/v1/styles/" + "a" * 200, 422),
    ],
)
def test_bad_routes(client: httpx.Client, method: str, path: str, status: int) -> None:
    response = client.request(method, path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == status
