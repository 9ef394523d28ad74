"""Style prediction network (Ghiasi et al. 2017): style image -> style embedding.

A pretrained backbone (Inception-v3 to Mixed_6e in the paper, MobileNet-v2 in Magenta's
mobile model), a spatial mean, and a 1x1 conv to the embedding ("bottleneck", 100-d).
The per-layer gamma/beta heads that read the embedding live with the transformer
(``transformer.StyleHeads``), so the exported transformer takes the embedding itself:
caching, blending and identity interpolation all work on that one small vector.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from torch import Tensor, nn

from training.networks.inception_v3 import InceptionV3Features
from training.networks.mobilenet_v2 import MobileNetV2Features

STYLE_SIZE = 256  # style images are resized to a 256x256 square before prediction


@dataclass(frozen=True)
class PredictorConfig:
    backbone: Literal["mobilenet_v2", "inception_v3"] = "inception_v3"
    embedding_size: int = 100
    style_size: int = STYLE_SIZE

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def build_backbone(name: str) -> nn.Module:
    if name == "mobilenet_v2":
        return MobileNetV2Features()
    if name == "inception_v3":
        return InceptionV3Features()
    raise ValueError(f"unknown predictor backbone {name!r}; use mobilenet_v2 or inception_v3")


class StylePredictor(nn.Module):
    """RGB style images in [0, 1], [N,3,S,S] -> embeddings [N,E]."""

    def __init__(self, config: PredictorConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = build_backbone(config.backbone)
        self.bottleneck = nn.Conv2d(self.backbone.out_channels, config.embedding_size, 1)

    def forward(self, style: Tensor) -> Tensor:
        features = self.backbone(style).mean(dim=(2, 3), keepdim=True)  # [N,C,1,1]
        return self.bottleneck(features).flatten(1)  # [N,E]
