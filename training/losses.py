"""Perceptual losses on VGG-19 (Gatys et al. 2015; Johnson et al. 2016; Magenta's recipe).

Layer choice (Magenta trains on VGG-16; these are the VGG-19 equivalents, the output of
each block's last conv after its ReLU):

    content   block3_conv4   (Magenta: vgg_16/conv3)                       weight 1
    style     block1_conv2, block2_conv2, block3_conv4, block4_conv4         weight 0.5e-3 each
    total variation                                                           weight 1e4

with images in [0, 1]. The content loss is the mean squared feature difference, the style
loss the mean squared difference of Gram matrices ``F F^T / (H W)``, and total variation
is Magenta's: mean squared neighbour differences, halved (tf.nn.l2_loss), per image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from training.networks.vgg import VGG19

CONTENT_LAYERS: dict[str, float] = {"block3_conv4": 1.0}
STYLE_LAYERS: dict[str, float] = {
    "block1_conv2": 0.5e-3,
    "block2_conv2": 0.5e-3,
    "block3_conv4": 0.5e-3,
    "block4_conv4": 0.5e-3,
}
TV_WEIGHT = 1e4


@dataclass(frozen=True)
class LossWeights:
    content: dict[str, float] = field(default_factory=lambda: dict(CONTENT_LAYERS))
    style: dict[str, float] = field(default_factory=lambda: dict(STYLE_LAYERS))
    total_variation: float = TV_WEIGHT

    @property
    def layers(self) -> list[str]:
        return sorted(set(self.content) | set(self.style))


def gram_matrix(features: Tensor) -> Tensor:
    """[N,C,H,W] -> [N,C,C], normalised by the number of positions H*W."""
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (h * w)


def content_loss(features: dict[str, Tensor], targets: dict[str, Tensor], weights: dict[str, float]) -> Tensor:
    return sum((w * (features[k] - targets[k]).pow(2).mean() for k, w in weights.items()), start=torch.zeros(()))


def style_loss(features: dict[str, Tensor], target_grams: dict[str, Tensor], weights: dict[str, float]) -> Tensor:
    """Target Grams broadcast over the batch: [N,C,C] per image, or [1,C,C] for one style."""
    return sum(
        (w * (gram_matrix(features[k]) - target_grams[k]).pow(2).mean() for k, w in weights.items()),
        start=torch.zeros(()),
    )


def total_variation(images: Tensor) -> Tensor:
    dy = (images[:, :, 1:, :] - images[:, :, :-1, :]).pow(2).mean()
    dx = (images[:, :, :, 1:] - images[:, :, :, :-1]).pow(2).mean()
    return (dx + dy) / 2


class PerceptualLoss(torch.nn.Module):
    """Weighted content + style + total-variation loss of stylised images, with named terms."""

    def __init__(self, vgg: VGG19, weights: LossWeights | None = None) -> None:
        super().__init__()
        self.vgg = vgg
        self.weights = weights or LossWeights()

    def features(self, images: Tensor) -> dict[str, Tensor]:
        return self.vgg(images, self.weights.layers)

    def style_targets(self, style_images: Tensor) -> dict[str, Tensor]:
        with torch.no_grad():
            feats = self.vgg(style_images, list(self.weights.style))
        return {k: gram_matrix(v) for k, v in feats.items()}

    def forward(self, stylized: Tensor, content: Tensor, style_grams: dict[str, Tensor]) -> dict[str, Tensor]:
        with torch.no_grad():
            content_targets = self.vgg(content, list(self.weights.content))
        feats = self.features(stylized)
        terms = {
            "content": content_loss(feats, content_targets, self.weights.content).to(stylized.device),
            "style": style_loss(feats, style_grams, self.weights.style).to(stylized.device),
            "tv": self.weights.total_variation * total_variation(stylized),
        }
        terms["total"] = terms["content"] + terms["style"] + terms["tv"]
        return terms
