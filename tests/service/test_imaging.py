"""Unit tests of service.imaging: decoding rules, geometry, colour and encoding."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from service import imaging
from service.errors import ContentTooLarge, InvalidField, UnsupportedImage
from tests.helpers.images import encode_image, gradient_image


def decode(data: bytes, max_pixels: int = 10**7, min_side: int = 8) -> np.ndarray:
    return imaging.decode(data, max_pixels=max_pixels, min_side=min_side, what="content")


def test_exif_orientation_is_applied() -> None:
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 10, 20))  # blue strip on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    data = encode_image(image, "JPEG", exif=exif, quality=95)
    rgb = decode(data)
    assert rgb.shape == (40, 20, 3)
    assert rgb[2, 10, 2] > 200 and rgb[-3, 10, 0] > 200, "the blue strip should be on top after rotation"


def reduced(data: bytes, short_side: int, max_pixels: int = 10**7) -> imaging.Decoded:
    return imaging.decode_for_shrinking(
        data, max_pixels=max_pixels, min_side=8, what="style", short_side=lambda width, height: short_side
    )


def test_a_jpeg_decodes_at_the_smallest_dct_scale_that_keeps_the_short_side_asked_for() -> None:
    image = gradient_image(2000, 1200)
    jpeg = encode_image(image, "JPEG", quality=95)
    pixels, size = reduced(jpeg, 256)  # 1/4 keeps 300 >= 256; 1/8 would give 150
    assert pixels.shape == (300, 500, 3) and size == (2000, 1200)
    # the DCT-scaled decode is a fair downscale: close to the full decode shrunk to the same size
    shrunk = np.asarray(Image.fromarray(decode(jpeg)).resize((500, 300), Image.Resampling.BOX), np.float32)
    assert np.abs(pixels.astype(np.float32) - shrunk).mean() < 2.0
    # exactly the size asked for is kept at full scale; formats without DCT scales ignore it
    assert reduced(jpeg, 1200)[0].shape == (1200, 2000, 3)
    assert reduced(encode_image(image, "PNG"), 256)[0].shape == (1200, 2000, 3)
    with pytest.raises(ContentTooLarge):  # the limits are the full image's
        reduced(jpeg, 256, max_pixels=2000 * 1200 - 1)


def test_a_reduced_jpeg_is_still_turned_by_its_exif_orientation() -> None:
    image = Image.new("RGB", (1600, 800), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 400, 800))  # blue quarter on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    asked = []

    def short_side(width: int, height: int) -> int:
        asked.append((width, height))
        return 200

    data = encode_image(image, "JPEG", exif=exif, quality=95)
    decoded = imaging.decode_for_shrinking(data, max_pixels=10**7, min_side=8, what="content", short_side=short_side)
    pixels, size = decoded.pixels, decoded.full_size
    assert asked == [(800, 1600)] and size == (800, 1600)  # the upright full size, asked and returned
    assert pixels.shape == (400, 200, 3)  # 1/4 of it
    assert pixels[20, 100, 2] > 200 and pixels[-20, 100, 0] > 200, "the blue quarter should be on top"


def test_predictor_inputs_from_a_reduced_decode_match_the_full_image_shrunk() -> None:
    jpeg = encode_image(gradient_image(2000, 1200), "JPEG", quality=95)
    full = decode(jpeg)  # the 1/8 decode (250x150) keeps twice the 64-pixel input
    expected_style = imaging.style_input(full, 64)
    expected_identity = imaging.to_tensor(imaging.resize(full, (64, 64), imaging.STYLE_RESAMPLE))
    style = imaging.style_tensor(jpeg, 64, max_pixels=10**7, min_side=8)
    identity = imaging.identity_tensor(jpeg, 64, max_pixels=10**7, min_side=8)
    assert style.shape == identity.shape == (1, 3, 64, 64)
    assert np.abs(style - expected_style).mean() < 1 / 255
    assert np.abs(identity - expected_identity).mean() < 1 / 255
    assert np.abs(style - identity).mean() > 10 / 255  # the centre square, not the whole picture


def test_rgba_is_composited_on_white() -> None:
    image = Image.new("RGBA", (16, 16), (255, 0, 0, 0))
    image.paste((0, 0, 0, 255), (0, 0, 8, 16))
    rgb = decode(encode_image(image, "PNG"))
    assert (rgb[:, 12] == 255).all(), "transparent pixels become white"
    assert (rgb[:, 2] == 0).all()


def test_palette_with_transparency_and_gif_first_frame() -> None:
    frames = [Image.new("P", (20, 10), i) for i in (1, 2)]
    for frame, colour in zip(frames, [(10, 200, 30), (200, 10, 10)], strict=True):
        frame.putpalette(list(colour) * 256)
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    rgb = decode(buffer.getvalue())
    assert rgb.shape == (10, 20, 3) and tuple(rgb[5, 5]) == (10, 200, 30)


def test_cmyk_and_16_bit_become_rgb() -> None:
    cmyk = decode(encode_image(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=100))
    assert cmyk[8, 8, 0] > 200 and cmyk[8, 8, 1] < 60  # red
    grey16 = Image.fromarray(np.full((16, 16), 65535 // 2, dtype=np.uint16))
    rgb = decode(encode_image(grey16, "PNG"))
    assert np.all(np.abs(rgb.astype(int) - 128) <= 1)


def test_limits_are_checked_before_decoding() -> None:
    data = encode_image(Image.new("RGB", (300, 300)), "PNG")
    with pytest.raises(ContentTooLarge):
        decode(data, max_pixels=300 * 300 - 1)
    with pytest.raises(InvalidField):
        decode(encode_image(Image.new("RGB", (7, 300)), "PNG"))
    with pytest.raises(UnsupportedImage):
        decode(b"")
    with pytest.raises(UnsupportedImage):
        decode(b"<svg></svg>")
    with pytest.raises(UnsupportedImage):
        decode(encode_image(Image.new("RGB", (64, 64)), "PPM"))  # readable by Pillow, not accepted


def test_output_size() -> None:
    assert imaging.output_size(640, 480, None, 2048) == (640, 480)
    assert imaging.output_size(4000, 3000, None, 2048) == (2048, 1536)
    assert imaging.output_size(640, 480, 320, 2048) == (320, 240)
    assert imaging.output_size(640, 480, 1280, 2048) == (1280, 960)
    assert imaging.output_size(1000, 3, 100, 2048) == (100, 1)


def test_pad_reflects_and_handles_one_pixel_sides() -> None:
    tensor = np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3)
    padded = imaging.pad_for_network(tensor, 4, 4)
    assert padded.shape == (1, 1, 4, 4)
    assert padded[0, 0, 0, 3] == tensor[0, 0, 0, 1]  # reflection, not edge repeat
    thin = imaging.pad_for_network(np.ones((1, 3, 1, 5), np.float32), 4, 16)
    assert thin.shape == (1, 3, 16, 16) and np.all(thin == 1)


def test_preserve_color_keeps_chroma_and_takes_luminance() -> None:
    content = np.asarray(gradient_image(32, 24), np.float32) / 255
    stylized = np.random.default_rng(0).random((24, 32, 3), dtype=np.float32)
    out = imaging.preserve_color(stylized, content)
    ycc_out, ycc_content, ycc_styl = (imaging.rgb_to_ycbcr(x) for x in (out, content, stylized))
    unclipped = (out > 0.001).all(axis=2) & (out < 0.999).all(axis=2)
    assert unclipped.mean() > 0.5
    assert np.abs(ycc_out[unclipped][:, 1:] - ycc_content[unclipped][:, 1:]).max() < 1e-4
    assert np.abs(ycc_out[unclipped][:, 0] - ycc_styl[unclipped][:, 0]).max() < 1e-4


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_encode_round_trip(fmt: str) -> None:
    image = np.asarray(gradient_image(33, 17), np.uint8)
    data = imaging.encode(image, fmt, 95)
    back = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.float32)
    assert back.shape == image.shape
    assert np.abs(back - image).mean() < (0.01 if fmt == "png" else 6)


def test_style_input_is_a_centre_square_at_style_size() -> None:
    image = np.zeros((100, 300, 3), np.uint8)
    image[:, 100:200] = 255  # the centre square is white, the sides black
    tensor = imaging.style_input(image, 64)
    assert tensor.shape == (1, 3, 64, 64) and tensor.dtype == np.float32
    assert tensor.min() > 0.99


def test_to_uint8_rounds_clips_and_zeroes_nan() -> None:
    rng = np.random.default_rng(0)
    tensor = rng.uniform(-0.2, 1.2, size=(1, 3, 5, 7)).astype(np.float32)
    tensor[0, 0, 0, :4] = [np.nan, np.inf, -np.inf, 0.5 / 255]
    out = imaging.to_uint8(tensor)
    hwc = tensor[0].transpose(1, 2, 0).astype(np.float64)
    expected = np.floor(np.clip(np.nan_to_num(hwc), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    assert out.shape == (5, 7, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    assert np.array_equal(out, expected)
    assert list(out[0, :4, 0]) == [0, 255, 0, 1]
    assert np.array_equal(imaging.to_uint8(np.ascontiguousarray(tensor[0].transpose(1, 2, 0))), expected)
