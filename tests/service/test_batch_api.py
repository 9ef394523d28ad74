"""POST /v1/stylize/batch, the bounded queue (429), deadlines (504) and disconnected clients, end to end."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.helpers.images import decode_rgb, encode_image, gradient_image
from tests.helpers.metrics import metric
from tests.helpers.server import LiveServer, assert_no_server_errors, start_server, stop_server


def parse_multipart(response: httpx.Response) -> list[tuple[dict[str, str], bytes]]:
    """A multipart/mixed body -> [(lower-cased headers, body)], in order."""
    match = re.search(r"boundary=([^;\s]+)", response.headers["content-type"])
    assert response.headers["content-type"].startswith("multipart/mixed") and match
    delimiter = b"--" + match.group(1).encode()
    chunks = response.content.split(delimiter)
    assert chunks[0] == b"" and chunks[-1] == b"--\r\n"
    parts = []
    for chunk in chunks[1:-1]:
        head, _, body = chunk[2:].partition(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
        parts.append(({k.lower(): v for k, v in headers.items()}, body[:-2]))
    return parts


def batch(client: httpx.Client, files: list[tuple[str, bytes]], **data: object) -> httpx.Response:
    form = {k: [str(x) for x in v] if isinstance(v, list) else str(v) for k, v in data.items()}
    named = [(name, (f"{i}.bin", body)) for i, (name, body) in enumerate(files)]
    return client.post("/v1/stylize/batch", files=named, data=form)


@pytest.fixture(scope="module")
def photos() -> list[bytes]:
    sizes = [(64, 48), (40, 64), (64, 64)]
    return [encode_image(gradient_image(w, h, seed), "PNG") for seed, (w, h) in enumerate(sizes)]


def test_batch_one_style_for_many_images_matches_single_requests(
    client: httpx.Client, photos: list[bytes], style_paths: list[Path]
) -> None:
    style = style_paths[0].read_bytes()
    response = batch(client, [("content", p) for p in photos] + [("style", style)], format="png")
    assert response.status_code == 200, response.text
    assert response.headers["x-items"] == "3" and response.headers["x-items-failed"] == "0"
    parts = parse_multipart(response)
    assert [h["x-item-index"] for h, _ in parts] == ["0", "1", "2"]
    for photo, (headers, body) in zip(photos, parts, strict=True):
        assert headers["content-type"] == "image/png" and headers["x-status"] == "200"
        single = client.post("/v1/stylize", files={"content": photo, "style": style})
        assert single.status_code == 200 and headers["x-style-id"] == single.headers["x-style-id"]
        assert np.abs(decode_rgb(body) - decode_rgb(single.content)).max() <= 1 / 255 + 1e-6


def test_batch_pairs_report_a_failed_item_and_keep_the_others(
    client: httpx.Client, photos: list[bytes], style_paths: list[Path]
) -> None:
    contents = [("content", photos[0]), ("content", b"not an image"), ("content", photos[2])]
    styles = [("style", path.read_bytes()) for path in style_paths]
    response = batch(client, contents + styles, format="jpeg")
    assert response.status_code == 200 and response.headers["x-items-failed"] == "1"
    parts = parse_multipart(response)
    assert [h["x-status"] for h, _ in parts] == ["200", "415", "200"]
    assert parts[0][0]["content-type"] == "image/jpeg" and parts[0][1][:2] == b"\xff\xd8"
    assert parts[0][0]["x-style-id"] != parts[2][0]["x-style-id"]  # each item its own style
    problem = httpx.Response(200, content=parts[1][1]).json()
    assert parts[1][0]["content-type"] == "application/problem+json"
    assert problem["status"] == 415 and problem["type"].endswith("unsupported-image")
    assert problem["instance"] == "/v1/stylize/batch#1"


def test_batch_json_alternative_with_per_item_presets(client: httpx.Client, photos: list[bytes]) -> None:
    response = client.post(
        "/v1/stylize/batch",
        files=[("content", ("a.png", photos[0])), ("content", ("b.png", photos[1]))],
        data={"preset": ["3", "no-such-preset"]},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    first, second = response.json()["items"]
    assert first["status"] == 200 and first["style_id"] == "preset:style-03"
    assert decode_rgb(base64.b64decode(first["data"])).shape == (48, 64, 3)
    assert second["status"] == 404 and second["problem"]["type"].endswith("unknown-preset")


def test_batch_request_level_errors(client: httpx.Client, photos: list[bytes], style_paths: list[Path]) -> None:
    style = style_paths[0].read_bytes()
    two_styles = batch(client, [("content", photos[0])] * 3 + [("style", style)] * 2)
    assert two_styles.status_code == 400 and "one per image" in two_styles.json()["detail"]
    no_style = batch(client, [("content", photos[0])])
    assert no_style.status_code == 400
    unknown = batch(client, [("content", photos[0])] * 2, style_id="0123456789abcdef")
    assert unknown.status_code == 404 and unknown.json()["type"].endswith("unknown-style")
    too_many = batch(client, [("content", photos[0])] * 33, preset="1")
    assert too_many.status_code == 413


@pytest.fixture(scope="module")
def small_queue(model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(model_repository, tmp_path_factory.mktemp("burst"), {"ATELIER_MAX_PENDING": "4"})
    yield live
    stop_server(live)


def test_burst_over_the_queue_gets_429_and_correct_images(small_queue: LiveServer, photos: list[bytes]) -> None:
    with small_queue.client() as c:
        reference = decode_rgb(c.post("/v1/stylize", files={"content": photos[2]}, data={"preset": "5"}).content)

    def one(_: int) -> httpx.Response:
        with small_queue.client() as c:
            return c.post("/v1/stylize", files={"content": photos[2]}, data={"preset": "5"})

    with ThreadPoolExecutor(24) as pool:
        responses = list(pool.map(one, range(48)))
    statuses = [r.status_code for r in responses]
    assert set(statuses) == {200, 429}, statuses
    for response in responses:
        if response.status_code == 429:
            assert response.headers["retry-after"] == "1" and response.json()["type"].endswith("overloaded")
        else:
            assert np.abs(decode_rgb(response.content) - reference).max() <= 1 / 255 + 1e-6
    # Concurrent requests of one padded shape shared ONNX Runtime runs.
    labels = {"model": "presets-26/1", "stage": "transformer"}
    runs = metric(small_queue, "atelier_batch_size_count", **labels)
    assert metric(small_queue, "atelier_batch_size_sum", **labels) > runs
    assert httpx.get(small_queue.url + "/readyz").status_code == 200
    assert_no_server_errors(small_queue)


def test_deadline_is_504_and_a_disconnected_client_leaves_no_work(
    model_repository: Path, tmp_path: Path, photos: list[bytes]
) -> None:
    env = {"ATELIER_REQUEST_TIMEOUT_S": "0.5", "ATELIER_MAX_BATCH_SIZE": "1"}
    live = start_server(model_repository, tmp_path, env)
    labels = {"model": "presets-26/1", "stage": "transformer"}
    try:
        before = metric(live, "atelier_batch_size_count", **labels)

        # A 2048x2048 network run takes seconds on a CPU; stroke_scale 1 keeps the network at the output size
        # (the default brush at 2048 would run it at 512).
        def slow(_: int) -> httpx.Response:
            with live.client() as c:
                form = {"preset": "1", "max_side": "2048", "stroke_scale": "1"}
                return c.post("/v1/stylize", files={"content": photos[2]}, data=form)

        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(slow, 0)
            time.sleep(0.1)
            # A second image of another size waits for the busy inference thread; its client gives up.
            with pytest.raises(httpx.ReadTimeout), httpx.Client(base_url=live.url, timeout=0.25) as c:
                form = {"preset": "1", "max_side": "1536", "stroke_scale": "1"}
                c.post("/v1/stylize", files={"content": photos[0]}, data=form)
            late = running.result()
        assert late.status_code == 504 and late.headers["content-type"] == "application/problem+json"
        assert late.json()["type"].endswith("deadline-exceeded") and late.json()["status"] == 504
        deadline = time.monotonic() + 30
        while metric(live, "atelier_batch_size_count", **labels) < before + 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)
        assert metric(live, "atelier_batch_size_count", **labels) == before + 1  # the abandoned one never ran
        assert metric(live, "atelier_rejected_total", reason="client-disconnected") == 1
        assert httpx.get(live.url + "/readyz").status_code == 200
    finally:
        stop_server(live)
    assert_no_server_errors(live, expected=[(504, "/v1/stylize")])
