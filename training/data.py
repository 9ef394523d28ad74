"""Training data: folders of photos and paintings, Magenta's style augmentation, resumable order.

Every random choice for sample ``i`` of epoch ``e`` comes from a generator seeded with
(seed, e, i), and the order of an epoch from (seed, e); so a run is reproducible whatever
the number of DataLoader workers, and a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps, UnidentifiedImageError
from torch.utils.data import Dataset, Sampler

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}


class DataError(Exception):
    """Raised when a data folder has no usable image."""


def scan_images(folder: Path) -> tuple[list[Path], list[Path]]:
    """(readable, skipped): every image file below ``folder`` whose header Pillow can read."""
    if not folder.is_dir():
        raise DataError(f"image folder not found: {folder}")
    good, bad = [], []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
        try:
            with Image.open(path):  # parses the header only: cheap even for large corpora
                good.append(path)
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            log.warning("skipping unreadable image %s: %s", path, exc)
            bad.append(path)
    if not good:
        raise DataError(f"no readable images below {folder} ({len(bad)} skipped)")
    return good, bad


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, index])


def load_rgb(path: Path) -> Image.Image:
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        if im.mode in ("RGBA", "LA", "P"):
            im = im.convert("RGBA")
            background = Image.new("RGBA", im.size, (255, 255, 255, 255))
            return Image.alpha_composite(background, im).convert("RGB")
        return im.convert("RGB")


def to_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 255.0)


def resize_shorter(image: Image.Image, side: int) -> Image.Image:
    w, h = image.size
    scale = side / min(w, h)
    return image.resize((max(side, round(w * scale)), max(side, round(h * scale))), Image.BICUBIC)


def random_crop(image: Image.Image, size: int, rng: np.random.Generator) -> Image.Image:
    w, h = image.size
    left, top = int(rng.integers(0, w - size + 1)), int(rng.integers(0, h - size + 1))
    return image.crop((left, top, left + size, top + size))


def shift_hue(image: Image.Image, delta: float) -> Image.Image:
    hsv = np.asarray(image.convert("HSV"), dtype=np.int16).copy()
    hsv[..., 0] = (hsv[..., 0] + round(delta * 255)) % 256
    return Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB")


@dataclass(frozen=True)
class Augment:
    """Magenta's style augmentation (arbitrary_image_stylization training)."""

    brightness: float = 0.8  # add U(-b, b) to [0,1] pixels
    saturation: tuple[float, float] = (0.5, 1.5)
    hue: float = 0.2  # shift by U(-h, h) of the colour circle
    flips: bool = True  # left-right and up-down
    resize: tuple[float, float] = (258 / 256, 456 / 256)  # shorter side, relative to the crop

    def __call__(self, image: Image.Image, size: int, rng: np.random.Generator) -> torch.Tensor:
        lo, hi = self.resize
        image = random_crop(resize_shorter(image, round(size * rng.uniform(lo, hi))), size, rng)
        if self.flips and rng.random() < 0.5:
            image = ImageOps.mirror(image)
        if self.flips and rng.random() < 0.5:
            image = ImageOps.flip(image)
        image = ImageEnhance.Color(image).enhance(rng.uniform(*self.saturation))
        if self.hue:
            image = shift_hue(image, rng.uniform(-self.hue, self.hue))
        x = to_tensor(image) + float(rng.uniform(-self.brightness, self.brightness))
        return x.clamp(0.0, 1.0)


def content_crop(image: Image.Image, size: int, rng: np.random.Generator) -> torch.Tensor:
    """Photos: shorter side to the crop size (up to 1.25x), random crop, random mirror."""
    image = random_crop(resize_shorter(image, round(size * rng.uniform(1.0, 1.25))), size, rng)
    return to_tensor(ImageOps.mirror(image) if rng.random() < 0.5 else image)


class ImageFolder(Dataset[tuple[torch.Tensor, int]]):
    """Images below a folder, cropped to ``size``.

    Keys are (epoch, index) pairs from ``ResumableSampler``; items are (image [3,S,S], index).

    An image that passes the header scan but fails to decode is replaced by the next one,
    with a warning, so one bad file never stops a long run.
    """

    def __init__(self, folder: Path, size: int, seed: int, augment: Augment | None = None) -> None:
        self.paths, self.skipped = scan_images(folder)
        self.size, self.seed, self.augment = size, seed, augment

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        epoch, index = key
        for attempt in range(len(self.paths)):
            i = (index + attempt) % len(self.paths)
            try:
                image = load_rgb(self.paths[i])
            except (OSError, ValueError) as exc:
                log.warning("skipping image that fails to decode %s: %s", self.paths[i], exc)
                continue
            rng = sample_rng(self.seed, epoch, i)
            crop = self.augment(image, self.size, rng) if self.augment else content_crop(image, self.size, rng)
            return crop, i
        raise DataError(f"no image below the folder of {self.paths[0]} decodes")


class ResumableSampler(Sampler[tuple[int, int]]):
    """An endless shuffled order of (epoch, index) keys, split across ranks, startable anywhere.

    Position p (in samples drawn by all ranks together) maps to epoch p // n and to the
    epoch's permutation drawn from (seed, epoch): resuming at step k needs only k.
    """

    def __init__(self, size: int, seed: int, rank: int = 0, world: int = 1, start: int = 0) -> None:
        self.size, self.seed, self.rank, self.world, self.start = size, seed, rank, world, start

    def __iter__(self) -> Iterator[tuple[int, int]]:
        position, epoch, order = self.start + self.rank, -1, np.empty(0, dtype=np.int64)
        while True:
            current, offset = divmod(position, self.size)
            if current != epoch:
                epoch, order = current, np.random.default_rng([self.seed, current]).permutation(self.size)
            yield epoch, int(order[offset])
            position += self.world

    def __len__(self) -> int:  # endless; DataLoader only needs a number for its repr
        return 2**62
