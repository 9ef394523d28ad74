"""Inception-v3 (Szegedy et al. 2016) up to Mixed_6e: the style predictor backbone of Ghiasi et al.

The TF-slim ``inception_v3_base`` layout: a VALID-padded stem, three InceptionA blocks
(Mixed_5b-d), the grid reduction Mixed_6a and four InceptionC blocks (Mixed_6b-e) with
7x7 convolutions factorised into 1x7 and 7x1. Every conv is conv (no bias) + batch norm
(eps 1e-3, as slim) + ReLU; "SAME" convs are stride 1 with odd kernels, so symmetric
padding k//2 equals TensorFlow's. Average pools exclude padding, as TF's do.

A 256x256 style image gives a [N,768,14,14] map (256 -> 127 -> 125 -> 62 -> 60 -> 29 -> 14).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class BasicConv(nn.Sequential):
    def __init__(self, in_ch: int, out_ch: int, kernel: int | tuple[int, int], stride: int = 1,
                 same: bool = True) -> None:
        k = (kernel, kernel) if isinstance(kernel, int) else kernel
        padding = (k[0] // 2, k[1] // 2) if same else (0, 0)
        super().__init__(nn.Conv2d(in_ch, out_ch, k, stride, padding, bias=False),
                         nn.BatchNorm2d(out_ch, eps=1e-3), nn.ReLU(inplace=True))


def avg_pool_same(x: Tensor) -> Tensor:
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    """Mixed_5b/5c/5d: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1, concatenated."""

    def __init__(self, in_ch: int, pool_ch: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv(in_ch, 64, 1)
        self.branch5x5 = nn.Sequential(BasicConv(in_ch, 48, 1), BasicConv(48, 64, 5))
        self.branch3x3dbl = nn.Sequential(BasicConv(in_ch, 64, 1), BasicConv(64, 96, 3), BasicConv(96, 96, 3))
        self.branch_pool = BasicConv(in_ch, pool_ch, 1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1x1(x), self.branch5x5(x), self.branch3x3dbl(x),
                          self.branch_pool(avg_pool_same(x))], dim=1)


class InceptionB(nn.Module):
    """Mixed_6a: grid reduction 35 -> 17 (here 29 -> 14) with stride-2 VALID convs and a max pool."""

    def __init__(self, in_ch: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv(in_ch, 384, 3, stride=2, same=False)
        self.branch3x3dbl = nn.Sequential(BasicConv(in_ch, 64, 1), BasicConv(64, 96, 3),
                                          BasicConv(96, 96, 3, stride=2, same=False))

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch3x3(x), self.branch3x3dbl(x), F.max_pool2d(x, 3, stride=2)], dim=1)


class InceptionC(nn.Module):
    """Mixed_6b-e: 1x1 | 1x1-1x7-7x1 | 1x1-7x1-1x7-7x1-1x7 | avgpool-1x1; width c of the 7x7 branches."""

    def __init__(self, in_ch: int, c: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv(in_ch, 192, 1)
        self.branch7x7 = nn.Sequential(BasicConv(in_ch, c, 1), BasicConv(c, c, (1, 7)), BasicConv(c, 192, (7, 1)))
        self.branch7x7dbl = nn.Sequential(BasicConv(in_ch, c, 1), BasicConv(c, c, (7, 1)), BasicConv(c, c, (1, 7)),
                                          BasicConv(c, c, (7, 1)), BasicConv(c, 192, (1, 7)))
        self.branch_pool = BasicConv(in_ch, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1x1(x), self.branch7x7(x), self.branch7x7dbl(x),
                          self.branch_pool(avg_pool_same(x))], dim=1)


class InceptionV3Features(nn.Module):
    """RGB in [0, 1], [N,3,H,W] -> Mixed_6e features [N,768,h,w]; H and W of at least 75."""

    out_channels = 768

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            BasicConv(3, 32, 3, stride=2, same=False),   # Conv2d_1a_3x3
            BasicConv(32, 32, 3, same=False),            # Conv2d_2a_3x3
            BasicConv(32, 64, 3),                        # Conv2d_2b_3x3
            nn.MaxPool2d(3, stride=2),                   # MaxPool_3a_3x3
            BasicConv(64, 80, 1, same=False),            # Conv2d_3b_1x1
            BasicConv(80, 192, 3, same=False),           # Conv2d_4a_3x3
            nn.MaxPool2d(3, stride=2),                   # MaxPool_5a_3x3
        )
        self.mixed = nn.Sequential(
            InceptionA(192, 32), InceptionA(256, 64), InceptionA(288, 64),   # Mixed_5b, 5c, 5d
            InceptionB(288),                                                 # Mixed_6a
            InceptionC(768, 128), InceptionC(768, 160), InceptionC(768, 160), InceptionC(768, 192),  # 6b-6e
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.mixed(self.stem(x * 2.0 - 1.0))  # slim's Inception expects [-1, 1]
