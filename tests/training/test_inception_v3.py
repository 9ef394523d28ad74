"""Inception-v3 to Mixed_6e: TF-slim sizes, the paper's parameter count, export to ONNX."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from training.networks.inception_v3 import InceptionV3Features
from training.networks.predictor import PredictorConfig, StylePredictor
from training.networks.transformer import StyleTransformer, TransformerConfig


@pytest.mark.parametrize(("h", "w", "out"), [(256, 256, (14, 14)), (160, 224, (8, 12)), (299, 299, (17, 17))])
def test_mixed_6e_sizes_match_tf_slim(h: int, w: int, out: tuple[int, int]) -> None:
    with torch.no_grad():
        features = InceptionV3Features().eval()(torch.rand(1, 3, h, w))
    assert features.shape == (1, 768, *out)  # 299 -> 17x17x768 is slim's documented Mixed_6e


def test_paper_predictor_and_heads_have_about_9_3m_parameters() -> None:
    predictor = StylePredictor(PredictorConfig(backbone="inception_v3"))
    heads = StyleTransformer(TransformerConfig.ghiasi(1.0)).heads
    backbone = sum(p.numel() for p in predictor.backbone.parameters())
    total = sum(p.numel() for p in predictor.parameters()) + sum(p.numel() for p in heads.parameters())
    assert backbone == 8_965_856
    assert 9.2e6 < total < 9.4e6  # ARCHITECTURE.md 2.2: about 9.3M


def test_gradients_reach_the_input() -> None:
    x = torch.rand(2, 3, 96, 96, requires_grad=True)
    InceptionV3Features()(x).mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_exports_with_dynamic_shapes(tmp_path: Path) -> None:
    model = InceptionV3Features().eval()
    path = tmp_path / "inception.onnx"
    torch.onnx.export(model, (torch.rand(2, 3, 128, 128),), str(path), dynamo=False, opset_version=17,
                      input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}, "y": {0: "n", 2: "h2", 3: "w2"}})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(2, 3, 128, 128), (1, 3, 160, 224)]:
        x = torch.rand(*shape)
        with torch.no_grad():
            expected = model(x).numpy()
        (got,) = session.run(None, {"x": x.numpy()})
        assert got.shape == expected.shape and np.abs(got - expected).max() < 1e-4
