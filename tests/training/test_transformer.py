"""The style transformer: architecture facts from the paper, size handling, conditioning."""

from __future__ import annotations

import pytest
import torch

from training.networks.nstyle import PRESETS26, build_nstyle, style_weights, table_rows
from training.networks.transformer import ConditionalInstanceNorm, StyleTransformer, TransformerConfig


def conv_params(model: StyleTransformer) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if not n.startswith("heads"))


def test_alpha1_matches_the_paper() -> None:
    model = StyleTransformer(TransformerConfig.ghiasi(1.0))
    # 13 conditioned layers, 2 x 1,379 = 2,758 style numbers per style at alpha=1
    assert len(model.conditioned_layers()) == 13
    assert 2 * sum(model.conditioned_channels()) == 2758
    # ~1.67M parameters in the convolutional body (Ghiasi et al. 2017 at alpha=1; docs/models.md)
    assert 1.60e6 < conv_params(model) < 1.70e6


def test_mobile_alpha_quarter_widths() -> None:
    config = TransformerConfig.ghiasi(0.25)
    assert config.contract == (8, 16, 32) and config.expand == (16, 8)


@pytest.mark.parametrize("alpha", [1.0, 0.25])
@pytest.mark.parametrize(("h", "w"), [(64, 64), (37, 50), (33, 129)])
def test_any_size_comes_back_at_its_own_size(alpha: float, h: int, w: int) -> None:
    model = StyleTransformer(TransformerConfig.ghiasi(alpha)).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, h, w), torch.randn(2, 100))
    assert out.shape == (2, 3, h, w)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_samples_in_a_batch_are_independent() -> None:
    model = StyleTransformer(TransformerConfig.ghiasi(0.25)).eval()
    content, embedding = torch.rand(3, 3, 32, 48), torch.randn(3, 100)
    with torch.no_grad():
        batched = model(content, embedding)
        single = torch.cat([model(content[i : i + 1], embedding[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=0)


def test_conditional_instance_norm_formula() -> None:
    x = torch.randn(2, 4, 5, 7)
    gamma, beta = torch.randn(2, 4), torch.randn(2, 4)
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = x.var(dim=(2, 3), unbiased=False, keepdim=True)
    expected = gamma[..., None, None] * (x - mean) / torch.sqrt(var + 1e-5) + beta[..., None, None]
    torch.testing.assert_close(ConditionalInstanceNorm(4)(x, gamma, beta), expected)


def test_embedding_changes_the_output() -> None:
    model = StyleTransformer(TransformerConfig.ghiasi(0.25)).eval()
    for head in model.heads.gamma:
        torch.nn.init.normal_(head.weight, std=0.1)
    content = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        a, b = model(content, torch.randn(1, 100)), model(content, torch.randn(1, 100))
    assert (a - b).abs().mean() > 1e-3


def test_nstyle_mixing_is_interpolating_table_rows() -> None:
    model = build_nstyle(3, PRESETS26).eval()
    for g, b in zip(model.heads.gamma, model.heads.beta, strict=True):
        torch.nn.init.normal_(g.weight, 1.0, 0.2)
        torch.nn.init.normal_(b.weight, 0.0, 0.2)
    w = style_weights(3, {0: 1.0, 2: 3.0})
    assert torch.allclose(w, torch.tensor([0.25, 0.0, 0.75]))
    params = model.heads(w[None])
    for (gamma, beta), (g_rows, b_rows) in zip(params, table_rows(model), strict=True):
        torch.testing.assert_close(gamma[0], 0.25 * g_rows[0] + 0.75 * g_rows[2])
        torch.testing.assert_close(beta[0], 0.25 * b_rows[0] + 0.75 * b_rows[2])


def test_single_style_network_is_plain_instance_norm_at_init() -> None:
    model = build_nstyle(1).eval()
    x = torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        out = model(x, torch.ones(1, 1))
    assert out.shape == x.shape
    for gamma, beta in table_rows(model):
        assert torch.all(gamma == 1) and torch.all(beta == 0)


@pytest.mark.parametrize("bad", [{0: -1.0}, {5: 1.0}, [0.0, 0.0, 0.0], [1.0, float("nan"), 0.0]])
def test_style_weights_reject_bad_mixes(bad: object) -> None:
    with pytest.raises(ValueError):
        style_weights(3, bad)  # type: ignore[arg-type]
