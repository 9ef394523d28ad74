"""Calibration of the default brush and of the upsampling: variants against the peer at one output size.

    .venv/bin/python -m bench.brush_calibration [--size 1024] [--scales 2 2.5 3] [--gains 1 1.5 2]
        [--out bench/results/brush-calibration.json]

On the README's held-out pairs (as bench/brush.py), for every stroke scale s: the network's output at
size/s (the service at stroke_scale 1 and max_side size/s), brought to the output size by the guided
upsampling of service/upsampling.py with each detail gain and each base upsample of the strokes
(``bil``: bilinear, ``lan``: Lanczos), named ``s<s>_g<gain>_<base>``; ``s<s>_service`` is the service's
own output at that stroke scale, and ``peer`` the peer's. Scored as bench/brush.py scores them; prints
each contender's content and style loss over the peer's, SSIM and edge energy (stderr), and the JSON.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from bench.brush import Ours, pairs, score
from bench.common import emit, environment
from bench.peer import peer_python, run_peer
from service import imaging, upsampling
from tests.helpers.images import square_jpeg


def png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def upsample(low: np.ndarray, guide_low: np.ndarray, photo: np.ndarray, gain: float, base: str) -> np.ndarray:
    """The guided upsampling with a given detail gain and base upsample, in one piece."""
    out_h, out_w = photo.shape[:2]
    guide = upsampling.luminance(guide_low)
    slope = upsampling.coefficients(guide, low)
    rows = slice(0, out_h)
    detail = upsampling.luminance(photo) - upsampling.bilinear_rows(guide, out_h, out_w, rows)
    if base == "bil":
        out = upsampling.bilinear_rows(low, out_h, out_w, rows)
    else:
        resized = Image.fromarray(imaging.to_uint8(low)).resize((out_w, out_h), Image.Resampling.LANCZOS)
        out = np.asarray(resized, np.float32) / 255.0
    out = out + gain * upsampling.bilinear_rows(slope, out_h, out_w, rows) * detail[:, :, None]
    return imaging.to_uint8(np.clip(out, 0.0, 1.0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--scales", type=float, nargs="+", default=[2.0, 2.5, 3.0])
    parser.add_argument("--gains", type=float, nargs="+", default=[1.0, 1.5, 2.0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    size = args.size
    with tempfile.TemporaryDirectory(prefix="atelier-calibration-") as tmp:
        work = Path(tmp)
        ours = Ours(work)
        photos, outputs, styles, calls = {}, {}, {}, []
        try:
            for content, style in pairs(args.pairs):
                label = f"{content.stem}+{style.stem}"
                path = work / f"{content.stem}-{size}.jpg"
                path.write_bytes(square_jpeg(content, size))
                photos[label], styles[label] = path.read_bytes(), style
                photo = imaging.decode(photos[label], max_pixels=10**9, min_side=1, what="content")
                outputs[label] = {}
                for s in args.scales:
                    net = round(size / s)
                    low_png, _ = ours.stylize(photos[label], style.read_bytes(), net, 1.0)
                    low = imaging.decode(low_png, max_pixels=10**9, min_side=1, what="low").astype(np.float32) / 255
                    guide_low = imaging.resize(photo, (net, net))
                    for gain in args.gains:
                        for base in ("bil", "lan"):
                            outputs[label][f"s{s:g}_g{gain:g}_{base}"] = png(
                                upsample(low, guide_low, photo, gain, base)
                            )
                    outputs[label][f"s{s:g}_service"] = ours.stylize(photos[label], style.read_bytes(), size, s)[0]
                save = work / f"peer-{label}.png"
                calls.append({"label": "q", "content": str(path), "style": str(style), "save": str(save)})
        finally:
            ours.close()
        plan = {"max_size": size, "warmup": [calls[0]["content"], calls[0]["style"]], "calls": calls}
        run_peer(peer_python(), plan, work)
        for call, label in zip(calls, photos, strict=True):
            outputs[label]["peer"] = Path(call["save"]).read_bytes()
        scores = score(outputs, photos, styles)
    peer = scores["peer"]
    versus = {
        name: {k: round(row[k] / peer[k], 3) for k in ("content_loss", "style_loss")} for name, row in scores.items()
    }
    for name in sorted(scores):
        row = scores[name]
        print(
            f"{name:18s} content {versus[name]['content_loss']:.3f}x style {versus[name]['style_loss']:.3f}x "
            f"ssim {row['ssim']:.3f} edge {row['edge_energy']:.2f}",
            file=sys.stderr,
        )
    report = {
        "environment": environment(),
        "settings": vars(args) | {"out": str(args.out)},
        "pairs": list(photos),
        "contenders": scores,
        "vs_peer": versus,
    }
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
