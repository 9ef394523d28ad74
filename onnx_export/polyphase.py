"""The style transformer rearranged for export: the same function, a graph ONNX Runtime runs faster.

At full resolution the transformer is narrow (8 channels in Magenta's mobile model, 3 at the
output), and ONNX Runtime's CPU convolutions compute output channels in blocks of 16 (AVX-512):
its last 9x9 conv to 3 channels did the work of 16, a third of the whole run. Here every
full-resolution layer works on the 2x2 *phases* of its output instead: the four half-resolution
images ``y[2i+a, 2j+b]`` (a, b in {0, 1}), held as four consecutive channels per channel
(``c*4 + a*2 + b``). Four times the channels at a quarter of the pixels:

- a KxK conv at full resolution is a (K+1)x(K+1) stride-2 conv giving the four phases, the
  kernel placed at offset (a, b) for phase (a, b);
- nearest x2 upsampling, reflect padding 1 and a 3x3 conv are an edge-padded 3x3 conv at the low
  resolution giving the four phases: each phase reads a 2x2 neighbourhood of the input, and the
  reflected border of an upsampled image is the input's edge;
- reflect padding 1 and a 3x3 stride-2 conv on a map held as phases are a 2x2 conv on the phases,
  edge-padded by 1 at the top and left;
- instance-norm statistics are over all four phases of a channel;
- phases become the full-resolution map through a stride-2 transposed conv with one-hot weights
  (ONNX Runtime's DepthToSpace is slower on the CPU).

Exact to float rounding: derived weights are sums of trained ones, and the parity checks compare
the exported graph with the trained network in float64. The speed-up is in docs/performance.md.
Inputs must be a multiple of 4 on each side, as for the plain export (``SIZE_MULTIPLE``; the
service pads).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training.networks.transformer import (
    ConditionedConv,
    StyleTransformer,
    conditional_instance_norm,
)

PHASES = 4  # 2x2

# Upsampling conv, per axis: [phase, position in the edge-padded low-res window, tap of the 3x3].
# Phase 0 of up(x) at 2i reads x[i-1] (tap 0) and x[i] (taps 1, 2); phase 1 reads x[i] (taps 0, 1)
# and x[i+1] (tap 2).
_UPSAMPLE_TAPS = (((1, 0, 0), (0, 1, 1), (0, 0, 0)), ((0, 0, 0), (1, 1, 0), (0, 0, 1)))
# Stride-2 3x3 conv on phases, per axis: [input phase, position (offset -1, 0), tap]. Output i
# reads y[2i-1] = Y1[i-1] (tap 0), y[2i] = Y0[i] (tap 1), y[2i+1] = Y1[i] (tap 2); the reflected
# y[-1] is y[1] = Y1[0], the edge of phase 1.
_STRIDE2_TAPS = (((0, 0, 0), (0, 1, 0)), ((1, 0, 0), (0, 0, 1)))


def phase_conv_weight(weight: Tensor) -> Tensor:
    """KxK conv [O,I,K,K] -> stride-2 (K+1)x(K+1) conv [4*O,I,K+1,K+1] giving its output's phases."""
    out_ch, in_ch, k, _ = weight.shape
    phased = weight.new_zeros(out_ch, 2, 2, in_ch, k + 1, k + 1)
    for a in range(2):
        for b in range(2):
            phased[:, a, b, :, a : a + k, b : b + k] = weight
    return phased.reshape(out_ch * PHASES, in_ch, k + 1, k + 1)


def upsample_conv_weight(weight: Tensor) -> Tensor:
    """Nearest x2 + 3x3 conv [O,I,3,3] -> 3x3 conv [4*O,I,3,3] on the edge-padded input, giving phases."""
    taps = torch.tensor(_UPSAMPLE_TAPS, dtype=weight.dtype)
    out_ch, in_ch = weight.shape[:2]
    return torch.einsum("apk,bql,oikl->oabipq", taps, taps, weight).reshape(out_ch * PHASES, in_ch, 3, 3)


def stride2_on_phases_weight(weight: Tensor) -> Tensor:
    """3x3 stride-2 conv [O,I,3,3] -> 2x2 conv [O,4*I,2,2] on the input's phases, edge-padded top-left."""
    taps = torch.tensor(_STRIDE2_TAPS, dtype=weight.dtype)
    out_ch, in_ch = weight.shape[:2]
    return torch.einsum("apk,bql,oikl->oiabpq", taps, taps, weight).reshape(out_ch, in_ch * PHASES, 2, 2)


