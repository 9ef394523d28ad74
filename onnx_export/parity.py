"""Parity of exported ONNX files against the PyTorch networks, on real images.

Export fails loudly when the fp32 ONNX Runtime output differs from the PyTorch network by
more than ``TOLERANCE`` (max absolute difference). The PyTorch reference runs in float64:
this network amplifies rounding (PyTorch's own fp32 output sits ~1e-4 from its float64
output on some images), so an fp32-vs-fp32 comparison would measure two sets of rounding
noise instead of whether the graph computes the same function. Images come from the shared corpus
(``$ATELIER_IMAGE_DIR``, default ``../shared/data/images`` beside the repository).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from PIL import Image

from training.checkpoint import StyleModel

TOLERANCE = 1e-4
IMAGE_DIR_ENV = "ATELIER_IMAGE_DIR"
DEFAULT_IMAGE_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "images"


class ParityError(Exception):
    """Raised when an exported file's outputs differ from PyTorch's beyond the tolerance."""


@dataclass(frozen=True)
class Case:
    batch: int
    height: int
    width: int

    @property
    def label(self) -> str:
        return f"b{self.batch}_{self.height}x{self.width}"


# Three sizes: square, non-square (640 wide, 480 high) and 1024 on a side; batch 4 at the first.
EXPORT_CASES = (Case(4, 256, 256), Case(1, 480, 640), Case(1, 1024, 1024))


def image_dir() -> Path:
    folder = Path(os.environ.get(IMAGE_DIR_ENV, DEFAULT_IMAGE_DIR))
    if not (folder / "content").is_dir() or not (folder / "style").is_dir():
        raise ParityError(f"image corpus not found at {folder} (set {IMAGE_DIR_ENV}); parity needs real images")
    return folder


def load_images(kind: str, count: int, height: int, width: int) -> np.ndarray:
    """``count`` images from the corpus folder ``kind`` as float32 [count,3,H,W] in [0,1]."""
    paths = sorted(p for p in (image_dir() / kind).iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    arrays = []
    for i in range(count):
        with Image.open(paths[i % len(paths)]) as im:
            rgb = im.convert("RGB").resize((width, height), Image.BILINEAR)
        arrays.append(np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1) / 255.0)
    return np.stack(arrays)


def session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def embeddings_for(model: StyleModel, batch: int) -> np.ndarray:
    """Real style embeddings: predictor outputs on corpus paintings, or preset one-hots and a blend."""
    size = model.transformer.config.embedding_size
    if model.predictor is None:
        weights = np.zeros((batch, size), np.float32)
        for i in range(batch):
            weights[i, (7 * i) % size] += 0.5 if i % 2 else 1.0
            weights[i, (7 * i + 3) % size] += 0.5 if i % 2 else 0.0
        return weights
    s = model.predictor.config.style_size
    with torch.no_grad():
        return model.predictor(torch.from_numpy(load_images("style", batch, s, s))).numpy()


def reference(module: torch.nn.Module, *inputs: np.ndarray) -> np.ndarray:
    """The module's output computed in float64 on a copy (the caller's module stays fp32).

    One sample at a time: every network here is per-sample (instance norm, eval-mode batch norm), and
    a float64 batch at the largest check size would multiply the peak memory by the batch size.
    """
    exact = copy.deepcopy(module).double().eval()
    with torch.no_grad():
        rows = [exact(*(torch.from_numpy(x[i : i + 1]).double() for x in inputs)) for i in range(len(inputs[0]))]
    return torch.cat(rows).numpy()


def max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())


def check_transformer(model: StyleModel, path: Path, cases: tuple[Case, ...] = EXPORT_CASES) -> dict[str, float]:
    sess, report = session(path), {}
    for case in cases:
        content = load_images("content", case.batch, case.height, case.width)
        embedding = embeddings_for(model, case.batch)
        (onnx_out,) = sess.run(["stylized"], {"content_image": content, "embedding": embedding})
        torch_out = reference(model.transformer, content, embedding)
        report[f"transformer_{case.label}"] = diff = max_diff(onnx_out, torch_out)
        if onnx_out.shape != torch_out.shape or diff > TOLERANCE:
            raise ParityError(
                f"{path.name} at {case.label}: max abs diff {diff:.3g} > {TOLERANCE} "
                f"(shapes {onnx_out.shape} vs {torch_out.shape})"
            )
    return report


def check_predictor(model: StyleModel, path: Path, batch: int = 4) -> dict[str, float]:
    assert model.predictor is not None
    s = model.predictor.config.style_size
    style = load_images("style", batch, s, s)
    (onnx_out,) = session(path).run(["embedding"], {"style_image": style})
    torch_out = reference(model.predictor, style)
    diff = max_diff(onnx_out, torch_out)
    if diff > TOLERANCE:
        raise ParityError(f"{path.name} at b{batch}_{s}x{s}: max abs diff {diff:.3g} > {TOLERANCE}")
    return {f"predictor_b{batch}_{s}x{s}": diff}
