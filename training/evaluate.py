"""Compare style transfer models on the same content x style pairs; prints JSON.

    python -m training.evaluate --content photos/ --style paintings/ --size 256 \\
        --checkpoint runs/ten/checkpoint.pt --model-dir models/magenta-mobile/1 --gatys 100 --gatys 500

For every model and pair it measures the training recipe's content loss and style loss
(training.losses, VGG-19) of the output against the pair, and the SSIM of the output's
luminance against the content's (how much structure survives). Lower losses and higher
SSIM are better; the figures are means over the pairs the model can serve (an N-style
model serves the styles it was trained on, matched by file name).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from training import checkpoint
from training.checkpoint import StyleModel
from training.data import load_rgb, scan_images, to_tensor
from training.gatys import Gatys, GatysConfig, fit
from training.losses import PerceptualLoss
from training.networks.vgg import load_vgg19

STYLE_SIZE_DEFAULT = 256
# A stylizer maps (content [1,3,H,W], style [1,3,h,w], style name) to an image, or None if it cannot.
Stylize = Callable[[Tensor, Tensor, str], Tensor | None]


@dataclass(frozen=True)
class Pair:
    content: Path
    style: Path

    @property
    def label(self) -> str:
        return f"{self.content.stem}+{self.style.stem}"


def ssim(a: Tensor, b: Tensor, window: int = 11, sigma: float = 1.5) -> float:
    """Mean SSIM (Wang et al. 2004) of the luminance of two images [1,3,H,W] in [0,1]."""
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=a.dtype).view(1, 3, 1, 1)
    x, y = (a * weights).sum(1, keepdim=True), (b * weights).sum(1, keepdim=True)
    coords = torch.arange(window, dtype=a.dtype) - window // 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = (g / g.sum()).view(1, 1, 1, -1)

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(F.conv2d(t, g), g.transpose(2, 3))

    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(s.mean())


def square_style(style: Tensor, size: int) -> Tensor:
    """Centre crop to a square, resize to the predictor's style size (as the service does)."""
    h, w = style.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = style[..., top : top + side, left : left + side]
    return F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def checkpoint_stylizer(model: StyleModel, device: torch.device | None = None) -> Stylize:
    """Runs on ``device`` (the GPU when there is one); results come back on the CPU for scoring."""
    device = device or default_device()
    model.to(device).eval()

    def run(content: Tensor, style: Tensor, name: str) -> Tensor | None:
        with torch.no_grad():
            if model.predictor is not None:
                embedding = model.predictor(square_style(style, model.predictor.config.style_size).to(device))
            elif name in model.presets:
                embedding = F.one_hot(torch.tensor([model.presets.index(name)]), len(model.presets)).float()
            else:
                return None
            return model.transformer(content.to(device), embedding.to(device)).cpu()

    return run


def onnx_stylizer(folder: Path) -> Stylize:
    import onnxruntime as ort

    from onnx_export.manifest import read_manifest

    manifest = read_manifest(folder)
    sessions = {
        role: ort.InferenceSession(str(folder / f.path), providers=["CPUExecutionProvider"])
        for role, f in manifest.files.items()
    }
    names = [p.name for p in manifest.presets]

    def run(content: Tensor, style: Tensor, name: str) -> Tensor | None:
        if manifest.kind == "arbitrary":
            styled = square_style(style, manifest.style_size or STYLE_SIZE_DEFAULT).numpy()
            (embedding,) = sessions["predictor"].run(["embedding"], {"style_image": styled})
        elif name in names:
            embedding = np.eye(len(names), dtype=np.float32)[[names.index(name)]]
        else:
            return None
        h, w = content.shape[-2:]
        m = manifest.size_multiple
        padded = F.pad(content, (0, (-w) % m, 0, (-h) % m), mode="reflect").numpy()
        (out,) = sessions["transformer"].run(["stylized"], {"content_image": padded, "embedding": embedding})
        return torch.from_numpy(out[..., :h, :w])

    return run


def gatys_stylizer(steps: int, size: int, device: torch.device | None = None) -> Stylize:
    gatys = Gatys(GatysConfig(steps=steps, scales=(size,), style_size=size), device=device or default_device())
    return lambda content, style, name: gatys.stylize(content, style).cpu()


def evaluate(stylizers: dict[str, Stylize], pairs: list[Pair], size: int) -> dict[str, object]:
    loss = PerceptualLoss(load_vgg19("avg"))
    results: dict[str, object] = {}
    images = {p: fit(to_tensor(load_rgb(p))[None], size) for pair in pairs for p in (pair.content, pair.style)}
    for label, stylize in stylizers.items():
        rows = []
        for pair in pairs:
            content, style = images[pair.content], images[pair.style]
            started = time.perf_counter()
            out = stylize(content, style, pair.style.stem)
            if out is None:
                continue
            seconds = time.perf_counter() - started
            with torch.no_grad():
                terms = loss(out, content, loss.style_targets(style))
            rows.append(
                {
                    "pair": pair.label,
                    "content_loss": float(terms["content"]),
                    "style_loss": float(terms["style"]),
                    "ssim": ssim(out, content),
                    "seconds": seconds,
                }
            )
        results[label] = {
            "pairs": len(rows),
            **{
                k: float(np.mean([r[k] for r in rows])) if rows else None
                for k in ("content_loss", "style_loss", "ssim", "seconds")
            },
            "per_pair": rows,
        }
    return {"size": size, "pairs": [p.label for p in pairs], "models": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--content", type=Path, required=True, help="folder of content photos")
    parser.add_argument("--style", type=Path, required=True, help="folder of style images (or one image)")
    parser.add_argument("--size", type=int, default=256, help="longest side of the content images")
    parser.add_argument("--max-pairs", type=int, default=0, help="use at most this many pairs (0: all)")
    parser.add_argument("--checkpoint", type=Path, action="append", default=[], help="a training checkpoint")
    parser.add_argument("--model-dir", type=Path, action="append", default=[], help="an exported model folder")
    parser.add_argument("--gatys", type=int, action="append", default=[], help="Gatys at N iterations")
    parser.add_argument("--summary", action="store_true", help="leave out the per-pair rows")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    styles = [args.style] if args.style.is_file() else scan_images(args.style)[0]
    pairs = [Pair(c, s) for c in scan_images(args.content)[0] for s in styles]
    pairs = pairs[: args.max_pairs] if args.max_pairs else pairs
    stylizers: dict[str, Stylize] = {}
    for path in args.checkpoint:
        stylizers[f"checkpoint:{path}"] = checkpoint_stylizer(checkpoint.load(path))
    for folder in args.model_dir:
        stylizers[f"onnx:{folder}"] = onnx_stylizer(folder)
    for steps in args.gatys:
        stylizers[f"gatys:{steps}"] = gatys_stylizer(steps, args.size)
    if not stylizers:
        parser.error("name at least one model: --checkpoint, --model-dir or --gatys")
    report = evaluate(stylizers, pairs, args.size)
    if args.summary:
        for entry in report["models"].values():  # type: ignore[union-attr]
            entry.pop("per_pair")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