def merge_phases_weight(channels: int, dtype: torch.dtype) -> Tensor:
    """One-hot [4*C,1,2,2] for a grouped stride-2 transposed conv: phases [N,4C,h,w] -> [N,C,2h,2w]."""
    weight = torch.zeros(channels, 2, 2, 1, 2, 2, dtype=dtype)
    for a in range(2):
        for b in range(2):
            weight[:, a, b, 0, a, b] = 1.0
    return weight.reshape(channels * PHASES, 1, 2, 2)


def _conv(layer: nn.Module, kernel: int, stride: int) -> tuple[Tensor, Tensor | None]:
    """A contract layer's conv weight, with its batch norm folded in (bias), or alone (CIN)."""
    if isinstance(layer, ConditionedConv):
        conv, bias = layer.conv[1], None
        weight = conv.weight
    else:
        (_, conv), norm = layer  # Sequential(Sequential(pad, conv), BatchNorm2d)
        scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
        weight = conv.weight * scale[:, None, None, None]
        bias = norm.bias - norm.running_mean * scale
    if conv.kernel_size != (kernel, kernel) or conv.stride != (stride, stride):
        raise ValueError(f"polyphase export expects a {kernel}x{kernel}/{stride} conv, got {conv}")
    return weight.detach(), None if bias is None else bias.detach()


class PolyphaseTransformer(nn.Module):
    """A trained ``StyleTransformer``'s function with its full-resolution layers on 2x2 phases.

    Shares the residual blocks, the third contract layer and the style heads with the original;
    the full-resolution weights are derived once, here, so build it after training (eval mode).
    """

    def __init__(self, transformer: StyleTransformer) -> None:
        super().__init__()
        config = transformer.config
        self.conditional = config.contract_norm == "conditional"
        self.heads = transformer.heads
        self.residual = transformer.residual
        first, second, self.third = transformer.contract
        up1, up2, last = transformer.expand
        dtype = up1.conv[1].weight.dtype

        weight, bias = _conv(first, 9, 1)
        self.register_buffer("first_weight", phase_conv_weight(weight))
        self.register_buffer("first_bias", None if bias is None else bias.repeat_interleave(PHASES))
        weight, bias = _conv(second, 3, 2)
        self.register_buffer("second_weight", stride2_on_phases_weight(weight))
        self.register_buffer("second_bias", bias)
        for name, layer in (("up1", up1), ("up2", up2)):
            self.register_buffer(f"{name}_weight", upsample_conv_weight(_conv(layer, 3, 1)[0]))
            self.register_buffer(f"{name}_merge", merge_phases_weight(layer.conv[1].out_channels, dtype))
        self.register_buffer("last_weight", phase_conv_weight(_conv(last, 9, 1)[0]))
        self.register_buffer("last_merge", merge_phases_weight(3, dtype))

    def forward(self, content_image: Tensor, embedding: Tensor) -> Tensor:
        return run_polyphase(self, content_image, embedding, conditional_instance_norm)


# A conditioned layer's normalisation: (x, gamma, beta, phases) -> normalised x. The plain form computes
# each map's own statistics; onnx_export/statistics.py records them or takes them from outside.
Norm = Callable[[Tensor, Tensor, Tensor, int], Tensor]


def run_polyphase(net: PolyphaseTransformer, content_image: Tensor, embedding: Tensor, norm_fn: Norm) -> Tensor:
    """The polyphase transformer's body with its conditioned normalisations done by ``norm_fn``, in the
    heads' order (the same order as ``StyleTransformer.conditioned_layers``)."""
    params = iter(net.heads(embedding))

    def norm(x: Tensor, phases: int = 1) -> Tensor:
        return norm_fn(x, *next(params), phases)

    x = F.conv2d(F.pad(content_image, (4, 4, 4, 4), mode="reflect"), net.first_weight, net.first_bias, 2)
    x = F.relu(norm(x, PHASES) if net.conditional else x)
    x = F.conv2d(F.pad(x, (1, 0, 1, 0), mode="replicate"), net.second_weight, net.second_bias)
    x = F.relu(norm(x) if net.conditional else x)
    x = F.relu(norm(net.third.conv(x)) if net.conditional else net.third(x))
    for first, second in net.residual:
        x = x + norm(second.conv(F.relu(norm(first.conv(x)))))
    for weight, merge in ((net.up1_weight, net.up1_merge), (net.up2_weight, net.up2_merge)):
        x = F.relu(norm(F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), weight), PHASES))
        x = _merge_phases(x, merge)
    x = F.conv2d(F.pad(x, (4, 4, 4, 4), mode="reflect"), net.last_weight, stride=2)
    return _merge_phases(torch.sigmoid(norm(x, PHASES)), net.last_merge)


def _merge_phases(x: Tensor, merge: Tensor) -> Tensor:
    return F.conv_transpose2d(x, merge, stride=2, groups=merge.shape[0] // PHASES)
