"""Property tests (hypothesis) over image sizes, modes and formats: unit level and through the live server."""

from __future__ import annotations

import io

import httpx
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from service import imaging
from tests.helpers.images import decode_rgb

FORMATS = ["PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"]
MODES = ["RGB", "RGBA", "L", "LA", "P", "CMYK", "I;16", "I", "1"]
SAVE_OK = {
    # which modes each format can write directly (others are converted by the test first)
    "PNG": {"RGB", "RGBA", "L", "LA", "P", "I;16", "1"},
    "JPEG": {"RGB", "L", "CMYK"},
    "WEBP": {"RGB", "RGBA"},
    "GIF": {"P", "L", "1"},
    "BMP": {"RGB", "L", "P", "1"},
    "TIFF": {"RGB", "RGBA", "L", "LA", "P", "CMYK", "I;16", "I", "1"},
}


def make_image(width: int, height: int, mode: str, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    image = Image.fromarray(base)
    if mode == "RGBA":
        alpha = Image.fromarray(rng.integers(0, 256, size=(height, width), dtype=np.uint8))
        image = image.convert("RGBA")
        image.putalpha(alpha)
        return image
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, size=(height, width), dtype=np.uint16))
    if mode == "P":
        return image.quantize(16)
    return image.convert(mode)


images = st.tuples(
    st.integers(8, 120), st.integers(8, 120), st.sampled_from(MODES), st.sampled_from(FORMATS), st.integers(0, 10**6)
)


def encoded(width: int, height: int, mode: str, fmt: str, seed: int) -> bytes:
    image = make_image(width, height, mode, seed)
    if mode not in SAVE_OK[fmt]:
        image = image.convert("RGBA" if fmt == "WEBP" and "A" in mode else ("P" if fmt == "GIF" else "RGB"))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@settings(max_examples=40, deadline=None)
@given(images)
def test_decode_any_size_mode_format_gives_rgb(case: tuple[int, int, str, str, int]) -> None:
    width, height, mode, fmt, seed = case
    rgb = imaging.decode(encoded(*case), max_pixels=10**6, min_side=8, what="content")
    assert rgb.dtype == np.uint8 and rgb.shape == (height, width, 3)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 300), st.integers(1, 300), st.sampled_from([4, 8]), st.sampled_from([16, 32]))
def test_pad_then_crop_round_trips(height: int, width: int, multiple: int, min_side: int) -> None:
    tensor = np.random.default_rng(height * 1000 + width).random((1, 3, height, width), dtype=np.float32)
    padded = imaging.pad_for_network(tensor, multiple, min_side)
    assert padded.shape[2] % multiple == 0 and padded.shape[3] % multiple == 0
    assert min(padded.shape[2:]) >= min_side
    assert np.array_equal(imaging.crop(padded, height, width), tensor)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5000), st.integers(1, 5000), st.one_of(st.none(), st.integers(1, 3000)), st.integers(16, 4096))
def test_output_size_keeps_aspect_and_respects_the_cap(width: int, height: int, max_side: int | None, cap: int) -> None:
    out_w, out_h = imaging.output_size(width, height, max_side, cap)
    assert max(out_w, out_h) == min(max_side if max_side is not None else max(width, height), cap)
    if min(out_w, out_h) > 20:
        assert abs(out_w / out_h - width / height) / (width / height) < 0.1


@settings(max_examples=30, deadline=None)
@given(images, st.sampled_from(["png", "jpeg", "webp"]), st.booleans())
def test_live_stylize_any_size_mode_format(
    client: httpx.Client, case: tuple[int, int, str, str, int], out: str, as_style: bool
) -> None:
    """The generated image as content with a preset, or as content and style image with the arbitrary model."""
    width, height, *_ = case
    data = encoded(*case)
    files = {"content": data, "style": data} if as_style else {"content": data}
    form = {"format": out} if as_style else {"preset": str(case[4] % 26), "format": out}
    response = client.post("/v1/stylize", files=files, data=form)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == f"image/{out}"
    assert response.headers["x-model"] == ("magenta-mobile/1" if as_style else "presets-26/1")
    assert decode_rgb(response.content).shape == (height, width, 3)
