"""Pictures for docs/brush.md: a crop of a 2048 output at brush scales 1, 2, 4 and the default, next to
the peer's.

    .venv/bin/python -m bench.brush_pictures [--content tubingen.jpg] [--style starry_night.jpg]

Writes docs/images/brush-<name>.jpg (a 512x512 crop of each 2048 output, JPEG quality 85, plus the
photo's same crop; ``default`` is the request without stroke_scale) and bench/results/brush-losses.md:
the losses table of the full 2048 outputs,
measured as bench/brush.py measures them (training.losses at 2048 against the photo and the painting
at 512, SSIM to the photo, edge energy). Prints the table's rows as JSON.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
from pathlib import Path

from PIL import Image

from bench.brush import Ours, score
from bench.common import IMAGES, REPO
from bench.peer import peer_python, run_peer

OUT = REPO / "docs" / "images"
SIDE = 2048
CROP = 512
SCALES = (1.0, 2.0, 4.0)


def crop_jpeg(data: bytes, box: tuple[int, int, int, int], path: Path) -> None:
    with Image.open(io.BytesIO(data)) as image:
        image.convert("RGB").crop(box).save(path, format="JPEG", quality=85, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--content", default="tubingen.jpg")
    parser.add_argument("--style", default="starry_night.jpg")
    parser.add_argument("--left", type=float, default=0.35, help="crop's left edge, as a fraction of the width")
    parser.add_argument("--top", type=float, default=0.2, help="crop's top edge, as a fraction of the height")
    args = parser.parse_args(argv)
    content_path, style_path = IMAGES / "content" / args.content, IMAGES / "style" / args.style
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="atelier-pictures-") as tmp:
        work = Path(tmp)
        with Image.open(content_path) as image:
            photo_image = image.convert("RGB")
            scale = SIDE / max(photo_image.size)
            size = (round(photo_image.width * scale), round(photo_image.height * scale))
            photo_image = photo_image.resize(size, Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        photo_image.save(buffer, format="JPEG", quality=95)
        photo = buffer.getvalue()
        (work / "photo.jpg").write_bytes(photo)
        outputs: dict[str, bytes] = {}
        ours = Ours(work)
        try:
            for s in SCALES:
                outputs[f"scale_{s:g}"] = ours.stylize(photo, style_path.read_bytes(), SIDE, s)[0]
            outputs["default"], default_scale = ours.stylize(photo, style_path.read_bytes(), SIDE, None)
        finally:
            ours.close()
        peer_out = work / "peer.png"
        call = {"label": "q", "content": str(work / "photo.jpg"), "style": str(style_path), "save": str(peer_out)}
        run_peer(peer_python(), {"max_size": SIDE, "warmup": [call["content"], call["style"]], "calls": [call]}, work)
        outputs["peer"] = peer_out.read_bytes()
        left, top = round(args.left * size[0]), round(args.top * size[1])
        box = (left, top, left + CROP, top + CROP)
        crop_jpeg(photo, box, OUT / "brush-photo.jpg")
        for name, data in outputs.items():
            crop_jpeg(data, box, OUT / f"brush-{name.replace('_', '-')}.jpg")
        label = f"{content_path.stem}+{style_path.stem}"
        scores = score({label: outputs}, {label: photo}, {label: style_path})
    lines = [
        f"Measured by `python -m bench.brush_pictures` ({content_path.stem} with {style_path.stem}, "
        f"{size[0]}x{size[1]}):",
        "",
        "| output at 2048 | content loss | style loss | SSIM to photo | edge energy |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, row in scores.items():
        if name == "peer":
            title = "peer (384, upscaled)"
        elif name == "default":
            title = f"default (stroke_scale {default_scale:g})"
        else:
            title = f"stroke_scale {name.split('_')[1]}"
        lines.append(
            f"| {title} | {row['content_loss']:.3g} | {row['style_loss']:.3g} | {row['ssim']:.3f} | "
            f"{row['edge_energy']:.2f} |"
        )
    (REPO / "bench" / "results" / "brush-losses.md").write_text("\n".join(lines) + "\n")
    print(json.dumps(scores, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
