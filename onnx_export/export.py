"""Export a StyleModel to ONNX files with dynamic batch, height and width.

Uses the legacy TorchScript exporter (``dynamo=False``), which handles our networks in
about a second and needs no onnxscript. The IR version is set explicitly: the pinned
onnxruntime-gpu 1.31 accepts at most IR 13, and a newer ``onnx`` may write a higher one.

Tensor names are the contract in onnx_export/manifest.py.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch
from torch import Tensor, nn

from onnx_export.manifest import TensorSpec
from onnx_export.polyphase import PolyphaseTransformer
from training.networks.predictor import StylePredictor
from training.networks.transformer import SIZE_MULTIPLE, StyleTransformer

OPSET = 17
IR_VERSION = 8  # the lowest IR that carries opset 17; every onnxruntime since 1.13 reads it
GRAPH_FORM = "polyphase"  # recorded in manifests; the default models are rebuilt when it changes
FORMS = ["whole", "statistics", "given_statistics"]  # likewise, when a default model lacks one


def _export(
    module: nn.Module,
    args: tuple[Tensor, ...],
    path: Path,
    inputs: list[str],
    outputs: list[str],
    dynamic_axes: dict[str, dict[int, str]],
) -> None:
    with warnings.catch_warnings():
        # Shape arithmetic in forward() is traced as constants; that is intended (sizes arrive padded).
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            module.eval(),
            args,
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=dynamic_axes,
            do_constant_folding=True,
        )
    model = onnx.load(str(path))
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def export_transformer(transformer: StyleTransformer, path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """content_image [N,3,H,W], embedding [N,E] -> stylized [N,3,H,W], H and W multiples of 4 (the
    caller pads and crops), in the polyphase form (onnx_export/polyphase.py)."""
    e = transformer.config.embedding_size
    side = 16 * SIZE_MULTIPLE
    args = (torch.rand(2, 3, side, side + SIZE_MULTIPLE), torch.rand(2, e))
    axes = {
        "content_image": {0: "batch", 2: "height", 3: "width"},
        "embedding": {0: "batch"},
        "stylized": {0: "batch", 2: "height", 3: "width"},
    }
    _export(PolyphaseTransformer(transformer.eval()), args, path, ["content_image", "embedding"], ["stylized"], axes)
    return (
        [
            TensorSpec(name="content_image", shape=["batch", 3, "height", "width"]),
            TensorSpec(name="embedding", shape=["batch", e]),
        ],
        [TensorSpec(name="stylized", shape=["batch", 3, "height", "width"])],
    )


def export_predictor(predictor: StylePredictor, path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """style_image [N,3,S,S] -> embedding [N,E]. Exported at S = the style size."""
    s, e = predictor.config.style_size, predictor.config.embedding_size
    axes = {"style_image": {0: "batch", 2: "height", 3: "width"}, "embedding": {0: "batch"}}
    _export(predictor, (torch.rand(2, 3, s, s),), path, ["style_image"], ["embedding"], axes)
    return (
        [TensorSpec(name="style_image", shape=["batch", 3, s, s])],
        [TensorSpec(name="embedding", shape=["batch", e])],
    )
