"""Style predictor: TF "SAME" padding, output shapes, embedding size."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from training.networks.mobilenet_v2 import MobileNetV2Features, SameConv, same_padding
from training.networks.predictor import PredictorConfig, StylePredictor


@pytest.mark.parametrize(
    ("size", "stride", "before", "after"), [(256, 2, 0, 1), (255, 2, 1, 1), (7, 1, 1, 1), (8, 2, 0, 1), (9, 2, 1, 1)]
)
def test_same_padding_matches_tensorflow(size: int, stride: int, before: int, after: int) -> None:
    # TF puts the odd extra pixel after (bottom/right)
    assert same_padding(size, kernel=3, stride=stride) == (before, after)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize(("h", "w"), [(16, 16), (15, 16), (16, 17), (9, 9)])
def test_same_conv_equals_explicit_padding(stride: int, h: int, w: int) -> None:
    # SameConv keeps every padding inside the conv (a zero tap for the uneven case); it must give
    # exactly what padding the input first gives.
    conv = SameConv(4, 6, 3, stride, groups=2).double()
    x = torch.rand(2, 4, h, w, dtype=torch.float64)
    (top, bottom), (left, right) = same_padding(h, 3, stride), same_padding(w, 3, stride)
    expected = F.conv2d(F.pad(x, (left, right, top, bottom)), conv.weight, conv.bias, stride, groups=2)
    assert torch.allclose(conv(x), expected, atol=1e-12)


@pytest.mark.parametrize(("h", "w"), [(256, 256), (224, 320), (255, 193)])
def test_mobilenet_output_is_ceil_of_32nds(h: int, w: int) -> None:
    features = MobileNetV2Features().eval()
    with torch.no_grad():
        out = features(torch.rand(1, 3, h, w))
    assert out.shape == (1, 1280, -(-h // 32), -(-w // 32))


def test_mobilenet_parameter_count() -> None:
    # MobileNet-v2 1.0 without the classifier: 2.22M weights + biases (BN folded into biases)
    count = sum(p.numel() for p in MobileNetV2Features().parameters())
    assert 2_200_000 < count < 2_260_000


def test_predictor_gives_one_embedding_per_image() -> None:
    model = StylePredictor(PredictorConfig(backbone="mobilenet_v2")).eval()
    with torch.no_grad():
        e = model(torch.rand(3, 3, 256, 256))
    assert e.shape == (3, 100) and torch.isfinite(e).all()


def test_unknown_backbone_is_refused() -> None:
    with pytest.raises(ValueError, match="backbone"):
        StylePredictor(PredictorConfig(backbone="resnet"))  # type: ignore[arg-type]
