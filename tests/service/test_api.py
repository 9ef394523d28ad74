"""End to end through a real uvicorn process on loopback, on the embedded default models."""

from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.helpers.images import decode_rgb, encode_image, gradient_image, ycbcr
from tests.helpers.metrics import metric
from tests.helpers.server import LiveServer, assert_no_server_errors, start_server, stop_server

SIDE = 256


def stylize(client: httpx.Client, content: bytes, files: dict | None = None, **data: object) -> httpx.Response:
    response = client.post(
        "/v1/stylize", files={"content": content, **(files or {})}, data={k: str(v) for k, v in data.items()}
    )
    return response


def ok_image(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return decode_rgb(response.content)


@pytest.fixture(scope="module")
def content(content_path: Path) -> bytes:
    return content_path.read_bytes()


@pytest.fixture(scope="module")
def content_at_side(content_path: Path) -> np.ndarray:
    """The content as the server sees it at max_side=SIDE (a square photo, Lanczos)."""
    image = Image.open(content_path).convert("RGB").resize((SIDE, SIDE), Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.float32) / 255.0


@pytest.fixture(scope="module")
def registered(client: httpx.Client, style_paths: list[Path]) -> list[dict]:
    records = []
    for path in style_paths[:2]:
        response = client.post("/v1/styles", files={"style": (path.name, path.read_bytes(), "image/jpeg")})
        assert response.status_code in (200, 201), response.text
        records.append(response.json())
    return records


def mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


def test_health_routes(client: httpx.Client) -> None:
    assert client.get("/livez").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready"
    assert ready["default_model"] == "magenta-mobile/1"
    assert {(m["name"], m["version"]) for m in ready["models"]} >= {("magenta-mobile", 1), ("presets-26", 1)}
    assert ready["providers"] and all(p.endswith("ExecutionProvider") for p in ready["providers"])
    assert client.get("/openapi.json").json()["info"]["title"] == "Atelier"
    assert client.get("/docs").status_code == 200


def test_stylize_with_style_file(
    client: httpx.Client, content: bytes, style_paths: list[Path], content_at_side
) -> None:
    response = stylize(client, content, {"style": style_paths[0].read_bytes()}, max_side=SIDE)
    out = ok_image(response)
    assert out.shape == (SIDE, SIDE, 3)
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-model"] == "magenta-mobile/1"
    assert len(response.headers["x-style-id"]) == 64
    assert response.headers["x-request-id"]
    assert mean_abs(out, content_at_side) > 0.1, "a stylised image should differ from the photo"


def test_style_file_id_matches_registered_id(client: httpx.Client, content: bytes, style_paths, registered) -> None:
    response = stylize(client, content, {"style": style_paths[0].read_bytes()}, max_side=64)
    assert response.headers["x-style-id"] == registered[0]["id"]


def test_stylize_with_style_id_equals_style_file(client: httpx.Client, content: bytes, style_paths, registered) -> None:
    by_file = ok_image(stylize(client, content, {"style": style_paths[0].read_bytes()}, max_side=SIDE))
    response = stylize(client, content, style_id=registered[0]["id"], max_side=SIDE)
    by_id = ok_image(response)
    assert response.headers["x-style-id"] == registered[0]["id"]
    assert np.abs(by_file - by_id).max() <= 1 / 255 + 1e-6


def test_stylize_with_preset_by_index_and_name(client: httpx.Client, content: bytes, content_at_side) -> None:
    by_index = stylize(client, content, preset="3", max_side=SIDE)
    by_name = stylize(client, content, preset="style-03", max_side=SIDE)
    assert by_index.headers["x-model"] == "presets-26/1"
    assert by_index.headers["x-style-id"] == "preset:style-03"
    assert ok_image(by_index).shape == (SIDE, SIDE, 3)
    assert by_index.content == by_name.content
    other = ok_image(stylize(client, content, preset="7", max_side=SIDE))
    assert mean_abs(other, ok_image(by_index)) > 0.02, "two presets should look different"
    assert mean_abs(ok_image(by_index), content_at_side) > 0.1


def test_strength_zero_is_close_to_content_and_one_is_not(
    client: httpx.Client, content: bytes, style_paths, content_at_side
) -> None:
    style = {"style": style_paths[0].read_bytes()}
    distance = {
        s: mean_abs(ok_image(stylize(client, content, style, strength=s, max_side=SIDE)), content_at_side)
        for s in (0, 0.5, 1)
    }
    # Identity interpolation: the content's own embedding reconstructs it roughly (the mobile
    # transformer is not an identity map: about 0.12 mean abs here), the style's is far from it.
    assert distance[0] < 0.75 * distance[1], distance
    assert distance[0] <= distance[0.5] <= distance[1], distance


def test_preset_strength_blends_pixels(client: httpx.Client, content: bytes, content_at_side) -> None:
    zero = ok_image(stylize(client, content, preset="5", strength=0, max_side=SIDE))
    full = ok_image(stylize(client, content, preset="5", strength=1, max_side=SIDE))
    half = ok_image(stylize(client, content, preset="5", strength=0.5, max_side=SIDE))
    assert mean_abs(zero, content_at_side) < 1 / 255
    assert mean_abs(full, content_at_side) > 0.1
    assert np.abs(half - (zero + full) / 2).max() < 2.5 / 255


def test_blending_two_registered_styles_lies_between(client: httpx.Client, content: bytes, registered) -> None:
    a_id, b_id = registered[0]["id"], registered[1]["id"]
    a = ok_image(stylize(client, content, style_id=a_id, max_side=SIDE))
    b = ok_image(stylize(client, content, style_id=b_id, max_side=SIDE))
    response = stylize(client, content, styles=f"{a_id},{b_id}", weights="1,1", max_side=SIDE)
    mix = ok_image(response)
    assert response.headers["x-style-id"] == f"{a_id},{b_id}"
    ab = mean_abs(a, b)
    assert mean_abs(mix, a) < 0.8 * ab and mean_abs(mix, b) < 0.8 * ab, (ab, mean_abs(mix, a), mean_abs(mix, b))
    # Weights move the blend: mostly-a is closer to a than mostly-b is.
    mostly_a = ok_image(stylize(client, content, styles=f"{a_id},{b_id}", weights="0.9,0.1", max_side=SIDE))
    assert mean_abs(mostly_a, a) < mean_abs(mix, a)
    # A one-hot blend is the style itself.
    only_a = ok_image(stylize(client, content, styles=f"{a_id},{b_id}", weights="1,0", max_side=SIDE))
    assert np.abs(only_a - a).max() <= 1 / 255 + 1e-6


def test_blending_presets_lies_between(client: httpx.Client, content: bytes) -> None:
    a = ok_image(stylize(client, content, preset="2", max_side=SIDE))
    b = ok_image(stylize(client, content, preset="9", max_side=SIDE))
    mix = ok_image(stylize(client, content, styles="preset:2,preset:style-09", max_side=SIDE))
    ab = mean_abs(a, b)
    assert mean_abs(mix, a) < 0.8 * ab and mean_abs(mix, b) < 0.8 * ab


def test_preserve_color_keeps_the_content_chroma(
    client: httpx.Client, content: bytes, style_paths, content_at_side
) -> None:
    style = {"style": style_paths[0].read_bytes()}
    kept = ok_image(stylize(client, content, style, preserve_color="true", max_side=SIDE))
    plain = ok_image(stylize(client, content, style, max_side=SIDE))
    chroma = ycbcr(content_at_side)[..., 1:]
    kept_error = float(np.abs(ycbcr(kept)[..., 1:] - chroma).mean())
    plain_error = float(np.abs(ycbcr(plain)[..., 1:] - chroma).mean())
    assert kept_error < 0.01 < plain_error, (kept_error, plain_error)
    # ... and the luminance is still the stylised one.
    assert np.abs(ycbcr(kept)[..., 0] - ycbcr(plain)[..., 0]).mean() < 0.02


@pytest.mark.parametrize(
    ("size", "max_side", "expected"),
    [
        ((317, 131), None, (317, 131)),
        ((131, 317), None, (131, 317)),
        ((99, 37), None, (99, 37)),
        ((640, 480), 320, (320, 240)),
        ((101, 57), 202, (202, 114)),
        ((9, 301), None, (9, 301)),
    ],
)
def test_output_size(client: httpx.Client, size, max_side, expected) -> None:
    image = encode_image(gradient_image(*size), "PNG")
    data = {"preset": "1"} if max_side is None else {"preset": "1", "max_side": max_side}
    out = ok_image(stylize(client, image, **data))
    assert (out.shape[1], out.shape[0]) == expected


def test_a_large_jpeg_for_a_small_output_decodes_reduced_and_matches_its_full_decode(
    client: httpx.Client, style_paths
) -> None:
    # A JPEG decodes at half scale here (1000x750 keeps twice the 281-pixel output side); a PNG of
    # the same pixels has no DCT scales and decodes in full. The outputs agree in size exactly and
    # in pixels closely: the network's inputs differ by 0.25/255 on average, which it amplifies
    # about tenfold (a wrong scale, crop or turn would be tens of levels).
    jpeg = encode_image(gradient_image(2000, 1500, seed=5), "JPEG", quality=95)
    png = encode_image(Image.open(io.BytesIO(jpeg)).convert("RGB"), "PNG")
    style = {"style": style_paths[0].read_bytes()}
    from_jpeg, from_png = (ok_image(stylize(client, data, style, max_side=375)) for data in (jpeg, png))
    assert from_jpeg.shape == from_png.shape == (281, 375, 3)  # 1500 * 375 / 2000 = 281.25
    assert mean_abs(from_jpeg, from_png) < 4 / 255


def test_odd_size_with_arbitrary_model(client: httpx.Client, style_paths) -> None:
    image = encode_image(gradient_image(203, 97, seed=3), "JPEG", quality=95)
    out = ok_image(stylize(client, image, {"style": style_paths[2].read_bytes()}))
    assert out.shape == (97, 203, 3)


def test_default_size_is_capped(client: httpx.Client) -> None:
    # 8400 px wide is above the default cap of 8192: the output longest side is the cap.
    image = encode_image(Image.new("RGB", (8400, 30), (90, 120, 200)), "PNG")
    out = ok_image(stylize(client, image, preset="0"))
    assert out.shape[1] == 8192 and out.shape[0] == 29


@pytest.mark.parametrize(("fmt", "media"), [("png", "image/png"), ("jpeg", "image/jpeg"), ("webp", "image/webp")])
def test_output_formats(client: httpx.Client, content: bytes, fmt: str, media: str) -> None:
    response = stylize(client, content, preset="4", max_side=128, format=fmt, quality=80)
    assert response.headers["content-type"] == media
    assert Image.open(io.BytesIO(response.content)).format == {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}[fmt]
    low = stylize(client, content, preset="4", max_side=128, format=fmt, quality=5)
    if fmt != "png":
        assert len(low.content) < len(response.content)


def test_get_style_returns_exactly_the_posted_vector(client: httpx.Client, style_paths) -> None:
    posted = client.post("/v1/styles", files={"style": style_paths[2].read_bytes()})
    assert posted.status_code in (200, 201)
    record = posted.json()
    assert len(record["embedding"]) == 100 and record["model"] == "magenta-mobile/1"
    fetched = client.get(f"/v1/styles/{record['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == record
    assert fetched.json()["embedding"] == record["embedding"]
    again = client.post("/v1/styles", files={"style": style_paths[2].read_bytes()})
    assert again.status_code == 200 and again.json() == record


def test_register_new_style_is_201_and_listed(server: LiveServer, client: httpx.Client) -> None:
    image = encode_image(gradient_image(120, 90, seed=42), "PNG")
    predictor = {"model": "magenta-mobile/1", "stage": "predictor"}
    before = metric(server, "atelier_batch_size_count", **predictor)
    first = client.post("/v1/styles", files={"style": image})
    assert first.status_code == 201
    assert metric(server, "atelier_batch_size_count", **predictor) == before + 1  # through the micro-batcher
    assert first.headers["location"] == f"/v1/styles/{first.json()['id']}"
    listing = client.get("/v1/styles", params={"limit": 500}).json()
    assert first.json()["id"] in {item["id"] for item in listing["items"]}
    assert listing["total"] >= 1
    assert {p["name"] for p in listing["presets"]} >= {"style-00", "style-25"}
    page = client.get("/v1/styles", params={"limit": 1, "offset": 0}).json()
    assert len(page["items"]) == 1 and page["limit"] == 1


def test_unknown_style_id_is_404_problem(client: httpx.Client) -> None:
    response = client.get("/v1/styles/" + "0" * 64)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 404 and body["type"].endswith("unknown-style")
    assert body["request_id"] == response.headers["x-request-id"]


def test_models_listing(client: httpx.Client) -> None:
    models = {(m["name"], m["kind"]): m for m in client.get("/v1/models").json()}
    assert models[("magenta-mobile", "arbitrary")]["default"] is True
    assert models[("presets-26", "nstyle")]["presets"] == 26


def test_request_id_is_echoed(client: httpx.Client) -> None:
    response = client.get("/livez", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"


def test_cache_hits_skip_the_predictor(client: httpx.Client, content: bytes) -> None:
    style = encode_image(gradient_image(64, 64, seed=7), "PNG")

    def counter(name: str) -> float:
        text = client.get("/metrics").text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))

    hits, misses = counter("atelier_embedding_cache_hits_total"), counter("atelier_embedding_cache_misses_total")
    predictor_runs = counter("atelier_inference_duration_seconds_count")
    ok_image(stylize(client, content, {"style": style}, max_side=64))
    assert counter("atelier_embedding_cache_misses_total") == misses + 1
    ok_image(stylize(client, content, {"style": style}, max_side=64))
    assert counter("atelier_embedding_cache_hits_total") == hits + 1
    assert counter("atelier_embedding_cache_misses_total") == misses + 1
    # two transformer runs and one predictor run
    assert counter("atelier_inference_duration_seconds_count") == predictor_runs + 3


def test_metrics_exposition(client: httpx.Client) -> None:
    text = client.get("/metrics").text
    for name in (
        "atelier_http_requests_total",
        "atelier_http_request_duration_seconds_bucket",
        "atelier_queue_duration_seconds_bucket",
        "atelier_codec_duration_seconds_bucket",
        "atelier_model_info",
    ):
        assert name in text, name
    assert 'atelier_model_info{kind="arbitrary",model="magenta-mobile",provider=' in text
    assert 'route="/v1/stylize"' in text


def test_server_process_never_loaded_torch(server: LiveServer) -> None:
    maps = Path(f"/proc/{server.process.pid}/maps")
    if not maps.exists():
        pytest.skip("no /proc on this platform")
    assert "libtorch" not in maps.read_text()


def test_api_keys(model_repository: Path, tmp_path: Path, content_path: Path) -> None:
    """With keys on: /v1 needs a bearer key, styles are private to their key, health stays open."""
    live = start_server(model_repository, tmp_path, {"ATELIER_API_KEYS": "key-one, key-two"})
    try:
        with (
            live.client() as anon,
            live.client(headers={"Authorization": "Bearer key-one"}) as one,
            live.client(headers={"Authorization": "Bearer key-two"}) as two,
        ):
            assert anon.get("/readyz").status_code == 200
            assert anon.get("/metrics").status_code == 200
            denied = anon.get("/v1/styles")
            assert denied.status_code == 401 and denied.headers["content-type"] == "application/problem+json"
            assert denied.headers["www-authenticate"].startswith("Bearer")
            wrong = anon.get("/v1/styles", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            assert (
                anon.post("/v1/stylize", files={"content": content_path.read_bytes()}, data={"preset": "1"}).status_code
                == 401
            )
            style = encode_image(gradient_image(80, 80, seed=5), "PNG")
            record = one.post("/v1/styles", files={"style": style}).json()
            assert one.get(f"/v1/styles/{record['id']}").status_code == 200
            assert two.get(f"/v1/styles/{record['id']}").status_code == 404
            assert [i["id"] for i in two.get("/v1/styles").json()["items"]] == []
            assert stylize(two, content_path.read_bytes(), style_id=record["id"], max_side=64).status_code == 404
            assert stylize(one, content_path.read_bytes(), style_id=record["id"], max_side=64).status_code == 200
    finally:
        stop_server(live)
    assert_no_server_errors(live)


def test_registered_styles_survive_a_restart(model_repository: Path, tmp_path: Path) -> None:
    live = start_server(model_repository, tmp_path)
    try:
        with live.client() as c:
            record = c.post("/v1/styles", files={"style": encode_image(gradient_image(70, 50, seed=9), "PNG")}).json()
    finally:
        stop_server(live)
    again = start_server(model_repository, tmp_path)
    try:
        with again.client() as c:
            assert c.get(f"/v1/styles/{record['id']}").json() == record
    finally:
        stop_server(again)


def test_logs_are_json_lines_with_the_request_id(client: httpx.Client, server: LiveServer) -> None:
    response = client.post(
        "/v1/stylize",
        files={"content": encode_image(gradient_image(40, 30), "PNG")},
        data={"preset": "2"},
        headers={"X-Request-ID": "trace-me-42"},
    )
    assert response.status_code == 200 and response.headers["x-request-id"] == "trace-me-42"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [line for line in server.log_lines() if line.get("request_id") == "trace-me-42"]
        if lines:
            break
        time.sleep(0.1)
    assert lines and lines[-1]["route"] == "/v1/stylize" and lines[-1]["status"] == 200
    assert {"ts", "level", "logger", "msg", "duration_ms"} <= set(lines[-1])


def test_overload_answers_429_with_retry_after(model_repository: Path, tmp_path: Path, content_path: Path) -> None:
    """One worker and room for one image: concurrent requests beyond it are refused, not queued forever."""
    live = start_server(model_repository, tmp_path, {"ATELIER_CODEC_THREADS": "1", "ATELIER_MAX_PENDING": "1"})
    content = content_path.read_bytes()

    def one(_: int) -> httpx.Response:
        with live.client() as c:
            return stylize(c, content, preset="1", max_side=1024)

    try:
        with ThreadPoolExecutor(6) as pool:
            responses = list(pool.map(one, range(6)))
    finally:
        stop_server(live)
    statuses = sorted(r.status_code for r in responses)
    assert 200 in statuses and 429 in statuses, statuses
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.headers["retry-after"] == "1" and refused.json()["type"].endswith("overloaded")
    assert_no_server_errors(live)
