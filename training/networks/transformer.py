"""The style transformer of Johnson et al. 2016 / Dumoulin et al. 2017 / Ghiasi et al. 2017.

One body, parameterised, serves every variant we ship or train:

    contract   conv 9x9/1, conv 3x3/2, conv 3x3/2      (batch norm, or CIN for the N-style presets)
    residual   R blocks of two 3x3 convs, each + CIN    (ReLU after the first, add without ReLU)
    expand     nearest x2 + conv 3x3, twice; conv 9x9   (CIN; ReLU, ReLU, sigmoid)

Every convolution reflect-pads by k//2 and convolves without padding. Conditional
instance norms (CIN) take a per-sample (gamma, beta) from ``StyleHeads``: affine maps
from a style embedding to each conditioned layer's parameters. For the arbitrary model
the embedding is the predictor's 100-d bottleneck; for an N-style network it is a
convex weight vector over N styles and the heads are bias-free, so each head's weight
columns are the table of per-style (gamma, beta) rows (see nstyle.py).

Input and output are RGB in [0, 1], NCHW. The body downsamples by 4, so ``forward``
reflect-pads H and W up to a multiple of 4 and crops the result back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SIZE_MULTIPLE = 4
CIN_EPS = 1e-5


@dataclass(frozen=True)
class TransformerConfig:
    """Widths and norms of one transformer variant."""

    contract: tuple[int, int, int] = (32, 64, 128)
    residual_blocks: int = 5
    expand: tuple[int, int] = (64, 32)
    contract_norm: Literal["batch", "conditional"] = "batch"
    embedding_size: int = 100
    head_bias: bool = True  # False for N-style tables: gamma = w @ table, no offset

    @classmethod
    def ghiasi(cls, alpha: float = 1.0, embedding_size: int = 100) -> TransformerConfig:
        """The arbitrary-style transformer; alpha=1 in the paper, 0.25 in Magenta's mobile model."""
        c1, c2, c3 = (max(1, round(c * alpha)) for c in (32, 64, 128))
        return cls(contract=(c1, c2, c3), expand=(c2, c1), embedding_size=embedding_size)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def reflect_conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1, bias: bool = False) -> nn.Sequential:
    return nn.Sequential(nn.ReflectionPad2d(kernel // 2), nn.Conv2d(in_ch, out_ch, kernel, stride, bias=bias))


def conditional_instance_norm(x: Tensor, gamma: Tensor, beta: Tensor, phases: int = 1) -> Tensor:
    """Instance norm of x [N,C*phases,H,W] with a per-sample scale and shift gamma, beta [N,C].

    Biased variance over H and W, as in TF's moments. With ``phases`` > 1 each channel is held as
    that many consecutive channels (the polyphase form in onnx_export/polyphase.py) and its
    statistics are over all of them.
    """
    n, channels, height, width = x.shape
    # A view with each channel's phases stacked along H.
    v = x if phases == 1 else x.reshape(n, channels // phases, phases * height, width)
    # Rows first, then columns: the same value, but exported to ONNX as two short ReduceMeans.
    # ONNX Runtime's single fp32 ReduceMean over a 1024x1024 map drifts by ~1e-4 at the output
    # (PyTorch's by 2e-6); the two-step form stays within 2e-6 at the same speed.
    mean = v.mean(dim=3, keepdim=True).mean(dim=2, keepdim=True)
    centred = v - mean
    var = (centred * centred).mean(dim=3, keepdim=True).mean(dim=2, keepdim=True)
    # Scale folded into one [N,C,1,1] factor: two full-size passes (multiply, add) after centring.
    scale = gamma[:, :, None, None] * torch.rsqrt(var + CIN_EPS)
    y = centred * scale + beta[:, :, None, None]
    return y if phases == 1 else y.reshape(n, channels, height, width)


class ConditionalInstanceNorm(nn.Module):
    """Instance norm whose scale and shift come from outside, one (gamma, beta) per sample."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, x: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
        return conditional_instance_norm(x, gamma, beta)


class ConditionedConv(nn.Module):
    """Optional nearest x2 upsampling, reflect-padded conv, CIN."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, upsample: bool = False) -> None:
        super().__init__()
        self.upsample = upsample
        self.conv = reflect_conv(in_ch, out_ch, kernel, stride)
        self.norm = ConditionalInstanceNorm(out_ch)

    def forward(self, x: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.norm(self.conv(x), gamma, beta)


class StyleHeads(nn.Module):
    """Affine maps from a style embedding [N,E] to (gamma, beta) of every conditioned layer."""

    def __init__(self, embedding_size: int, channels: list[int], bias: bool) -> None:
        super().__init__()
        self.gamma = nn.ModuleList(nn.Linear(embedding_size, c, bias=bias) for c in channels)
        self.beta = nn.ModuleList(nn.Linear(embedding_size, c, bias=bias) for c in channels)
        self.reset_identity()

    def reset_identity(self) -> None:
        """Start as plain instance norm for any convex embedding: gamma = 1, beta = 0."""
        for gamma, beta in zip(self.gamma, self.beta, strict=True):
            nn.init.zeros_(beta.weight)
            if gamma.bias is None:
                nn.init.ones_(gamma.weight)  # rows of a table: sum of weights 1 -> gamma 1
            else:
                nn.init.normal_(gamma.weight, std=1e-3)
                nn.init.ones_(gamma.bias)
                nn.init.zeros_(beta.bias)

    def forward(self, embedding: Tensor) -> list[tuple[Tensor, Tensor]]:
        return [(g(embedding), b(embedding)) for g, b in zip(self.gamma, self.beta, strict=True)]


class StyleTransformer(nn.Module):
    """Paints a content image [N,3,H,W] in the style given by an embedding [N,E]."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        c1, c2, c3 = config.contract
        e1, e2 = config.expand
        contract_specs = [(3, c1, 9, 1), (c1, c2, 3, 2), (c2, c3, 3, 2)]
        if config.contract_norm == "conditional":
            self.contract = nn.ModuleList(ConditionedConv(i, o, k, s) for i, o, k, s in contract_specs)
        else:
            self.contract = nn.ModuleList(
                nn.Sequential(reflect_conv(i, o, k, s), nn.BatchNorm2d(o, eps=1e-3)) for i, o, k, s in contract_specs
            )
        self.residual = nn.ModuleList(
            nn.ModuleList([ConditionedConv(c3, c3, 3), ConditionedConv(c3, c3, 3)])
            for _ in range(config.residual_blocks)
        )
        self.expand = nn.ModuleList(
            [
                ConditionedConv(c3, e1, 3, upsample=True),
                ConditionedConv(e1, e2, 3, upsample=True),
                ConditionedConv(e2, 3, 9),
            ]
        )
        self.heads = StyleHeads(config.embedding_size, self.conditioned_channels(), config.head_bias)

    def conditioned_layers(self) -> list[ConditionedConv]:
        """The CIN layers in the order their (gamma, beta) are produced by the heads."""
        layers: list[ConditionedConv] = []
        if self.config.contract_norm == "conditional":
            layers += list(self.contract)  # type: ignore[arg-type]
        for block in self.residual:
            layers += list(block)  # type: ignore[arg-type]
        return layers + list(self.expand)  # type: ignore[arg-type]

    def conditioned_channels(self) -> list[int]:
        c1, c2, c3 = self.config.contract
        e1, e2 = self.config.expand
        contract = [c1, c2, c3] if self.config.contract_norm == "conditional" else []
        return contract + [c3] * (2 * self.config.residual_blocks) + [e1, e2, 3]

    def forward(self, content: Tensor, embedding: Tensor) -> Tensor:
        h, w = content.shape[-2:]
        pad_h, pad_w = (-h) % SIZE_MULTIPLE, (-w) % SIZE_MULTIPLE
        x = F.pad(content, (0, pad_w, 0, pad_h), mode="reflect") if pad_h or pad_w else content
        params = iter(self.heads(embedding))
        for layer in self.contract:
            x = F.relu(layer(x, *next(params)) if isinstance(layer, ConditionedConv) else layer(x))
        for first, second in self.residual:
            x = x + second(F.relu(first(x, *next(params))), *next(params))
        up1, up2, out = self.expand
        x = F.relu(up1(x, *next(params)))
        x = F.relu(up2(x, *next(params)))
        x = torch.sigmoid(out(x, *next(params)))
        return x[..., :h, :w] if pad_h or pad_w else x
