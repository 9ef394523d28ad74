"""MobileNet-v2 (Sandler et al. 2018), width 1.0, as Magenta's mobile style predictor uses it.

Batch norm is folded into conv biases (the shipped weights have it folded), every
activation is ReLU6 and the projection convs are linear. Padding follows TensorFlow's
"SAME" rule, which for a stride-2 3x3 conv on an even size pads one row/column at the
bottom/right only; ``same_padding`` computes it from the input size. The backbone ends at
the 1280-channel 1x1 conv (``Conv_1``), before any pooling.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# (expansion t, output channels c, repeats n, first stride s), from the paper's Table 2.
INVERTED_RESIDUAL_SETTINGS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's SAME padding of one axis: total max(k - s, 0) or max(k - n % s, 0), the extra one after."""
    total = max(kernel - (stride if size % stride == 0 else size % stride), 0)
    return total // 2, total - total // 2


class SameConv(nn.Conv2d):
    """Conv2d with TF "SAME" padding and a bias (batch norm folded in)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(in_ch, out_ch, kernel, stride, padding=0, groups=groups, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        weight, padding = self.weight, []
        for axis, size in enumerate(x.shape[-2:]):
            before, after = same_padding(int(size), self.kernel_size[axis], self.stride[axis])
            if after > before:
                # One more zero after than before (a stride-2 conv on an even size). A leading zero
                # tap in the kernel turns that into symmetric padding of `after`, so the padding
                # stays inside the conv: an exported Pad op copies the tensor and makes ONNX Runtime
                # leave its blocked layout on both sides (docs/performance.md).
                zeros = weight.new_zeros(weight.shape[: 2 + axis] + (1,) + weight.shape[3 + axis :])
                weight = torch.cat([zeros, weight], dim=2 + axis)
            padding.append(after)
        return F.conv2d(x, weight, self.bias, self.stride, tuple(padding), groups=self.groups)


class InvertedResidual(nn.Module):
    """1x1 expand (skipped when t=1), 3x3 depthwise, 1x1 linear project; residual when shapes allow."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_ch * expansion
        self.expand = SameConv(in_ch, hidden, 1) if expansion != 1 else None
        self.depthwise = SameConv(hidden, hidden, 3, stride, groups=hidden)
        self.project = SameConv(hidden, out_ch, 1)
        self.use_residual = stride == 1 and in_ch == out_ch

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu6(self.expand(x)) if self.expand is not None else x
        y = self.project(F.relu6(self.depthwise(y)))
        return x + y if self.use_residual else y


class MobileNetV2Features(nn.Module):
    """RGB in [0, 1], [N,3,H,W] -> [N,1280,H/32,W/32] (ceil), as Magenta's graph feeds it."""

    out_channels = 1280

    def __init__(self) -> None:
        super().__init__()
        self.stem = SameConv(3, 32, 3, 2)
        blocks: list[nn.Module] = []
        in_ch = 32
        for t, c, n, s in INVERTED_RESIDUAL_SETTINGS:
            for i in range(n):
                blocks.append(InvertedResidual(in_ch, c, s if i == 0 else 1, t))
                in_ch = c
        self.blocks = nn.Sequential(*blocks)
        self.head = SameConv(in_ch, self.out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu6(self.stem(x))
        return F.relu6(self.head(self.blocks(x)))
