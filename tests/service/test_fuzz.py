"""Never a 5xx, whatever a client sends: hypothesis over every field of every route, and a stateful
schemathesis run over the committed schema, both against the live server (issue 22, class 1).

Field values mix the valid, the edge (1e308, 5,000 digits, NaN, negative zero), the wrong type and
arbitrary unicode; images are tiny, so each request is cheap, and ``max_side`` stays small or invalid so
no example upscales to a 2048 output. Every answer must be under 500, and every error a problem body
whose ``request_id`` is the ``X-Request-ID`` header.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from service.openapi_dump import SPEC_PATH
from tests.helpers.server import LiveServer

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
REPO = Path(__file__).resolve().parents[2]


def _image(side: int, seed: int, fmt: str) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


IMAGES = [
    _image(side, seed, fmt) for seed, (side, fmt) in enumerate([(16, "PNG"), (24, "JPEG"), (32, "PNG"), (20, "WEBP")])
]
SETTINGS = settings(
    max_examples=int(os.environ.get("ATELIER_FUZZ_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

numbers = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["1e308", "-1e308", "1e-320", "-0", "0x10", "1_000", "", " ", "9" * 5000, "1" * 129, "½", "٣"]),
)
texts = st.one_of(st.text(max_size=300), numbers, st.sampled_from(["preset:1", "preset:style-03", "a" * 64]))
weights = st.one_of(
    texts, st.lists(numbers, min_size=1, max_size=20).map(",".join), st.just("1e308,1e308"), st.just("5e-324,1")
)
blend = st.one_of(
    texts,
    st.lists(st.one_of(st.integers(-3, 40).map(lambda i: f"preset:{i}"), texts), min_size=1, max_size=20).map(",".join),
)
images = st.one_of(st.sampled_from(IMAGES), st.binary(max_size=200))
small_side = st.one_of(st.integers(1, 48).map(str), numbers)
form_fields = {
    "style_id": texts,
    "preset": st.one_of(st.integers(-2, 30).map(str), texts),
    "styles": blend,
    "weights": weights,
    "strength": numbers,
    "preserve_color": st.one_of(st.sampled_from(["true", "false", "1", "0", "yes"]), texts),
    "max_side": small_side,
    "format": st.one_of(st.sampled_from(["png", "jpeg", "webp", "gif"]), texts),
    "quality": numbers,
    "model": st.one_of(st.sampled_from(["magenta-mobile", "presets-26", "presets-26/1", "magenta-mobile/9"]), texts),
}
headers = st.fixed_dictionaries(
    {},
    optional={
        "X-Request-ID": st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=200),
        "Accept": st.sampled_from(["application/json", "multipart/mixed", "*/*", "text/html", "image/png;q=0"]),
        "Authorization": st.sampled_from(["Bearer x", "Basic abc", "Bearer", "bearer " + "k" * 300]),
    },
)


class Tally:
    requests = 0
    server_errors = 0


def check(response: httpx.Response) -> None:
    Tally.requests += 1
    if response.status_code >= 500:
        Tally.server_errors += 1
    assert response.status_code < 500, (response.status_code, response.text[:500])
    assert "x-request-id" in response.headers
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json", response.text[:200]
        assert response.json()["request_id"] == response.headers["x-request-id"]


def latin1(values: dict[str, str]) -> dict[str, str]:
    """Header values httpx can send (RFC 9110 field values are octets; hypothesis text is unicode)."""
    return {k: v for k, v in values.items() if v.isascii() and v and v == v.strip() and "\r" not in v and "\n" not in v}


@SETTINGS
@given(
    fields=st.fixed_dictionaries({}, optional=form_fields),
    content=st.one_of(images, st.none()),
    style=st.one_of(images, st.none()),
    extra=headers,
)
@example(fields={"styles": "preset:1,preset:2", "weights": "1e308,1e308"}, content=IMAGES[0], style=None, extra={})
@example(fields={"preset": "9" * 5000}, content=IMAGES[1], style=None, extra={})
def test_stylize_never_5xx(
    client: httpx.Client, fields: dict[str, str], content: bytes | None, style: bytes | None, extra: dict[str, str]
) -> None:
    files = {name: data for name, data in (("content", content), ("style", style)) if data is not None}
    check(client.post("/v1/stylize", files=files or {"x": b"x"}, data=fields, headers=latin1(extra)))


@SETTINGS
@given(
    fields=st.fixed_dictionaries(
        {},
        optional={
            **form_fields,
            "style_id": st.lists(texts, min_size=1, max_size=4),
            "preset": st.lists(st.one_of(st.integers(-2, 30).map(str), texts), min_size=1, max_size=4),
        },
    ),
    contents=st.lists(images, min_size=0, max_size=4),
    styles=st.lists(images, max_size=4),
    extra=headers,
)
@example(fields={"preset": ["1", "9" * 5000]}, contents=IMAGES[:2], styles=[], extra={})
@example(fields={"styles": "preset:1,preset:2", "weights": "1e308,1e308"}, contents=IMAGES[:1], styles=[], extra={})
def test_batch_never_5xx(
    client: httpx.Client, fields: dict, contents: list[bytes], styles: list[bytes], extra: dict[str, str]
) -> None:
    files = [("content", (f"{i}.png", data)) for i, data in enumerate(contents)]
    files += [("style", (f"s{i}.png", data)) for i, data in enumerate(styles)]
    check(client.post("/v1/stylize/batch", files=files or [("x", ("x", b"x"))], data=fields, headers=latin1(extra)))


@SETTINGS
@given(style=st.one_of(images, st.none()), model=st.one_of(form_fields["model"], st.none()), extra=headers)
def test_register_style_never_5xx(
    client: httpx.Client, style: bytes | None, model: str | None, extra: dict[str, str]
) -> None:
    files = {"style": style} if style is not None else {"x": b"x"}
    check(
        client.post(
            "/v1/styles", files=files, data={"model": model} if model is not None else {}, headers=latin1(extra)
        )
    )


@SETTINGS
@given(
    path=st.one_of(
        st.builds(lambda s: "/v1/styles/" + quote(s, safe=""), texts),
        st.builds(
            lambda s: f"/v1/presets/{quote(s, safe='')}/thumbnail", st.one_of(texts, st.integers(-3, 30).map(str))
        ),
        st.sampled_from(["/v1/models", "/livez", "/readyz", "/metrics", "/", "/v1/styles"]),
    ),
    query=st.dictionaries(st.sampled_from(["offset", "limit", "size", "x"]), numbers, max_size=3),
    extra=headers,
)
def test_gets_never_5xx(client: httpx.Client, path: str, query: dict[str, str], extra: dict[str, str]) -> None:
    check(client.get(path, params=query, headers=latin1(extra)))


def test_fuzz_tally_has_no_server_error() -> None:
    """Printed for the report: how many requests the properties above sent, and how many got a 5xx."""
    print(f"\nfuzz: {Tally.requests} requests, {Tally.server_errors} with a 5xx")
    assert Tally.server_errors == 0


@pytest.mark.slow
def test_schemathesis_stateful_finds_no_server_error(server: LiveServer, tmp_path: Path) -> None:
    """Schemathesis's stateful phase over the committed schema, bounded in time. It walks the schema's
    links (POST /v1/styles -> GET /v1/styles/{style_id}) when a registration succeeds; for OpenAPI 3.1
    file fields it draws real small images as well as random bytes (``schemathesis_hooks``), so
    registrations succeed and their links are followed; every answer must be under 500."""
    max_time = os.environ.get("ATELIER_FUZZ_SECONDS", "40")
    result = subprocess.run(
        [
            str(SCHEMATHESIS),
            "run",
            str(SPEC_PATH),
            "--url",
            server.url,
            "--phases",
            "examples,stateful",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "10",
            "--max-time",
            max_time,
            "--seed",
            "20261201",
            "--generation-database",
            "none",
            "--workers",
            "1",
            "--no-color",
            "--request-timeout",
            "60",
        ],
        cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.service.schemathesis_hooks", "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=int(max_time) + 180,
    )
    tail = result.stdout[-4000:] + result.stderr[-2000:]
    assert result.returncode == 0, tail
    assert "Stateful" in result.stdout, tail
    print(tail)
