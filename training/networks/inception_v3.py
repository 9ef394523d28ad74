"""Inception-v3 (Szegedy et al. 2016) up to Mixed_6e: the style predictor backbone of Ghiasi et al. 2017.

Ghiasi et al. cut TF-slim's ``inception_v3_base`` at Mixed_6e and summarise a style image by the
channel means of that layer (768 numbers) before the bottleneck; nothing deeper is needed. The layout:

    stem      Conv2d_1a_3x3 (stride 2), 2a, 2b, max pool, 3b_1x1, 4a_3x3, max pool
    Mixed_5b-d   InceptionA   1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1          -> 256, 288, 288
    Mixed_6a     InceptionB   grid reduction: 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2    -> 768
    Mixed_6b-e   InceptionC   1x1 | 1x1-1x7-7x1 | 1x1-(7x1-1x7)x2 | avgpool-1x1   -> 768
                              (7x7 branch widths 128, 160, 160, 192)

Every conv is conv (no bias) + batch norm (eps 1e-3, as slim) + ReLU. Slim's batch norm has no
scale (gamma); ours has one, as torchvision's, and a slim checkpoint loads with gamma = 1.
Padding follows slim: VALID for the stem convs 1a, 2a, 4a, the max pools and the stride-2 convs
of Mixed_6a; SAME elsewhere. SAME convs here are all stride 1 with odd kernels, where
TensorFlow's SAME is the symmetric padding k//2. The 3x3 average pools are SAME too, and like
TensorFlow's they average over the real pixels only (``count_include_pad=False``).

Module and parameter names are torchvision's ``Inception3`` names (``Conv2d_1a_3x3.conv.weight``,
``Mixed_6e.branch7x7dbl_5.bn.running_var``, ...), so an ImageNet Inception-v3 state dict loads
after dropping its Mixed_7*, AuxLogits and fc entries.

Sizes: every VALID 3x3 stride-2 step maps n -> (n - 3)//2 + 1 and every VALID 3x3 stride-1 conv
n -> n - 2, so the output side is s(s(s(s(n) - 2) - 2)) with s(n) = (n - 3)//2 + 1: 299 -> 17
(slim's documented Mixed_6e), 256 -> 14, 128 -> 6. Inputs must be at least 43 pixels a side.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class BasicConv(nn.Module):
    """Conv without bias (batch norm supplies the shift) + batch norm + ReLU, slim's conv2d arg scope.

    ``padding`` is symmetric: 0 for slim's VALID, k//2 per dimension for its stride-1 SAME.
    """

    def __init__(
        self, in_ch: int, out_ch: int, kernel: int | tuple[int, int], stride: int = 1, same: bool = True
    ) -> None:
        super().__init__()
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        padding = (kh // 2, kw // 2) if same else (0, 0)
        self.conv = nn.Conv2d(in_ch, out_ch, (kh, kw), stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_ch, eps=1e-3)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


def avg_pool_same(x: Tensor) -> Tensor:
    """3x3 stride-1 SAME average pool that, as TensorFlow's, divides by the real pixels at borders."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    """Mixed_5b/5c/5d: [N,C,h,w] -> [N,224+pool_ch,h,w]; 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1."""

    def __init__(self, in_ch: int, pool_ch: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv(in_ch, 64, 1)
        self.branch5x5_1 = BasicConv(in_ch, 48, 1)
        self.branch5x5_2 = BasicConv(48, 64, 5)
        self.branch3x3dbl_1 = BasicConv(in_ch, 64, 1)
        self.branch3x3dbl_2 = BasicConv(64, 96, 3)
        self.branch3x3dbl_3 = BasicConv(96, 96, 3)
        self.branch_pool = BasicConv(in_ch, pool_ch, 1)

    def forward(self, x: Tensor) -> Tensor:
        b5x5 = self.branch5x5_2(self.branch5x5_1(x))  # [N,64,h,w]
        b3x3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))  # [N,96,h,w]
        pool = self.branch_pool(avg_pool_same(x))  # [N,pool_ch,h,w]
        return torch.cat([self.branch1x1(x), b5x5, b3x3, pool], dim=1)


