"""What the Python API accepts and returns: image sources, style choices, stylised results."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from PIL import Image

from atelier.errors import InputError, ProblemError
from service.brush import MAX_STROKE_SCALE, MIN_STROKE_SCALE

# A path, encoded bytes, a PIL image or an open binary file.
ImageSource = str | os.PathLike | bytes | Image.Image | BinaryIO
OutputFormat = Literal["png", "jpeg", "webp"]
FORMATS: tuple[OutputFormat, ...] = ("png", "jpeg", "webp")
SUFFIXES: dict[str, OutputFormat] = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}
# What a folder walk picks up: the formats the service decodes.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})


def image_bytes(source: ImageSource, what: str = "image") -> bytes:
    """The encoded bytes of ``source``; a PIL image is encoded losslessly as PNG. Decoding (and its
    errors) is the pipeline's, so in process and over HTTP refuse the same bytes the same way."""
    if isinstance(source, bytes):
        return source
    if isinstance(source, Image.Image):
        buffer = io.BytesIO()
        source.save(buffer, format="PNG")
        return buffer.getvalue()
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise InputError(f"{what} {str(path)!r} does not exist") from None
        except IsADirectoryError:
            raise InputError(f"{what} {str(path)!r} is a folder, not an image file") from None
        except OSError as exc:
            raise InputError(f"cannot read {what} {str(path)!r}: {exc.strerror or exc}") from None
    if hasattr(source, "read"):
        data = source.read()
        if isinstance(data, bytes):
            return data
    raise InputError(f"{what} must be a path, bytes, a PIL image or a binary file, not {type(source).__name__}")


def join_list(values: str | Sequence[str | float] | None) -> str | None:
    """A form field's comma list from a string or a sequence."""
    if values is None or isinstance(values, str):
        return values
    return ",".join(str(v) for v in values)


@dataclass(frozen=True)
class StyleChoice:
    """Exactly one style source, in the service's own field names (POST /v1/stylize)."""

    style: bytes | None = None
    style_id: str | None = None
    preset: str | None = None
    styles: str | None = None
    weights: str | None = None
    model: str | None = None

    @classmethod
    def of(
        cls,
        style: ImageSource | None = None,
        style_id: str | None = None,
        preset: str | int | None = None,
        styles: str | Sequence[str] | None = None,
        weights: str | Sequence[float] | None = None,
        model: str | None = None,
    ) -> StyleChoice:
        return cls(
            style=image_bytes(style, "style image") if style is not None else None,
            style_id=style_id,
            preset=str(preset) if preset is not None else None,
            styles=join_list(styles),
            weights=join_list(weights),
            model=model,
        )

    def form(self) -> dict[str, str]:
        """The non-file form fields that are set."""
        fields = {"style_id": self.style_id, "preset": self.preset, "styles": self.styles, "weights": self.weights}
        return {name: value for name, value in {**fields, "model": self.model}.items() if value is not None}


@dataclass(frozen=True)
class Options:
    """How to stylise, besides the style: the other fields of POST /v1/stylize."""

    strength: float = 1.0
    preserve_color: bool = False
    max_side: int | None = None
    format: OutputFormat = "png"
    quality: int = 90
    stroke_scale: float | None = None  # None: the server's default for the output size (docs/brush.md)

    def __post_init__(self) -> None:
        # The server's form validation (422), checked here too so that in process refuses the same values.
        problems = []
        if self.format not in FORMATS:
            problems.append(f"format {self.format!r} is not one of {', '.join(FORMATS)}")
        if not 0.0 <= self.strength <= 1.0:
            problems.append(f"strength {self.strength} is not between 0 and 1")
        if not 1 <= self.quality <= 100:
            problems.append(f"quality {self.quality} is not between 1 and 100")
        if self.max_side is not None and self.max_side < 1:
            problems.append(f"max_side {self.max_side} is not a positive number of pixels")
        if self.stroke_scale is not None and not MIN_STROKE_SCALE <= self.stroke_scale <= MAX_STROKE_SCALE:
            problems.append(
                f"stroke_scale {self.stroke_scale} is not between {MIN_STROKE_SCALE} and {MAX_STROKE_SCALE}"
            )
        if problems:
            raise ProblemError(422, "Invalid field", "; ".join(problems), "urn:atelier:problem:invalid-field")

    def form(self) -> dict[str, str]:
        fields = {
            "strength": repr(float(self.strength)),
            "preserve_color": "true" if self.preserve_color else "false",
            "format": self.format,
            "quality": str(self.quality),
        }
        if self.max_side is not None:
            fields["max_side"] = str(self.max_side)
        if self.stroke_scale is not None:
            fields["stroke_scale"] = repr(float(self.stroke_scale))
        return fields


@dataclass(frozen=True)
class Stylized:
    """A stylised image as encoded bytes, with what the service says about it."""

    data: bytes
    media_type: str
    width: int
    height: int
    model: str
    style_id: str

    def image(self) -> Image.Image:
        """The decoded image (RGB)."""
        with Image.open(io.BytesIO(self.data)) as image:
            return image.convert("RGB")


# What the video command and methods take: a clip on disk (MP4, WebM, MOV, animated GIF).
VideoSource = str | os.PathLike
# Called after each frame (in process) or each poll (on a server): (frames done, frames in the clip).
ProgressCallback = Callable[[int, int], None]


def video_path(source: VideoSource) -> Path:
    """The clip's path, checked to be a file (its contents are the service's to judge: 415 if not a video)."""
    if not isinstance(source, (str, os.PathLike)):
        raise InputError(f"a video must be a path to a file, not {type(source).__name__}")
    path = Path(source)
    if not path.exists():
        raise InputError(f"video {str(path)!r} does not exist")
    if not path.is_file():
        raise InputError(f"video {str(path)!r} is a folder, not a video file")
    return path


@dataclass(frozen=True)
class StylizedVideo:
    """A stylised clip, written to ``output``: H.264 in MP4 (Matroska when the audio cannot go into MP4)."""

    output: Path
    frames: int
    media_type: str
    model: str
    seconds: float
    job_id: str | None = None  # the server's job, for --server; None in process
    stroke_scale: float | None = None  # the brush size the clip ran at (the job's, X-Stroke-Scale)
