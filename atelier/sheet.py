"""A contact sheet: the photo and each preset's rendering of it, in a labelled grid."""

from __future__ import annotations

import io
import math

from PIL import Image, ImageDraw, ImageFont

LABEL_PX = 14
PAD = 6
BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)


def contact_sheet(
    photo: bytes, tiles: list[Image.Image], labels: list[str], tile: int, columns: int | None = None
) -> Image.Image:
    """``photo`` (first, labelled "original") and ``tiles`` with their ``labels``, ``tile`` px cells."""
    with Image.open(io.BytesIO(photo)) as opened:
        original = opened.convert("RGB")
    original.thumbnail((tile, tile), Image.Resampling.LANCZOS)
    images = [original, *tiles]
    names = ["original", *labels]
    columns = columns or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / columns)
    cell_w, cell_h = tile + PAD, tile + LABEL_PX + 2 * PAD
    sheet = Image.new("RGB", (columns * cell_w + PAD, rows * cell_h + PAD), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=LABEL_PX - 2)
    for i, (image, name) in enumerate(zip(images, names, strict=True)):
        x = PAD + (i % columns) * cell_w
        y = PAD + (i // columns) * cell_h
        sheet.paste(image, (x + (tile - image.width) // 2, y + (tile - image.height) // 2))
        draw.text((x, y + tile + PAD // 2), name, fill=INK, font=font)
    return sheet
