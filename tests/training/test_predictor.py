"""Style predictor: TF "SAME" padding, output shapes, embedding size."""

from __future__ import annotations

import pytest
import torch

from training.networks.mobilenet_v2 import MobileNetV2Features, same_pad
from training.networks.predictor import PredictorConfig, StylePredictor


@pytest.mark.parametrize(("size", "stride", "before", "after"),
                         [(256, 2, 0, 1), (255, 2, 1, 1), (7, 1, 1, 1), (8, 2, 0, 1), (9, 2, 1, 1)])
def test_same_padding_matches_tensorflow(size: int, stride: int, before: int, after: int) -> None:
    x = torch.zeros(1, 1, size, size + 1)
    padded = same_pad(x, kernel=3, stride=stride)
    assert padded.shape[-2] == size + before + after
    # TF puts the odd extra pixel after (bottom/right)
    marked = same_pad(torch.ones(1, 1, size, size), 3, stride)
    assert marked[0, 0, before, before] == 1 and (before == 0 or marked[0, 0, 0, 0] == 0)


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
