"""Brush size (stroke_scale) and tiled inference, end to end: real server, real ONNX Runtime sessions."""

from __future__ import annotations

import asyncio
import io
import math
import re
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from service import brush, tiling, upsampling
from service.config import Settings
from service.services import build_services
from service.style_resolution import StyleSpec
from service.stylist import StylizeOptions
from tests.helpers.images import decode_rgb, encode_image
from tests.helpers.seams import seam_ratio
from tests.helpers.server import LiveServer
from tests.service.test_bad_inputs import png_header_only

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs" / "brush.md"


@pytest.fixture(scope="module")
def photo(image_dir: Path) -> bytes:
    with Image.open(image_dir / "content" / "golden_gate_sq.jpg") as image:
        return encode_image(image.convert("RGB").resize((512, 512), Image.Resampling.LANCZOS), "PNG")


@pytest.fixture(scope="module")
def starry(image_dir: Path) -> bytes:
    return (image_dir / "style" / "starry_night.jpg").read_bytes()


def stylize(server: LiveServer, content: bytes, style: bytes, **fields: str) -> httpx.Response:
    return httpx.post(server.url + "/v1/stylize", files={"content": content, "style": style}, data=fields, timeout=120)


def stroke_width(rgb: np.ndarray, longest: int = 128) -> int:
    """Autocorrelation width of the luminance: the least lag (pixels, mean of the two axes' curves) at which
    its normalised autocorrelation falls under one half; ``longest`` if it never does."""
    y = rgb @ np.array([0.299, 0.587, 0.114])
    spectrum = np.fft.fft2(y - y.mean())
    correlation = np.real(np.fft.ifft2(np.abs(spectrum) ** 2))
    correlation /= correlation[0, 0]
    curve = (correlation[0, :longest] + correlation[:longest, 0]) / 2
    below = np.flatnonzero(curve < 0.5)
    return int(below[0]) if below.size else longest


def test_stroke_scale_makes_the_strokes_bigger(server: LiveServer, photo: bytes, starry: bytes) -> None:
    widths = {}
    for scale in ("1", "2", "4"):
        response = stylize(server, photo, starry, stroke_scale=scale, max_side="512")
        assert response.status_code == 200, response.text
        assert response.headers["X-Stroke-Scale"] == scale
        widths[scale] = stroke_width(decode_rgb(response.content))
    # Measured on this pair: 6, 13 and 21 pixels.
    assert widths["2"] >= 1.5 * widths["1"], widths
    assert widths["4"] >= 1.3 * widths["2"], widths


def documented_defaults() -> dict[int, float]:
    """The rows of docs/brush.md's table of default stroke scales: output long side -> scale."""
    rows = re.findall(r"^\| (\d+) \| ([0-9.]+) \|", DOCS.read_text(), re.MULTILINE)
    assert len(rows) >= 3, "docs/brush.md has no table of default stroke scales"
    return {int(side): float(scale) for side, scale in rows}


def test_the_default_stroke_scale_is_the_documented_one(server: LiveServer, photo: bytes, starry: bytes) -> None:
    documented = documented_defaults()
    brush_side = Settings().brush_side
    for side, scale in documented.items():
        assert brush.default_stroke_scale(side, brush_side) == scale, side
    for side in (256, 1024):
        response = stylize(server, photo, starry, max_side=str(side), format="jpeg")
        assert response.status_code == 200, response.text
        assert float(response.headers["X-Stroke-Scale"]) == documented[side]
        assert Image.open(io.BytesIO(response.content)).size == (side, side)


@pytest.mark.parametrize("value", ["0.1", "9", "nan", "inf", "-1", "big"])
def test_stroke_scale_out_of_range_is_a_422_problem(
    server: LiveServer, photo: bytes, starry: bytes, value: str
) -> None:
    response = stylize(server, photo, starry, stroke_scale=value)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "stroke_scale" in response.text


