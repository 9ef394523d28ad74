"""Self-describing model checkpoints: the file carries the configs needed to rebuild the networks.

A ``StyleModel`` is what the exporter consumes, whether it came from a training run or from
imported pretrained weights:

    kind "arbitrary": predictor (style image -> embedding) + transformer (content, embedding -> image)
    kind "nstyle":    transformer only; the embedding is a convex weight vector over its styles

Checkpoint layout (``torch.save`` of a plain dict, loadable with ``weights_only=True``):
    {"format": "atelier-model/1", "kind", "transformer": {"config", "state_dict"},
     "predictor": {"config", "state_dict"} | None, "presets": [names], "provenance": {...},
     "training": {...}  # optional: step, optimizer state, RNG states (see training.train)}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from training.errors import WeightFileError
from training.networks.predictor import PredictorConfig, StylePredictor
from training.networks.transformer import StyleTransformer, TransformerConfig

FORMAT = "atelier-model/1"


@dataclass
class StyleModel:
    kind: Literal["arbitrary", "nstyle"]
    transformer: StyleTransformer
    predictor: StylePredictor | None = None
    presets: list[str] = field(default_factory=list)
    provenance: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.kind == "arbitrary") != (self.predictor is not None):
            raise ValueError("an arbitrary model has a predictor and an nstyle model has none")
        if self.kind == "nstyle" and self.presets and len(self.presets) != self.transformer.config.embedding_size:
            raise ValueError(f"{len(self.presets)} preset names for {self.transformer.config.embedding_size} styles")

    def eval(self) -> StyleModel:
        self.transformer.eval()
        if self.predictor is not None:
            self.predictor.eval()
        return self

    def to(self, device: torch.device | str) -> StyleModel:
        self.transformer.to(device)
        if self.predictor is not None:
            self.predictor.to(device)
        return self


def to_dict(model: StyleModel, training: dict[str, Any] | None = None) -> dict[str, Any]:
    predictor = model.predictor
    return {
        "format": FORMAT,
        "kind": model.kind,
        "transformer": {"config": model.transformer.config.to_dict(), "state_dict": model.transformer.state_dict()},
        "predictor": None
        if predictor is None
        else {"config": predictor.config.to_dict(), "state_dict": predictor.state_dict()},
        "presets": list(model.presets),
        "provenance": dict(model.provenance),
        "training": training or {},
    }


def save(model: StyleModel, path: Path, training: dict[str, Any] | None = None) -> None:
    """Write atomically: a crash mid-save never leaves a truncated checkpoint behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(to_dict(model, training), tmp)
    tmp.replace(path)


def from_dict(data: dict[str, Any], label: str = "checkpoint") -> StyleModel:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise WeightFileError(f"{label} is not an Atelier model checkpoint (format {FORMAT})")
    tcfg = data["transformer"]["config"]
    transformer = StyleTransformer(
        TransformerConfig(**{**tcfg, "contract": tuple(tcfg["contract"]), "expand": tuple(tcfg["expand"])})
    )
    transformer.load_state_dict(data["transformer"]["state_dict"])
    predictor = None
    if data["predictor"] is not None:
        predictor = StylePredictor(PredictorConfig(**data["predictor"]["config"]))
        predictor.load_state_dict(data["predictor"]["state_dict"])
    return StyleModel(data["kind"], transformer, predictor, list(data["presets"]), dict(data["provenance"])).eval()


def read(path: Path) -> dict[str, Any]:
    """The raw checkpoint dict (with its ``training`` state), or a WeightFileError naming the file."""
    if not path.is_file():
        raise WeightFileError(f"checkpoint missing: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for truncated or foreign files
        raise WeightFileError(f"checkpoint {path} is unreadable: {exc}") from None


def load(path: Path) -> StyleModel:
    return from_dict(read(path), str(path))
