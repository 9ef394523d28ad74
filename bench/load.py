"""Loopback load generator: latency and throughput of POST /v1/stylize, batching on and off; prints JSON.

    .venv/bin/python -m bench.load [--sizes 256,512,1024] [--concurrency 1,4,16] [--requests 48] \\
        [--seconds 8] [--batch-sizes 8,1] [--out bench/results/load.json]

For each micro-batcher setting it starts `python -m service` on loopback, registers one style (so
every request hits the embedding cache), and drives JPEG-in/JPEG-out requests at each image size and
concurrency, each cell bounded by a request count and a time limit. In the same run, with no server
up, it times the bare transformer session (batch 1, same intra-op threads) on the same sizes, so the
HTTP + codec overhead is a ratio measured on the same machine minutes apart. The load generator runs
on the same cores as the server, which is part of what the ratio charges to HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench.common import IMAGES, MODELS, drive, emit, environment, register_style, serve, square_jpeg, summary
from service import imaging
from service.config import Settings
from service.registry import load_model


def bare_model(sizes: list[int], count: int, seconds: float) -> dict[str, object]:
    """The transformer session alone: one [1,3,S,S] run after another, images per second."""
    settings = Settings()
    model = load_model(MODELS / "magenta-mobile" / "1", settings.providers, settings.ort_intra_op_threads)
    embedding = np.full((1, model.manifest.embedding_size), 0.01, np.float32)
    results: dict[str, object] = {"providers": model.providers, "intra_op_threads": settings.ort_intra_op_threads}
    for size in sizes:
        content = imaging.to_tensor(np.asarray(_decoded(size)))
        model.transform(content, embedding)  # warm-up: first run of a shape allocates
        latencies: list[float] = []
        started = time.perf_counter()
        while len(latencies) < count and time.perf_counter() - started < seconds:
            begun = time.perf_counter()
            model.transform(content, embedding)
            latencies.append(time.perf_counter() - begun)
        results[str(size)] = summary(latencies, time.perf_counter() - started)
    return results


def _decoded(size: int) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(_content(size))).convert("RGB"))


def _content(size: int) -> bytes:
    return square_jpeg(IMAGES / "content" / "tubingen.jpg", size)


def through_http(
    batch_size: int, sizes: list[int], concurrency: list[int], count: int, seconds: float, workdir: Path
) -> dict[str, object]:
    env = {"ATELIER_MAX_BATCH_SIZE": str(batch_size), "ATELIER_MAX_PENDING": "256"}
    with serve(workdir, env) as server:
        style_id = register_style(server.url, (IMAGES / "style" / "starry_night.jpg").read_bytes())
        data = {"style_id": style_id, "format": "jpeg", "quality": "90"}
        results: dict[str, object] = {}
        for size in sizes:
            files = {"content": _content(size)}
            asyncio.run(drive(server.url, files, data, concurrency=2, count=4, seconds=30))  # warm-up
            results[str(size)] = {
                f"c{c}": asyncio.run(drive(server.url, files, data, c, count, seconds)) for c in concurrency
            }
    return results


def ratios(http: dict[str, object], bare: list[dict[str, object]], sizes: list[int]) -> dict[str, object]:
    """End-to-end images/s over bare-model images/s (the mean of the runs before and after), per cell."""
    out: dict[str, object] = {}
    for size in sizes:
        bare_rate = float(np.mean([b[str(size)]["images_per_s"] for b in bare]))  # type: ignore[index]
        cells = http[str(size)]  # type: ignore[index]
        out[str(size)] = {c: round(cell["images_per_s"] / bare_rate, 3) for c, cell in cells.items()}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="256,512,1024")
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--requests", type=int, default=48, help="most requests per cell")
    parser.add_argument("--seconds", type=float, default=8.0, help="most seconds per cell")
    parser.add_argument("--batch-sizes", default="8,1", help="ATELIER_MAX_BATCH_SIZE values (1 = batching off)")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",")]
    concurrency = [int(x) for x in args.concurrency.split(",")]
    batch_sizes = [int(x) for x in args.batch_sizes.split(",")]

    started = time.perf_counter()
    report: dict[str, object] = {"environment": environment(), "settings": vars(args) | {"out": str(args.out)}}
    report["bare_model"] = before = bare_model(sizes, args.requests, args.seconds)
    with tempfile.TemporaryDirectory(prefix="atelier-bench-") as tmp:
        for batch_size in batch_sizes:
            cells = through_http(batch_size, sizes, concurrency, args.requests, args.seconds, Path(tmp))
            report[f"http_batch{batch_size}"] = cells
    # Timed again after the HTTP runs: the machine is shared, and the pair shows the drift.
    report["bare_model_after"] = after = bare_model(sizes, args.requests, args.seconds)
    for batch_size in batch_sizes:
        cells = report[f"http_batch{batch_size}"]
        report[f"http_batch{batch_size}_over_bare"] = ratios(cells, [before, after], sizes)  # type: ignore[arg-type]
    report["wall_s"] = round(time.perf_counter() - started, 1)
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
