"""GET /v1/presets/{preset}/thumbnail through a real server: PNG, caching headers, 304, problems."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from service.thumbnails import THUMBNAIL_SIDE, sample_photo
from tests.helpers.server import LiveServer
from tests.helpers.web import API_KEY

URL = "/v1/presets/{}/thumbnail"


def pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def test_thumbnail_is_a_cacheable_png_of_the_preset(web_server: LiveServer) -> None:
    with web_server.client() as client:
        by_name = client.get(URL.format("style-03"))
        by_index = client.get(URL.format(3), params={"model": "presets-26/1"})
        other = client.get(URL.format("style-07"))
    assert by_name.status_code == 200, by_name.text
    assert by_name.headers["content-type"] == "image/png"
    assert by_name.headers["cache-control"] == "public, max-age=3600"
    etag = by_name.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 10
    image = pixels(by_name.content)
    assert image.shape == (THUMBNAIL_SIDE, THUMBNAIL_SIDE, 3)
    assert by_index.content == by_name.content and by_index.headers["etag"] == etag
    assert other.headers["etag"] != etag
    assert np.abs(image - pixels(other.content)).mean() > 0.03, "two presets gave the same thumbnail"
    sample = sample_photo(THUMBNAIL_SIDE).astype(np.float32) / 255.0
    assert np.abs(image - sample).mean() > 0.03, "the thumbnail is the unpainted sample photo"


def test_if_none_match_answers_304(web_server: LiveServer) -> None:
    with web_server.client() as client:
        etag = client.get(URL.format("style-05")).headers["etag"]
        same = client.get(URL.format("style-05"), headers={"If-None-Match": f'"other", W/{etag}'})
        stale = client.get(URL.format("style-05"), headers={"If-None-Match": '"stale"'})
    assert same.status_code == 304 and same.content == b""
    assert same.headers["etag"] == etag and "max-age" in same.headers["cache-control"]
    assert stale.status_code == 200 and stale.headers["etag"] == etag


def test_unknown_preset_model_and_wrong_kind_are_problems(web_server: LiveServer) -> None:
    with web_server.client() as client:
        unknown = client.get(URL.format("no-such-style"))
        out_of_range = client.get(URL.format(26))
        no_model = client.get(URL.format(3), params={"model": "nope"})
        arbitrary = client.get(URL.format(3), params={"model": "magenta-mobile"})
    for response, status, slug in (
        (unknown, 404, "unknown-preset"),
        (out_of_range, 404, "unknown-preset"),
        (no_model, 404, "unknown-model"),
        (arbitrary, 400, "bad-request"),
    ):
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["type"] == f"urn:atelier:problem:{slug}"
        assert problem["instance"] == response.request.url.path and problem["detail"]


def test_thumbnails_need_the_key_when_keys_are_on(keyed_server: LiveServer) -> None:
    with keyed_server.client() as client:
        anonymous = client.get(URL.format("style-01"))
        keyed = client.get(URL.format("style-01"), headers={"Authorization": f"Bearer {API_KEY}"})
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert keyed.status_code == 200
    assert keyed.headers["cache-control"] == "private, max-age=3600", "a shared cache must not serve it keyless"


def test_page_and_assets_are_served(web_server: LiveServer) -> None:
    with web_server.client() as client:
        page = client.get("/")
        script = client.get("/web/app.js")
        style = client.get("/web/app.css")
        spec = client.get("/openapi.json").json()
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert '<script src="/web/app.js"' in page.text
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
    assert "/" not in spec["paths"], "the page is not part of the API"
    assert "/v1/presets/{preset}/thumbnail" in spec["paths"]
