"""Optimisation-based style transfer (Gatys et al. 2015): optimise the image itself.

Slow (hundreds of VGG passes per image) but needs no trained network, so it is both a
user feature and the quality reference the feed-forward models are compared against
(see training.evaluate). The loss is the training recipe's (training.losses), so the
numbers are comparable.

    python -m training.gatys photo.jpg painting.jpg -o out.png --steps 300 --size 512
    python -m training.gatys photo.jpg painting.jpg -o out.png --optimizer adam --scales 256,512
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from training.data import load_rgb, to_tensor
from training.losses import LossWeights, PerceptualLoss
from training.networks.vgg import load_vgg19

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GatysConfig:
    steps: int = 300  # iterations per scale (L-BFGS may evaluate the loss up to 1.25x as often)
    optimizer: Literal["lbfgs", "adam"] = "lbfgs"
    lr: float = 0.02  # Adam only; L-BFGS uses a line search
    scales: tuple[int, ...] = (512,)  # longest side at each scale, coarse to fine
    style_size: int = 512
    init: Literal["content", "noise"] = "content"
    preserve_color: bool = False
    style_weight: float = 0.5e-3 * 20  # stronger than feed-forward training: one image, no trade-off
    seed: int = 0


def rgb_to_yuv(x: Tensor) -> Tensor:
    m = torch.tensor(
        [[0.299, 0.587, 0.114], [-0.14713, -0.28886, 0.436], [0.615, -0.51499, -0.10001]],
        dtype=x.dtype,
        device=x.device,
    )
    return torch.einsum("ij,njhw->nihw", m, x)


def yuv_to_rgb(x: Tensor) -> Tensor:
    m = torch.tensor(
        [[1.0, 0.0, 1.13983], [1.0, -0.39465, -0.58060], [1.0, 2.03211, 0.0]], dtype=x.dtype, device=x.device
    )
    return torch.einsum("ij,njhw->nihw", m, x)


def keep_colors(stylized: Tensor, content: Tensor) -> Tensor:
    """Luminance from the stylised image, chroma from the content (Gatys et al. 2016)."""
    y = rgb_to_yuv(stylized)[:, :1]
    uv = rgb_to_yuv(content)[:, 1:]
    return yuv_to_rgb(torch.cat([y, uv], dim=1)).clamp(0, 1)


def fit(image: Tensor, longest: int) -> Tensor:
    h, w = image.shape[-2:]
    scale = longest / max(h, w)
    return F.interpolate(
        image,
        size=(max(1, round(h * scale)), max(1, round(w * scale))),
        mode="bilinear",
        align_corners=False,
        antialias=True,
    )


class Gatys:
    """Stylise images by optimising pixels against the perceptual loss."""

    def __init__(self, config: GatysConfig | None = None, device: torch.device | None = None) -> None:
        self.config = config or GatysConfig()
        self.device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
        weights = LossWeights()
        weights = LossWeights(
            content=weights.content,
            style={k: self.config.style_weight for k in weights.style},
            total_variation=weights.total_variation,
        )
        self.loss = PerceptualLoss(load_vgg19("avg").to(self.device), weights)

    def losses(self, image: Tensor, content: Tensor, style: Tensor) -> dict[str, float]:
        """The loss terms of ``image`` (already at the content size) for reporting."""
        with torch.no_grad():
            terms = self.loss(
                image.to(self.device), content.to(self.device), self.loss.style_targets(style.to(self.device))
            )
        return {k: float(v) for k, v in terms.items()}

    def stylize(
        self, content: Tensor, style: Tensor, on_step: Callable[[int, dict[str, float]], None] | None = None
    ) -> Tensor:
        """content [1,3,H,W], style [1,3,h,w] in [0,1] -> stylised [1,3,H',W'] at the last scale."""
        config = self.config
        generator = torch.Generator().manual_seed(config.seed)
        grams = self.loss.style_targets(fit(style, config.style_size).to(self.device))
        image: Tensor | None = None
        for scale in config.scales:
            target = fit(content, scale).to(self.device)
            if image is None:
                image = (
                    target.clone()
                    if config.init == "content"
                    else torch.rand(target.shape, generator=generator).to(self.device)
                )
            else:
                image = F.interpolate(image, size=target.shape[-2:], mode="bilinear", align_corners=False)
            image = self._optimise(image.detach(), target, grams, on_step)
        assert image is not None
        return keep_colors(image, fit(content, config.scales[-1]).to(self.device)) if config.preserve_color else image

    def _optimise(
        self,
        image: Tensor,
        content: Tensor,
        grams: dict[str, Tensor],
        on_step: Callable[[int, dict[str, float]], None] | None,
    ) -> Tensor:
        """L-BFGS runs its iterations in one call (its curvature history must not restart), with
        the image unconstrained as in Gatys et al. and clamped at the end; Adam clamps every step."""
        image.requires_grad_(True)
        config = self.config
        evaluations = 0

        def closure() -> Tensor:
            nonlocal evaluations
            optimizer.zero_grad()
            terms = self.loss(image, content, grams)
            terms["total"].backward()
            evaluations += 1
            if on_step is not None:
                on_step(evaluations, {k: float(v.detach()) for k, v in terms.items()})
            return terms["total"]

        if config.optimizer == "lbfgs":
            optimizer: torch.optim.Optimizer = torch.optim.LBFGS(
                [image],
                max_iter=config.steps,
                max_eval=round(config.steps * 1.25),
                history_size=50,
                tolerance_grad=0.0,
                tolerance_change=0.0,
                line_search_fn="strong_wolfe",
            )
            optimizer.step(closure)
        else:
            optimizer = torch.optim.Adam([image], lr=config.lr)
            for _ in range(config.steps):
                optimizer.step(closure)
                with torch.no_grad():
                    image.clamp_(0.0, 1.0)
        return image.detach().clamp(0.0, 1.0)


def save_image(image: Tensor, path: Path) -> None:
    array = image[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    Image.fromarray(array).save(path)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(
        prog="python -m training.gatys", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("content", type=Path)
    parser.add_argument("style", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=GatysConfig.steps, help="iterations per scale")
    parser.add_argument("--optimizer", choices=["lbfgs", "adam"], default=GatysConfig.optimizer)
    parser.add_argument("--lr", type=float, default=GatysConfig.lr)
    parser.add_argument("--size", type=int, default=None, help="longest side of the output (one scale)")
    parser.add_argument("--scales", default=None, help="comma list of longest sides, coarse to fine")
    parser.add_argument("--style-weight", type=float, default=GatysConfig.style_weight)
    parser.add_argument("--init", choices=["content", "noise"], default=GatysConfig.init)
    parser.add_argument("--preserve-color", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    scales = tuple(int(s) for s in args.scales.split(",")) if args.scales else (args.size or 512,)
    config = GatysConfig(
        steps=args.steps,
        optimizer=args.optimizer,
        lr=args.lr,
        scales=scales,
        style_weight=args.style_weight,
        init=args.init,
        preserve_color=args.preserve_color,
        seed=args.seed,
    )
    content, style = to_tensor(load_rgb(args.content))[None], to_tensor(load_rgb(args.style))[None]
    from tqdm import tqdm

    gatys = Gatys(config)
    with tqdm(unit="eval", dynamic_ncols=True) as bar:

        def report(evaluation: int, terms: dict[str, float]) -> None:
            bar.update(1)
            bar.set_postfix(style=f"{terms['style']:.3g}", content=f"{terms['content']:.3g}")

        result = gatys.stylize(content, style, on_step=report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    save_image(result, args.output)
    print(json.dumps({"output": str(args.output), "size": list(result.shape[-2:]), "steps": config.steps}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