def test_work_over_the_caps_is_refused_before_decoding(server: LiveServer, starry: bytes, photo: bytes) -> None:
    # Headers claiming big images over a few kB of data.
    at_limit = png_header_only(6000, 6000)  # 36 MP: the input pixel limit itself is not crossed
    response = stylize(server, at_limit, starry, max_side="8192", stroke_scale="0.5")
    assert response.status_code == 422 and "stroke_scale 0.5" in response.json()["detail"], response.text
    response = stylize(server, at_limit, starry, max_side="16384")
    assert response.status_code == 422 and "max_side" in response.json()["detail"]
    response = stylize(server, png_header_only(20000, 20000), starry)
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/problem+json")
    # The same image within the caps is decoded (its few rows of data, the rest filled) and served:
    # the refusals above came from the header, before any pixel was decoded.
    assert stylize(server, at_limit, starry, max_side="64").status_code == 200
    assert httpx.get(server.url + "/livez").status_code == 200
    assert stylize(server, photo, starry, max_side="128").status_code == 200


def test_batch_route_takes_the_stroke_scale(server: LiveServer, photo: bytes, starry: bytes) -> None:
    response = httpx.post(
        server.url + "/v1/stylize/batch",
        files=[("content", photo), ("content", photo), ("style", starry)],
        data={"stroke_scale": "3", "max_side": "256", "format": "jpeg"},
        headers={"Accept": "application/json"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    assert [item["stroke_scale"] for item in response.json()["items"]] == [3.0, 3.0]


# ---- tiling, in-process through the real Stylist and ONNX Runtime sessions ----


def run_stylist(settings: Settings, content: bytes, style: bytes, side: int) -> np.ndarray:
    async def go() -> bytes:
        services = await build_services(settings)
        try:
            model = services.registry.get(None)
            options = StylizeOptions(max_side=side, format="png", stroke_scale=1.0)
            return (await services.stylist.run(options.job(model, content, StyleSpec("", image=style)))).image
        finally:
            await services.close()

    return decode_rgb(asyncio.run(go())).astype(np.float64)


@pytest.fixture(scope="module")
def tiling_case(model_repository: Path, tmp_path_factory: pytest.TempPathFactory, image_dir: Path) -> dict:
    # A photo whose own gradients are spread evenly (the untiled output scores 1.03 on these bands;
    # tubingen's scores 1.25 whatever the tiling, from its content alone).
    content = (image_dir / "content" / "golden_gate_sq.jpg").read_bytes()
    style = (image_dir / "style" / "starry_night.jpg").read_bytes()
    work = tmp_path_factory.mktemp("tiling")
    base = {"model_dir": model_repository, "redis_url": None, "style_dir": work / "styles"}
    side = 384
    whole = run_stylist(Settings(**base, tile_side=4096), content, style, side)
    tiled = run_stylist(Settings(**base, tile_side=128, tile_overlap=32), content, style, side)
    thumb = run_stylist(Settings(**base, tile_side=128, tile_overlap=32, statistics_side=288), content, style, side)
    h, w = whole.shape[:2]
    return {"whole": whole, "tiled": tiled, "thumb": thumb, "plan": tiling.TilePlan.for_size(h, w, 128, 32, 4)}


def test_tiles_run_on_the_arena_session(model_repository: Path, tmp_path: Path) -> None:
    """On a CPU every tile of an 8192 output fits under ``arena_max_pixels``, so tiles run on the session
    with ONNX Runtime's arena (the per-pixel rate of a 1024 request) rather than the slower arena-free one."""

    async def tile_sides(**settings: object) -> tuple[int, int]:
        services = await build_services(Settings(model_dir=model_repository, redis_url=None, **settings))
        try:
            model = services.registry.get(None)
            return services.stylist._tile(model), model.given_statistics_form.large_pixels
        finally:
            await services.close()

    tile, arena_pixels = asyncio.run(tile_sides(style_dir=tmp_path / "a"))
    assert arena_pixels == Settings().arena_max_pixels > 0
    plan = tiling.TilePlan.for_size(8192, 8192, tile, Settings().tile_overlap, 4)
    padded = [-(-(s.stop - s.start) // 4) * 4 for s in plan.rows]
    assert max(padded) ** 2 <= arena_pixels and plan.count > 1
    # Without an arena bound the tiles are as large as ATELIER_TILE_SIDE allows.
    tile, _ = asyncio.run(tile_sides(style_dir=tmp_path / "b", arena_max_pixels=0))
    assert tile == Settings().tile_side


def test_tiles_agree_with_the_whole_image(tiling_case: dict) -> None:
    plan = tiling_case["plan"]
    assert plan.count >= 9  # really tiled
    assert np.abs(tiling_case["tiled"] - tiling_case["whole"]).mean() <= 2 / 255
    # Statistics from a thumbnail at 3/4 of the size (URST): close, not equal (measured 5.0/255).
    assert np.abs(tiling_case["thumb"] - tiling_case["whole"]).mean() <= 8 / 255


def test_tiles_show_no_seams(tiling_case: dict) -> None:
    plan = tiling_case["plan"]
    baseline = seam_ratio(tiling_case["whole"], plan)  # the photo's own gradients on those bands
    for name in ("tiled", "thumb"):
        ratio = seam_ratio(tiling_case[name], plan)
        assert ratio <= 1.1 and ratio <= baseline + 0.03, (name, ratio, baseline)
    # The metric sees a seam where there is one: a brightness step at every hand-over.
    assert seam_ratio(hard_seams(tiling_case["whole"], plan), plan) > 1.1


def hard_seams(image: np.ndarray, plan: tiling.TilePlan) -> np.ndarray:
    """The image plus a 0.1 step in the middle of every blend between tiles, alternating per tile."""
    out = image.copy()
    for axis, spans in ((0, plan.rows), (1, plan.columns)):
        middles = []
        for i in range(len(spans) - 1):
            fading = np.flatnonzero((tiling.weights(spans, i) > 0) & (tiling.weights(spans, i) < 1)) + spans[i].start
            middles.append((fading[0] + fading[-1]) // 2 + 1)
        cuts = [0, *middles, image.shape[axis]]
        for k, (lo, hi) in enumerate(zip(cuts, cuts[1:], strict=False)):
            index = [slice(None)] * 3
            index[axis] = slice(lo, hi)
            out[tuple(index)] += 0.1 * (k % 2)
    return out


# ---- units ----


def test_tile_weights_are_a_partition_of_unity() -> None:
    for length, tile, overlap in ((1000, 256, 64), (8192, 1536, 64), (129, 128, 32), (4096, 1536, 64)):
        spans = tiling.spans(length, tile, overlap, 4)
        total = np.zeros(length)
        for i, span in enumerate(spans):
            assert span.start % 4 == 0  # on the network's grid
            assert span.stop - span.start <= tile
            total[span.start : span.stop] += tiling.weights(spans, i)
        np.testing.assert_allclose(total, 1.0, atol=1e-6)
        assert all(a.stop - b.start >= overlap for a, b in zip(spans, spans[1:], strict=False))


def test_guided_upsampling_keeps_the_photos_edges_and_the_strokes() -> None:
    rng = np.random.default_rng(0)
    photo = np.zeros((256, 256, 3), np.uint8)
    photo[:, 128:] = 220  # one sharp vertical edge
    low_photo = np.asarray(Image.fromarray(photo).resize((64, 64), Image.Resampling.LANCZOS))
    strokes = rng.random((64, 64, 1)).astype(np.float32) * 0.2
    stylised = np.clip(low_photo.astype(np.float32) / 255 * 0.8 + strokes, 0, 1)  # follows the photo + texture
    guided = upsampling.guided_upsample(stylised, low_photo, photo)
    stylised_u8 = np.clip(stylised * 255 + 0.5, 0, 255).astype(np.uint8)
    plain = np.asarray(Image.fromarray(stylised_u8).resize((256, 256), Image.Resampling.LANCZOS)) / 255.0
    step = lambda img: np.abs(img[:, 128].mean() - img[:, 127].mean())  # noqa: E731
    assert step(guided) > 2 * step(plain)  # the edge is sharp again
    # Away from the edge the strokes are the plain (Lanczos) upsample's: texture kept, not smoothed away.
    away = (slice(None), slice(16, 96))
    assert np.abs(guided[away] - plain[away]).mean() < 0.01
    assert guided[away].std() > 0.8 * plain[away].std()
    # uint8 input (the tiled path's) is the same upsampling.
    np.testing.assert_allclose(upsampling.guided_upsample(stylised_u8, low_photo, photo), guided, atol=2 / 255)


def test_box_mean_is_the_window_mean() -> None:
    x = np.random.default_rng(1).random((9, 11, 2))
    out = upsampling.box_mean(x, 2)
    for i, j in ((0, 0), (4, 5), (8, 10), (2, 9)):
        window = x[max(0, i - 2) : i + 3, max(0, j - 2) : j + 3]
        np.testing.assert_allclose(out[i, j], window.mean(axis=(0, 1)), rtol=1e-5)


def test_guided_filter_slope_is_the_textbook_one() -> None:
    # He et al.'s a = cov(I, p) / (var(I) + eps) over each clipped 5x5 window, then averaged over the
    # windows covering each pixel, computed the slow way in float64: the float32 shifted sums agree.
    rng = np.random.default_rng(2)
    guide = rng.random((13, 17)).astype(np.float32)
    stylised = np.clip(guide[..., None] * 0.7 + rng.random((13, 17, 3)) * 0.3, 0, 1).astype(np.float32)

    def window(x: np.ndarray, i: int, j: int) -> np.ndarray:
        return x[max(0, i - 2) : i + 3, max(0, j - 2) : j + 3]

    g, p = guide.astype(np.float64), stylised.astype(np.float64)
    a = np.empty_like(p)
    for i, j in np.ndindex(*g.shape):
        gw, pw = window(g, i, j), window(p, i, j).reshape(-1, 3)
        cov = (gw.reshape(-1, 1) * pw).mean(0) - gw.mean() * pw.mean(0)
        a[i, j] = cov / (gw.var() + upsampling.EPS)
    expected = np.stack([[window(a, i, j).reshape(-1, 3).mean(0) for j in range(17)] for i in range(13)])
    np.testing.assert_allclose(upsampling.coefficients(guide, stylised), expected, atol=2e-5)


def test_bilinear_rows_of_channels_are_those_of_each_plane() -> None:
    image = np.random.default_rng(3).random((6, 9, 3)).astype(np.float32)
    rows = slice(4, 11)
    whole = upsampling.bilinear_rows(image, 15, 20, rows)
    for c in range(3):
        np.testing.assert_array_equal(whole[:, :, c], upsampling.bilinear_rows(image[:, :, c], 15, 20, rows))
    corner = upsampling.bilinear_rows(image, 15, 20, slice(0, 15))
    assert corner[0, 0, 0] == image[0, 0, 0] and corner[-1, -1, 2] == image[-1, -1, 2]  # edge-clamped


def test_default_stroke_scale_grows_with_the_output() -> None:
    scales = [brush.default_stroke_scale(side, 512) for side in (256, 512, 1024, 2048, 8192)]
    assert scales == sorted(scales) and scales[0] == 1.0 and scales[-1] <= brush.MAX_STROKE_SCALE
    assert brush.network_size(2048, 1536, 4.0) == (512, 384)
    assert math.isclose(brush.default_stroke_scale(1536, 512), 3.0)