class InceptionB(nn.Module):
    """Mixed_6a, the grid reduction: [N,288,h,w] -> [N,768,(h-3)//2+1,(w-3)//2+1], all VALID stride 2."""

    def __init__(self, in_ch: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv(in_ch, 384, 3, stride=2, same=False)
        self.branch3x3dbl_1 = BasicConv(in_ch, 64, 1)
        self.branch3x3dbl_2 = BasicConv(64, 96, 3)
        self.branch3x3dbl_3 = BasicConv(96, 96, 3, stride=2, same=False)

    def forward(self, x: Tensor) -> Tensor:
        b3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))  # [N,96,h',w']
        pool = F.max_pool2d(x, 3, stride=2)  # [N,288,h',w']
        return torch.cat([self.branch3x3(x), b3x3dbl, pool], dim=1)  # 384+96+288


class InceptionC(nn.Module):
    """Mixed_6b-6e: [N,768,h,w] -> [N,768,h,w]; the 7x7 convs factorised into 1x7 and 7x1 of width ``c7``."""

    def __init__(self, in_ch: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv(in_ch, 192, 1)
        self.branch7x7_1 = BasicConv(in_ch, c7, 1)
        self.branch7x7_2 = BasicConv(c7, c7, (1, 7))
        self.branch7x7_3 = BasicConv(c7, 192, (7, 1))
        self.branch7x7dbl_1 = BasicConv(in_ch, c7, 1)
        self.branch7x7dbl_2 = BasicConv(c7, c7, (7, 1))
        self.branch7x7dbl_3 = BasicConv(c7, c7, (1, 7))
        self.branch7x7dbl_4 = BasicConv(c7, c7, (7, 1))
        self.branch7x7dbl_5 = BasicConv(c7, 192, (1, 7))
        self.branch_pool = BasicConv(in_ch, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))  # [N,192,h,w]
        b7x7dbl = self.branch7x7dbl_1(x)  # [N,c7,h,w]
        for conv in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            b7x7dbl = conv(b7x7dbl)  # ... -> [N,192,h,w]
        pool = self.branch_pool(avg_pool_same(x))  # [N,192,h,w]
        return torch.cat([self.branch1x1(x), b7x7, b7x7dbl, pool], dim=1)


class InceptionV3Features(nn.Module):
    """RGB images in [0, 1], [N,3,H,W] with H, W >= 43 -> Mixed_6e features [N,768,h,w].

    The [0, 1] -> [-1, 1] mapping slim's Inception was trained with happens here, so callers
    (the predictor, the ONNX export, the service) all feed the same [0, 1] images.
    """

    out_channels = 768

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv(3, 32, 3, stride=2, same=False)
        self.Conv2d_2a_3x3 = BasicConv(32, 32, 3, same=False)
        self.Conv2d_2b_3x3 = BasicConv(32, 64, 3)
        self.Conv2d_3b_1x1 = BasicConv(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv(80, 192, 3, same=False)
        self.Mixed_5b = InceptionA(192, pool_ch=32)
        self.Mixed_5c = InceptionA(256, pool_ch=64)
        self.Mixed_5d = InceptionA(288, pool_ch=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, c7=128)
        self.Mixed_6c = InceptionC(768, c7=160)
        self.Mixed_6d = InceptionC(768, c7=160)
        self.Mixed_6e = InceptionC(768, c7=192)

    def forward(self, x: Tensor) -> Tensor:
        # shapes for a 256x256 input (299x299 in parentheses, as in the paper's table)
        x = x * 2.0 - 1.0  # [N,3,256,256]    [0, 1] -> [-1, 1]
        x = self.Conv2d_1a_3x3(x)  # [N,32,127,127]   (149)
        x = self.Conv2d_2a_3x3(x)  # [N,32,125,125]   (147)
        x = self.Conv2d_2b_3x3(x)  # [N,64,125,125]   (147)
        x = F.max_pool2d(x, 3, stride=2)  # [N,64,62,62]     (73)  MaxPool_3a_3x3
        x = self.Conv2d_3b_1x1(x)  # [N,80,62,62]     (73)
        x = self.Conv2d_4a_3x3(x)  # [N,192,60,60]    (71)
        x = F.max_pool2d(x, 3, stride=2)  # [N,192,29,29]    (35)  MaxPool_5a_3x3
        x = self.Mixed_5b(x)  # [N,256,29,29]
        x = self.Mixed_5c(x)  # [N,288,29,29]
        x = self.Mixed_5d(x)  # [N,288,29,29]
        x = self.Mixed_6a(x)  # [N,768,14,14]    (17)
        x = self.Mixed_6b(x)  # [N,768,14,14]
        x = self.Mixed_6c(x)  # [N,768,14,14]
        x = self.Mixed_6d(x)  # [N,768,14,14]
        return self.Mixed_6e(x)  # [N,768,14,14]
