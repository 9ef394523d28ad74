"""The polyphase export form computes the trained transformer's function (float64, random weights)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from onnx_export.polyphase import PolyphaseTransformer
from training.networks.nstyle import PRESETS26, nstyle_config
from training.networks.transformer import StyleTransformer, TransformerConfig, conditional_instance_norm

CONFIGS = {
    "mobile (batch-norm contract)": TransformerConfig.ghiasi(0.25),
    "alpha 1": TransformerConfig.ghiasi(1.0),
    "n-style (conditional contract)": nstyle_config(5, TransformerConfig.ghiasi(0.25)),
    "presets-26 widths": PRESETS26,
}


def random_transformer(config: TransformerConfig) -> StyleTransformer:
    """Every weight random, batch-norm statistics included, so no term can cancel by accident."""
    torch.manual_seed(0)
    model = StyleTransformer(config).double().eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                module.weight.normal_(0, 0.3)
                if module.bias is not None:
                    module.bias.normal_(0, 0.3)
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.3)
                module.running_mean.normal_(0, 0.3)
                module.running_var.uniform_(0.5, 2.0)
    return model


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize(("h", "w"), [(32, 48), (20, 36), (64, 4 * 17)])
def test_polyphase_equals_the_trained_network(name: str, h: int, w: int) -> None:
    model = random_transformer(CONFIGS[name])
    content = torch.rand(2, 3, h, w, dtype=torch.float64)
    embedding = torch.rand(2, model.config.embedding_size, dtype=torch.float64)
    with torch.no_grad():
        expected = model(content, embedding)
        got = PolyphaseTransformer(model)(content, embedding)
    assert got.shape == expected.shape
    # float64 rounding only: a wrong tap, phase or border would show at 1e-2 and above.
    assert float((got - expected).abs().max()) < 1e-10


def test_instance_norm_over_phases_is_the_norm_of_the_full_map() -> None:
    full = torch.randn(2, 3, 8, 10, dtype=torch.float64)
    gamma, beta = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64)
    # phases [N, C*4, H/2, W/2], channel c*4 + a*2 + b holding full[:, c, a::2, b::2]
    phases = torch.stack([full[:, :, a::2, b::2] for a in (0, 1) for b in (0, 1)], dim=2).reshape(2, 12, 4, 5)
    normed = conditional_instance_norm(phases, gamma, beta, phases=4).reshape(2, 3, 4, 4, 5)
    expected = conditional_instance_norm(full, gamma, beta)
    for index, (a, b) in enumerate((a, b) for a in (0, 1) for b in (0, 1)):
        torch.testing.assert_close(normed[:, :, index], expected[:, :, a::2, b::2], atol=1e-12, rtol=0)
